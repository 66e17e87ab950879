"""A language model from its Hugging Face `config.json`: the architecture `transformers` knows,
built from the config alone on the meta device. No weights, no tokenizer, nothing downloaded.

`--model path/to/config.json` or a model folder that holds one. The config's `architectures`
picks the head: `...ForCausalLM` / `...LMHeadModel` -> AutoModelForCausalLM (trained on the
causal-LM loss, engine/loss.py), `...ForSequenceClassification` -> its class head, anything else
-> AutoModel (the bare transformer). The input is a batch of token ids, `--seq` long.

Choices that change the memory, made explicitly so the trace and the real step agree:
- attention is `sdpa` (torch's `scaled_dot_product_attention`, whose kernel the trace picks as
  the target device would: engine/attention.py); models without it use `eager`;
- `use_cache` is off: a training step keeps no KV cache, and an inference pass is one forward;
  `--kv-cache` turns it on for inference (a prefill that keeps every layer's keys and values for
  generation, engine/lora.py prepare_for_request);
- weights are built in float32 and take the request's dtype afterwards (a config's
  `torch_dtype` only says how the checkpoint was saved).
"""
from __future__ import annotations

import json
import os

import torch

from ..choices import HF_CONFIG_NAME
from ..errors import MemLensError, RequestError, UnsupportedError
from .loaded import LoadedModel

# Without --seq: the config's longest sequence, at most this (Llama-3.1's 131,072 tokens would
# make the default analysis of an 8B model a 30 GB question).
DEFAULT_SEQUENCE = 2048
MAX_CONFIG_BYTES = 1 << 20

_CAUSAL_SUFFIXES = ("ForCausalLM", "LMHeadModel")
_CLASSIFIER_SUFFIX = "ForSequenceClassification"


def config_path(model: str) -> str:
    """The config.json a `--model` names: the file itself, or the one in a model folder."""
    path = model.strip()
    if os.path.isdir(path):
        inside = os.path.join(path, HF_CONFIG_NAME)
        if not os.path.isfile(inside):
            raise MemLensError(f"{path}: the folder holds no {HF_CONFIG_NAME} (a Hugging Face model folder has one)")
        return inside
    if not os.path.isfile(path):
        raise MemLensError(f"config file not found: {path}")
    return path


def read_config(model: str) -> tuple[str, dict]:
    """(path, the JSON object) of a transformers config, or a one-line error naming what is wrong.
    Needs no torch: the CLI checks the file before importing it."""
    path = config_path(model)
    if os.path.getsize(path) > MAX_CONFIG_BYTES:
        raise MemLensError(f"{path}: {os.path.getsize(path):,} bytes is too large for a model config "
                           f"(at most {MAX_CONFIG_BYTES:,})")
    try:
        with open(path, encoding="utf-8") as f:
            document = json.load(f)
    except UnicodeDecodeError:
        raise MemLensError(f"{path}: not a text file (a transformers config is JSON)") from None
    except json.JSONDecodeError as e:
        raise MemLensError(f"{path}:{e.lineno}: not valid JSON: {e.msg}") from None
    except OSError as e:
        raise MemLensError(f"{path}: cannot read: {e.strerror}") from None
    if not isinstance(document, dict):
        raise MemLensError(f"{path}: not a transformers config: expected a JSON object, found a "
                           f"{type(document).__name__}")
    if "model_type" not in document:
        raise MemLensError(f"{path}: not a transformers config: it has no 'model_type' (e.g. \"llama\", \"gpt2\")")
    if not isinstance(document["model_type"], str):
        raise MemLensError(f"{path}: 'model_type' must be a name such as \"llama\", got {document['model_type']!r}")
    remote = _remote_code(document)
    if remote:
        raise UnsupportedError(f"{path}: this model's code must be downloaded ({remote}); MemLens builds only "
                               "architectures that ship with transformers, offline, and runs no remote code")
    architectures = document.get("architectures")
    if architectures is not None and (not isinstance(architectures, list)
                                      or not all(isinstance(a, str) for a in architectures)):
        raise MemLensError(f"{path}: 'architectures' must be a list of class names, got {architectures!r}")
    return path, document


def load_hf_config(model: str) -> LoadedModel:
    """Build the config's model on the meta device (see the module doc)."""
    path, document = read_config(model)
    _offline()
    transformers = require("transformers", path)
    from transformers import CONFIG_MAPPING

    _trace_plain_sequences()
    _trace_padding_check()
    _grouped_mm_in_float32()
    model_type = document["model_type"]
    if model_type not in CONFIG_MAPPING:
        raise UnsupportedError(f"{path}: model_type '{model_type}' is not an architecture transformers "
                               f"{transformers.__version__} ships (a model needing trust_remote_code?)")
    settings = {k: v for k, v in document.items() if k not in ("model_type", "transformers_version")}
    try:
        config = CONFIG_MAPPING[model_type].from_dict(settings)
    except Exception as e:  # transformers' own validation of the numbers
        raise MemLensError(f"{path}: transformers rejects this {model_type} config: {_first_line(e)}") from None
    config.use_cache = False
    auto, head = _auto_class(config, document.get("architectures") or [])
    try:
        module = _build(auto, config)
    except MemLensError:
        raise
    except Exception as e:
        raise MemLensError(f"{path}: building {model_type} ({auto.__name__}) failed: {_first_line(e)}") from None
    limit = max_positions(module)
    seq = min(limit, DEFAULT_SEQUENCE) if limit else DEFAULT_SEQUENCE
    name = document.get("_name_or_path") or _folder_name(path) or model_type
    warnings = [] if head else [f"{path}: architectures names no causal-LM or classification head; "
                                "built as the bare transformer (AutoModel)"]
    return LoadedModel(module=module, name=str(name), source="hf", input_shape=(seq,), input_dtype=torch.long,
                       task="causal_lm" if head == "causal_lm" else "auto",
                       input_high=int(getattr(config, "vocab_size", 2) or 2), warnings=warnings)


def require(package: str, what: str):
    """transformers and peft are the optional 'hf' extra: without them, say how to get them."""
    import importlib

    try:
        return importlib.import_module(package)
    except ImportError:
        raise UnsupportedError(f"{what}: Hugging Face models need the '{package}' package, which is not "
                               "installed (pip install 'memlens[hf]')") from None


def max_positions(module) -> int | None:
    """The longest sequence the model's config allows (`max_position_embeddings`), or None."""
    config = getattr(module, "config", None)
    value = getattr(config, "max_position_embeddings", None) if config is not None else None
    return value if isinstance(value, int) and value > 0 else None


def sequence_limit(loaded: LoadedModel) -> int | None:
    """The longest sequence a loaded model takes: a Hugging Face config's positions, a spec
    embedding's learned positions (engine/sources/spec.py), else None."""
    if loaded.source == "hf":
        return max_positions(loaded.module)
    tables = [m.position_weight.shape[0] for m in loaded.module.modules()
              if getattr(m, "position_weight", None) is not None]
    return min(tables) if tables else None


def check_sequence(loaded: LoadedModel, shape: tuple[int, ...]) -> None:
    """A token sequence the model can take: one dimension, within the config's positions (the
    request has checked it is positive)."""
    if loaded.source != "hf":
        return
    if len(shape) != 1:
        raise RequestError(f"{loaded.name}: a language model takes token ids of shape [seq]; "
                           f"got input {'x'.join(map(str, shape))} (use --seq N)")
    limit = max_positions(loaded.module)
    if limit is not None and shape[0] > limit:
        raise RequestError(f"{loaded.name}: sequence {shape[0]:,} is longer than the config's "
                           f"max_position_embeddings ({limit:,})")


# ---- Private API
def _offline() -> None:
    """Nothing is fetched: set before transformers (and huggingface_hub) read them at import."""
    os.environ["HF_HUB_OFFLINE"] = "1"
    os.environ["TRANSFORMERS_OFFLINE"] = "1"
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")


def _trace_plain_sequences() -> None:
    """transformers checks whether a batch packs several sequences (position ids restarting) with
    a value test, `(mask[:, -1] == 0).all()`, which meta tensors cannot answer, and which it skips
    for fake tensors by assuming packing. MemLens feeds one sequence per row, where the answer is
    always 'not packed' (None): on meta and fake tensors the same ops run (their temporaries are
    traced) and None is returned; on real tensors the function is transformers' own."""
    from torch._subclasses.fake_tensor import is_fake
    from transformers import masking_utils

    original = masking_utils.find_packed_sequence_indices
    if getattr(original, "memlens", False):
        return

    def find_packed_sequence_indices(position_ids):
        if position_ids.device.type != "meta" and not is_fake(position_ids):
            return original(position_ids)
        first = position_ids[:, :1] - 1
        (torch.diff(position_ids, prepend=first, dim=-1) != 1).cumsum(-1)
        return None

    find_packed_sequence_indices.memlens = True
    masking_utils.find_packed_sequence_indices = find_packed_sequence_indices


def _trace_padding_check() -> None:
    """Models with a `pad_token_id` (classification heads need one) warn once when the first or
    last token is padding, a value test meta tensors cannot answer. MemLens's rows hold no
    padding: on meta the same small gather and comparison run and the answer is 'no padding'."""
    from transformers import PreTrainedModel

    original = PreTrainedModel.warn_if_padding_and_no_attention_mask
    if getattr(original, "memlens", False):
        return

    def warn_if_padding_and_no_attention_mask(self, input_ids, attention_mask):
        if input_ids is None or input_ids.device.type != "meta":
            return original(self, input_ids, attention_mask)
        if attention_mask is None and self.config.pad_token_id is not None:
            (input_ids[:, [-1, 0]] == self.config.pad_token_id).any()
        return None

    warn_if_padding_and_no_attention_mask.memlens = True
    PreTrainedModel.warn_if_padding_and_no_attention_mask = warn_if_padding_and_no_attention_mask


def _grouped_mm_in_float32() -> None:
    """Mixture-of-experts layers (Mixtral, OLMoE, Qwen-MoE) run their experts through
    `torch._grouped_mm`. Its CPU kernel takes float32; its meta kernel copies the CUDA kernel's
    checks and refuses anything but bfloat16. For float32 the meta kernel here returns the
    output the CPU kernel returns (same shape, contiguous); other dtypes keep torch's checks."""
    import torch._meta_registrations as meta

    original = meta._meta_grouped_mm_common
    if getattr(original, "memlens", False):
        return

    def common(mat_a, mat_b, scale_a, scale_b, offs=None, bias=None, scale_result=None, out_dtype=None,
               use_fast_accum=False):
        if scale_a is None and scale_b is None and bias is None and mat_a.dtype == mat_b.dtype == torch.float32:
            return meta._create_grouped_mm_output_tensor(mat_a, mat_b, offs, out_dtype)
        return original(mat_a, mat_b, scale_a, scale_b, offs, bias, scale_result, out_dtype, use_fast_accum)

    common.memlens = True
    meta._meta_grouped_mm_common = common


def _remote_code(document: dict) -> str:
    if document.get("auto_map"):
        return "its 'auto_map' names custom classes " + ", ".join(sorted(map(str, document["auto_map"])))
    if document.get("trust_remote_code"):
        return "it asks for trust_remote_code"
    return ""


def _auto_class(config, architectures: list[str]):
    """(Auto class, 'causal_lm' / 'classification' / '') from the config's first architecture."""
    from transformers import AutoModel, AutoModelForCausalLM, AutoModelForSequenceClassification
    from transformers.models.auto.modeling_auto import MODEL_FOR_CAUSAL_LM_MAPPING_NAMES

    name = architectures[0] if architectures else ""
    if name.endswith(_CLASSIFIER_SUFFIX):
        return AutoModelForSequenceClassification, "classification"
    if name.endswith(_CAUSAL_SUFFIXES) or (not name and config.model_type in MODEL_FOR_CAUSAL_LM_MAPPING_NAMES):
        return AutoModelForCausalLM, "causal_lm"
    return AutoModel, ""


def _build(auto, config):
    """From the config on meta, with sdpa attention where the architecture has it."""
    with torch.device("meta"):
        try:
            return auto.from_config(config, attn_implementation="sdpa", dtype=torch.float32)
        except ValueError as e:
            if "sdpa" not in str(e).lower() and "scaled_dot_product" not in str(e).lower():
                raise
            return auto.from_config(config, attn_implementation="eager", dtype=torch.float32)


def _folder_name(path: str) -> str:
    return os.path.basename(os.path.dirname(os.path.abspath(path)))


def _first_line(e: BaseException) -> str:
    lines = str(e).strip().splitlines()
    return lines[0] if lines else type(e).__name__
