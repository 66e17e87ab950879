"""Bad input never crashes: every mistake is a MemLensError that says what and where."""
import os

import pytest

from conftest import DATA
from engine import AnalysisRequest, analyze
from engine.errors import MemLensError, RequestError, UnsupportedError
from engine.request import parse_shape

TINY = os.path.join(DATA, "tiny_mlp.py")
TRUTH_MODELS = os.path.join(DATA, "truth_models.py")


@pytest.mark.parametrize("kwargs, message", [
    ({"batch": 0}, "batch must be a positive integer"),
    ({"batch": -3}, "batch must be a positive integer"),
    ({"batch": 10**12}, "larger than the supported maximum"),
    ({"dtype": "float64"}, "dtype must be one of"),
    ({"optimizer": "lamb"}, "optimizer must be one of"),
    ({"input_shape": (3, 0, 224)}, "positive integers"),
    ({"amp": True, "dtype": "float16"}, "AMP keeps float32 weights"),
])
def test_bad_requests_are_refused_before_any_work(kwargs, message):
    with pytest.raises(RequestError, match=message):
        AnalysisRequest(**kwargs)


@pytest.mark.parametrize("text", ["3x", "axb", "3x-1x4", ""])
def test_malformed_shapes(text):
    with pytest.raises(RequestError, match="malformed input shape"):
        parse_shape(text)


def test_data_dependent_op_names_the_op_and_the_module():
    with pytest.raises(UnsupportedError, match=r"aten.nonzero.*module '1'|module '1'.*nonzero"):
        analyze(AnalysisRequest(model=f"{TINY}:data_dependent", batch=2, mode="inference"))


def test_a_packed_sequence_under_cpu_amp_is_refused_with_the_way_out():
    """pack_padded_sequence reads its lengths' values: a meta trace has them on the CPU, and so
    does CUDA AMP (MemLens's own autocast mode on meta tensors), but CPU AMP traces on fake CPU
    tensors (torch's CPU autocast ignores meta ones), which refuse the op. The error names the op,
    the module and what works."""
    packed = os.path.join(DATA, "user_models.py") + ":build_packed_lstm"
    with pytest.raises(UnsupportedError, match=r"module 'PackedLSTMClassifier' uses a data-dependent op "
                                               r"\(aten._pack_padded_sequence.default\); CPU AMP is traced on fake "
                                               r"tensors.*without AMP"):
        analyze(AnalysisRequest(model=packed, batch=4, optimizer="adam", amp=True))
    amp = analyze(AnalysisRequest(model=packed, batch=4, optimizer="adam", amp=True, device="cuda"))
    plain = analyze(AnalysisRequest(model=packed, batch=4, optimizer="adam", device="cuda"))
    assert amp.engine.startswith("meta tensors") and 0 < amp.peak.total_bytes != plain.peak.total_bytes


def test_python_file_errors_name_the_file_and_line():
    with pytest.raises(MemLensError, match=r"tiny_mlp.py:\d+: broken\(\) failed: ValueError"):
        analyze(AnalysisRequest(model=f"{TINY}:broken"))
    with pytest.raises(MemLensError, match="no function 'missing'"):
        analyze(AnalysisRequest(model=f"{TINY}:missing"))
    with pytest.raises(MemLensError, match="returned int, expected an nn.Module"):
        analyze(AnalysisRequest(model=f"{TINY}:not_a_module"))
    with pytest.raises(MemLensError, match="python file not found"):
        analyze(AnalysisRequest(model="/nonexistent/net.py:build"))


def test_a_shape_mismatch_in_a_python_model_names_the_module():
    with pytest.raises(MemLensError, match=r"module '0' on input \(2, 9\): .*\[2, 9\] X \[8, 16\]"):
        analyze(AnalysisRequest(model=f"{TINY}:build", batch=2, input_shape=(9,)))


def test_huge_models_are_analysed_without_their_memory():
    # 8 x 65536 x 65536 float32 = 128 GiB of weights: must trace on this 24 GiB machine.
    import textwrap, tempfile
    src = textwrap.dedent("""
        import torch
        from torch import nn
        def build():
            return nn.Sequential(*[nn.Linear(65536, 65536) for _ in range(8)]), torch.zeros(1, 65536)
    """)
    with tempfile.NamedTemporaryFile("w", suffix=".py", delete=False) as f:
        f.write(src)
    try:
        a = analyze(AnalysisRequest(model=f"{f.name}:build", batch=4, optimizer="adam"))
    finally:
        os.unlink(f.name)
    assert a.parameter_bytes > 128 * 2**30
    assert a.peak.total_bytes > 4 * a.parameter_bytes


def test_an_optimizer_in_inference_mode_is_reported_not_silently_dropped():
    assert AnalysisRequest(mode="inference").optimizer == "none"
    assert AnalysisRequest(mode="train").optimizer == "adam"
    a = analyze(AnalysisRequest(model=f"{TINY}:build", batch=2, mode="inference", optimizer="adam"))
    assert any("optimizer 'adam' ignored: inference runs no optimizer step" in w for w in a.warnings)
    assert a.timeline.live_at(0)["optimizer_state"] == 0


def test_lazy_layers_are_sized_from_the_example_input_as_torch_does():
    a = analyze(AnalysisRequest(model=f"{TRUTH_MODELS}:lazy", batch=4, optimizer="sgd"))
    assert a.parameters == (12 * 32 + 32) + (32 * 4 + 4)
    assert [layer.type for layer in a.layers] == ["Linear", "ReLU", "Linear"]


def test_an_example_input_of_shape_batch_only_means_one_number_per_sample():
    a = analyze(AnalysisRequest(model=f"{TRUTH_MODELS}:scalar_samples", batch=4, optimizer="sgd"))
    assert a.input_shape == (4,)
    assert a.layers[0].output_shape == (4, 8)


def test_no_optimizer_state_for_a_parameter_without_gradient():
    # Adam keeps two float32 copies of the 10x256 layer that is used, none of the unused 4096x4096 one.
    a = analyze(AnalysisRequest(model=f"{TRUTH_MODELS}:unused_branch", batch=2, optimizer="adam"))
    used = 256 * 10 + 10
    assert a.timeline.live_at(0)["optimizer_state"] == 2 * 4 * used + 2 * 4  # exp_avg, exp_avg_sq, 2 steps


def test_every_error_is_one_line_and_survives_a_process_boundary():
    import pickle

    from engine.errors import SpecError

    err = SpecError("first line\n  C++ frame 1\n  C++ frame 2", path="net.yaml", line=3, key="out")
    assert str(err) == "net.yaml:3: first line"
    back = pickle.loads(pickle.dumps(err))
    assert type(back) is SpecError and str(back) == str(err) and (back.path, back.line, back.key) == ("net.yaml", 3, "out")


def test_an_isolated_analysis_can_be_cancelled_or_timed_out_while_user_code_hangs(tmp_path):
    import time

    from engine.errors import AnalysisTimeout, CancelledError
    from engine.isolated import analyze_isolated

    path = tmp_path / "hang.py"
    path.write_text("import time\ndef build():\n    while True:\n        time.sleep(0.05)\n")
    request = AnalysisRequest(model=f"{path}:build")
    with pytest.raises(AnalysisTimeout, match=r"hang.py:build: stopped after 1 s"):
        analyze_isolated(request, timeout=1)
    started = [time.monotonic()]
    with pytest.raises(CancelledError):
        analyze_isolated(request, cancelled=lambda: time.monotonic() - started[0] > 1)
    # ... and a good model still analyses the same way, with its progress reported.
    steps = []
    a = analyze_isolated(AnalysisRequest(model=f"{TINY}:build", batch=2), progress=lambda f, m: steps.append(f))
    assert a.parameters == 8 * 16 + 16 + 16 * 4 + 4 and steps[-1] == 1.0
