"""Build resources/cuda/cudnn_conv_workspaces.json from a recorded GPU run's `conv_workspaces`
(benchmarks/gpu_accuracy.py): for every convolution recorded, per dtype, the bytes cuDNN's
heuristics took above the outputs — forward, backward with the input's gradient, backward for
the weight only — and, from the recorded training steps, the input gradient's own workspace and
the channels-last (NHWC) convolutions' workspaces. engine/cudnn_workspaces.py reads it.

    python benchmarks/gpu_conv_table.py [RUN_FOLDER]
"""
import json
import os
import sys
from collections import Counter

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "benchmarks"))
from gpu_accuracy import load_document  # noqa: E402

COLUMNS = ["dtype", "n", "c", "h", "w", "out", "kh", "kw", "sh", "sw", "ph", "pw", "dh", "dw", "groups",
           "forward", "backward", "backward_weight_only", "backward_data", "layout"]
FRESH = os.path.join(ROOT, "tests", "data", "gpu", "h200_2026-11-28_fresh")


def step_workspaces(run: str, select=lambda case: True) -> tuple[dict, dict]:
    """What the recorded training steps show of each traced convolution, in one pass: every
    traced convolution (CUDA trace, in autograd's order, the GPU's too) is matched to the
    recorded events in turn (`_match`): forward, its output then any immediate alloc/free (its
    workspace); backward, the input's gradient, [its workspace], the weight's gradient, [its
    workspace]. A convolution the events do not show is skipped, and the next is looked for
    from the same place.

    Returns (data, nhwc):
    - data: {table key (15 fields): the input-gradient pass's own workspace} for NCHW
      convolutions, which the one-convolution probe folds into the whole backward; 0 when the
      step shows none. Each key's most frequent reading (a shape seen several times reads the same).
    - nhwc: {table key: (forward, weight-only, data)} for channels-last convolutions (cuDNN's
      NHWC kernels; a depthwise one runs on cuDNN only in channels-last), which the probe ran
      NCHW only; each the largest seen.
    `select` picks the recorded cases to read (default: every SGD training step)."""
    readings: dict[tuple, list[int]] = {}
    nhwc: dict[tuple, list[int]] = {}
    for calls, events in _recorded_steps(run, select):
        i = 0
        for direction, key, last, outputs, mask in calls:
            match = _match(events, i, outputs)
            if match is None:
                continue
            i, workspaces = match
            if direction == "backward" and not last and mask[0] and mask[1]:
                readings.setdefault(key, []).append(workspaces[0])
            elif last:
                got = nhwc.setdefault(key, [0, 0, 0])
                if direction == "forward":
                    got[0] = max(got[0], workspaces[0])
                else:
                    data = workspaces[0] if mask[0] else 0
                    weight_only = workspaces[-1] if mask[1] else 0
                    got[1], got[2] = max(got[1], weight_only), max(got[2], data)
    data = {key: max(Counter(seen).most_common(), key=lambda pair: (pair[1], pair[0]))[0]
            for key, seen in readings.items()}
    return data, {key: tuple(v) for key, v in nhwc.items()}


def _recorded_steps(run: str, select=lambda case: True):
    """For each recorded SGD training step: the convolutions its CUDA trace ran, in order, as
    (direction, table key, channels-last, output block sizes, backward mask), and the recorded
    (size, address) events. The order is autograd's on the GPU too."""
    sys.path.insert(0, ROOT)
    from gpu_predict import request_for

    import engine.cudnn_workspaces as cw
    from engine.allocator_replay import decode_trace
    from engine.pipeline import analyze

    document = load_document(os.path.join(run, "gpu_accuracy.json"))
    calls: list[tuple] = []
    original = cw.CudnnWorkspaces.__call__

    def key_of(x, weight, stride, padding, dilation, groups):
        n, c, h, w = (int(v) for v in x.shape)
        return (cw._DTYPES.get(x.dtype, "?"), n, c, h, w, int(weight.shape[0]), int(weight.shape[2]),
                int(weight.shape[3]), *map(int, stride), *map(int, padding), *map(int, dilation), int(groups))

    def logging(self, func, args):
        if func is cw.aten.convolution.default and not args[6] and args[0].dim() == 4:
            x, weight = args[0], args[1]
            out = cw._output_shape(x.shape, weight.shape, args[3], args[4], args[5], False, args[7], args[8])
            calls.append(("forward", key_of(x, weight, args[3], args[4], args[5], args[8]), cw.channels_last(x, weight),
                          (cw._block(cw._numel(out) * x.element_size()),), None))
        elif func is cw.aten.convolution_backward.default and not args[7] and args[1].dim() == 4:
            x, weight, mask = args[1], args[2], tuple(args[10])
            grads = ((cw._block(x.numel() * x.element_size()),) if mask[0] else ()) + \
                ((cw._block(weight.numel() * weight.element_size()),) if mask[1] else ())
            calls.append(("backward", key_of(x, weight, args[4], args[5], args[6], args[9]),
                          cw.channels_last(x, weight), grads, mask))
        return original(self, func, args)

    cw.CudnnWorkspaces.__call__ = logging
    try:
        for case in document["cases"]:
            if case["mode"] != "train" or case["optimizer"] != "sgd" or "error" in case or not select(case):
                continue
            calls.clear()
            try:
                analyze(request_for(case, tuple(document["compute_capability"])))
            except Exception:  # noqa: BLE001 - a model the trace cannot run gives no convolutions
                continue
            sizes, addresses = decode_trace(case["trace"])
            yield list(calls), list(zip(sizes.tolist(), addresses.tolist()))
    finally:
        cw.CudnnWorkspaces.__call__ = original


def _match(events, start, outputs):
    """From `start`, the first place where each output's allocation follows the last, each
    followed by what the kernel does before the next output: immediate alloc/free pairs (its
    workspaces; the largest counts) and an output freed and made again (cuDNN's NHWC weight
    gradient is computed twice). Returns (next index, largest workspace after each output)."""
    import engine.cudnn_workspaces as cw

    def pair(j):
        return j + 1 < len(events) and events[j][0] > 0 and events[j + 1][0] < 0 and events[j + 1][1] == events[j][1]

    for i in range(start, len(events)):
        j, workspaces, made = i, [], {}
        for size in outputs:
            if j >= len(events) or events[j][0] <= 0 or cw._block(events[j][0]) != size:
                break
            made[events[j][1]] = size
            j, largest = j + 1, 0
            while True:
                if pair(j):
                    largest, j = max(largest, cw._block(events[j][0])), j + 2
                elif (j + 1 < len(events) and events[j][0] < 0 and events[j][1] in made and events[j + 1][0] > 0
                      and cw._block(events[j + 1][0]) == made[events[j][1]]):
                    made[events[j + 1][1]] = made.pop(events[j][1])
                    j += 2
                else:
                    break
            workspaces.append(largest)
        else:
            return j, workspaces
    return None


def main(run: str) -> int:
    document = load_document(os.path.join(run, "gpu_accuracy.json"))
    rows = []
    for r in document["conv_workspaces"]:
        if "error" in r or isinstance(r["padding"], str):
            continue
        n, c, h, w = r["input"]
        rows.append([r["dtype"], n, c, h, w, r["out"], *r["kernel"], *r["stride"], *r["padding"], *r["dilation"],
                     r["groups"], r["forward"], r["backward"], r["backward_weight_only"], None,
                     r.get("layout", "nchw")])
    data, channels_last = step_workspaces(FRESH)
    for row in rows:
        if row[-1] == "nchw":
            row[-2] = data.get(tuple(row[:15]))
    read = sum(r[-2] is not None for r in rows)
    print(f"input-gradient workspaces read from the recorded steps: {read} of {len(rows)}")
    probed = {tuple(row[:15]) for row in rows if row[-1] == "nhwc"}  # recordings with the NHWC probe
    nhwc = {key: v for key, v in channels_last.items() if key not in probed}
    for key, (forward, weight_only, data) in sorted(nhwc.items()):
        rows.append([*key, forward, max(weight_only, data), weight_only, data, "nhwc"])
    print(f"channels-last convolutions read from the recorded steps: {len(nhwc)}")
    table = {"gpu": document["gpu"], "compute_capability": document["compute_capability"],
             "torch": ".".join(document["torch"].split("+")[0].split(".")[:2]), "cudnn": document["cudnn"],
             "date": document["date"], "source": os.path.relpath(run, ROOT),
             "note": "bytes above the outputs at the peak of one convolution run alone (cuDNN's heuristics, "
                     "benchmark mode off), measured with max_memory_allocated; layout nhwc: channels-last "
                     "convolutions, read from the recorded training steps (benchmarks/gpu_conv_table.py)",
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
