"""Custom layer specs: the documented schema builds, and every mistake names file:line and key."""
import json
import os
import textwrap

import pytest

from conftest import SPECS
from engine import AnalysisRequest, analyze
from engine.errors import ShapeError, SpecError
from engine.sources.spec import load_spec


def write(tmp_path, text, name="net.yaml"):
    path = tmp_path / name
    path.write_text(textwrap.dedent(text).lstrip())
    return str(path)


def test_every_shipped_spec_builds():
    for name in os.listdir(SPECS):
        if name.endswith((".yaml", ".json")):
            assert load_spec(os.path.join(SPECS, name)).module is not None


def test_schema_covers_the_documented_layer_types(tmp_path):
    path = write(tmp_path, """
        name: everything
        input: [3, 32, 32]
        layers:
          - conv2d: {out: 8, kernel: 3, padding: 1}
          - batchnorm
          - leakyrelu: {slope: 0.1}
          - {type: maxpool, kernel: 2}
          - avgpool: {kernel: 2}
          - residual:
              - conv2d: {out: 8, kernel: 3, padding: 1}
              - gelu
          - adaptiveavgpool: {size: 2}
          - flatten
          - linear: {out: 64}
          - layernorm
          - silu
          - dropout: {p: 0.1}
          - repeat: 2
            layers: [{linear: {out: 64}}, tanh]
          - linear: {out: 10}
    """)
    a = analyze(AnalysisRequest(model=path, batch=4))
    types = [layer.type for layer in a.layers]
    for t in ("Conv2d", "BatchNorm2d", "LeakyReLU", "MaxPool2d", "AvgPool2d", "GELU", "AdaptiveAvgPool2d",
              "Flatten", "Linear", "LayerNorm", "SiLU", "Dropout", "Tanh"):
        assert t in types
    assert a.layers[-1].output_shape == (4, 10)
    assert a.model_name == "everything"


def test_json_specs_work_too(tmp_path):
    path = tmp_path / "net.json"
    path.write_text(json.dumps({"input": [16], "layers": [{"linear": {"out": 4}}, "relu"]}))
    a = analyze(AnalysisRequest(model=str(path), batch=2, optimizer="sgd"))
    assert a.parameters == 16 * 4 + 4


def test_transformer_spec_takes_token_ids():
    a = analyze(AnalysisRequest(model=os.path.join(SPECS, "tiny_transformer.yaml"), batch=2))
    assert a.timeline.live_at(0)["inputs"] == 2 * 128 * 8 + 2 * 128 * 8  # int64 tokens + targets
    assert any(layer.kind == "embedding" for layer in a.layers)


@pytest.mark.parametrize("body, line, key, message", [
    ("input: [3, 8, 8]\nlayers:\n  - conv2d: {out: 4, kernal: 3}\n", 3, "kernal", "conv2d has no argument 'kernal'"),
    ("input: [3, 8, 8]\nlayers:\n  - relu\n  - conv3x: {out: 4}\n", 4, "conv3x", "unknown layer type 'conv3x'"),
    ("input: [3, 8, 8]\nlayers:\n  - conv2d: {kernel: 3}\n", 3, "out", "conv2d needs 'out'"),
    ("input: [3, 8, 8]\nlayers:\n  - conv2d: {out: -4, kernel: 3}\n", 3, "out", "'out' must be a positive integer"),
    ("input: [3, 8, 8]\nlayers:\n  - dropout: {p: 2}\n", 3, "p", "'p' must be a probability"),
    ("input: [3, 8, 8]\nlayerz: []\n", 2, "layerz", "unknown top-level key 'layerz'"),
    ("input: [3, -8]\nlayers: [relu]\n", 1, "input", "'input' must be a list of positive integers"),
    ("input: [3, 8, 8]\nlayers:\n  - repeat: 0\n    layers: [relu]\n", 3, "repeat", "'repeat' must be a positive integer"),
    ("input: [3, 8, 8]\nlayers:\n  - {conv2d: {out: 4, kernel: 3}, relu: {}}\n", 3, "conv2d", "cannot tell the layer type"),
])
def test_spec_errors_name_file_line_and_key(tmp_path, body, line, key, message):
    path = write(tmp_path, body)
    with pytest.raises(SpecError) as info:
        load_spec(path)
    err = info.value
    assert (err.path, err.line, err.key) == (path, line, key)
    assert str(err).startswith(f"{path}:{line}: ")
    assert message in str(err)


def test_yaml_syntax_errors_give_the_line(tmp_path):
    path = write(tmp_path, "input: [3, 8, 8]\nlayers:\n  - conv2d: {out: 4, kernel: 3\n  - relu\n")
    with pytest.raises(SpecError, match=rf"{path}:\d+: not valid YAML/JSON"):
        load_spec(path)


def test_missing_file_is_a_spec_error():
    with pytest.raises(SpecError, match="cannot read spec"):
        load_spec("/nonexistent/net.yaml")


def test_shape_errors_name_the_layer_and_both_shapes(tmp_path):
    path = write(tmp_path, "input: [3, 8, 8]\nlayers:\n  - flatten\n  - conv2d: {out: 4, kernel: 3}\n")
    with pytest.raises(ShapeError, match=rf"{path}:4: layer 'conv2d1' \(conv2d\) needs an input of shape "
                                         r"channels x height x width, but receives \(192\)"):
        load_spec(path)


def test_residual_mismatch_names_both_shapes(tmp_path):
    path = write(tmp_path, "input: [4, 8, 8]\nlayers:\n  - residual:\n      - conv2d: {out: 6, kernel: 1}\n")
    with pytest.raises(ShapeError, match=r":3: residual 'residual1'.*\(6 x 8 x 8\).*input \(4 x 8 x 8\)"):
        load_spec(path)


def test_kernel_larger_than_the_input_is_a_shape_error(tmp_path):
    path = write(tmp_path, "input: [3, 4, 4]\nlayers:\n  - maxpool: {kernel: 8}\n")
    with pytest.raises(ShapeError, match=rf"{path}:3: layer 'maxpool1' \(maxpool\) does not fit its input \(3 x 4 x 4\)"):
        load_spec(path)


def test_two_layers_with_the_same_name_are_an_error_naming_both_lines(tmp_path):
    path = write(tmp_path, """
        input: [16]
        layers:
          - {linear: {out: 16}, name: fc}
          - relu
          - {linear: {out: 16}, name: fc}
    """)
    with pytest.raises(SpecError, match=rf"{path}:5: layer name 'fc' is used twice, at lines 3 and 5"):
        load_spec(path)


def test_automatic_names_step_around_explicit_ones(tmp_path):
    # `repeat1` and `linear1` are taken explicitly, so the unnamed layers get the next numbers:
    # no layer replaces another and every parameter is counted.
    path = write(tmp_path, """
        input: [16]
        layers:
          - repeat: 2
            layers: [{linear: {out: 16}}]
          - {linear: {out: 16}, name: linear1}
          - {repeat: 3, layers: [relu], name: repeat1}
          - linear: {out: 4}
    """)
    model = load_spec(path).module
    assert list(model._modules) == ["repeat2", "linear1", "repeat1", "linear3"]
    assert sum(p.numel() for p in model.parameters()) == 3 * (16 * 16 + 16) + 16 * 4 + 4


def test_building_a_spec_can_be_cancelled(tmp_path):
    from engine.errors import CancelledError

    path = write(tmp_path, "input: [8]\nlayers:\n  - repeat: 5000\n    layers: [{linear: {out: 8}}, relu]\n")
    asked = []
    with pytest.raises(CancelledError):
        load_spec(path, cancelled=lambda: asked.append(1) or len(asked) > 20)
    assert len(asked) == 21  # asked before each layer, stopped at the first yes


@pytest.mark.parametrize("body, message", [
    ("input: [8]\nlayers:\n  - repeat: 1000000000\n    layers: [relu]\n", "expands to 1,000,000,000 layers"),
    ("input: [8]\nlayers:\n  - repeat\n", "'repeat' needs its layers"),
    ("input: [8]\nlayers:\n  - conv2d: {out: 4, kernel: three}\n", "'kernel' must be a positive integer"),
    ("input: [8]\nlayers:\n  - linear: {out: !!timestamp 2001-12-14}\n", "YAML tag !!timestamp is not allowed"),
])
def test_hostile_specs_are_refused_quickly_with_one_line(tmp_path, body, message):
    import time

    path = write(tmp_path, body)
    started = time.perf_counter()
    with pytest.raises(SpecError) as info:
        load_spec(path)
    assert time.perf_counter() - started < 1.0  # coarse: these used to take minutes or crash
    assert message in str(info.value) and "\n" not in str(info.value)


def test_softmax_accepts_negative_dims_as_torch_does(tmp_path):
    a = analyze(AnalysisRequest(model=write(tmp_path, "input: [4, 8]\nlayers:\n  - softmax: {dim: -2}\n"), batch=2,
                                mode="inference"))
    assert a.layers[0].output_shape == (2, 4, 8)


def test_a_utf16_spec_with_a_byte_order_mark_is_read(tmp_path):
    path = tmp_path / "net.yaml"
    path.write_bytes("input: [16]\nlayers: [{linear: {out: 4}}]\n".encode("utf-16"))
    assert sum(p.numel() for p in load_spec(str(path)).module.parameters()) == 16 * 4 + 4
