"""The fixed vocabularies every part of MemLens shares: memory categories, phases, layer kinds.

The names are part of the JSON contract and pick the legend colours in the GUI, so they live in
one place and nowhere else spells them out.
"""

CATEGORIES = (
    "parameters",
    "buffers",
    "gradients",
    "optimizer_state",
    "activations",  # saved for backward
    "temporaries",  # transient op outputs and workspaces
    "inputs",  # batch and targets
    "communication",  # collective buffers of a distributed step (engine/distributed/recorder.py)
)

PHASES = ("forward", "backward", "optimizer")

LAYER_KINDS = ("conv", "pool", "norm", "activation", "linear", "attention", "embedding", "other")

DTYPES = ("float32", "float16", "bfloat16")
MODES = ("train", "inference")
OPTIMIZERS = ("none", "sgd", "momentum", "adam", "adamw")
DEVICES = ("cpu", "cuda")


def listed_categories(distributed: bool) -> tuple[str, ...]:
    """The categories a legend or a breakdown lists: all of them for a distributed step, all but
    communication for one device (it has no collective buffers: a "0 B" line there is noise)."""
    return CATEGORIES if distributed else tuple(c for c in CATEGORIES if c != "communication")
