"""Build resources/cuda/cudnn_conv_workspaces.json from a recorded GPU run's `conv_workspaces`
(benchmarks/gpu_accuracy.py): for every convolution recorded, per dtype, the bytes cuDNN's
heuristics took above the outputs — forward, backward with the input's gradient, backward for
the weight only — and, from the recorded SGD training steps, each pass's workspace as cuDNN
asked for it (forward, weight-only, the input gradient's own) wherever a step shows the
convolution, and the channels-last (NHWC) convolutions' workspaces. engine/cudnn_workspaces.py
reads it.

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
    """What the recorded SGD training steps show of each convolution's workspaces, as cuDNN asked
    for them (exact requests, where the one-convolution probe measured block-rounded peaks that
    the allocator's unsplit remainders inflate by up to 1 MiB, more at a fresh segment).

    Each case is traced for CUDA (the same step, in autograd's order, the GPU's too) and its
    events, less the traced workspaces, are aligned with the recorded ones (`_aligned`). A
    convolution's output that aligns is read (`_after`): the alloc/free pairs right after it are
    its workspace (0 when none), read only where the next traced event aligns right after them.
    Returns (nchw, nhwc): {table key (15 fields): [forward, weight-only, data]}, each a pass's
    most frequent reading (ties: the larger), None where no step showed it; the channels-last
    convolutions (cuDNN's NHWC kernels, which the probe ran NCHW only) apart.
    `select` picks the recorded cases to read (default: every SGD training step)."""
    readings: dict[tuple, list[list[int]]] = {}
    layouts: dict[tuple, bool] = {}
    for calls, traced, recorded in _recorded_steps(run, select):
        skip = {i for call in calls for i in call["workspaces"]}
        aligned = _aligned(traced, recorded, skip)
        for call in calls:
            layouts[call["key"]] = call["last"]
            columns = readings.setdefault(call["key"], [[], [], []])
            # forward: its output; backward: the input's gradient (data), then the weight's
            for position, event in call["outputs"]:
                column = 0 if call["direction"] == "forward" else {0: 2, 1: 1}.get(position)
                if column is None or event not in aligned:
                    continue
                nxt = event + 1
                while nxt in skip:
                    nxt += 1
                workspace, end = _after(recorded, aligned[event])
                if aligned.get(nxt) == end:
                    columns[column].append(workspace)
    chosen = {key: [max(Counter(seen).most_common(), key=lambda pair: (pair[1], pair[0]))[0] if seen else None
                    for seen in columns] for key, columns in readings.items()}
    nchw = {key: v for key, v in chosen.items() if not layouts[key]}
    nhwc = {key: v for key, v in chosen.items() if layouts[key]}
    return nchw, nhwc


def _recorded_steps(run: str, select=lambda case: True):
    """For each recorded SGD training step: the convolutions its CUDA trace ran, each as a dict
    (direction, table key, channels-last, the traced event of each output and of its
    workspaces), the traced (signed block size) events, and the recorded (size, address) events."""
    sys.path.insert(0, ROOT)
    from gpu_predict import request_for

    import engine.cudnn_workspaces as cw
    from engine.allocator_replay import decode_trace
    from engine.pipeline import analyze
    from engine.tracer import StepRecorder

    document = load_document(os.path.join(run, "gpu_accuracy.json"))
    calls: list[dict] = []
    original, replay = cw.CudnnWorkspaces.__call__, StepRecorder._replay

    def key_of(x, weight, stride, padding, dilation, groups):
        n, c, h, w = (int(v) for v in x.shape)
        return (cw._DTYPES.get(x.dtype, "?"), n, c, h, w, int(weight.shape[0]), int(weight.shape[2]),
                int(weight.shape[3]), *map(int, stride), *map(int, padding), *map(int, dilation), int(groups))

    def logging(self, func, args):
        script = original(self, func, args)
        if func is cw.aten.convolution.default and not args[6] and args[0].dim() == 4:
            calls.append({"direction": "forward", "key": key_of(args[0], args[1], args[3], args[4], args[5], args[8]),
                          "last": cw.channels_last(args[0], args[1]), "script": script})
        elif func is cw.aten.convolution_backward.default and not args[7] and args[1].dim() == 4:
            calls.append({"direction": "backward", "key": key_of(args[1], args[2], args[4], args[5], args[6], args[9]),
                          "last": cw.channels_last(args[1], args[2]), "script": script})
        return script

    def replaying(self, script, out):  # which events a logged convolution's outputs and workspaces made
        call = calls[-1] if calls and calls[-1].get("script") is script else None
        if call is None:
            return replay(self, script, out)
        outputs = out if isinstance(out, (tuple, list)) else (out,)
        call.update(outputs=[], workspaces=[])
        scratch: set[int] = set()
        on_output, scratch_alloc, event = self._on_output, self._scratch_alloc, self._event

        def output(t):
            before = len(self.ev_nbytes)
            on_output(t)
            if len(self.ev_nbytes) > before:
                call["outputs"].append((next(i for i, o in enumerate(outputs) if o is t), before))

        def workspace(serial, nbytes):
            scratch.add(serial)
            scratch_alloc(serial, nbytes)

        def recorded(nbytes, serial):
            if serial in scratch:
                call["workspaces"].append(len(self.ev_nbytes))
            event(nbytes, serial)

        self._on_output, self._scratch_alloc, self._event = output, workspace, recorded
        try:
            replay(self, script, out)
        finally:
            del self._on_output, self._scratch_alloc, self._event, call["script"]

    cw.CudnnWorkspaces.__call__, StepRecorder._replay = logging, replaying
    try:
        for case in document["cases"]:
            if case["mode"] != "train" or case["optimizer"] != "sgd" or "error" in case or not select(case):
                continue
            calls.clear()
            try:
                analysis = analyze(request_for(case, tuple(document["compute_capability"])))
            except Exception:  # noqa: BLE001 - a model the trace cannot run gives no convolutions
                continue
            sizes, addresses = decode_trace(case["trace"])
            done = [c for c in calls if "outputs" in c]
            yield done, analysis.events.nbytes.tolist(), list(zip(sizes.tolist(), addresses.tolist()))
    finally:
        cw.CudnnWorkspaces.__call__, StepRecorder._replay = original, replay


def _token(nbytes: int) -> int:
    import engine.cudnn_workspaces as cw

    return cw._block(nbytes) if nbytes > 0 else -cw._block(-nbytes)


def _aligned(traced: list[int], recorded: list[tuple[int, int]], skip: set[int]) -> dict[int, int]:
    """{traced event: recorded event} where the two steps agree (signed block sizes, longest
    common runs first: difflib), the traced workspace events (`skip`) left out and marked so
    that they break the runs as the recorded workspaces do."""
    import difflib

    a = [("ws", i) if i in skip else _token(n) for i, n in enumerate(traced)]
    b = [_token(size) for size, _ in recorded]
    matcher = difflib.SequenceMatcher(None, a, b, autojunk=False)
    return {block.a + d: block.b + d for block in matcher.get_matching_blocks() for d in range(block.size)}


def _after(events: list[tuple[int, int]], made: int) -> tuple[int, int]:
    """What a kernel does after making its output at `made`: immediate alloc/free pairs (its
    workspaces; the largest counts) and the output freed and made again (cuDNN's NHWC weight
    gradient is computed twice). Returns (largest workspace, the next event's index)."""
    import engine.cudnn_workspaces as cw

    address, size = events[made][1], cw._block(events[made][0])
    j, largest = made + 1, 0
    while j + 1 < len(events):
        (first, at), (second, then) = events[j], events[j + 1]
        if first > 0 and second < 0 and then == at:
            largest, j = max(largest, cw._block(first)), j + 2
        elif first < 0 and at == address and second > 0 and cw._block(second) == size:
            address, j = then, j + 2
        else:
            break
    return largest, j


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
    nchw, channels_last = step_workspaces(FRESH)
    read = [0, 0, 0]
    for row in rows:
        if row[-1] != "nchw" or tuple(row[:15]) not in nchw:
            continue
        for i, (column, value) in enumerate(zip((15, 17, 18), nchw[tuple(row[:15])])):
            if value is not None:
                row[column], read[i] = value, read[i] + 1
    print(f"read from the recorded steps, of {len(rows)} rows: forward {read[0]}, weight-only {read[1]}, "
          f"input-gradient {read[2]}")
    probed = {tuple(row[:15]) for row in rows if row[-1] == "nhwc"}  # recordings with the NHWC probe
    nhwc = {key: [v or 0 for v in values] for key, values in channels_last.items() if key not in probed}
    for key, (forward, weight_only, data) in sorted(nhwc.items()):
        rows.append([*key, forward, max(weight_only, data), weight_only, data, "nhwc"])
    print(f"channels-last convolutions read from the recorded steps: {len(nhwc)}")
    table = {"gpu": document["gpu"], "compute_capability": document["compute_capability"],
             "torch": ".".join(document["torch"].split("+")[0].split(".")[:2]), "cudnn": document["cudnn"],
             "date": document["date"], "source": os.path.relpath(run, ROOT),
             "note": "forward, backward_weight_only, backward_data: cuDNN's requests (heuristics, benchmark mode "
                     "off) read from the recorded SGD training steps where a step shows the convolution; else "
                     "(and backward, the whole pass) the bytes above the outputs at the peak of one convolution "
                     "run alone, measured with max_memory_allocated; layout nhwc: channels-last convolutions, "
                     "read from the recorded training steps (benchmarks/gpu_conv_table.py)",
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
