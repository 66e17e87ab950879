"""Speed benchmark for language models from a Hugging Face config: a 7-8B-parameter model's
train step at sequence 2048, batch 1, must trace in under 20 s and under 2 GB RSS (issue 11).

Run: `.venv/bin/python benchmarks/hf_speed.py [--quick]` in a fresh process (RSS is this
process's peak). Prints, per case, the first analysis (building the model from its config on
meta, transformers' modelling code loaded on first use, then the trace: what the JSON reports as
analysis_seconds), the best of the warm repeats, the process's peak RSS after the case, and the
budgets. Imports of torch and the engine come before the clock starts; transformers' import is
inside the first analysis, where a user pays for it. Exits 1 when a budget is missed.
"""
from __future__ import annotations

import argparse
import os
import resource
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from engine import AnalysisRequest, analyze  # noqa: E402

HF = os.path.join(ROOT, "resources", "hf")
SECONDS_BUDGET = 20.0
RSS_BUDGET_BYTES = 2 * 10**9

# (label, request, seconds budget or None)
CASES = [
    ("llama-3.1-8b s2048 b1 train adam", AnalysisRequest(model=os.path.join(HF, "llama-3.1-8b"), batch=1,
                                                         input_shape=(2048,)), SECONDS_BUDGET),
    ("llama-3.1-8b s2048 b1 LoRA r8 train adam",
     AnalysisRequest(model=os.path.join(HF, "llama-3.1-8b"), batch=1, input_shape=(2048,), lora_rank=8), SECONDS_BUDGET),
    ("llama-3.1-8b s2048 b1 inference", AnalysisRequest(model=os.path.join(HF, "llama-3.1-8b"), batch=1,
                                                        input_shape=(2048,), mode="inference"), SECONDS_BUDGET),
    ("mixtral-8x7b s2048 b1 train adam", AnalysisRequest(model=os.path.join(HF, "mixtral-8x7b"), batch=1,
                                                         input_shape=(2048,)), None),
]


def rss_bytes() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # Linux: KiB


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="the first case only, no warm repeats")
    args = parser.parse_args()
    cases = CASES[:1] if args.quick else CASES
    repeats = 0 if args.quick else 2
    failed = False
    print(f"{'case':<42} {'first s':>8} {'warm s':>8} {'peak GiB':>9} {'RSS MB':>8}  budget")
    for label, request, budget in cases:
        analysis = analyze(request)
        first = analysis.analysis_seconds
        warm = min((analyze(request).analysis_seconds for _ in range(repeats)), default=float("nan"))
        peak = analysis.peak.total_bytes
        rss = rss_bytes()
        verdict = ""
        if budget is not None:
            ok = first < budget and rss < RSS_BUDGET_BYTES
            failed |= not ok
            verdict = f"{'ok' if ok else 'MISSED'} (< {budget:g} s, < {RSS_BUDGET_BYTES / 1e9:g} GB)"
        print(f"{label:<42} {first:8.2f} {warm:8.2f} {peak / 2**30:9.2f} {rss / 1e6:8.0f}  {verdict}", flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
