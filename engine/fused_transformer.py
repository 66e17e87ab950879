"""nn.TransformerEncoderLayer's fused inference path, as a CPU or a GPU runs it, op by op on fake tensors;
nn.MultiheadAttention's own (`_native_multi_head_attention`, the attention inside it) likewise.

Under no_grad, an eval-mode encoder layer that meets torch's conditions calls one C++ op,
`torch._transformer_encoder_layer_fwd` (aten/src/ATen/native/transformers/transformer.cpp,
attention.cpp and cuda/attention.cu), instead of the module path. Its temporaries live
differently. On a CPU: the q/k/v projection is freed as soon as the heads are split out of it,
the attention context is written into the query's storage, the softmax runs in place. On a GPU,
where SDPA's flash or memory-efficient kernel applies: one biased projection, SDPA on its views,
the output projection. Both fuse the feed-forward's activation into its first matrix product.
The trace cannot take that op as it is (it has no meta kernel, and the tracer's hooks and fake
tensors fail its checks), so while tracing the layer's forward decides as torch does and, where
the real one would fuse, runs the same aten ops in the same order with the same frees (checked
against the allocator's per-op events of a real CPU pass, and against the H200 recordings).
Not modelled: the path under CPU autocast (`fast_path_warning`); CUDA autocast never takes it.
"""
from __future__ import annotations

import contextlib

import torch
import torch.nn.functional as F
from torch import nn
from torch._subclasses.fake_tensor import is_fake


@contextlib.contextmanager
def fused_encoder_layers(target):
    """While tracing for `target` (engine/target.py): encoder layers and multi-head attentions on
    fake/meta tensors take the fused path where the real device would; real tensors (the truth)
    run torch's own forward."""
    original, original_mha = nn.TransformerEncoderLayer.forward, nn.MultiheadAttention.forward
    original_encoder = nn.TransformerEncoder.forward
    warnings: list[str] = []

    def forward(self, src, src_mask=None, src_key_padding_mask=None, is_causal=False):
        if (src.device.type == "meta" or is_fake(src)) and not _autocast(target) \
                and fuses(self, src, src_key_padding_mask, src_mask):
            return _fused_forward(self, src, src_mask, src_key_padding_mask, target)
        return original(self, src, src_mask, src_key_padding_mask, is_causal)

    def mha_forward(self, query, key, value, key_padding_mask=None, need_weights=True, attn_mask=None,
                    average_attn_weights=True, is_causal=False):
        if (query.device.type == "meta" or is_fake(query)) and not _autocast(target) \
                and attention_fuses(self, query, key, value, key_padding_mask, attn_mask):
            key_padding_mask = F._canonical_mask(mask=key_padding_mask, mask_name="key_padding_mask",
                                                 other_type=F._none_or_dtype(attn_mask), other_name="attn_mask",
                                                 target_type=query.dtype)
            attn_mask = F._canonical_mask(mask=attn_mask, mask_name="attn_mask", other_type=None, other_name="",
                                          target_type=query.dtype, check_other=False)
            mask, mask_type = self.merge_masks(attn_mask, key_padding_mask, query)
            return _attention(self, query, mask, mask_type, target, need_weights, average_attn_weights)
        return original_mha(self, query, key, value, key_padding_mask, need_weights, attn_mask,
                            average_attn_weights, is_causal)

    def encoder_forward(self, src, mask=None, src_key_padding_mask=None, is_causal=None):
        # Given a padding mask in inference, torch packs the unpadded tokens into nested tensors
        # (_nested_tensor_from_mask), runs the layers on them and pads the result back
        # (to_padded_tensor): sizes that are the data's, which no trace has. Traced as if no token
        # were padding: the packed copy of the input, held through the layers, the layers dense
        # with the mask, and the padded copy of the output: an upper bound.
        packs = (getattr(self, "use_nested_tensor", False) and src_key_padding_mask is not None
                 and not self.training and not torch.is_grad_enabled()
                 and (src.device.type == "meta" or is_fake(src)))
        if not packs:
            return original_encoder(self, src, mask, src_key_padding_mask, is_causal)
        self.use_nested_tensor = False
        try:
            packed = original_encoder(self, src.clone(), mask, src_key_padding_mask, is_causal)
        finally:
            self.use_nested_tensor = True
        if PADDING_WARNING not in warnings:
            warnings.append(PADDING_WARNING)
        return packed.clone()

    nn.TransformerEncoderLayer.forward, nn.MultiheadAttention.forward = forward, mha_forward
    nn.TransformerEncoder.forward = encoder_forward
    try:
        yield warnings
    finally:
        nn.TransformerEncoderLayer.forward, nn.MultiheadAttention.forward = original, original_mha
        nn.TransformerEncoder.forward = original_encoder


PADDING_WARNING = ("nn.TransformerEncoder inference with a padding mask: the figure is an upper bound; torch packs "
                   "the unpadded tokens into nested tensors, whose size depends on the data, and the trace counts "
                   "every token as unpadded")


def attention_fuses(attn: nn.MultiheadAttention, query, key, value, key_padding_mask=None, attn_mask=None) -> bool:
    """torch's own conditions for nn.MultiheadAttention's fast path (`_native_multi_head_attention`:
    self-attention in eval mode, batch first, no gradient wanted), less those only tracing trips."""
    floating_mask = any(m is not None and torch.is_floating_point(m) for m in (attn_mask, key_padding_mask))
    return bool(
        torch.backends.mha.get_fastpath_enabled()
        and not floating_mask
        and query.dim() == 3
        and query is key and key is value
        and attn.in_proj_weight is not None and attn.in_proj_bias is not None
        and query.dtype == attn.in_proj_weight.dtype == attn.in_proj_bias.dtype
        and not attn.training
        and attn.num_heads % 2 == 0
        and attn.batch_first
        and attn.bias_k is None and attn.bias_v is None
        and not attn.add_zero_attn
        and attn._qkv_same_embed_dim
        and not query.is_nested
        and not (torch.is_grad_enabled() and any(t.requires_grad for t in (
            query, attn.in_proj_weight, attn.in_proj_bias, attn.out_proj.weight, attn.out_proj.bias)))
    )


def _autocast(target) -> bool:
    """A CUDA trace's autocast is MemLens's own mode (torch would see CUDA autocast on and not fuse);
    under CPU autocast the fused op runs another composite (its attention's inputs cast one by one,
    three projections and a cat), not modelled: the module path is traced, and the analysis warns."""
    if target.name == "cuda":
        from .target import active_cuda_autocast

        return active_cuda_autocast() is not None
    return torch.is_autocast_enabled("cpu")


def fuses(layer: nn.TransformerEncoderLayer, src, src_key_padding_mask=None, src_mask=None) -> bool:
    """torch's own conditions for the fused path (nn.TransformerEncoderLayer.forward), less those
    that only tracing trips: the tracer's hooks, fake tensors' device and torch-function checks."""
    attn = layer.self_attn
    return bool(
        torch.backends.mha.get_fastpath_enabled()
        and src.dim() == 3
        and not layer.training
        and attn.batch_first
        and attn.in_proj_bias is not None
        and attn._qkv_same_embed_dim
        and layer.activation_relu_or_gelu
        and layer.norm1.eps == layer.norm2.eps
        and not (src.is_nested and (src_key_padding_mask is not None or src_mask is not None))
        and attn.num_heads % 2 == 0
        and not torch.is_autocast_enabled()
        and not (torch.is_grad_enabled() and any(t.requires_grad for t in _tensor_args(layer, src)))
    )


def _tensor_args(layer, src):
    attn = layer.self_attn
    return (src, attn.in_proj_weight, attn.in_proj_bias, attn.out_proj.weight, attn.out_proj.bias,
            layer.norm1.weight, layer.norm1.bias, layer.norm2.weight, layer.norm2.bias,
            layer.linear1.weight, layer.linear1.bias, layer.linear2.weight, layer.linear2.bias)


def _fused_forward(layer, src, src_mask, src_key_padding_mask, target):
    """transformer_encoder_layer_forward: norms, attention and feed-forward with its frees."""
    src_key_padding_mask = F._canonical_mask(mask=src_key_padding_mask, mask_name="src_key_padding_mask",
                                             other_type=F._none_or_dtype(src_mask), other_name="src_mask",
                                             target_type=src.dtype)
    src_mask = F._canonical_mask(mask=src_mask, mask_name="src_mask", other_type=None, other_name="",
                                 target_type=src.dtype, check_other=False)
    mask, mask_type = layer.self_attn.merge_masks(src_mask, src_key_padding_mask, src)
    dim, eps = layer.self_attn.embed_dim, layer.norm1.eps
    x = src
    if layer.norm_first:
        x = F.layer_norm(x, (dim,), layer.norm1.weight, layer.norm1.bias, eps)
    x, _ = _attention(layer.self_attn, x, mask, mask_type, target)
    x.add_(src)
    if not layer.norm_first:
        x = F.layer_norm(x, (dim,), layer.norm1.weight, layer.norm1.bias, eps)
    residual = x
    if layer.norm_first:
        x = F.layer_norm(x, (dim,), layer.norm2.weight, layer.norm2.bias, eps)
    x = _feed_forward(layer, x)
    x.add_(residual)
    del residual
    if not layer.norm_first:
        x = F.layer_norm(x, (dim,), layer.norm2.weight, layer.norm2.bias, eps)
    return x


def _attention(attn: nn.MultiheadAttention, x, mask, mask_type, target, need_weights=False, average=True):
    """native_multi_head_attention: (the output, the attention weights or None). Without weights a
    GPU asks SDPA first, on views of the input; otherwise (and always on a CPU) the scores are
    materialised, softmaxed in place and, when asked for, kept (averaged over the heads into a new
    tensor, or returned as they are)."""
    batch, seq, dim = x.shape
    heads = attn.num_heads
    head_dim = dim // heads
    if target.name == "cuda" and head_dim % 8 == 0 and not need_weights:
        from .target import EFFICIENT, FLASH

        def heads_of(t):
            return t.view(batch, seq, heads, head_dim).transpose(1, 2)

        views = heads_of(x)
        if target.attention_choice(views, views, views, mask, 0.0, False, None, False) in (FLASH, EFFICIENT):
            qkv = F.linear(x, attn.in_proj_weight, attn.in_proj_bias)
            q, k, v = (heads_of(chunk) for chunk in qkv.chunk(3, -1))
            y = F.scaled_dot_product_attention(q, k, v, mask, 0.0, False)  # the target's kernel (attention.py)
            return F.linear(y.transpose(1, 2).reshape(batch, seq, dim), attn.out_proj.weight, attn.out_proj.bias), None
    qkv = torch.mm(x.reshape(batch * seq, dim), attn.in_proj_weight.t()).view(batch, seq, 3 * dim)
    # _transform_bias_rescale_qkv: the heads (bias added, query scaled) in one new buffer, then
    # the projection is dropped
    q_k_v = qkv.new_empty((3 * batch, heads, seq, head_dim))
    del qkv
    q, k, v = q_k_v.split(batch, 0)
    scores = torch.bmm(q.reshape(batch * heads, seq, head_dim),
                       k.reshape(batch * heads, seq, head_dim).transpose(1, 2)).view(batch, heads, seq, seq)
    if mask is not None:  # masked_softmax: a bool copy of the mask, and a new result (its kernel
        bool_mask = mask if mask.dtype == torch.bool else mask.to(torch.bool)  # has no fake one:
        scores = torch.empty_like(scores)  # what it allocates is all the trace needs)
        del bool_mask
    # (no mask: the softmax runs in place, into the scores)
    torch.bmm(scores.view(batch * heads, seq, seq), v.reshape(batch * heads, seq, head_dim),
              out=q.view(batch * heads, seq, head_dim))  # the context reuses the query's storage
    if not need_weights:
        del scores
    context = q.permute(0, 2, 1, 3).contiguous()  # transform_0213, freed once projected
    out = torch.addmm(attn.out_proj.bias, context.view(batch * seq, dim), attn.out_proj.weight.t()).view(
        batch, seq, dim)
    del context
    weights = None
    if need_weights:
        weights = scores.sum(1).div_(heads) if average else scores
        del scores
    return out, weights  # the heads' buffer (q, k, v) is freed as the function returns, as ATen's is


def _feed_forward(layer, x):
    """ffn: the first product with its activation fused (_addmm_activation), then the second."""
    batch, seq, dim = x.shape
    hidden = torch._addmm_activation(layer.linear1.bias, x.reshape(batch * seq, dim), layer.linear1.weight.t(),
                                     use_gelu=layer.activation_relu_or_gelu == 2)
    return torch.addmm(layer.linear2.bias, hidden, layer.linear2.weight.t()).view(batch, seq, -1)
