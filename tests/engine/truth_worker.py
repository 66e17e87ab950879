"""Run CPU truth cases in this process and print one JSON line per case: the traced and the
measured peak and start. tests/engine/test_truth_cpu_isa.py starts it with the instruction set
restricted (ONEDNN_MAX_CPU_ISA, ATEN_CPU_CAPABILITY are read once, when the process starts).

Usage: python truth_worker.py '[[model, batch, mode, optimizer, amp], ...]'
"""
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))

import torch  # noqa: E402

from engine import AnalysisRequest, analyze  # noqa: E402
from engine.cpu_isa import onednn_family  # noqa: E402
from engine.truth import measure_cpu_step  # noqa: E402


def main(cases):
    for model, batch, mode, optimizer, amp in cases:
        request = AnalysisRequest(model=model, batch=batch, mode=mode, optimizer=optimizer, amp=amp)
        traced = analyze(request)
        measured = measure_cpu_step(request)
        print(json.dumps({
            "case": [model, batch, mode, optimizer, amp],
            "family": onednn_family(), "aten": torch.backends.cpu.get_cpu_capability(),
            "traced_peak": traced.peak.total_bytes, "measured_peak": measured.peak_bytes,
            "traced_start": int(traced.timeline.total[0]), "measured_start": measured.start_bytes,
        }), flush=True)


if __name__ == "__main__":
    main(json.loads(sys.argv[1]))
