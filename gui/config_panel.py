"""Left panel: where the model comes from (searchable torchvision list, spec and python files,
recent files) and the step's configuration. Emits a new request, debounced, on every change."""
from __future__ import annotations

import os

from PySide6.QtCore import QSettings, Qt, QTimer, Signal
from PySide6.QtWidgets import (QCheckBox, QComboBox, QFileDialog, QFormLayout, QGroupBox, QHBoxLayout, QLabel,
                               QLineEdit, QPushButton, QSpinBox, QTreeWidget, QTreeWidgetItem, QVBoxLayout, QWidget)

from engine.categories import DEVICES, DTYPES, MODES, OPTIMIZERS
from engine.errors import MemLensError
from engine.request import AnalysisRequest, parse_shape

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

    def __init__(self, initial: AnalysisRequest, parent=None):
        super().__init__(parent)
        self.setMinimumWidth(270)
        self.setMaximumWidth(360)
        self._model = initial.model
        self._debounce = QTimer(self, singleShot=True, interval=DEBOUNCE_MS, timeout=self._emit_request)

        self.search = QLineEdit(placeholderText="Search torchvision models…")
        self.search.textChanged.connect(self._on_search)
        self.models = QTreeWidget()
        self.models.setHeaderHidden(True)
        self.models.itemActivated.connect(self._on_model_item)
        self.models.itemClicked.connect(self._on_model_item)
        self.models.addTopLevelItem(QTreeWidgetItem(["loading torchvision models…"]))
        self.current = QLabel()
        self.current.setWordWrap(True)
        open_spec = QPushButton("Open spec…")
        open_spec.clicked.connect(self._on_open_spec)
        open_py = QPushButton("Open Python file…")
        open_py.setToolTip("Runs the file and calls a function returning an nn.Module: only open files you trust")
        open_py.clicked.connect(self._on_open_python)
        self.recent = QComboBox()
        self.recent.setPlaceholderText("Recent files")
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
        col.addWidget(self.recent)
        col.addWidget(self.current)

        self.batch = QSpinBox(minimum=1, maximum=1_000_000, value=initial.batch)
        self.input = QLineEdit(placeholderText="model default, e.g. 3x224x224")
        if initial.input_shape:
            self.input.setText("x".join(map(str, initial.input_shape)))
        self.dtype = self._combo(DTYPES, initial.dtype)
        self.amp = QCheckBox("autocast (AMP)")
        self.amp.setChecked(initial.amp)
        self.mode = self._combo(MODES, initial.mode)
        self.optimizer = self._combo(OPTIMIZERS, initial.optimizer)
        self.device = self._combo(DEVICES, initial.device)
        self.first_step = QCheckBox("first step (no optimizer state yet)")
        self.first_step.setChecked(initial.first_step)
        config = QGroupBox("Step")
        form = QFormLayout(config)
        form.addRow("Batch", self.batch)
        form.addRow("Input", self.input)
        form.addRow("Dtype", self.dtype)
        form.addRow("", self.amp)
        form.addRow("Mode", self.mode)
        form.addRow("Optimizer", self.optimizer)
        form.addRow("Target", self.device)
        form.addRow("", self.first_step)
        for w in (self.batch,):
            w.valueChanged.connect(self.schedule)
        self.input.editingFinished.connect(self.schedule)
        for w in (self.dtype, self.mode, self.optimizer, self.device):
            w.currentIndexChanged.connect(self.schedule)
        for w in (self.amp, self.first_step):
            w.toggled.connect(self.schedule)
        self.mode.currentIndexChanged.connect(self._on_mode)

        layout = QVBoxLayout(self)
        layout.setContentsMargins(6, 6, 6, 6)
        layout.addWidget(source, 1)
        layout.addWidget(config)
        self._show_current()
        self._on_mode()

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

    def set_model(self, model: str) -> None:
        if not model:
            return
        self._model = model
        self._remember(model)
        self._show_current()
        self.schedule()

    def request(self) -> AnalysisRequest:
        text = self.input.text().strip()
        mode = self.mode.currentText()
        return AnalysisRequest(
            model=self._model, batch=self.batch.value(), input_shape=parse_shape(text) if text else None,
            dtype=self.dtype.currentText(), amp=self.amp.isChecked(), mode=mode,
            optimizer=self.optimizer.currentText() if mode == "train" else "none",
            device=self.device.currentText(), first_step=self.first_step.isChecked(),
        )

    def schedule(self, *_):
        """Re-analyse once edits settle (debounced)."""
        self._debounce.start()

    # ---- Private API
    def _combo(self, values, current) -> QComboBox:
        combo = QComboBox()
        combo.addItems(list(values))
        combo.setCurrentText(current)
        return combo

    def _emit_request(self):
        try:
            request = self.request()
        except MemLensError as e:
            self.sig_invalid.emit(str(e))
            return
        self.sig_request_changed.emit(request)

    def _show_current(self):
        kind = "python file (executed)" if ".py:" in self._model else \
            "spec file" if self._model.lower().endswith((".yaml", ".yml", ".json")) else "torchvision"
        self.current.setText(f"<b>{os.path.basename(self._model)}</b> <span style='color:#666'>({kind})</span>")

    def _on_mode(self, *_):
        train = self.mode.currentText() == "train"
        self.optimizer.setEnabled(train)
        self.first_step.setEnabled(train)

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

    def _on_open_spec(self):
        path, _ = QFileDialog.getOpenFileName(self, "Open layer spec", "", "Layer specs (*.yaml *.yml *.json)")
        if path:
            self.set_model(path)

    def _on_open_python(self):
        path, _ = QFileDialog.getOpenFileName(self, "Open Python file (it will be executed)", "", "Python (*.py)")
        if not path:
            return
        from PySide6.QtWidgets import QInputDialog

        fn, ok = QInputDialog.getText(self, "Function", f"Function in {os.path.basename(path)} returning an "
                                      "nn.Module (the file will be executed):", text="build")
        if ok and fn.strip():
            self.set_model(f"{path}:{fn.strip()}")

    def _settings(self) -> QSettings:
        return QSettings("MemLens", "MemLens")

    def _load_recent(self):
        self.recent.clear()
        for path in self._settings().value("recent", [], type=list)[:10]:
            self.recent.addItem(os.path.basename(path), path)

    def _remember(self, path: str):
        if not (path.lower().endswith((".yaml", ".yml", ".json")) or ".py:" in path):
            return
        settings = self._settings()
        recent = [p for p in settings.value("recent", [], type=list) if p != path]
        settings.setValue("recent", [path, *recent][:10])
        self._load_recent()
