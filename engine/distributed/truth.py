"""Measured truth for a distributed step: the same step run for real on the CPU with the `gloo`
backend, one process per rank, each rank measured like the single-process truth (engine/truth.py):
bytes live at the start (unique storages the rank holds) + the highest running sum of the CPU
allocator's `[memory]` events that torch.profiler records during the step.

Validation only (the tests and benchmarks use it); it allocates everything for real.
- Steady state: two warm-up steps, then grads dropped. DDP rebuilds its buckets in the second
  forward, so the measured step uses the rebuilt ones; they are live from the start, and read
  through a comm hook that wraps the default all-reduce (Python cannot reach DDP's buckets).
- FSDP2's unsharded parameters are freed between steps (their storage resized to 0).
- Collectives complete as they are issued, as under the trace's fake backend (see
  `_complete_collectives_when_issued`), and the lowest of MEASURED_STEPS steps is kept: the one
  where gloo's worker threads had let go of their staging buffers before the step went on.
"""
from __future__ import annotations

import gc
import os
import socket
from dataclasses import dataclass


# Each rank measures the steady-state step this many times and keeps the lowest peak: gloo's worker
# threads release their staging buffers when thread scheduling lets them, and the step as the
# fake backend defines it (collectives complete, their buffers gone, when issued) is the run where
# they did so before the main thread went on (resnet18 FSDP x4: exact, or +18 MB when a worker's
# 18 MB buffer outlived its collective into the next block's backward).
MEASURED_STEPS = 5


@dataclass(frozen=True)
class RankMeasurement:
    rank: int
    peak_bytes: int
    start_bytes: int
    held: dict  # parameters / gradients / optimizer_state bytes the rank holds after the step


def measure_ranks(request, timeout: float = 300.0) -> list[RankMeasurement]:
    """Run `request`'s step on `request.world_size` gloo ranks; one measurement per rank."""
    from ..isolated import engine_forkserver

    # A fresh process per rank, forked from the server that imported the engine once: no
    # import of torch per rank and per call.
    context = engine_forkserver()
    queue = context.Queue()
    port = _free_port()
    procs = [context.Process(target=_rank_main, args=(r, port, request, queue), daemon=True)
             for r in range(request.world_size)]
    for p in procs:
        p.start()
    try:
        results = [queue.get(timeout=timeout) for _ in procs]
    finally:
        for p in procs:
            p.join(10)
            if p.is_alive():
                p.kill()
                p.join()
    errors = [r for r in results if isinstance(r, str)]
    if errors:
        raise RuntimeError(errors[0])
    return sorted(results, key=lambda m: m.rank)


def _rank_main(rank: int, port: int, request, queue) -> None:
    try:
        queue.put(_measure_rank(rank, port, request))
    except BaseException as e:  # the parent reports it
        queue.put(f"rank {rank}: {type(e).__name__}: {e}")


def _measure_rank(rank: int, port: int, request) -> RankMeasurement:
    import datetime

    import torch
    import torch.distributed as dist
    from torch.distributed.device_mesh import init_device_mesh
    from torch.profiler import ProfilerActivity, profile

    from ..step import build_optimizer, optimizer_state_tensors, run_step, torch_dtype
    from ..truth import build_real_step, unique_bytes
    from .recorder import local
    from .strategies import DDP_LIKE
    from .wrap import apply, tp_optimizer, zero1_optimizer

    torch.set_num_threads(1)  # N ranks share this machine's cores
    _complete_collectives_when_issued()
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=request.world_size,
                            timeout=datetime.timedelta(seconds=120))
    try:
        mesh = init_device_mesh("cpu", (request.world_size,))
        step = build_real_step(request, "cpu")
        mixed = {k: getattr(request, k) and torch_dtype(getattr(request, k)) for k in ("param_dtype", "reduce_dtype")}
        model = apply(step.model, request.strategy, mesh, bucket_cap_mb=request.bucket_cap_mb,
                      gradient_as_bucket_view=request.gradient_as_bucket_view, fake=False, **mixed)
        inner = model.module if request.strategy in DDP_LIKE else model
        optimizer = None
        if request.mode == "train":
            optimizer = build_optimizer([p for p in inner.parameters() if p.requires_grad], request.optimizer, "cpu")
            if request.strategy == "zero1":
                optimizer = zero1_optimizer(optimizer)
            if request.strategy == "tp":
                optimizer = tp_optimizer(optimizer)
        if request.strategy == "tp":  # as the trace runs it (plan.mha_fast_path_off)
            torch.backends.mha.set_fastpath_enabled(False)
        buckets: dict[int, torch.Tensor] = {}
        if request.strategy in DDP_LIKE:
            model.register_comm_hook(buckets, _recording_allreduce)
        for _ in range(2):
            buckets.clear()
            run_step(model, step.inputs, step.targets, optimizer, mode=request.mode, amp=request.amp, device="cpu",
                     amp_dtype=request.amp_dtype)
            if optimizer is not None:
                optimizer.zero_grad(set_to_none=True)
            inner.zero_grad(set_to_none=True)
        peaks = []
        for _ in range(MEASURED_STEPS):
            gc.collect()
            state = [local(t) for _, t in optimizer_state_tensors(optimizer)]
            live = [*(local(p) for p in inner.parameters()), *inner.buffers(), *step.inputs, *step.targets.values(),
                    *state, *buckets.values()]
            start = unique_bytes(live)
            with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
                run_step(model, step.inputs, step.targets, optimizer, mode=request.mode, amp=request.amp, device="cpu",
                     amp_dtype=request.amp_dtype)
            events = sorted((e for e in prof.profiler.kineto_results.events() if e.name() == "[memory]"),
                            key=lambda e: e.start_ns())
            running = peak = 0
            for e in events:
                running += e.nbytes()
                peak = max(peak, running)
            peaks.append(start + peak)
            if len(peaks) < MEASURED_STEPS:
                if optimizer is not None:
                    optimizer.zero_grad(set_to_none=True)
                inner.zero_grad(set_to_none=True)
        params = list(inner.parameters())
        held = {
            "parameters": unique_bytes(local(p) for p in params),
            "gradients": unique_bytes(local(p.grad) for p in params if p.grad is not None),
            "optimizer_state": unique_bytes(local(t) for _, t in optimizer_state_tensors(optimizer)),
        }
        dist.barrier()
        return RankMeasurement(rank, min(peaks), start, held)
    finally:
        dist.destroy_process_group()


def _complete_collectives_when_issued() -> None:
    """FSDP2 issues its all-gathers and reduce-scatters asynchronously; gloo runs them on worker
    threads that stage each one through a full-size buffer of their own. Where that buffer lands
    relative to the main thread's compute is down to thread timing (resnet18, 4 ranks: one rank
    +18 MB, the next exact, in the same run). The trace's fake backend completes each collective
    as it is issued; so does this harness (the real collective, waited for at once), which makes
    the measurement repeatable. Only this spawned rank process is patched."""
    import torch.distributed as dist

    def completed(collective):
        def call(*args, async_op=False, **kwargs):
            work = collective(*args, async_op=async_op, **kwargs)
            if work is not None:
                work.wait()  # FSDP2 takes None as done; holding the Work would keep gloo's buffer
            return None
        return call

    dist.all_gather_single = completed(dist.all_gather_single)
    dist.reduce_scatter_single = completed(dist.reduce_scatter_single)


def _recording_allreduce(buckets, bucket):
    """DDP's default all-reduce (sum, then divide by the world size), noting each bucket."""
    import torch.distributed as dist

    tensor = bucket.buffer()
    buckets[tensor.untyped_storage().data_ptr()] = tensor
    tensor.div_(dist.get_world_size())
    return dist.all_reduce(tensor, async_op=True).get_future().then(lambda fut: fut.value()[0])



def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
