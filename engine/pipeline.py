"""The one entry point: `analyze(request, progress, cancelled) -> Analysis`."""
from __future__ import annotations

import time
from typing import Callable

import contextlib

import torch

# torch loads these lazily on the first meta-tensor op (python meta kernels, sympy for symbolic
# shapes, dynamo checks in the optimizers): import them with the engine so that the first
# analysis costs what later ones do, and the GUI's background import pays for them.
import torch._decomp  # noqa: F401,E402
import torch._dynamo  # noqa: F401,E402
import torch._meta_registrations  # noqa: F401,E402
import torch._refs  # noqa: F401,E402
import torch.fx.experimental.symbolic_shapes  # noqa: F401,E402
import torchvision.models  # noqa: F401,E402
from torch._subclasses.fake_tensor import (  # noqa: E402
    DataDependentOutputException, DynamicOutputShapeException, FakeTensorMode)

from .analysis import Analysis
from .cuda_allocator import cuda_memory
from .attention import fast_path_warning, target_attention
from .errors import CancelledError, MemLensError, RequestError, UnsupportedError
from .estimate import textbook
from .lora import prepare_for_request
from .loss import make_targets, output_tensors
from .request import MAX_INPUT_ELEMENTS, AnalysisRequest
from .rnn_limits import rnn_warning
from .sources import LoadedModel, load_model
from .sources.empty_init import to_fake
from .step import (build_optimizer, build_scaler, cast_floating, optimizer_state_tensors, prime_optimizer, run_step,
                   torch_dtype)
from .cudnn_workspaces import CudnnWorkspaces
from .target import CublasWorkspaces, target_for
from .timeline import build_timeline, event_log, find_peak, layer_table, lifetimes
from .tracer import StepRecorder
from .reduction_scratch import ReductionScratch  # CUDA reductions' global buffers

Progress = Callable[[float, str], None]


def analyze(
    request: AnalysisRequest,
    progress: Progress | None = None,
    cancelled: Callable[[], bool] | None = None,
) -> Analysis:
    """Build the model without memory, trace one step on meta tensors, derive every view's data."""
    started = time.perf_counter()
    report = progress or (lambda fraction, message: None)
    report(0.0, f"building {request.model}")
    loaded = load_model(request.model, cancelled)
    _check_cancel(cancelled)
    return analyze_loaded(loaded, request, report, cancelled, started)


def analyze_loaded(loaded: LoadedModel, request: AnalysisRequest, report: Progress,
                   cancelled, started: float, baseline: Analysis | None = None) -> Analysis:
    """Trace `request` on `loaded`, with its levers (checkpointing, freezing, micro-batches) applied
    for this trace only (engine/levers.py)."""
    from .levers import analyze_with_levers

    loaded = prepare_for_request(loaded, request)  # engine/lora.py: LoRA adapters, sequence limits
    return analyze_with_levers(loaded, request, report, cancelled, started, _trace_ranks, baseline)


def _trace_ranks(loaded: LoadedModel, request: AnalysisRequest, report: Progress,
                 cancelled, started: float, levers) -> Analysis:
    """One device: one trace. Distributed: one trace per distinct rank, under a fake process group."""
    if request.strategy != "single":
        from .distributed import analyze_distributed

        def trace_rank(loaded, request, report, cancelled, started, plan):
            return _trace_loaded(loaded, request, report, cancelled, started, levers, plan)

        return analyze_distributed(loaded, request, report, cancelled, started, trace_rank)
    return _trace_loaded(loaded, request, report, cancelled, started, levers)


def _trace_loaded(loaded: LoadedModel, request: AnalysisRequest, report: Progress,
                  cancelled, started: float, levers, plan=None) -> Analysis:
    """One trace; `plan` (engine/distributed/plan.py) wraps the model as one rank of N."""
    dtype = torch_dtype(request.dtype)
    if _fake_tensors(request, plan):
        # CPU autocast acts on CPU tensors only: meta tensors would bypass it, fake CPU tensors
        # take part exactly as real ones (slower to trace, so only for CPU AMP). CUDA AMP is
        # MemLens's own torch-function mode (engine/target.py CudaAutocast): meta tensors do.
        # FSDP refuses meta parameters and DDP's reducer needs a device: fake CPU tensors too.
        tensor_mode = FakeTensorMode()
        model = plan.materialize(loaded.module, tensor_mode, dtype) if plan else to_fake(loaded.module, tensor_mode, dtype)
        new_device = "cpu"
    else:
        tensor_mode = contextlib.nullcontext()
        model = cast_floating(loaded.module, dtype)
        new_device = "meta"
    model.train(request.mode == "train")
    runner = plan.wrap(model, tensor_mode) if plan is not None else model  # ---- distributed hook
    params = list(model.parameters())
    trainable = [p for p in params if p.requires_grad]
    shape = request.input_shape if request.input_shape is not None else loaded.input_shape
    if shape is None:
        raise RequestError(f"{loaded.name}: cannot tell the input shape; pass --input (e.g. 3x224x224) "
                           "or return (model, example_input) from the function")
    full_shape = (request.batch, *shape)
    _check_traceable(loaded, full_shape, params)
    if request.mode == "train" and not trainable:
        raise UnsupportedError(f"{loaded.name}: nothing to train: the model has no trainable parameters "
                               f"({'all are frozen' if params else 'it has none'}); use --mode inference")
    warnings = list(loaded.warnings)
    if request.ignored_optimizer:
        warnings.append(request.ignored_optimizer)
    for warning in (fast_path_warning(model, request.mode, request.device, request.amp),
                    rnn_warning(model, request.device, request.amp)):
        if warning is not None:
            warnings.append(warning)

    input_dtype = loaded.input_dtype if loaded.input_dtype is not None else dtype
    with tensor_mode:
        x = torch.empty(full_shape, dtype=input_dtype, device=new_device)
        targets = {}
        optimizer = None
        if request.mode == "train":
            targets = make_targets(_output_shapes(model, x, loaded, request), dtype, device=new_device,
                                   task=loaded.task)
            if plan is not None:  # ---- distributed hook: what the shape probe's forward gathered is freed
                plan.after_probe(model)
            optimizer = build_optimizer(trainable, request.optimizer, request.device)
            if plan is not None:  # ---- distributed hook: ZeRO-1 partitions the optimizer
                optimizer = plan.wrap_optimizer(optimizer)
            if not request.first_step:
                prime_optimizer(optimizer, trainable)
        scaler = build_scaler(request.amp, request.device, request.mode, amp_dtype=request.amp_dtype)
        if scaler is not None:  # CUDA float16 AMP (issue 7)
            scaler._maybe_opt_step = _step_if_finite
            if not request.first_step:  # an earlier step made the scale and growth tensors
                scaler.scale(torch.ones((), device=new_device))

    n_leaves = sum(1 for m in model.modules() if not any(True for _ in m.children())) or 1
    recorder = (plan.recorder if plan is not None else StepRecorder)(
        model, request.device, cancelled,
        on_layer=lambda order: report(0.05 + 0.45 * min(1.0, order / (n_leaves * 1.2)), "forward"),
    )
    for p in params:
        recorder.register_existing(p, "parameters")
    for b in model.buffers():
        recorder.register_existing(b, "buffers")
    # Without `capturable`, torch keeps Adam's step counters on the host, even for CUDA params.
    for key, t in optimizer_state_tensors(optimizer):
        recorder.register_existing(t, "optimizer_state", on_device=target_for(request.device).on_device(key, t))
    if scaler is not None and scaler._scale is not None:
        recorder.register_existing(scaler._scale, "optimizer_state")
        recorder.register_existing(scaler._growth_tracker, "optimizer_state")
    recorder.register_existing(x, "inputs")
    for t in targets.values():
        recorder.register_existing(t, "inputs")
    levers.before_step(recorder, trainable)  # gradients of earlier micro-steps

    phase_progress = {"forward": (0.05, "forward"), "backward": (0.5, "backward"), "optimizer": (0.85, "optimizer step")}

    def on_phase(phase: str) -> None:
        recorder.set_phase(phase)
        report(*phase_progress[phase])

    # CUDA (issue 7): cuBLAS workspaces at each thread's first matrix product
    workspaces = CublasWorkspaces(recorder, request) if request.device == "cuda" else contextlib.nullcontext()
    if request.device == "cuda":  # and cuDNN's workspace inside each convolution
        recorder.kernel_scripts = convolutions = CudnnWorkspaces(recorder)
    reductions = ReductionScratch(recorder, request.cuda_arch) if request.device == "cuda" else contextlib.nullcontext()
    recorder.install_hooks()
    try:
        tracing = plan.tracing(recorder) if plan is not None else contextlib.nullcontext()
        with tensor_mode, target_attention(request.device) as path_warnings, tracing, recorder, workspaces, \
                reductions:
            run_step(runner, [x], targets, optimizer, mode=request.mode, amp=request.amp,
                     device=request.device, on_phase=on_phase, scaler=scaler, amp_dtype=request.amp_dtype)
            # Categories are settled per storage after the step, so marking at the end is enough.
            for p in trainable:
                if p.grad is not None:
                    recorder.mark_category(p.grad, "gradients")
            for _, t in optimizer_state_tensors(optimizer):
                recorder.mark_category(t, "optimizer_state")
            _drop_state_without_gradient(optimizer, recorder)
        warnings += path_warnings  # engine/fused_transformer.py: a fused path the trace could not take
    except MemLensError:
        raise
    except (Exception, SystemExit, KeyboardInterrupt) as e:  # inside the user's model: say where
        if _is_data_dependent(e):
            raise UnsupportedError(
                f"{loaded.name}: op {_op_name(e, recorder)} in module '{recorder.current_module()}' "
                "is data-dependent (its result depends on tensor values, e.g. nonzero, .item(), "
                f"masked_select), so it cannot be traced without real data{_fake_tensor_hint(e, request)}"
            ) from None
        if cancelled is not None and cancelled():
            raise CancelledError("analysis cancelled") from None
        raise MemLensError(
            f"{loaded.name}: the {PHASE_WORDS.get(recorder.phase, 'step')} failed in module "
            f"'{recorder.current_module()}' at op {_op_name(e, recorder)}: {_first_line(e)}"
        ) from None
    finally:
        recorder.remove_hooks()

    if levers.count_flops:  # the step's FLOPs and its recomputed forwards', in a pass of their own
        with tensor_mode, target_attention(request.device):
            levers.measure_flops(lambda: run_step(model, [x], targets, optimizer, mode=request.mode, amp=request.amp,
                                                  device=request.device, amp_dtype=request.amp_dtype))
    report(0.92, "building timeline")
    raw = recorder.finish(warnings)
    cuda = None
    if request.device == "cuda":  # issue 7: the caching allocator over the step
        cuda = cuda_memory(request, raw.initial_storages, raw.nbytes, raw.storage, workspaces.made,
                           convolutions.summary(), raw.initial_made_at)
        warnings.extend(cuda.warnings)
    events = event_log(raw)
    timeline = build_timeline(raw)
    lives = lifetimes(raw)
    layers = layer_table(raw, lives, model)
    parameter_bytes = sum(p.numel() * p.element_size() for p in params)
    trainable_bytes = sum(p.numel() * p.element_size() for p in trainable)
    analysis = Analysis(
        request=request,
        model_name=loaded.name,
        source=loaded.source,
        input_shape=full_shape,
        parameters=sum(p.numel() for p in params),
        parameter_bytes=parameter_bytes,
        layers=layers,
        events=events,
        timeline=timeline,
        peak=find_peak(timeline, events),
        lifetimes=lives,
        textbook=textbook(layers, parameter_bytes, trainable_bytes, request.mode, request.optimizer),
        not_modelled=target_for(request.device).not_modelled(),
        warnings=tuple(warnings),
        analysis_seconds=time.perf_counter() - started,
        engine=f"{'fake CPU' if _fake_tensors(request, plan) else 'meta'} tensors, torch {torch.__version__.split('+')[0]}",
        cuda=cuda,
    )
    if plan is not None:  # ---- distributed hook: what this rank holds, read before the model goes
        analysis = plan.finish(analysis, recorder, model, optimizer)
    report(1.0, "done")
    return analysis


def _fake_tensors(request: AnalysisRequest, plan) -> bool:
    return (request.amp and request.device == "cpu") or plan is not None


# 128 TiB of weights: far beyond any machine, far below int64's 8 EiB where byte counts wrap.
MAX_PARAMETER_BYTES = 2**47


def _check_traceable(loaded: LoadedModel, full_shape: tuple[int, ...], params) -> None:
    """Sizes whose bytes would overflow the trace's 64-bit counters are refused, not wrapped."""
    import math

    elements = math.prod(full_shape)
    if elements > MAX_INPUT_ELEMENTS:
        raise RequestError(f"{loaded.name}: an input of {' x '.join(map(str, full_shape))} = {elements:.3g} "
                           f"elements is larger than MemLens can trace (at most {MAX_INPUT_ELEMENTS:.3g})")
    param_bytes = sum(p.numel() * p.element_size() for p in params)
    if param_bytes > MAX_PARAMETER_BYTES:
        raise RequestError(f"{loaded.name}: {param_bytes:.3g} bytes of parameters is larger than MemLens can "
                           f"trace (at most {MAX_PARAMETER_BYTES:.3g})")


def _step_if_finite(optimizer, optimizer_state, *args, **kwargs):
    """GradScaler.step reads its inf flags with .item(), which traced tensors cannot answer: the
    trace takes the finite branch (what a training step normally does)."""
    return optimizer.step(*args, **kwargs)


def _drop_state_without_gradient(optimizer, recorder: StepRecorder) -> None:
    """Priming gives every trainable parameter optimizer state, but a real earlier step creates
    none for a parameter that got no gradient (an unused branch). The step skips grad-less
    parameters, so their primed state was never touched: dropping it from the start is exact."""
    if optimizer is None:
        return
    for p, state in list(optimizer.state.items()):
        if p.grad is None:
            for t in state.values():
                if isinstance(t, torch.Tensor):
                    recorder.forget_existing(t)
            del optimizer.state[p]


PHASE_WORDS = {0: "forward pass", 1: "backward pass", 2: "optimizer step"}


def _output_shapes(model, x, loaded: LoadedModel, request: AnalysisRequest) -> list[tuple[int, ...]]:
    """Output shapes the loss will see. Known for torchvision tasks; else one no-grad forward."""
    if loaded.task == "classification":
        return [(request.batch, 1)]
    if loaded.task == "segmentation":
        return [(request.batch, 1, *x.shape[-2:])]
    if loaded.task == "causal_lm":  # the targets are the token ids' shape (engine/loss.py)
        return [(request.batch, x.shape[1], 1)]
    names = {id(m): n or type(m).__name__ for n, m in model.named_modules()}
    stack: list[str] = []
    reg = torch.nn.modules.module

    def enter(module, args):
        stack.append(names.get(id(module), "?"))

    def leave(module, args, output):  # must return None: a returned value replaces the output
        if stack:
            stack.pop()

    handles = [reg.register_module_forward_pre_hook(enter), reg.register_module_forward_hook(leave)]
    try:
        with torch.no_grad(), target_attention(request.device):
            out = model(x)
    except MemLensError:
        raise
    except (Exception, SystemExit, KeyboardInterrupt) as e:  # the user's forward, sys.exit() included
        where = f"module '{stack[-1]}'" if stack else "the model"
        if _is_data_dependent(e):
            raise UnsupportedError(f"{loaded.name}: {where} uses a data-dependent op ({_first_line(e)})"
                                   f"{_fake_tensor_hint(e, request)}") from None
        raise MemLensError(f"{loaded.name}: the forward pass failed in {where} on input "
                           f"{tuple(x.shape)}: {_first_line(e)}") from None
    finally:
        for h in handles:
            h.remove()
    return [tuple(t.shape) for t in output_tensors(out)]


# What fake tensors raise for an op whose output depends on its inputs' values.
_FAKE_REFUSALS = (DynamicOutputShapeException, DataDependentOutputException)


def _is_data_dependent(e: BaseException) -> bool:
    text = str(e)
    return isinstance(e, (NotImplementedError, *_FAKE_REFUSALS)) or "meta tensor" in text or "no data" in text


def _fake_tensor_hint(e: BaseException, request: AnalysisRequest) -> str:
    """CPU AMP is traced on fake tensors (autocast ignores meta ones), which refuse an op whose output
    shape depends on its inputs' values even where the meta trace reads them from a real CPU tensor
    (pack_padded_sequence's lengths)."""
    if _fake_tensors(request, None) and isinstance(e, _FAKE_REFUSALS):
        return ("; CPU AMP is traced on fake tensors, which cannot run it: trace the model without AMP "
                "(a GPU target's AMP, on meta tensors, can)")
    return ""


def _op_name(e: BaseException, recorder: StepRecorder) -> str:
    func = getattr(e, "func", None) or recorder.current_op
    return str(func) if func is not None else "(unknown)"


def _first_line(e: BaseException) -> str:
    if isinstance(e, SystemExit):
        return f"the model called sys.exit({e.code!r})"
    text = str(e).strip().splitlines()
    return text[0] if text else type(e).__name__


def _check_cancel(cancelled) -> None:
    if cancelled is not None and cancelled():
        raise CancelledError("analysis cancelled")
