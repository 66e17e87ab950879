"""What the layer spec gained for language models (issue 11): learned positional embeddings, a
causal mask and an output head tied to the token embedding. GPT-3 175B's published size from its
architecture numbers; a tiny GPT whose real CPU step is measured against the trace."""
import os

import pytest
import torch

from conftest import SPECS
from engine import AnalysisRequest, analyze
from engine.errors import MemLensError, SpecError
from engine.sources import load_model
from engine.sources.spec import parse_spec_text
from engine.truth import measure_cpu_step

GPT3 = os.path.join(SPECS, "gpt3_175b.yaml")
TINY_GPT = os.path.join(SPECS, "tiny_gpt.yaml")


def test_gpt3_175b_has_its_published_parameter_count():
    d, layers, vocab, positions = 12_288, 96, 50_257, 2_048
    # Per block: attention 4 d^2 + 4 d, a 4x MLP 8 d^2 + 5 d, two layer norms 4 d. The head is the
    # token embedding again (tied), counted once.
    expected = vocab * d + positions * d + layers * (12 * d * d + 13 * d) + 2 * d
    model = load_model(GPT3).module
    count = sum(p.numel() for p in model.parameters())
    assert count == expected == 174_604_259_328  # "175B"
    assert round(count / 1e9) == 175
    assert 4 * count == pytest.approx(700e9, rel=0.003)  # about 700 GB of float32 weights


def test_the_tied_head_shares_the_embedding_weight_and_counts_it_once():
    a = analyze(AnalysisRequest(model=TINY_GPT, batch=2))
    rows = {layer.name: layer.params for layer in a.layers}
    assert rows["embedding1"] == 500 * 64 + 32 * 64  # tokens and positions
    assert rows["linear1"] == 0  # the head's weight is the embedding's, counted where it is first used
    assert a.parameters == sum(rows.values())
    model = load_model(TINY_GPT).module
    assert model.linear1.weight is model.embedding1.weight


def test_the_mask_is_causal_and_the_positions_matter():
    """A real forward: changing a later token leaves earlier outputs alone; moving a token changes it."""
    torch.manual_seed(0)
    model = load_model(TINY_GPT).module.to_empty(device="cpu")
    for p in model.parameters():
        torch.nn.init.normal_(p, std=0.05)
    model.eval()
    ids = torch.randint(0, 500, (1, 32))
    later = ids.clone()
    later[0, 20:] = (later[0, 20:] + 1) % 500
    with torch.no_grad():
        out, out_later = model(ids), model(later)
    assert torch.allclose(out[0, :20], out_later[0, :20], atol=1e-5)
    assert not torch.allclose(out[0, 20:], out_later[0, 20:], atol=1e-3)
    same = torch.full((1, 32), 7)
    with torch.no_grad():
        by_position = model(same)[0]
    assert not torch.allclose(by_position[0], by_position[1], atol=1e-3)  # same token, other position


@pytest.mark.parametrize("text, message", [
    ("input: [8]\ninput_dtype: long\nlayers:\n  - embedding: {vocab: 10, dim: 4}\n  - linear: {out: 10, tied: true, bias: false}\n",
     None),
    ("input: [8]\nlayers:\n  - linear: {out: 10, tied: true}\n",
     "layer 'linear1' (linear): 'tied' shares the token embedding's weight, but no embedding comes before it"),
    ("input: [8]\ninput_dtype: long\nlayers:\n  - embedding: {vocab: 10, dim: 4}\n  - linear: {out: 12, tied: true}\n",
     "layer 'linear1' (linear): 'tied' needs out = the embedding's vocab (10) and an input of its width (4); "
     "this layer maps 4 -> 12"),
    ("input: [8]\ninput_dtype: long\nlayers:\n  - embedding: {vocab: 10, dim: 4, positions: 0}\n",
     "embedding: 'positions' must be a positive integer, got 0"),
    ("input: [8]\ninput_dtype: long\nlayers:\n  - embedding: {vocab: 10, dim: 4}\n  - transformer: {heads: 2, causal: 1}\n",
     "transformer: 'causal' must be true or false, got 1"),
    ("input: [9]\ninput_dtype: long\nlayers:\n  - embedding: {vocab: 10, dim: 4, positions: 8}\n",
     "a sequence of 9 tokens is longer than the 8 positions the embedding has"),
])
def test_bad_language_model_specs_are_one_line(text, message):
    if message is None:
        parse_spec_text(text, "lm.yaml")
        return
    with pytest.raises(MemLensError) as info:
        parse_spec_text(text, "lm.yaml")
    assert message in str(info.value) and "\n" not in str(info.value)
    assert isinstance(info.value, SpecError) or "does not fit its input" in str(info.value)


def test_a_sequence_beyond_the_positions_is_refused_when_traced():
    with pytest.raises(MemLensError, match="a sequence of 33 tokens is longer than the 32 positions"):
        analyze(AnalysisRequest(model=TINY_GPT, batch=1, input_shape=(33,)))


@pytest.mark.slow
@pytest.mark.parametrize("kw", [
    dict(batch=4, optimizer="adamw"),
    dict(batch=2, optimizer="adam", checkpoint=("every-block",)),
    dict(batch=4, mode="inference"),  # causal blocks take the fused path with a mask
], ids=["train-adamw", "train-checkpointed", "inference"])
def test_the_tiny_gpt_traced_matches_the_measured_cpu_step(kw):
    request = AnalysisRequest(model=TINY_GPT, **kw)
    traced, measured = analyze(request), measure_cpu_step(request)
    assert traced.timeline.total[0] == measured.start_bytes
    error = (traced.peak.total_bytes - measured.peak_bytes) / measured.peak_bytes
    assert abs(error) < 0.02, f"traced {traced.peak.total_bytes} measured {measured.peak_bytes} ({error:+.2%})"


def test_the_longest_sequence_search_stops_at_the_learned_positions():
    from engine.devices import custom_device
    from engine.planner import max_sequence

    found = max_sequence(AnalysisRequest(model=TINY_GPT, batch=1, input_shape=(8,), device="cuda"),
                         custom_device(2**40))
    assert (found.value, found.limit_reached) == (32, True)
