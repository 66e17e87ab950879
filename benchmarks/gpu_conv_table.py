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
           "forward", "backward", "backward_weight_only"]


def main(run: str) -> int:
    document = load_document(os.path.join(run, "gpu_accuracy.json"))
    rows = []
    for r in document["conv_workspaces"]:
        if "error" in r or isinstance(r["padding"], str):
            continue
        n, c, h, w = r["input"]
        rows.append([r["dtype"], n, c, h, w, r["out"], *r["kernel"], *r["stride"], *r["padding"], *r["dilation"],
                     r["groups"], r["forward"], r["backward"], r["backward_weight_only"]])
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
