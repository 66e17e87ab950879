"""Build resources/cuda/cudnn_conv_workspaces.json from a recorded GPU run's `conv_workspaces`
(benchmarks/gpu_accuracy.py): for every convolution recorded, per dtype, the bytes cuDNN's
heuristics took above the outputs — forward, backward with the input's gradient, backward for
the weight only. engine/cudnn_workspaces.py reads it.

    python benchmarks/gpu_conv_table.py [RUN_FOLDER]
"""
import json
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "benchmarks"))
from gpu_accuracy import load_document  # noqa: E402

COLUMNS = ["dtype", "n", "c", "h", "w", "out", "kh", "kw", "sh", "sw", "ph", "pw", "dh", "dw", "groups",
           "forward", "backward", "backward_weight_only", "backward_data"]
FRESH = os.path.join(ROOT, "tests", "data", "gpu", "h200_2026-11-28_fresh")


def input_gradient_workspaces(run: str) -> dict:
    """The input-gradient pass's own workspace, which the one-convolution probe folds into the
    whole backward: read from the recorded training steps, where cuDNN allocates the input's
    gradient, its workspace (freed), the weight's gradient, its workspace (freed). Each traced
    convolution backward (in autograd's order, the GPU's too) is matched to the next such pattern
    whose gradients have its input's and weight's sizes."""
    sys.path.insert(0, ROOT)
    from gpu_predict import request_for

    import engine.cudnn_workspaces as cw
    from engine.allocator_replay import decode_trace
    from engine.pipeline import analyze

    document = load_document(os.path.join(run, "gpu_accuracy.json"))
    found: dict[tuple, int] = {}
    calls: list[tuple] = []
    original = cw.CudnnWorkspaces.__call__

    def logging(self, func, args):
        if func is cw.aten.convolution_backward.default and args[10][0] and not args[7]:
            x, weight = args[1], args[2]
            n, c, h, w = (int(v) for v in x.shape)
            key = (cw._DTYPES.get(x.dtype, "?"), n, c, h, w, int(weight.shape[0]), int(weight.shape[2]),
                   int(weight.shape[3]), *map(int, args[4]), *map(int, args[5]), *map(int, args[6]), int(args[9]))
            calls.append((key, cw._block(x.numel() * x.element_size()),
                          cw._block(weight.numel() * weight.element_size())))
        return original(self, func, args)

    cw.CudnnWorkspaces.__call__ = logging
    try:
        for case in document["cases"]:
            if case["mode"] != "train" or case["optimizer"] != "sgd" or "error" in case:
                continue
            calls.clear()
            try:
                analyze(request_for(case, tuple(document["compute_capability"])))
            except Exception:  # noqa: BLE001 - a model the trace cannot run gives no pairs
                continue
            sizes, addresses = decode_trace(case["trace"])
            events = list(zip(sizes.tolist(), addresses.tolist()))
            i = 0
            for key, input_bytes, weight_bytes in calls:
                while i + 5 < len(events):
                    (s0, _), (s1, a1), (s2, a2), (s3, _), (s4, a4), (s5, a5) = events[i:i + 6]
                    if (cw._block(s0) == input_bytes and s1 > 0 and s2 < 0 and a2 == a1 and
                            cw._block(s3) == weight_bytes and s4 > 0 and s5 < 0 and a5 == a4):
                        found.setdefault(key, cw._block(s1))
                        i += 6
                        break
                    i += 1
    finally:
        cw.CudnnWorkspaces.__call__ = original
    return found


def main(run: str) -> int:
    document = load_document(os.path.join(run, "gpu_accuracy.json"))
    rows = []
    for r in document["conv_workspaces"]:
        if "error" in r or isinstance(r["padding"], str):
            continue
        n, c, h, w = r["input"]
        rows.append([r["dtype"], n, c, h, w, r["out"], *r["kernel"], *r["stride"], *r["padding"], *r["dilation"],
                     r["groups"], r["forward"], r["backward"], r["backward_weight_only"], None])
    data = input_gradient_workspaces(FRESH)
    for row in rows:
        row[-1] = data.get(tuple(row[:15]))
    print(f"input-gradient workspaces read from the recorded steps: {sum(r[-1] is not None for r in rows)} of {len(rows)}")
    table = {"gpu": document["gpu"], "compute_capability": document["compute_capability"],
             "torch": ".".join(document["torch"].split("+")[0].split(".")[:2]), "cudnn": document["cudnn"],
             "date": document["date"], "source": os.path.relpath(run, ROOT),
             "note": "bytes above the outputs at the peak of one convolution run alone (cuDNN's heuristics, "
                     "benchmark mode off), measured with max_memory_allocated",
             "columns": COLUMNS, "rows": rows}
    path = os.path.join(ROOT, "resources", "cuda", "cudnn_conv_workspaces.json")
    with open(path, "w") as f:
        json.dump(table, f, separators=(",", ":"))
        f.write("\n")
    print(f"wrote {path}: {len(rows)} rows")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1] if len(sys.argv) > 1 else os.path.join(ROOT, "tests", "data", "gpu",
                                                                     "h200_2026-11-28_probes")))
