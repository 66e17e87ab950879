"""Language models from a Hugging Face config.json: built on meta from the config alone, the
shipped configs' published parameter counts, the head the config names, the causal-LM loss,
LoRA through peft, the sequence length, and one clear line for each bad input."""
import json
import os
import sys

import pytest
import torch

from conftest import DATA, ROOT, SPECS, run_main_concurrently
from engine import AnalysisRequest, analyze
from engine.choices import source_kind
from engine.errors import MemLensError, RequestError, UnsupportedError
from engine.sources import check_source, load_model

HF = os.path.join(ROOT, "resources", "hf")
TINY_GPT2 = os.path.join(DATA, "hf_tiny_gpt2")
TINY_LLAMA = os.path.join(DATA, "hf_tiny_llama")

# Published counts: GPT-2 small (OpenAI, tied input/output embedding counted once), Llama-3.2-1B
# (tied) and Llama-3.1-8B (Meta's model cards: 1.24B, 8.03B), Mixtral-8x7B (Mistral AI: 46.7B).
PUBLISHED = {
    "gpt2": 124_439_808,
    "llama-3.2-1b": 1_235_814_400,
    "llama-3.1-8b": 8_030_261_248,
    "mixtral-8x7b": 46_702_792_704,
}


def write_config(folder, document) -> str:
    os.makedirs(folder, exist_ok=True)
    path = os.path.join(folder, "config.json")
    with open(path, "w") as f:
        f.write(document if isinstance(document, str) else json.dumps(document))
    return path


def tiny(**changes) -> dict:
    with open(os.path.join(TINY_GPT2, "config.json")) as f:
        return {**json.load(f), **changes}


# ---- Shipped configs
@pytest.mark.parametrize("name", sorted(PUBLISHED))
def test_shipped_configs_have_the_published_parameter_count(name):
    loaded = load_model(os.path.join(HF, name))
    params = {id(p): p for p in loaded.module.parameters()}  # a tied weight is one parameter
    assert all(p.device.type == "meta" for p in params.values())  # nothing real allocated
    assert sum(p.numel() for p in params.values()) == PUBLISHED[name]
    assert loaded.module.num_parameters() == PUBLISHED[name]  # transformers counts the same way


def test_tied_embeddings_are_one_weight():
    gpt2 = load_model(os.path.join(HF, "gpt2")).module
    assert gpt2.lm_head.weight is gpt2.transformer.wte.weight
    llama_8b = load_model(os.path.join(HF, "llama-3.1-8b")).module
    assert llama_8b.lm_head.weight is not llama_8b.model.embed_tokens.weight


# ---- Which source, which head, which input
def test_a_config_json_or_its_folder_is_a_hugging_face_source(tmp_path):
    assert source_kind(os.path.join(HF, "gpt2")) == "hf"
    assert source_kind(os.path.join(HF, "gpt2", "config.json")) == "hf"
    renamed = tmp_path / "my-gpt.json"
    renamed.write_text(json.dumps(tiny()))
    assert source_kind(str(renamed)) == "hf"  # any .json naming a model_type
    spec = tmp_path / "net.json"
    spec.write_text(json.dumps({"input": [3, 8, 8], "layers": ["flatten", {"linear": {"out": 2}}]}))
    assert source_kind(str(spec)) == "spec"
    assert source_kind(os.path.join(SPECS, "vgg16.yaml")) == "spec" and source_kind("vgg16") == "torchvision"


def test_a_causal_lm_takes_token_ids_up_to_its_positions():
    loaded = load_model(TINY_GPT2)
    assert loaded.source == "hf" and loaded.task == "causal_lm"
    assert loaded.input_dtype == torch.long and loaded.input_shape == (256,)  # n_positions
    assert loaded.input_high == 1000  # token ids below the vocabulary size
    assert loaded.module.config._attn_implementation == "sdpa"  # picked, not left to chance
    assert loaded.module.config.use_cache is False
    assert os.environ["HF_HUB_OFFLINE"] == "1" and os.environ["TRANSFORMERS_OFFLINE"] == "1"


def test_the_default_sequence_is_capped_for_long_context_models():
    assert load_model(os.path.join(HF, "llama-3.1-8b")).input_shape == (2048,)  # not 131,072


def test_the_architecture_names_the_head(tmp_path):
    classifier = load_model(write_config(tmp_path / "cls", tiny(architectures=["GPT2ForSequenceClassification"],
                                                                num_labels=3, pad_token_id=0)))
    assert type(classifier.module).__name__ == "GPT2ForSequenceClassification" and classifier.task == "auto"
    bare = load_model(write_config(tmp_path / "bare", tiny(architectures=["GPT2Model"])))
    assert type(bare.module).__name__ == "GPT2Model"
    assert any("AutoModel" in w for w in bare.warnings)
    unnamed = load_model(write_config(tmp_path / "none", {k: v for k, v in tiny().items() if k != "architectures"}))
    assert type(unnamed.module).__name__ == "GPT2LMHeadModel"


def test_a_sequence_classifier_trains_on_its_class_logits(tmp_path):
    path = write_config(tmp_path / "cls", tiny(architectures=["GPT2ForSequenceClassification"], num_labels=3,
                                               pad_token_id=0))
    analysis = analyze(AnalysisRequest(model=path, batch=2, input_shape=(16,)))
    assert analysis.peak.breakdown["gradients"] > 0 or analysis.peak.breakdown["optimizer_state"] > 0


# ---- The causal-LM loss
def test_the_loss_is_transformers_causal_lm_loss_on_shifted_labels():
    from transformers.loss.loss_utils import ForCausalLMLoss

    from engine.loss import IGNORE_INDEX, compute_loss, make_targets

    torch.manual_seed(0)
    logits = torch.randn(2, 5, 7)
    ids = torch.randint(0, 7, (2, 5))
    targets = make_targets([(2, 5, 7)], torch.float32, task="causal_lm")
    (key, shifted), = targets.items()
    assert key == ("next_tokens", (2, 5)) and shifted.dtype == torch.long
    assert (shifted[:, -1] == IGNORE_INDEX).all()  # the last position has no next token
    shifted[:, :-1] = ids[:, 1:]  # the values a real batch would hold
    ours = compute_loss({"logits": logits}, targets)
    assert torch.allclose(ours, ForCausalLMLoss(logits, ids, vocab_size=7))


def test_other_token_models_keep_their_unshifted_loss():
    from engine.loss import make_targets

    assert set(make_targets([(2, 5, 7)], torch.float32)) == {("classes", (2, 5))}


# ---- The sequence length
def test_a_sequence_beyond_the_configs_positions_is_refused_naming_the_limit():
    with pytest.raises(RequestError, match=r"sequence 257 is longer than the config's max_position_embeddings \(256\)"):
        analyze(AnalysisRequest(model=TINY_GPT2, batch=1, input_shape=(257,)))


def test_the_sequence_length_sets_the_activations():
    short = analyze(AnalysisRequest(model=TINY_LLAMA, batch=2, input_shape=(32,), mode="inference"))
    long = analyze(AnalysisRequest(model=TINY_LLAMA, batch=2, input_shape=(128,), mode="inference"))
    assert short.input_shape == (2, 32) and long.input_shape == (2, 128)
    logits = 2 * 128 * 1000 * 4  # the vocabulary head's output at the longer sequence
    assert long.peak.total_bytes - short.peak.total_bytes >= logits * 3 // 4


# ---- LoRA
def test_lora_trains_only_the_adapters():
    base = analyze(AnalysisRequest(model=TINY_LLAMA, batch=2, input_shape=(64,), optimizer="adam"))
    lora = analyze(AnalysisRequest(model=TINY_LLAMA, batch=2, input_shape=(64,), optimizer="adam",
                                   lora_rank=8, lora_targets=("q_proj", "v_proj")))
    # q_proj 64->64 and v_proj 64->32 (2 key/value heads of 16), rank 8, in 2 layers:
    adapters = 2 * ((64 * 8 + 8 * 64) + (64 * 8 + 8 * 32))
    assert lora.parameters == base.parameters + adapters
    # Adam's two moments (and a step counter) for the adapters only; the base weights are frozen.
    state = lora.timeline.curves["optimizer_state"][0]
    assert state == 2 * 4 * adapters + 4 * 8  # 8 adapter matrices, one float32 step counter each
    assert lora.timeline.curves["gradients"].max() == 4 * adapters  # a gradient for each adapter only
    assert lora.peak.total_bytes < base.peak.total_bytes
    # What LoRA saved is traced: full fine-tuning of the same model, the independent `base` above.
    assert lora.levers.without_levers_peak_bytes == base.peak.total_bytes
    assert lora.levers.adapter_parameters == lora.levers.trainable_parameters == adapters
    from engine.cli import summary_text
    from engine.units import format_bytes

    assert (f"LoRA rank 8, alpha 16, on q_proj,v_proj: base weights frozen, adapters trained; {adapters:,} adapter "
            f"parameters trained (1.6% of {lora.parameters:,}); vs full fine-tuning: "
            f"−{format_bytes(base.peak.total_bytes - lora.peak.total_bytes)}") in summary_text(lora)


# ---- Inference keeping its KV cache (a prefill)
@pytest.mark.parametrize("model, kv_heads", [(TINY_GPT2, 4), (TINY_LLAMA, 2)], ids=["gpt2", "llama-gqa"])
def test_a_prefill_keeps_every_layers_keys_and_values(model, kv_heads):
    request = AnalysisRequest(model=model, batch=2, input_shape=(64,), mode="inference")
    plain, prefill = analyze(request), analyze(request.replace(kv_cache=True))

    def at_the_head(analysis):  # live bytes as the output head starts: every layer has run
        events = analysis.events
        first = int((events.module == events.modules.index("lm_head")).nonzero()[0][0])
        return int(analysis.timeline.total[first])

    # keys and values x 2 layers x batch 2 x kv heads x 64 positions x head width 16 x float32
    assert at_the_head(prefill) - at_the_head(plain) == 2 * 2 * 2 * kv_heads * 64 * 16 * 4
    assert prefill.peak.total_bytes > plain.peak.total_bytes
    from engine.lever_fields import KV_CACHE_NOTE, summary_lines

    assert summary_lines(prefill) == [KV_CACHE_NOTE] and summary_lines(plain) == []
    assert analyze(request).peak.total_bytes == plain.peak.total_bytes  # the loaded model is not left caching


@pytest.mark.parametrize("kw, message", [
    (dict(model=TINY_GPT2, kv_cache=True), "--kv-cache: a KV cache is kept by inference (a prefill for generation); "
                                           "a training step keeps none: use --mode inference"),
    (dict(model="resnet18", mode="inference", kv_cache=True),
     "--kv-cache applies to Hugging Face language models (a config.json or a folder holding one); 'resnet18' is a "
     "torchvision model"),
])
def test_a_kv_cache_where_none_is_kept_is_refused(kw, message):
    with pytest.raises(RequestError) as info:
        AnalysisRequest(**kw)
    assert str(info.value) == message


def test_lora_defaults_to_peft_targets_for_the_architecture():
    analysis = analyze(AnalysisRequest(model=TINY_GPT2, batch=1, input_shape=(16,), lora_rank=4))
    names = {layer.name for layer in analysis.layers}
    assert any(name.endswith("attn.c_attn.lora_A.default") for name in names)  # GPT-2's fused qkv


def test_lora_on_a_model_that_is_not_hugging_face_is_refused_at_once():
    with pytest.raises(RequestError, match="LoRA applies to Hugging Face models.*'resnet18' is a torchvision model"):
        AnalysisRequest(model="resnet18", lora_rank=8)
    with pytest.raises(RequestError, match="need a LoRA rank"):
        AnalysisRequest(model=TINY_GPT2, lora_targets=("c_attn",))
    with pytest.raises(RequestError, match="LoRA rank must be"):
        AnalysisRequest(model=TINY_GPT2, lora_rank=-1)


def test_lora_targets_that_match_nothing_are_named():
    with pytest.raises(RequestError, match="LoRA cannot be added.*nonexistent_proj"):
        analyze(AnalysisRequest(model=TINY_LLAMA, batch=1, input_shape=(8,), lora_rank=4,
                                lora_targets=("nonexistent_proj",)))


# ---- Bad configs: one clear line each
def test_a_json_that_is_not_a_transformers_config_names_the_file_and_what_is_missing(tmp_path):
    path = write_config(tmp_path / "notes", {"hidden_size": 64, "layers": 2})
    with pytest.raises(MemLensError, match=r"config\.json: not a transformers config: it has no 'model_type'"):
        check_source(path)
    with pytest.raises(MemLensError, match=r"config\.json:1: not valid JSON"):
        check_source(write_config(tmp_path / "broken", "{model_type: gpt2"))
    with pytest.raises(MemLensError, match="expected a JSON object, found a list"):
        check_source(write_config(tmp_path / "list", [1, 2]))


@pytest.mark.parametrize("extra, words", [
    ({"auto_map": {"AutoModelForCausalLM": "modeling_x.XForCausalLM"}}, "auto_map"),
    ({"trust_remote_code": True}, "trust_remote_code"),
])
def test_a_model_whose_code_must_be_downloaded_is_refused_by_name(tmp_path, extra, words):
    path = write_config(tmp_path / "remote", tiny(**extra))
    with pytest.raises(UnsupportedError, match=f"code must be downloaded.*{words}"):
        check_source(path)


def test_an_architecture_transformers_does_not_ship_is_named(tmp_path):
    path = write_config(tmp_path / "odd", tiny(model_type="my_private_lm"))
    with pytest.raises(UnsupportedError, match="model_type 'my_private_lm' is not an architecture transformers"):
        load_model(path)


def test_a_folder_without_a_config_is_named(tmp_path):
    with pytest.raises(MemLensError, match="holds no config.json"):
        check_source(str(tmp_path))


def test_numbers_transformers_rejects_are_reported_not_raised(tmp_path):
    path = write_config(tmp_path / "width", tiny(n_embd=63))  # 63 is not divisible by 4 heads
    with pytest.raises(MemLensError, match="building gpt2 .*failed: .*divisible"):
        analyze(AnalysisRequest(model=path, batch=1, input_shape=(8,)))


# ---- The command line
BAD_SEQUENCES = [
    (("--seq", "0"), "--seq must be a positive number of tokens, got 0"),
    (("--seq", "300"), "sequence 300 is longer than the config's max_position_embeddings (256)"),
    (("--seq", "8", "--input", "8"), "give the sequence once"),
]
# Each run is its own main.py process (a torch start-up); the module starts them together.
RUNS = {
    "seq_and_lora": ["--model", TINY_LLAMA, "--batch", "2", "--seq", "64", "--lora-rank", "8", "--lora-alpha", "16",
                     "--lora-targets", "q_proj,v_proj", "--json", "-"],
    "lora_on_torchvision": ["--model", "resnet18", "--lora-rank", "8"],
    "kv_cache": ["--model", TINY_LLAMA, "--batch", "2", "--seq", "64", "--mode", "inference", "--kv-cache", "--json", "-"],
    "kv_cache_in_training": ["--model", TINY_LLAMA, "--kv-cache"],
    **{args: ["--model", TINY_GPT2, *args] for args, _ in BAD_SEQUENCES},
}


@pytest.fixture(scope="module")
def runs():
    return run_main_concurrently({name: ["analyze", *argv] for name, argv in RUNS.items()}, timeout=600)


def test_the_cli_traces_a_prefill_with_its_kv_cache(runs):
    out = runs["kv_cache"]
    assert out.returncode == 0, out.stderr
    doc = json.loads(out.stdout)
    request = AnalysisRequest(model=TINY_LLAMA, batch=2, input_shape=(64,), mode="inference")
    assert doc["request"]["kv_cache"] is True
    # the prefill's own figure (its cache's bytes: test_a_prefill_keeps_every_layers_keys_and_values)
    assert doc["peak_bytes"] == analyze(request.replace(kv_cache=True)).peak.total_bytes
    assert doc["peak_bytes"] > analyze(request).peak.total_bytes
    out = runs["kv_cache_in_training"]
    assert out.returncode == 1 and "--kv-cache: a KV cache is kept by inference" in out.stderr


def test_the_cli_traces_a_config_with_seq_and_lora(runs):
    out = runs["seq_and_lora"]
    assert out.returncode == 0, out.stderr
    doc = json.loads(out.stdout)
    assert doc["parameters"] == 220_480 + 3_584 and doc["input_shape"] == [2, 64]


@pytest.mark.parametrize("args, message", BAD_SEQUENCES)
def test_bad_sequences_exit_with_one_line(args, message, runs):
    out = runs[args]
    assert out.returncode == 1 and out.stderr.count("\n") == 1 and message in out.stderr, out.stderr


def test_lora_on_a_torchvision_model_exits_with_one_line(runs):
    out = runs["lora_on_torchvision"]
    assert out.returncode == 1 and out.stderr.count("\n") == 1
    assert "LoRA applies to Hugging Face models" in out.stderr


# ---- Planning
def test_the_longest_sequence_search_stops_at_the_configs_positions():
    from engine.devices import custom_device
    from engine.planner import max_sequence
    from engine.units import parse_bytes

    found = max_sequence(AnalysisRequest(model=TINY_GPT2, batch=1, input_shape=(64,)), custom_device(parse_bytes("1 GiB")))
    assert found.value == 256 and found.limit_reached  # n_positions, not a trace that cannot run


def test_without_the_hf_extra_the_message_says_how_to_install_it(monkeypatch):
    from engine.sources.hf_config import require

    monkeypatch.setitem(sys.modules, "peft", None)  # an import of it fails, as when it is not installed
    with pytest.raises(UnsupportedError, match=r"tiny: LoRA: .*'peft' package, which is not installed .*memlens\[hf\]"):
        require("peft", "tiny: LoRA")
