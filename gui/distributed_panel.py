"""The distributed controls of the left panel: strategy, world size, offload, DDP's buckets (size,
gradients as bucket views) and FSDP2's mixed-precision policy (all-gather and reduce dtypes).

Holds no memory logic: it turns its widgets into the AnalysisRequest's distributed fields
(engine/distributed/strategies.py names and checks them; the request refuses bad combinations).
"""
from __future__ import annotations

from PySide6.QtCore import Signal
from PySide6.QtWidgets import QCheckBox, QComboBox, QFormLayout, QGroupBox, QSpinBox

from engine.distributed.strategies import (DDP_LIKE, MAX_WORLD_SIZE, MIXED_DTYPES, OFFLOADS, STRATEGIES, is_fsdp,
                                           is_tensor_parallel)

STRATEGY_HELP = {
    "single": "one device, no data parallelism",
    "ddp": "DistributedDataParallel: everything replicated, gradients all-reduced in buckets",
    "fsdp": "FSDP2 full sharding (ZeRO-3): parameters gathered per block, then freed",
    "fsdp-no-reshard": "FSDP2 without resharding after forward (ZeRO-2-like)",
    "zero1": "DDP + ZeroRedundancyOptimizer: optimizer state sharded",
    "zero2": "optimizer state and gradients sharded (traced as fsdp-no-reshard)",
    "zero3": "everything sharded (traced as fsdp)",
    "tp": "tensor parallelism: Linear pairs split column/row-wise (Megatron), the rest whole",
}
AS_STORED = "as stored"  # no mixed-precision dtype: FSDP2 gathers and reduces in the parameters' dtype


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
        self.bucket_view = QCheckBox("Gradients in buckets")
        self.bucket_view.setToolTip("DDP's gradient_as_bucket_view: gradients live inside the all-reduce buckets "
                                    "instead of beside them (one copy fewer)")
        self.param_dtype = QComboBox()
        self.reduce_dtype = QComboBox()
        for combo in (self.param_dtype, self.reduce_dtype):
            combo.addItems([AS_STORED, *MIXED_DTYPES])
        self.param_dtype.setToolTip("FSDP2 mixed precision (param_dtype): the dtype parameters are all-gathered "
                                    "and computed in; shards and optimizer state keep theirs")
        self.reduce_dtype.setToolTip("FSDP2 mixed precision (reduce_dtype): the dtype gradients are "
                                     "reduce-scattered in")
        form = QFormLayout(self)
        form.addRow("Strategy", self.strategy)
        form.addRow("GPUs", self.world_size)
        form.addRow("Offload", self.offload)
        form.addRow("Buckets", self.bucket)
        form.addRow("", self.bucket_view)
        form.addRow("Gather in", self.param_dtype)
        form.addRow("Reduce in", self.reduce_dtype)
        self.set_request(None)
        self.strategy.currentIndexChanged.connect(self._on_strategy)
        for w in (self.world_size, self.bucket):
            w.valueChanged.connect(self.sig_changed)
        for combo in (self.offload, self.param_dtype, self.reduce_dtype):
            combo.currentIndexChanged.connect(self.sig_changed)
        self.bucket_view.toggled.connect(self.sig_changed)

    # ---- Public API
    def fields(self) -> dict:
        """The request's distributed fields as the widgets show them."""
        strategy, offload = self.strategy.currentText(), self.offload.currentText()
        mixed = {name: combo.currentText() if is_fsdp(strategy) and combo.currentText() != AS_STORED else None
                 for name, combo in (("param_dtype", self.param_dtype), ("reduce_dtype", self.reduce_dtype))}
        return {"strategy": strategy, "world_size": self.world_size.value(),
                "offload": None if offload == "none" or is_tensor_parallel(strategy) else offload,
                "bucket_cap_mb": self.bucket.value(),
                "gradient_as_bucket_view": strategy in DDP_LIKE and self.bucket_view.isChecked(), **mixed}

    def set_request(self, request) -> None:
        """Show `request`'s distributed fields (None: one device), silently."""
        widgets = (self.strategy, self.world_size, self.offload, self.bucket, self.bucket_view, self.param_dtype,
                   self.reduce_dtype)
        blocked = [w.blockSignals(True) for w in widgets]
        self.strategy.setCurrentText(getattr(request, "strategy", "single"))
        self.world_size.setValue(getattr(request, "world_size", 1))
        self.offload.setCurrentText(getattr(request, "offload", None) or "none")
        self.bucket.setValue(getattr(request, "bucket_cap_mb", 25))
        self.bucket_view.setChecked(getattr(request, "gradient_as_bucket_view", False))
        self.param_dtype.setCurrentText(getattr(request, "param_dtype", None) or AS_STORED)
        self.reduce_dtype.setCurrentText(getattr(request, "reduce_dtype", None) or AS_STORED)
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
        strategy = self.strategy.currentText()
        self.world_size.setEnabled(strategy != "single")
        self.offload.setEnabled(strategy != "single" and not is_tensor_parallel(strategy))  # data parallelism's
        for w in (self.bucket, self.bucket_view):
            w.setEnabled(strategy in DDP_LIKE)
        for w in (self.param_dtype, self.reduce_dtype):
            w.setEnabled(is_fsdp(strategy))
