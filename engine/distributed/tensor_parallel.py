"""Tensor parallelism (Megatron's column/row split), planned from the model's structure and
applied with torch's own `parallelize_module` (`ColwiseParallel` / `RowwiseParallel`).

The plan pairs Linear layers the way Megatron-LM splits a transformer block: the layers that
read the block's input are split column-wise (each rank computes a slice of their output
features: attention q/k/v, the MLP's up and gate projections), the layer that brings the slices
back is split row-wise (each rank multiplies its slice of input features, then one all-reduce
sums the partial outputs: attention out, the MLP's down projection). Between them every op works
on the rank's slice alone, so no collective runs inside a pair. Found from the structure:

- in an `nn.Sequential`, two Linear layers with only elementwise modules (activations,
  dropout) between them, where the first one's output features are the second one's input;
- in any other module, its Linear children (registration order) when all but the last read the
  block's width and the last writes that width, reading the first one's output features
  (TransformerEncoderLayer's linear1 -> linear2; Llama's q/k/v -> o and gate/up -> down).

What cannot be split is said, never pretended: `nn.MultiheadAttention` keeps q, k and v in one
fused `in_proj_weight` (a bare parameter, not a Linear) and calls its `out_proj` through
`F.multi_head_attention_forward` rather than as a module, so `parallelize_module` can reach
neither; such attention, and every Linear outside a pair (a vocabulary head), stays whole on
every rank, and the analysis names them.
"""
from __future__ import annotations

from torch import nn

from ..errors import UnsupportedError
from .summary import TensorParallelSplit

# Modules that act element by element: a column-split slice passes through them unchanged.
_ELEMENTWISE = (nn.ReLU, nn.ReLU6, nn.GELU, nn.SiLU, nn.Tanh, nn.Sigmoid, nn.LeakyReLU, nn.Hardswish, nn.Mish,
                nn.Dropout, nn.Identity)
_NAMES_SHOWN = 6


def plan_notes(plan: TensorParallelSplit, world_size: int) -> list[str]:
    """What the plan means for memory, in words (Analysis.distributed.notes)."""
    out = [f"tensor parallel over {world_size} ranks (torch parallelize_module): {len(plan.column)} Linear layers "
           f"split column-wise ({_names(plan.column)}), {len(plan.row)} row-wise ({_names(plan.row)}); "
           "every rank takes the same input batch",
           "the optimizer holds split and whole parameters in two param groups (torch's foreach optimizers refuse "
           "a mix of DTensors and tensors in one)"]
    if plan.fused_attention:
        out.append(f"left whole on every rank: nn.MultiheadAttention {_names(plan.fused_attention)} (q, k and v are "
                   "one fused in_proj_weight, and out_proj is not called as a module, so parallelize_module cannot "
                   "split them); nn.TransformerEncoderLayer's fused no-grad fast path is off (it would bypass the "
                   "split layers)")
    if plan.whole_linear:
        out.append(f"left whole on every rank: Linear {_names(plan.whole_linear)} (no column/row partner)")
    return out


def plan_tensor_parallel(model: nn.Module, world_size: int, name: str = "model") -> TensorParallelSplit:
    """The column/row pairs of `model`, checked for `world_size` ranks; one-line errors name the layer."""
    fused = tuple(path for path, m in model.named_modules() if isinstance(m, nn.MultiheadAttention))

    def inside_fused(path: str) -> bool:
        return any(f == "" or path == f or path.startswith(f + ".") for f in fused)

    column: list[str] = []
    row: list[str] = []
    for path, module in model.named_modules():
        if not isinstance(module, nn.Linear) and not inside_fused(path):
            for cols, r in _pairs(module):
                column.extend(_join(path, c) for c in cols)
                row.append(_join(path, r))
    linears = [p for p, m in model.named_modules() if isinstance(m, nn.Linear) and not inside_fused(p)]
    split = set(column) | set(row)
    whole = tuple(p for p in linears if p not in split)
    if not row:
        why = f"; nn.MultiheadAttention {_names(fused)} keeps q/k/v in one fused in_proj_weight" if fused else ""
        raise UnsupportedError(f"{name}: tensor parallelism (--strategy tp) splits Linear layers in column/row pairs "
                               f"(a transformer block's MLP, attention q/k/v -> out), and the model has none "
                               f"(Linear layers: {_names(tuple(linears)) if linears else 'none'}{why})")
    modules = dict(model.named_modules())
    for path in column:
        _check_divisible(name, path, modules[path], "output", modules[path].out_features, world_size, modules)
    for path in row:
        _check_divisible(name, path, modules[path], "input", modules[path].in_features, world_size, modules)
    _check_not_shared(name, model, split, modules)
    return TensorParallelSplit(tuple(column), tuple(row), whole, fused)


def apply_tensor_parallel(model: nn.Module, mesh, plan: TensorParallelSplit) -> nn.Module:
    """torch's `parallelize_module` with the plan's styles. Each rank slices its own shard
    (`src_data_rank=None`): no scatter from rank 0, whose buffers a step would never see."""
    from torch.distributed.tensor.parallel import ColwiseParallel, RowwiseParallel, parallelize_module

    styles = {}
    for paths, style in ((plan.column, ColwiseParallel), (plan.row, RowwiseParallel)):
        for path in paths:
            styles[path] = style()
            styles[path].src_data_rank = None
    return parallelize_module(model, mesh, styles)


def split_dims(model: nn.Module, plan: TensorParallelSplit) -> dict[int, int]:
    """id(parameter) -> the dimension tensor parallelism splits (absent: whole on every rank)."""
    modules = dict(model.named_modules())
    dims: dict[int, int] = {}
    for path in plan.column:
        dims[id(modules[path].weight)] = 0
        if modules[path].bias is not None:
            dims[id(modules[path].bias)] = 0
    for path in plan.row:
        dims[id(modules[path].weight)] = 1  # the bias is added after the all-reduce: whole
    return dims


# ---- Private API
def _pairs(module: nn.Module) -> list[tuple[list[str], str]]:
    """(column-split children, the row-split child) among `module`'s own Linear children."""
    children = list(module.named_children())
    if isinstance(module, nn.Sequential):  # data flows child to child: pair neighbours
        pairs, used = [], set()
        for i, (a_name, a) in enumerate(children):
            if not isinstance(a, nn.Linear) or a_name in used:
                continue
            for b_name, b in children[i + 1:]:
                if isinstance(b, nn.Linear):
                    if b.in_features == a.out_features:
                        pairs.append(([a_name], b_name))
                        used.add(b_name)
                    break
                if not isinstance(b, _ELEMENTWISE):
                    break
        return pairs
    # Any other module: its last Linear brings back what the ones before it computed, when they
    # all read the block's width and it writes it (q/k/v -> o, gate/up -> down, linear1 -> linear2).
    linears = [(n, c) for n, c in children if isinstance(c, nn.Linear)]
    if len(linears) < 2:
        return []
    *columns, (row_name, row) = linears
    width = columns[0][1].in_features
    if all(c.in_features == width for _, c in columns) and row.out_features == width and \
            row.in_features == columns[0][1].out_features:
        return [([n for n, _ in columns], row_name)]
    return []


class IndivisibleError(UnsupportedError):
    """A layer that does not divide over this many ranks (it may over fewer, or other, counts):
    a world-size sweep records the size and goes on."""


def _check_divisible(name, path, layer, side, features, world_size, modules) -> None:
    kind = "column-wise (output features)" if side == "output" else "row-wise (input features)"
    if features % world_size:
        raise IndivisibleError(f"{name}: tensor parallelism cannot split layer '{path}' ({type(layer).__name__} "
                               f"{layer.in_features}->{layer.out_features}) {kind} over {world_size} ranks: its "
                               f"{features} {side} features do not divide by {world_size}")
    parent = modules[path.rpartition(".")[0]] if "." in path else None
    head_dim = getattr(parent, "head_dim", None)
    if isinstance(head_dim, int) and head_dim > 0 and features % head_dim == 0 and (features // head_dim) % world_size:
        raise IndivisibleError(f"{name}: tensor parallelism cannot split layer '{path}' {kind} over {world_size} "
                               f"ranks: its {features // head_dim} attention heads (of {head_dim} features) do not "
                               f"divide by {world_size}")


def _check_not_shared(name, model, split, modules) -> None:
    """A split weight tied to another layer (an embedding) would be sliced under it: refused."""
    owners: dict[int, list[str]] = {}
    for path, module in model.named_modules():
        for p in module.parameters(recurse=False):
            owners.setdefault(id(p), []).append(path)
    for path in sorted(split):
        for p in modules[path].parameters(recurse=False):
            others = [o for o in owners[id(p)] if o != path]
            if others:
                raise UnsupportedError(f"{name}: tensor parallelism cannot split layer '{path}': its weight is tied to "
                                       f"'{others[0]}', which would be sliced with it")


def _join(path: str, child: str) -> str:
    return f"{path}.{child}" if path else child


def _names(paths: tuple[str, ...] | list[str]) -> str:
    shown = ", ".join(paths[:_NAMES_SHOWN])
    return shown + (f" and {len(paths) - _NAMES_SHOWN} more" if len(paths) > _NAMES_SHOWN else "")
