"""LoRA adapters on a Hugging Face model, through `peft`, as a LoRA fine-tune builds them:
the base weights are frozen, each targeted linear layer gains two small matrices (rank r), and
only those get gradients and optimizer state. The trace then follows peft's real forward (the
base layer, plus dropout-free `B(A(x)) * alpha / r`) and autograd saves what it saves.

`prepare_for_request` is the one step between loading a model and tracing or measuring it (the
pipeline, the planner and the CPU truth call it), so all three see the same adapters.
"""
from __future__ import annotations

import warnings
from typing import TYPE_CHECKING

from .errors import RequestError

if TYPE_CHECKING:  # the CLI imports this module for its summary line, before torch
    from .sources.loaded import LoadedModel


def prepare_for_request(loaded: LoadedModel, request) -> LoadedModel:
    """The model as the request runs it: the sequence checked, the KV cache kept or not, LoRA
    adapters added (once)."""
    from .sources.hf_config import check_sequence

    if request.input_shape is not None:
        check_sequence(loaded, request.input_shape)
    config = getattr(loaded.module, "config", None) if loaded.source == "hf" else None
    if config is not None:  # a prefill keeps every layer's keys and values (set both ways: models are reused)
        config.use_cache = bool(getattr(request, "kv_cache", False))
    if not request.lora_rank:
        return loaded
    if loaded.source != "hf":  # the request refuses it already; a loaded model may come from elsewhere
        raise RequestError(f"LoRA applies to Hugging Face models; {loaded.name} is a {loaded.source} model")
    wanted = lora_settings(request)
    if getattr(loaded.module, "memlens_lora", None) == wanted:
        return loaded  # the planner traces one loaded model several times
    if getattr(loaded.module, "memlens_lora", None) is not None:
        raise RequestError(f"{loaded.name}: already carries other LoRA adapters; load the model again")
    module = add_adapters(loaded.module, *wanted, name=loaded.name)
    module.memlens_lora = wanted
    loaded.module = module
    return loaded


def lora_settings(request) -> tuple[int, float, tuple[str, ...]]:
    """(rank, alpha, targets) with the defaults filled in: alpha = 2 x rank."""
    alpha = float(request.lora_alpha) if request.lora_alpha is not None else 2.0 * request.lora_rank
    return request.lora_rank, alpha, tuple(request.lora_targets)


def describe(request) -> str | None:
    """One line for summaries: 'LoRA rank 8, alpha 16.0, on q_proj,v_proj: base weights frozen'."""
    if not request.lora_rank:
        return None
    rank, alpha, targets = lora_settings(request)
    where = ",".join(targets) if targets else "peft's default modules"
    return f"LoRA rank {rank}, alpha {alpha:g}, on {where}: base weights frozen, adapters trained"


def add_adapters(module, rank: int, alpha: float, targets: tuple[str, ...], name: str = "model"):
    """peft's LoRA injected in place (`inject_adapter_in_model`): the model keeps its class and its
    layer names (`model.layers.0.self_attn.q_proj.lora_A.default`, no `base_model.model.` prefix),
    the base weights are frozen. Targets () take peft's defaults for the architecture."""
    from .sources.hf_config import require

    require("peft", f"{name}: LoRA")
    from peft import LoraConfig, inject_adapter_in_model
    from peft.utils import TRANSFORMERS_MODELS_TO_LORA_TARGET_MODULES_MAPPING as DEFAULT_TARGETS

    if not targets:
        model_type = getattr(getattr(module, "config", None), "model_type", None)
        targets = tuple(DEFAULT_TARGETS.get(model_type) or ())
        if not targets:
            raise RequestError(f"{name}: peft has no default LoRA targets for model type '{model_type}': "
                               "name the modules (e.g. --lora-targets q_proj,v_proj)")
    config = LoraConfig(r=rank, lora_alpha=alpha, lora_dropout=0.0, target_modules=list(targets), bias="none")
    try:
        with warnings.catch_warnings():  # peft's notes (Conv1D sets fan_in_fan_out; a deprecated
            warnings.simplefilter("ignore")  # transformers property it reads) are not the user's concern
            return inject_adapter_in_model(config, module)
    except ValueError as e:  # peft names the targets it could not find
        text = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise RequestError(f"{name}: LoRA cannot be added: {text}") from None
