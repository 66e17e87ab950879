"""The Step panel's controls for language models from a Hugging Face config: the sequence length
(token ids per sample) and the LoRA rank, shown only while such a model is chosen; the button
that opens a config.json; and the configs MemLens ships (resources/hf) in the model list.

The sequence is the request's input shape `[N]`, the notion `--seq` and the planner's longest
sequence use, so for these models it takes the Input field's place. The LoRA alpha and target
modules are not edited here: a request that names them (the CLI, a plan) keeps them, otherwise
they are peft's defaults (alpha = 2 x rank, the architecture's attention projections).
"""
from __future__ import annotations

import os

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import QCheckBox, QFileDialog, QFormLayout, QPushButton, QSpinBox, QTreeWidget, \
    QTreeWidgetItem, QWidget

from engine.choices import HF_CONFIG_NAME, source_kind
from engine.request import AnalysisRequest

HF_DIR = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "resources", "hf")
GROUP_TITLE = "Hugging Face configs"
MAX_SEQUENCE = 1 << 20  # the planner's longest sequence; the engine names the config's own limit
MAX_LORA_RANK = 4096


def shipped_configs(folder: str = HF_DIR) -> list[tuple[str, str]]:
    """(name, folder) of each model folder holding a config.json, by name; [] without the folder."""
    try:
        names = sorted(os.listdir(folder))
    except OSError:  # an installed copy without the source tree's resources/
        return []
    return [(n, os.path.join(folder, n)) for n in names if os.path.isfile(os.path.join(folder, n, HF_CONFIG_NAME))]


def add_shipped_group(tree: QTreeWidget) -> None:
    """A collapsed group of the shipped configs under the torchvision families (clicking one opens it)."""
    configs = shipped_configs()
    if not configs:
        return
    group = QTreeWidgetItem([f"{GROUP_TITLE} ({len(configs)})"])
    group.setFlags(group.flags() & ~Qt.ItemIsSelectable)
    for name, path in configs:
        child = QTreeWidgetItem([name])
        child.setData(0, Qt.UserRole, path)
        child.setToolTip(0, f"{path} (built from the config on meta: no weights, nothing downloaded)")
        group.addChild(child)
    tree.addTopLevelItem(group)


class HfControls(QWidget):
    """Sequence length and LoRA rank rows of the Step form, for Hugging Face models."""

    sig_changed = Signal()
    """The sequence or the LoRA rank was edited."""
    sig_model_chosen = Signal(str)
    """A config.json was picked with the open button."""

    def __init__(self, parent=None):
        super().__init__(parent)
        self.hide()  # a holder for the signals; the widgets live in the Step form
        self.seq = QSpinBox(minimum=0, maximum=MAX_SEQUENCE, singleStep=128)
        self.seq.setSpecialValueText("model default")
        self.seq.setToolTip("Tokens per sample (the input is batch x sequence token ids); model default: the "
                            "config's max_position_embeddings, at most 2048")
        self.lora_rank = QSpinBox(minimum=0, maximum=MAX_LORA_RANK)
        self.lora_rank.setSpecialValueText("off")
        self.lora_rank.setToolTip("Train LoRA adapters of this rank (peft): base weights frozen, only the "
                                  "adapters get gradients and optimizer state")
        self.kv_cache = QCheckBox("keep (inference prefill)")
        self.kv_cache.setToolTip("Inference keeps every layer's keys and values, as a prefill for generation does "
                                 "(transformers' use_cache); a training step keeps none")
        self.open_button = QPushButton("Open HF config…")
        self.open_button.setToolTip("Open a Hugging Face config.json (built from the config alone: no weights, "
                                    "no download; models needing trust_remote_code are refused)")
        self.open_button.clicked.connect(self._on_open)
        self._form: QFormLayout | None = None
        self._replaced: QWidget | None = None
        self._active = False
        self._alpha: float | None = None
        self._targets: tuple[str, ...] = ()
        self.seq.valueChanged.connect(self.sig_changed)
        self.lora_rank.valueChanged.connect(self.sig_changed)
        self.kv_cache.toggled.connect(self.sig_changed)

    # ---- Public API
    def add_rows(self, form: QFormLayout, replaces: QWidget) -> None:
        """Add the rows under `replaces` (the Input field), which they stand in for on HF models."""
        row = form.getWidgetPosition(replaces)[0]
        form.insertRow(row + 1, "Sequence", self.seq)
        form.insertRow(row + 2, "LoRA rank", self.lora_rank)
        form.insertRow(row + 3, "KV cache", self.kv_cache)
        self._form, self._replaced = form, replaces
        self.show_for("")

    def show_for(self, model: str) -> None:
        """Show the rows for a Hugging Face model, the Input field for any other."""
        self._active = bool(model) and source_kind(model) == "hf"
        if self._form is not None:
            self._form.setRowVisible(self.seq, self._active)
            self._form.setRowVisible(self.lora_rank, self._active)
            self._form.setRowVisible(self.kv_cache, self._active)
            self._form.setRowVisible(self._replaced, not self._active)

    def set_request(self, request: AnalysisRequest) -> None:
        """Show the request's sequence and LoRA settings, silently."""
        blocked = [w.blockSignals(True) for w in (self.seq, self.lora_rank, self.kv_cache)]
        shape = request.input_shape
        self.seq.setValue(shape[0] if shape is not None and len(shape) == 1 else 0)
        self.lora_rank.setValue(request.lora_rank)
        self._alpha, self._targets = request.lora_alpha, request.lora_targets
        self.kv_cache.setChecked(request.kv_cache)
        for w, was in zip((self.seq, self.lora_rank, self.kv_cache), blocked):
            w.blockSignals(was)
        self.show_for(request.model)
        if self._active and self._replaced is not None:  # the sequence is shown here, not twice
            was = self._replaced.blockSignals(True)
            self._replaced.clear()
            self._replaced.blockSignals(was)

    def is_active(self) -> bool:
        return self._active

    def request_fields(self, mode: str = "train") -> dict:
        """The request's input_shape, lora_* and kv_cache fields while an HF model is chosen, else
        none. The KV cache box counts in inference only (a training step keeps no cache)."""
        if not self._active:
            return {}
        rank = self.lora_rank.value()
        return {"input_shape": (self.seq.value(),) if self.seq.value() else None, "lora_rank": rank,
                "lora_alpha": self._alpha if rank else None, "lora_targets": self._targets if rank else (),
                "kv_cache": self.kv_cache.isChecked() and mode == "inference"}

    # ---- Private API
    def _on_open(self) -> None:
        start = HF_DIR if os.path.isdir(HF_DIR) else ""
        path, _ = QFileDialog.getOpenFileName(self.open_button, "Open Hugging Face config", start,
                                              f"Hugging Face configs ({HF_CONFIG_NAME} *.json);;All files (*)")
        if path:
            self.sig_model_chosen.emit(path)
