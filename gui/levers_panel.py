"""The levers in the Step panel: activation checkpointing (a preset, or per-block toggles), a freeze
pattern and a micro-batch. It edits three request fields and nothing else; the blocks it lists
are the engine's (engine/checkpointing.py), carried by the last analysis."""
from __future__ import annotations

from PySide6.QtCore import QObject, Qt, Signal
from PySide6.QtWidgets import (QComboBox, QFormLayout, QHBoxLayout, QLabel, QLineEdit, QListWidget,
                               QListWidgetItem, QPushButton, QSpinBox, QWidget)

from engine.lever_fields import preset_step

# (label, checkpoint field): None stands for the blocks ticked in the list.
PRESETS = (("off", ()), ("every block", ("every-block",)), ("every 2nd block", ("every-2-blocks",)),
           ("every 3rd block", ("every-3-blocks",)), ("chosen blocks", None))
CHOSEN = len(PRESETS) - 1


class LeversPanel(QWidget):
    """Checkpointing preset and per-block toggles, freeze pattern, micro-batch."""

    sig_changed = Signal()
    """A lever was edited: the request should be built again."""
    sig_fit_requested = Signal()
    """'Fewest to fit' was pressed: search the fewest blocks to checkpoint on the GPU panel's device."""

    def __init__(self, parent=None):
        super().__init__(parent)
        self._blocks: tuple[str, ...] = ()
        self.preset = QComboBox()
        self.preset.addItems([label for label, _ in PRESETS])
        self.preset.setToolTip("Activation checkpointing: these blocks keep only their input for backward and run "
                               "their forward again there (torch.utils.checkpoint, non-reentrant)")
        self.blocks = QListWidget()
        self.blocks.setToolTip("Blocks to checkpoint (also from a diagram group's context menu)")
        self.blocks.setMaximumHeight(90)
        self.freeze = QLineEdit(placeholderText="e.g. features.*, layer1")
        self.freeze.setToolTip("Freeze parameters or modules matching these patterns (comma-separated, fnmatch): "
                               "no gradient, no optimizer state")
        self.micro_batch = QSpinBox(minimum=0, maximum=1_000_000)
        self.micro_batch.setSpecialValueText("off")
        self.micro_batch.setToolTip("Gradient accumulation: one micro-step of this many samples, with the earlier "
                                    "micro-steps' gradients live (at most the batch)")
        self.fit = QPushButton("Fewest to fit")
        self.fit.setToolTip("Tick the fewest blocks whose checkpointing brings the step under the capacity of the "
                            "device chosen in 'GPU: does it fit?'")
        self.fit.clicked.connect(self.sig_fit_requested)
        self.fit_status = QLabel("")
        self.fit_status.setWordWrap(True)
        self.fit_status.hide()
        form = QFormLayout(self)
        form.setContentsMargins(0, 0, 0, 0)
        form.addRow("Checkpoint", self.preset)
        form.addRow("", self.blocks)
        row = QHBoxLayout()  # the button keeps its width; the combo above keeps its text
        row.addWidget(self.fit)
        row.addStretch(1)
        form.addRow("", row)
        form.addRow("", self.fit_status)
        form.addRow("Freeze", self.freeze)
        form.addRow("Micro-batch", self.micro_batch)
        self.preset.currentIndexChanged.connect(self._on_preset)
        self.blocks.itemChanged.connect(self._on_block_ticked)
        self.freeze.editingFinished.connect(self.sig_changed)
        self.micro_batch.valueChanged.connect(self.sig_changed)

    # ---- Public API
    def fields(self) -> dict:
        """The request fields the levers set."""
        checkpoint = PRESETS[self.preset.currentIndex()][1]
        if checkpoint is None:
            checkpoint = tuple(self._ticked())
        return {"checkpoint": checkpoint,
                "freeze": tuple(p.strip() for p in self.freeze.text().split(",") if p.strip()),
                "micro_batch": self.micro_batch.value() or None}

    def set_fields(self, request) -> None:
        """Show `request`'s levers, silently."""
        widgets = (self.preset, self.blocks, self.freeze, self.micro_batch)
        blocked = [w.blockSignals(True) for w in widgets]
        spec = tuple(request.checkpoint)
        index = next((i for i, (_, value) in enumerate(PRESETS) if value == spec), CHOSEN)
        self.preset.setCurrentIndex(index)
        self._fill(spec if index == CHOSEN else self._preset_blocks(spec))
        self.freeze.setText(", ".join(request.freeze))
        self.micro_batch.setValue(request.micro_batch or 0)
        for w, was in zip(widgets, blocked):
            w.blockSignals(was)

    def set_analysis(self, analysis) -> None:
        """List the analysed model's blocks (ticked: those checkpointed)."""
        levers = analysis.levers
        self._blocks = levers.blocks if levers is not None else ()
        ticked = levers.checkpoint.blocks if levers is not None and levers.checkpoint is not None else ()
        self.blocks.blockSignals(True)
        self._fill(ticked)
        self.blocks.blockSignals(False)

    def choose_blocks(self, names: tuple[str, ...]) -> None:
        """Checkpoint exactly `names` (the fewest-to-fit answer) and re-analyse."""
        self.preset.blockSignals(True)
        self.preset.setCurrentIndex(CHOSEN if names else 0)
        self.preset.blockSignals(False)
        self.blocks.blockSignals(True)
        self._fill(tuple(names))
        self.blocks.blockSignals(False)
        self.sig_changed.emit()

    def show_fit_status(self, text: str) -> None:
        self.fit_status.setText(text)
        self.fit_status.setVisible(bool(text))

    def toggle_freeze(self, name: str) -> None:
        """Freeze module `name` or unfreeze it (the diagram's 'freeze this block'): the pattern list
        gains or loses exactly that name."""
        patterns = self.fields()["freeze"]
        patterns = [p for p in patterns if p != name] if name in patterns else [*patterns, name]
        self.freeze.setText(", ".join(patterns))
        self.sig_changed.emit()

    def toggle_block(self, name: str) -> None:
        """Checkpoint `name` or stop (the diagram's 'checkpoint this block'): the choice becomes the
        ticked blocks."""
        ticked = self._ticked()
        ticked = [b for b in ticked if b != name] if name in ticked else [*ticked, name]
        self.preset.blockSignals(True)
        self.preset.setCurrentIndex(CHOSEN)
        self.preset.blockSignals(False)
        self.blocks.blockSignals(True)
        self._fill(tuple(ticked))
        self.blocks.blockSignals(False)
        self.sig_changed.emit()

    # ---- Private API
    def _ticked(self) -> list[str]:
        return [self.blocks.item(i).text() for i in range(self.blocks.count())
                if self.blocks.item(i).checkState() == Qt.CheckState.Checked]

    def _fill(self, ticked: tuple[str, ...]) -> None:
        """The model's blocks, then any other ticked module (a diagram group that is not a block)."""
        self.blocks.clear()
        for name in (*self._blocks, *(t for t in ticked if t not in self._blocks)):
            item = QListWidgetItem(name)
            item.setFlags(item.flags() | Qt.ItemFlag.ItemIsUserCheckable)
            item.setCheckState(Qt.CheckState.Checked if name in ticked else Qt.CheckState.Unchecked)
            self.blocks.addItem(item)

    def _preset_blocks(self, spec: tuple[str, ...]) -> tuple[str, ...]:
        step = preset_step(spec[0]) if spec else None
        return self._blocks[::step] if step else ()

    def _on_preset(self, index: int) -> None:
        if index != CHOSEN:
            self.blocks.blockSignals(True)
            self._fill(self._preset_blocks(PRESETS[index][1]))
            self.blocks.blockSignals(False)
        self.sig_changed.emit()

    def _on_block_ticked(self, _item) -> None:
        self.preset.blockSignals(True)
        self.preset.setCurrentIndex(CHOSEN)
        self.preset.blockSignals(False)
        self.sig_changed.emit()


class CheckpointFitter(QObject):
    """Runs 'fewest blocks to fit' (engine/levers.py) as a worker job and applies its answer."""

    KIND = "checkpoint_fit"

    def __init__(self, panel: LeversPanel, controller, device, overrides, request, parent=None):
        """`device()`, `overrides()` and `request()` read the GPU panel's device and edits and the
        request on screen when the button is pressed."""
        super().__init__(parent)
        self.panel, self.controller = panel, controller
        self._device, self._overrides, self._request = device, overrides, request
        panel.sig_fit_requested.connect(self.run)
        controller.sig_result.connect(self._on_result)
        controller.sig_error.connect(self._on_error)

    def run(self) -> None:
        device, request = self._device(), self._request()
        if device is None:
            self.panel.show_fit_status("choose a device in 'GPU: does it fit?' first")
            return
        if request is None:
            return
        overrides = self._overrides()

        def job(progress, cancelled, _partial):
            from engine.levers import fewest_blocks_to_fit

            return fewest_blocks_to_fit(request.replace(checkpoint=()), device, overrides, progress, cancelled)

        self.panel.show_fit_status(f"searching the fewest blocks to fit {device.name}…")
        self.controller.submit(self.KIND, job)

    def _on_result(self, kind: str, found) -> None:
        if kind != self.KIND:
            return
        if found.blocks:
            self.panel.show_fit_status(f"{len(found.blocks)} of {found.candidates} blocks fit "
                                       f"{found.fit.device.name} ({found.traces} traces)")
        else:
            self.panel.show_fit_status(f"fits {found.fit.device.name} without checkpointing")
        self.panel.choose_blocks(found.blocks)

    def _on_error(self, kind: str, message: str) -> None:
        if kind == self.KIND:
            self.panel.show_fit_status(message)
