"""Every torchvision classification model against a measured CPU step: a real training step
(batch 2, Adam) and a real inference pass, each traced by MemLens and measured by the allocator
(engine/truth.py). Target: within 2% (docs/VALIDATION.md).

Run: `nice -n 19 .venv/bin/python benchmarks/cpu_truth_all.py [--models a,b] [--mode train|inference|both]`
Restrict the instruction set as for the truth tests, e.g. `ONEDNN_MAX_CPU_ISA=AVX2
ATEN_CPU_CAPABILITY=avx2`. Leave the thread count as it is: oneDNN's scratchpads follow it.
Native resolution, except the largest models (SMALLER); a model whose traced peak exceeds half
the memory available now is skipped and listed as such. The cheapest models run first.

Resumable: each (model, mode) appends one JSON line to benchmarks/results/cpu_truth_<family>.jsonl
as soon as it is measured, and a rerun skips the pairs already there (`--summary` only prints
the file's figures, `--markdown` the table for docs/VALIDATION.md; `--retrace` traces the measured pairs again (those of `--models` if given)
with the current engine and rewrites their traced peak and error, keeping the measurement).
"""
from __future__ import annotations

import argparse
import datetime
import gc
import json
import os
import platform
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

import torch  # noqa: E402

from engine import AnalysisRequest, analyze  # noqa: E402
from engine.cpu_isa import onednn_family  # noqa: E402
from engine.sources.torchvision_models import catalog  # noqa: E402
from engine.truth import measure_cpu_step  # noqa: E402

TOLERANCE = 0.02
# The six with the largest activations at their native resolution take a smaller one here.
SMALLER = {
    "efficientnet_v2_l": (3, 224, 224),
    "efficientnet_v2_m": (3, 224, 224),
    "efficientnet_b7": (3, 224, 224),
    "efficientnet_b6": (3, 224, 224),
    "regnet_y_128gf": (3, 160, 160),
    "regnet_y_32gf": (3, 160, 160),
}
MODES = {"train": "adam", "inference": "none"}


def results_path(family: str) -> str:
    return os.path.join(ROOT, "benchmarks", "results", f"cpu_truth_{family}.jsonl")


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.partition(":")[2].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def available_bytes() -> int:
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    return 1 << 62


def by_cost(names: list[str]) -> list[str]:
    """Cheapest first (torchvision's GFLOPs per image at the weights' resolution), so an
    interrupted run has measured as many models as its time allowed."""
    import torchvision.models as tvm

    def gflops(name):
        try:
            return tvm.get_model_weights(name).DEFAULT.meta.get("_ops", 1e9)
        except (ValueError, AttributeError, KeyError):
            return 1e9
    return sorted(names, key=gflops)


def run(name: str, mode: str) -> dict:
    shape = SMALLER.get(name)
    row = {"model": name, "mode": mode, "optimizer": MODES[mode], "batch": 2,
           "input_shape": list(shape) if shape else None}
    request = request_of(row)
    start = time.perf_counter()
    try:
        traced = analyze(request).peak.total_bytes
        row["traced"] = traced
        if traced > available_bytes() // 2:
            row["note"] = "skipped (memory)"
        else:
            measured = measure_cpu_step(request).peak_bytes
            row["measured"] = measured
            row["error"] = round((traced - measured) / measured, 6)
    except Exception as e:  # a model that cannot run here is reported, not fatal
        row["note"] = f"error: {type(e).__name__}: {str(e)[:120]}"
    gc.collect()
    row["seconds"] = round(time.perf_counter() - start, 1)
    return row


def request_of(row: dict) -> AnalysisRequest:
    shape = tuple(row["input_shape"]) if row.get("input_shape") else None
    return AnalysisRequest(model=row["model"], batch=row["batch"], mode=row["mode"], optimizer=row["optimizer"],
                           input_shape=shape)


def retrace(rows: list[dict], names: set[str] | None) -> None:
    for row in rows:
        if "measured" in row and (names is None or row["model"] in names):
            row["traced"] = analyze(request_of(row)).peak.total_bytes
            row["error"] = round((row["traced"] - row["measured"]) / row["measured"], 6)
            gc.collect()


def summary(rows: list[dict]) -> str:
    errors = [r["error"] for r in rows if "error" in r]
    skipped = [f"{r['model']} {r['mode']} ({r['note']})" for r in rows if "error" not in r]
    lines = [f"{len(errors)} measured: {sum(abs(e) < TOLERANCE for e in errors)} within 2%, "
             f"{sum(abs(e) < 0.01 for e in errors)} within 1%"
             + (f", worst {max(errors, key=abs):+.2%}" if errors else "")]
    lines += [f"outside 2%: {r['model']} {r['mode']} {r['error']:+.2%}" for r in rows
              if "error" in r and abs(r["error"]) >= TOLERANCE]
    lines += [f"not measured: {s}" for s in skipped]
    return "\n".join(lines)


def markdown(rows: list[dict]) -> str:
    """docs/VALIDATION.md's table for one family: a line of figures, one row per model (cheapest
    first), and the models not measured yet."""
    measured = [r for r in rows if "error" in r]
    first = measured[0] if measured else {}
    errors = [r["error"] for r in measured]
    models = list(dict.fromkeys(r["model"] for r in rows))
    head = (f"{len(models)} models, {len(errors)} measurements: {sum(abs(e) < TOLERANCE for e in errors)} within 2%, "
            f"{sum(abs(e) < 0.01 for e in errors)} within 1%, worst {max(errors, key=abs, default=0):+.2%}; "
            f"CPU {first.get('cpu', '?')}, {first.get('threads', '?')} threads, torch {first.get('torch', '?')}, "
            f"ATen {first.get('aten', '?')}, {max((r.get('date', '') for r in rows), default='')}.")
    cell = {(r["model"], r["mode"]): (f"{r['error']:+.2%}" if "error" in r else f"not measured ({r['note']})")
            for r in rows}
    size = {r["model"]: r.get("input_shape") for r in rows}
    lines = [head, "", "| model | train (Adam) | inference |", "|---|---|---|"]
    for name in models:
        label = name + (f" @{size[name][-1]}" if size[name] else "")
        lines.append(f"| {label} | {cell.get((name, 'train'), '-')} | {cell.get((name, 'inference'), '-')} |")
    missing = [n for n in by_cost(catalog()["classification"]) if n not in models]
    if missing:
        lines += ["", f"Not measured yet ({len(missing)}, the most expensive): {', '.join(sorted(missing))}."]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", help="comma-separated names (default: every classification model)")
    parser.add_argument("--mode", choices=["train", "inference", "both"], default="both")
    parser.add_argument("--summary", action="store_true", help="print the results file's figures and stop")
    parser.add_argument("--retrace", action="store_true", help="trace the measured pairs again, then stop")
    parser.add_argument("--markdown", action="store_true", help="print the results file as docs/VALIDATION.md's "
                        "table for this family and stop")
    args = parser.parse_args()
    family = onednn_family()
    path = results_path(family)
    rows = []
    if os.path.exists(path):
        with open(path) as f:
            rows = [json.loads(line) for line in f if line.startswith("{")]
    if args.markdown:
        print(markdown(rows))
        return
    if args.retrace:
        retrace(rows, set(args.models.split(",")) if args.models else None)
        with open(path, "w") as f:
            f.writelines(json.dumps(row) + "\n" for row in rows)
    if args.summary or args.retrace:
        print(summary(rows))
        return
    done = {(r["model"], r["mode"]) for r in rows}
    names = args.models.split(",") if args.models else by_cost(catalog()["classification"])
    modes = list(MODES) if args.mode == "both" else [args.mode]
    context = {"family": family, "aten": torch.backends.cpu.get_cpu_capability(),
               "threads": torch.get_num_threads(), "torch": torch.__version__, "cpu": cpu_model(),
               "onednn_max_cpu_isa": os.environ.get("ONEDNN_MAX_CPU_ISA")}
    print(json.dumps(context), flush=True)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    for name in names:
        for mode in modes:
            if (name, mode) in done:
                continue
            row = run(name, mode)
            row.update(context, date=datetime.date.today().isoformat())
            with open(path, "a") as f:
                f.write(json.dumps(row) + "\n")
            rows.append(row)
            error = f"{row['error']:+.2%}" if "error" in row else ""
            print(f"{name:24s} {mode:9s} {row.get('traced', 0):>14,d} {row.get('measured', 0):>14,d} "
                  f"{error:>8s} {row['seconds']:>6.0f}s {row.get('note', '')}", flush=True)
    print(summary(rows))


if __name__ == "__main__":
    main()
