"""The distributed controls of the left panel: strategy, world size, offload, DDP's bucket size.

Holds no memory logic: it turns its widgets into the AnalysisRequest's distributed fields
(engine/distributed/strategies.py names and checks them; the request refuses bad combinations).
"""
from __future__ import annotations

from PySide6.QtCore import Signal
from PySide6.QtWidgets import QComboBox, QFormLayout, QGroupBox, QSpinBox

from engine.distributed.strategies import MAX_WORLD_SIZE, OFFLOADS, STRATEGIES

STRATEGY_HELP = {
    "single": "one device, no data parallelism",
    "ddp": "DistributedDataParallel: everything replicated, gradients all-reduced in buckets",
    "fsdp": "FSDP2 full sharding (ZeRO-3): parameters gathered per block, then freed",
    "fsdp-no-reshard": "FSDP2 without resharding after forward (ZeRO-2-like)",
    "zero1": "DDP + ZeroRedundancyOptimizer: optimizer state sharded",
    "zero2": "optimizer state and gradients sharded (traced as fsdp-no-reshard)",
    "zero3": "everything sharded (traced as fsdp)",
}


class DistributedPanel(QGroupBox):
    """Strategy and world size: the analysis then shows one GPU of N."""

    sig_changed = Signal()
    """A distributed setting was edited (the panel re-analyses once edits settle)."""

    def __init__(self, parent=None):
        super().__init__("GPUs", parent)
        self.strategy = QComboBox()
        self.strategy.addItems(list(STRATEGIES))
        self.strategy.setToolTip("\n".join(f"{name}: {text}" for name, text in STRATEGY_HELP.items()))
        self.world_size = QSpinBox(minimum=1, maximum=MAX_WORLD_SIZE)
        self.world_size.setToolTip("Number of ranks (GPUs); sharded strategies need a power of two")
        self.offload = QComboBox()
        self.offload.addItems(["none", *OFFLOADS])
        self.offload.setToolTip("Keep optimizer state (or parameter shards too) in host memory")
        self.bucket = QSpinBox(minimum=1, maximum=1024, suffix=" MB")
        self.bucket.setToolTip("DDP's gradient bucket size (bucket_cap_mb)")
        form = QFormLayout(self)
        form.addRow("Strategy", self.strategy)
        form.addRow("GPUs", self.world_size)
        form.addRow("Offload", self.offload)
        form.addRow("Buckets", self.bucket)
        self.set_request(None)
        self.strategy.currentIndexChanged.connect(self._on_strategy)
        for w in (self.world_size, self.bucket):
            w.valueChanged.connect(self.sig_changed)
        self.offload.currentIndexChanged.connect(self.sig_changed)

    # ---- Public API
    def fields(self) -> dict:
        """The request's distributed fields as the widgets show them."""
        offload = self.offload.currentText()
        return {"strategy": self.strategy.currentText(), "world_size": self.world_size.value(),
                "offload": None if offload == "none" else offload, "bucket_cap_mb": self.bucket.value()}

    def set_request(self, request) -> None:
        """Show `request`'s distributed fields (None: one device), silently."""
        widgets = (self.strategy, self.world_size, self.offload, self.bucket)
        blocked = [w.blockSignals(True) for w in widgets]
        self.strategy.setCurrentText(getattr(request, "strategy", "single"))
        self.world_size.setValue(getattr(request, "world_size", 1))
        self.offload.setCurrentText(getattr(request, "offload", None) or "none")
        self.bucket.setValue(getattr(request, "bucket_cap_mb", 25))
        for w, was in zip(widgets, blocked):
            w.blockSignals(was)
        self._enable()

    # ---- Private API
    def _on_strategy(self, *_):
        strategy = self.strategy.currentText()
        if strategy == "single":
            self.world_size.setValue(1)
        elif self.world_size.value() == 1:
            self.world_size.setValue(8)  # a strategy over one GPU shows nothing new
        self._enable()
        self.sig_changed.emit()

    def _enable(self) -> None:
        distributed = self.strategy.currentText() != "single"
        self.world_size.setEnabled(distributed)
        self.offload.setEnabled(distributed)
        self.bucket.setEnabled(self.strategy.currentText() in ("ddp", "zero1"))
