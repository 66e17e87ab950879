"""The layer table reconciles with the model: every parameter is in exactly one row, a tied
weight is counted once, and a module shared by several blocks is named where it is called."""
import os

from torch import nn

from conftest import DATA
from engine import AnalysisRequest, analyze
from engine.pipeline import analyze_loaded
from engine.sources import LoadedModel

TRUTH_MODELS = os.path.join(DATA, "truth_models.py")


def analyze_module(module, input_shape, **request):
    loaded = LoadedModel(module=module.to("meta"), name="m", source="python", input_shape=input_shape)
    return analyze_loaded(loaded, AnalysisRequest(model="m.py:m", batch=2, **request), lambda f, m: None, None, 0.0)


def test_rows_sum_to_the_total_for_a_vision_transformer():
    a = analyze(AnalysisRequest(model="vit_b_16", batch=1, mode="inference"))
    assert sum(layer.params for layer in a.layers) == a.parameters
    own = {layer.name: layer for layer in a.layers if layer.type == "Parameter"}
    assert set(own) == {"class_token", "encoder.pos_embedding"}  # held by parents, not by a leaf layer
    names = [layer.name for layer in a.layers]
    assert names.index("encoder.pos_embedding") < names.index("encoder.layers.encoder_layer_0.ln_1")


def test_a_tied_weight_is_counted_once_under_the_layer_that_uses_it_first():
    a = analyze(AnalysisRequest(model=f"{TRUTH_MODELS}:tied_embedding", batch=2, mode="inference"))
    rows = {layer.name: layer.params for layer in a.layers}
    assert rows["embed"] == 4096 * 256 and rows["head"] == 0
    assert sum(rows.values()) == a.parameters == 4096 * 256 + 256 * 256 + 256


def test_parameters_the_step_never_uses_get_rows_at_the_end():
    a = analyze(AnalysisRequest(model=f"{TRUTH_MODELS}:unused_branch", batch=2, optimizer="sgd"))
    assert [layer.name for layer in a.layers[-2:]] == ["unused.weight", "unused.bias"]
    assert sum(layer.params for layer in a.layers) == a.parameters


class _Block(nn.Module):
    def __init__(self, act):
        super().__init__()
        self.fc = nn.Linear(8, 8)
        self.act = act

    def forward(self, x):
        return self.act(self.fc(x))


class _SharedActivation(nn.Module):
    """One GELU object referenced by every block, as some model zoos write it."""

    def __init__(self):
        super().__init__()
        act = nn.GELU()
        self.blocks = nn.Sequential(*(_Block(act) for _ in range(3)))

    def forward(self, x):
        return self.blocks(x)


def test_a_shared_module_is_named_by_the_block_that_calls_it():
    a = analyze_module(_SharedActivation(), (8,), mode="inference")
    names = [layer.name for layer in a.layers]
    assert names == ["blocks.0.fc", "blocks.0.act", "blocks.1.fc", "blocks.1.act", "blocks.2.fc", "blocks.2.act"]
    assert set(names) <= set(a.events.modules)  # the timeline speaks of the same names
