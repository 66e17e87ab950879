"""The levers against the truth: a real CPU step with the same checkpointing, frozen parameters or
micro-batch (the same wrapper and freezing, engine/levers.py), measured under torch.profiler's
allocator accounting (engine/truth.py). Target: within 2%, as for plain steps."""
import os

import pytest

from conftest import DATA, SPECS
from engine import AnalysisRequest, analyze
from engine.truth import measure_cpu_step

TOLERANCE = 0.02
TINY_TRANSFORMER = os.path.join(SPECS, "tiny_transformer.yaml")
SELF_CHECKPOINTED = os.path.join(DATA, "lever_models.py") + ":self_checkpointed"


def case(model, batch, optimizer, **levers):
    words = "-".join(f"{k}={','.join(v) if isinstance(v, tuple) else v}" for k, v in levers.items())
    return pytest.param(model, batch, optimizer, levers, id=f"{os.path.basename(model)}-{optimizer}-{words}")


CASES = [
    case("resnet18", 2, "adam", checkpoint=("every-block",)),
    case("resnet18", 8, "sgd", checkpoint=("every-2-blocks",)),
    case("vit_b_16", 4, "sgd", checkpoint=("every-block",)),  # the peak moves: -109 MiB
    case(TINY_TRANSFORMER, 4, "adam", checkpoint=("every-block",)),
    case("resnet18", 2, "adam", freeze=("layer1*", "conv1", "bn1")),
    case("vit_b_16", 1, "adamw", freeze=("encoder.layers.encoder_layer_[0-5]*", "conv_proj")),
    case(TINY_TRANSFORMER, 4, "adam", freeze=("embedding1",)),
    case("resnet18", 4, "adam", micro_batch=2),
    case(TINY_TRANSFORMER, 4, "adam", micro_batch=2),
    case("resnet18", 4, "momentum", micro_batch=2, freeze=("layer1*",), checkpoint=("layer3.0", "layer4.0")),
    case(SELF_CHECKPOINTED, 64, "adam"),  # torch.utils.checkpoint inside the model's own forward
]


@pytest.mark.slow
@pytest.mark.parametrize("model, batch, optimizer, levers", CASES)
def test_a_lever_traced_matches_the_measured_cpu_step(model, batch, optimizer, levers):
    request = AnalysisRequest(model=model, batch=batch, optimizer=optimizer, **levers)
    traced = analyze(request)
    measured = measure_cpu_step(request)
    assert traced.timeline.total[0] == measured.start_bytes  # accumulated gradients included
    error = (traced.peak.total_bytes - measured.peak_bytes) / measured.peak_bytes
    print(f"{model} {levers}: traced {traced.peak.total_bytes} measured {measured.peak_bytes} error {error:+.3%}")
    assert abs(error) < TOLERANCE
