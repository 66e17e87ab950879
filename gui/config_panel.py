"""Left panel: where the model comes from (searchable torchvision list, spec and python files,
recent files) and the step's configuration. Emits a new request, debounced, on every valid change.

The panel shows what the views show: the window calls `set_request` with the request on screen
after a cancel or an error, so the next edit never re-runs a model nobody sees.
"""
from __future__ import annotations

import os

from PySide6.QtCore import QSettings, Qt, QTimer, Signal
from PySide6.QtWidgets import (QCheckBox, QComboBox, QFileDialog, QFormLayout, QGroupBox, QHBoxLayout, QLabel,
                               QLineEdit, QPushButton, QSpinBox, QTreeWidget, QTreeWidgetItem, QVBoxLayout, QWidget)

from engine.choices import DEVICES, DTYPES, MODES, OPTIMIZERS, OPTIMIZER_HELP, SOURCE_LABELS, SPEC_SUFFIXES, \
    is_file_source, source_kind
from engine.errors import MemLensError
from engine.request import AnalysisRequest, parse_shape

from .levers_panel import LeversPanel
from .hf_panel import HfControls, add_shipped_group
from .distributed_panel import DistributedPanel

DEBOUNCE_MS = 350
FAMILY_TITLES = {"classification": "Classification", "segmentation": "Segmentation", "video": "Video",
                 "detection": "Detection (not supported)", "optical_flow": "Optical flow (not supported)",
                 "quantization": "Quantized (not supported)"}


class ConfigPanel(QWidget):
    """The request editor. `request()` builds an AnalysisRequest or raises MemLensError."""

    sig_request_changed = Signal(object)
    """A valid AnalysisRequest, emitted after edits settle."""
    sig_invalid = Signal(str)
    """The edited configuration is not valid (the message says why)."""
    sig_optimizer_chosen = Signal(str)
    """The optimizer the user picked (a training comparison of an inference pass uses it)."""

    def __init__(self, initial: AnalysisRequest, parent=None):
        super().__init__(parent)
        self.setMinimumWidth(240)
        self._model = initial.model
        self._debounce = QTimer(self, singleShot=True, interval=DEBOUNCE_MS, timeout=self._emit_request)

        self.search = QLineEdit(placeholderText="Search torchvision models…")
        self.search.setToolTip("Filter the torchvision models by name")
        self.search.setClearButtonEnabled(True)
        self.search.textChanged.connect(self._on_search)
        self.models = QTreeWidget()
        self.models.setHeaderHidden(True)
        self.models.setToolTip("torchvision models: click one to analyse it (weights are never downloaded)")
        self.models.setMinimumHeight(80)
        self.models.itemActivated.connect(self._on_model_item)
        self.models.itemClicked.connect(self._on_model_item)
        self.models.addTopLevelItem(QTreeWidgetItem(["loading torchvision models…"]))
        self.current = QLabel()
        self.current.setWordWrap(True)
        self.current.setToolTip("The model being shown and where it comes from")
        open_spec = QPushButton("Open spec…")
        open_spec.setToolTip("Open a YAML/JSON layer spec (schema: Help ▸ Spec schema)")
        open_spec.clicked.connect(self.open_spec)
        open_py = QPushButton("Open Python file…")
        open_py.setToolTip("Runs the file and calls a function returning an nn.Module: only open files you trust")
        open_py.clicked.connect(self.open_python)
        self.hf = HfControls(self)  # gui/hf_panel.py: sequence length, LoRA rank, open a config.json
        self.hf.sig_model_chosen.connect(self.set_model)
        self.open_buttons = (open_spec, open_py, self.hf.open_button)
        self.recent = QComboBox()
        self.recent.setPlaceholderText("Recent files")
        self.recent.setToolTip("Spec and python files that analysed, newest first")
        self.recent.activated.connect(lambda i: self.set_model(self.recent.itemData(i)))
        self._load_recent()

        source = QGroupBox("Model")
        col = QVBoxLayout(source)
        col.addWidget(self.search)
        col.addWidget(self.models, 1)
        buttons = QHBoxLayout()
        buttons.addWidget(open_spec)
        buttons.addWidget(open_py)
        col.addLayout(buttons)
        col.addWidget(self.hf.open_button)
        col.addWidget(self.recent)
        col.addWidget(self.current)

        self.batch = QSpinBox(minimum=1, maximum=1_000_000)
        self.batch.setToolTip("Samples per step (the batch dimension)")
        self.input = QLineEdit(placeholderText="model default, e.g. 3x224x224")
        self.input.setToolTip("Input shape without the batch, e.g. 3x224x224; empty: the model's default")
        self.dtype = self._combo(DTYPES, "Parameter and activation dtype")
        self.amp = QCheckBox("AMP")  # short: it shares its row with the dtype (1280x720 screens)
        self.amp.setToolTip("Automatic mixed precision (torch.autocast): low-precision math, float32 weights; "
                            "bfloat16 by default on the CPU, float16 on CUDA")
        self.amp_dtype = QComboBox()  # AMP's autocast dtype; "" is the target's default
        for label, value in (("default", ""), ("float16", "float16"), ("bfloat16", "bfloat16")):
            self.amp_dtype.addItem(label, value)
        self.amp_dtype.setToolTip("Autocast dtype. default: bfloat16 on the CPU, float16 on CUDA; "
                                  "float16 on CUDA trains with a GradScaler, bfloat16 without one")
        amp_row = QHBoxLayout()
        amp_row.addWidget(self.amp)
        amp_row.addWidget(self.amp_dtype)
        self.mode = self._combo(MODES, "train: forward, backward and optimizer step; inference: forward under no_grad")
        self.optimizer = self._combo(OPTIMIZERS, "")
        self.optimizer.setToolTip("\n".join(f"{name}: {text}" for name, text in OPTIMIZER_HELP.items()) +
                                  "\nIn inference mode: the optimizer the training comparison uses")
        self.device = self._combo(DEVICES, "Target device whose allocator rules are modelled (nothing runs on it)")
        self.first_step = QCheckBox("no optimizer state yet")  # short: the panel is 300 px wide
        self.first_step.setToolTip("The optimizer creates its state inside this step instead of before it")
        config = QGroupBox("Step")
        form = QFormLayout(config)
        form.addRow("Batch", self.batch)
        form.addRow("Input", self.input)
        form.addRow("Dtype", self.dtype)
        form.addRow("", amp_row)
        form.addRow("Mode", self.mode)
        form.addRow("Optimizer", self.optimizer)
        form.addRow("Target", self.device)
        form.addRow("First step", self.first_step)
        self.levers = LeversPanel()  # checkpointing, freeze, micro-batch (gui/levers_panel.py)
        self.levers.sig_changed.connect(self.schedule)
        form.addRow(self.levers)
        self.hf.add_rows(form, replaces=self.input)
        self.set_request(initial)
        self.hf.sig_changed.connect(self.schedule)
        self.batch.valueChanged.connect(self.schedule)
        self.input.textChanged.connect(self._on_input_edited)
        for w in (self.dtype, self.mode, self.optimizer, self.device, self.amp_dtype):
            w.currentIndexChanged.connect(self.schedule)
        for w in (self.amp, self.first_step):
            w.toggled.connect(self.schedule)
        self.mode.currentIndexChanged.connect(self._on_mode)
        self.amp.toggled.connect(self._on_amp)
        self.optimizer.currentTextChanged.connect(self.sig_optimizer_chosen)

        layout = QVBoxLayout(self)
        layout.setContentsMargins(6, 6, 6, 6)
        layout.addWidget(source, 1)
        layout.addWidget(config)
        self.distributed = DistributedPanel()  # ---- issue 12: strategy and world size
        self.distributed.set_request(initial)
        self.distributed.sig_changed.connect(self.schedule)
        layout.addWidget(self.distributed)

    # ---- Public API
    def set_catalog(self, catalog: dict[str, list[str]]) -> None:
        self.models.clear()
        for family, names in catalog.items():
            group = QTreeWidgetItem([f"{FAMILY_TITLES.get(family, family)} ({len(names)})"])
            group.setFlags(group.flags() & ~Qt.ItemIsSelectable)
            for name in names:
                child = QTreeWidgetItem([name])
                child.setData(0, Qt.UserRole, name)
                group.addChild(child)
            self.models.addTopLevelItem(group)
            group.setExpanded(family == "classification")
        add_shipped_group(self.models)
        self._show_current()

    def set_model(self, model: str) -> None:
        """Analyse `model` next (a torchvision name, spec path or file.py:function)."""
        if not model:
            return
        self._model = model
        self._show_current()
        self.schedule()

    def set_request(self, request: AnalysisRequest) -> None:
        """Show `request` in every field, silently (no run is scheduled, a pending one is dropped)."""
        self._debounce.stop()
        widgets = (self.batch, self.input, self.dtype, self.amp, self.amp_dtype, self.mode, self.optimizer,
                   self.device, self.first_step)
        blocked = [w.blockSignals(True) for w in widgets]
        self._model = request.model
        self.batch.setValue(request.batch)
        self.input.setText("x".join(map(str, request.input_shape)) if request.input_shape else "")
        self.dtype.setCurrentText(request.dtype)
        self.amp.setChecked(request.amp)
        self.amp_dtype.setCurrentIndex(max(0, self.amp_dtype.findData(request.amp_dtype)))
        self.mode.setCurrentText(request.mode)
        if request.mode == "train":  # in inference the combo keeps the comparison's optimizer
            self.optimizer.setCurrentText(request.optimizer)
        self.device.setCurrentText(request.device)
        self.first_step.setChecked(request.first_step)
        self.levers.set_fields(request)
        self.hf.set_request(request)
        for w, was in zip(widgets, blocked):
            w.blockSignals(was)
        self._mark_input(True)
        self._show_current()
        self._on_mode()
        self._on_amp()
        if hasattr(self, "distributed"):  # issue 12
            self.distributed.set_request(request)

    def remember(self, model: str) -> None:
        """Put a file that analysed at the top of the recent files (torchvision names are not files)."""
        if not is_file_source(model):
            return
        settings = self._settings()
        recent = [p for p in settings.value("recent", [], type=list) if p != model]
        settings.setValue("recent", [model, *recent][:10])
        self._load_recent()

    def optimizer_choice(self) -> str:
        """The optimizer picked in the combo, also while inference greys it out of the request."""
        return self.optimizer.currentText()

    def is_pending(self) -> bool:
        """An edit is waiting for the debounce: a run for it is about to be requested."""
        return self._debounce.isActive()

    def request(self) -> AnalysisRequest:
        text = self.input.text().strip()
        mode = self.mode.currentText()
        return AnalysisRequest(
            model=self._model, batch=self.batch.value(), input_shape=parse_shape(text) if text else None,
            dtype=self.dtype.currentText(), amp=self.amp.isChecked(), mode=mode,
            amp_dtype=self.amp_dtype.currentData() if self.amp.isChecked() else "",
            optimizer=self.optimizer.currentText() if mode == "train" else "none",
            device=self.device.currentText(), first_step=self.first_step.isChecked(),
            **self.levers.fields(),
            **self.distributed.fields(),  # issue 12: gui/distributed_panel.py
        ).replace(**self.hf.request_fields(mode))

    def schedule(self, *_):
        """Re-analyse once edits settle (debounced)."""
        self._debounce.start()

    # ---- Private API
    def _combo(self, values, tooltip: str) -> QComboBox:
        combo = QComboBox()
        combo.addItems(list(values))
        combo.setToolTip(tooltip)
        return combo

    def _on_input_edited(self, text: str) -> None:
        """Validate as the user types; only a valid shape (or an empty field) schedules a run."""
        try:
            if text.strip():
                parse_shape(text.strip())
        except MemLensError as e:
            self._debounce.stop()
            self._mark_input(False, str(e))
            return
        self._mark_input(True)
        self.schedule()

    def _mark_input(self, valid: bool, why: str = "") -> None:
        self.input.setProperty("invalid", not valid)
        self.input.setStyleSheet("" if valid else "QLineEdit { border: 2px solid #c0392b; }")
        self.input.setToolTip(why or "Input shape without the batch, e.g. 3x224x224; empty: the model's default")

    def _emit_request(self):
        if self.input.property("invalid"):
            return  # the field says what is wrong; nothing runs until it is fixed
        try:
            request = self.request()
        except MemLensError as e:
            self.sig_invalid.emit(str(e))
            return
        self.sig_request_changed.emit(request)

    def _show_current(self):
        kind = source_kind(self._model)
        self.current.setText(f"<b>{os.path.basename(self._model)}</b> "
                             f"<span style='color:#555'>({SOURCE_LABELS[kind]})</span>")
        self.current.setToolTip(self._model)
        self.hf.show_for(self._model)
        # The tree marks the torchvision model on screen, and nothing while a file is shown.
        self.models.clearSelection()
        self.models.setCurrentItem(None)
        if kind == "torchvision":
            for i in range(self.models.topLevelItemCount()):
                group = self.models.topLevelItem(i)
                for j in range(group.childCount()):
                    if group.child(j).data(0, Qt.UserRole) == self._model:
                        self.models.setCurrentItem(group.child(j))
                        group.child(j).setSelected(True)

    def _on_mode(self, *_):
        self.first_step.setEnabled(self.mode.currentText() == "train")

    def _on_amp(self, *_):
        self.amp_dtype.setEnabled(self.amp.isChecked())

    def _on_search(self, text: str):
        text = text.strip().lower()
        for i in range(self.models.topLevelItemCount()):
            group = self.models.topLevelItem(i)
            shown = 0
            for j in range(group.childCount()):
                child = group.child(j)
                match = text in child.text(0).lower()
                child.setHidden(not match)
                shown += match
            group.setHidden(shown == 0)
            group.setExpanded(bool(text) and shown > 0 or (not text and i == 0))

    def _on_model_item(self, item, _column=0):
        name = item.data(0, Qt.UserRole)
        if name:
            self._model = name
            self._show_current()
            self.schedule()

    def open_spec(self):
        patterns = " ".join(f"*{suffix}" for suffix in SPEC_SUFFIXES)
        path, _ = QFileDialog.getOpenFileName(self, "Open layer spec", "", f"Layer specs ({patterns})")
        if path:
            self.set_model(path)

    def open_python(self):
        path, _ = QFileDialog.getOpenFileName(self, "Open Python file (it will be executed)", "", "Python (*.py)")
        if path:
            self.open_python_file(path)

    def open_python_file(self, path: str):
        """Ask which function builds the model, then analyse it (the file is executed)."""
        from PySide6.QtWidgets import QInputDialog

        fn, ok = QInputDialog.getText(self, "Function", f"Function in {os.path.basename(path)} returning an "
                                      "nn.Module (the file will be executed):", text="build")
        if ok and fn.strip():
            self.set_model(f"{path}:{fn.strip()}")

    def _settings(self) -> QSettings:
        return QSettings("MemLens", "MemLens")

    def _load_recent(self):
        """The remembered files that still exist (a file moved away is not offered)."""
        self.recent.clear()
        for path in self._settings().value("recent", [], type=list)[:10]:
            file = path.rpartition(":")[0] if source_kind(path) == "python" else path
            if os.path.exists(file):
                self.recent.addItem(os.path.basename(path), path)
                self.recent.setItemData(self.recent.count() - 1, path, Qt.ToolTipRole)

