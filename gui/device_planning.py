"""What the device panel and the sweep plot ask for, run as the controller's jobs.

Detection, the largest batch, sweeps and "Measure on this GPU" are engine calls on the worker
thread (kinds "devices", "max_batch", "sweep", "measure"); only the newest job of each kind
reaches the screen. Planning jobs never supersede the main analysis: they queue behind it, and a
newer job of the same kind cancels the older one. The fit check itself traces nothing (a sum of
lines), so it runs on the GUI thread whenever the analysis, the device or an overhead changes.
"""
from __future__ import annotations

from typing import Callable

from PySide6.QtCore import QObject, Signal

PLANNING_KINDS = ("devices", "max_batch", "sweep", "measure")


class DevicePlanning(QObject):
    """Connects a `DevicePanel` and a `SweepPlotWidget` to a `Controller` and the shown analysis."""

    sig_use_settings = Signal(dict)
    """Analyse with these changes to the configuration: {"batch": n} when the user applies the
    largest batch (with "micro_batch" when accumulating), {"device": "cuda"} when a GPU is chosen for a step traced with CPU rules."""
    sig_capacity_changed = Signal(object, str)
    """The chosen device's capacity in bytes and its name (the timeline draws it)."""

    def __init__(self, panel, sweeps, controller, timeline=None, parent=None):
        super().__init__(parent)
        self.panel, self.sweeps, self.controller, self.timeline = panel, sweeps, controller, timeline
        self.measured_curve = None  # the measured step drawn over the timeline
        self.analysis = None
        self.fit = None
        self._jobs: dict[str, int] = {}
        panel.sig_device_changed.connect(self._on_device)
        panel.sig_capacity_changed.connect(self.sig_capacity_changed)
        panel.sig_overrides_changed.connect(self._on_overrides)
        panel.sig_max_batch_requested.connect(self.find_max_batch)
        # The answer's request fields: the batch, and the micro-batch when accumulating (engine/planner.py).
        panel.sig_apply_batch.connect(lambda _batch: self.sig_use_settings.emit(panel.largest_result().request_changes()))
        panel.sig_measure_requested.connect(self._on_measure)
        sweeps.sig_sweep_requested.connect(self._on_sweep)
        sweeps.sig_variants_requested.connect(self._on_variants)
        sweeps.sig_cancel_requested.connect(lambda: self._cancel("sweep"))
        controller.sig_result.connect(self._on_result)
        controller.sig_partial.connect(self._on_partial)
        controller.sig_error.connect(self._on_error)
        controller.sig_cancel.connect(self._on_cancel)

    # ---- Public API
    def detect(self) -> None:
        """Look for devices on the worker (torch.cuda and NVML can take a moment on a GPU machine)."""
        def job(progress, cancelled, partial):
            from engine.devices import catalog, detect

            return detect(), catalog()

        self._submit("devices", job)

    def set_analysis(self, analysis) -> None:
        """The analysis on screen changed: refit, and look for the largest batch again."""
        self.analysis = analysis
        self.measured_curve = None  # the timeline cleared its items for the new analysis
        self._refit()
        if self.panel.current_device() is not None:
            self.find_max_batch()

    def find_max_batch(self) -> None:
        device, request = self.panel.current_device(), self._request()
        if device is None or request is None:
            return
        overrides = self.panel.overrides()

        def job(progress, cancelled, partial):
            from engine.planner import max_batch

            return max_batch(request, device, overrides, progress=progress, cancelled=cancelled)

        self.panel.set_largest_busy()
        self._submit("max_batch", job)

    def overlay(self, measurement) -> None:
        """Draw the measured step over the predicted timeline: its allocator events stretched over
        the predicted step's events (the two differ in count: cuDNN/cuBLAS allocations, fused kernels)."""
        if self.timeline is None or self.analysis is None:
            return
        import numpy as np
        import pyqtgraph as pg

        if self.measured_curve is not None:
            self.timeline.removeItem(self.measured_curve)
        y = np.asarray(measurement.timeline_bytes, dtype=float) / 2**20
        x = np.linspace(0, len(self.analysis.events), len(y))
        self.measured_curve = pg.PlotCurveItem(x, y, pen=pg.mkPen("#000000", width=2, style=pg.QtCore.Qt.DashLine),
                                               name=f"measured on {measurement.device_name}")
        self.timeline.addItem(self.measured_curve)

    # ---- Private API
    def _request(self):
        return None if self.analysis is None else self.analysis.request

    def _submit(self, kind: str, job: Callable) -> None:
        self._cancel(kind)
        self._jobs[kind] = self.controller.submit(kind, job, supersede=False)

    def _cancel(self, kind: str) -> None:
        old = self._jobs.get(kind)
        if old:
            self.controller.worker.cancel(old)

    def _refit(self) -> None:
        device = self.panel.current_device()
        if device is None or self.analysis is None:
            self.fit = None
        else:
            from engine.errors import MemLensError
            from engine.footprint import fit_check

            try:
                self.fit = fit_check(self.analysis, device, self.panel.overrides())
            except MemLensError as e:
                self.fit = None
                self.panel.set_largest_error(str(e))
        self.panel.set_fit(self.fit)

    def _on_device(self, device) -> None:
        if self.analysis is not None and device.kind != "host" and self.analysis.request.device != "cuda":
            # On a GPU the tensors are CUDA's (512-byte blocks, foreach optimizers): trace them so.
            self.sig_use_settings.emit({"device": "cuda"})
        self._refit()
        self.sweeps.set_capacity(device.capacity_bytes, device.name)
        self.find_max_batch()

    def _on_overrides(self, _overrides: dict) -> None:
        self._refit()
        self.find_max_batch()

    def _sweep_inputs(self):
        """(device, request, overrides) for a sweep, or None after telling the sweep plot why not."""
        device, request = self.panel.current_device(), self._request()
        if device is None or request is None:
            self.sweeps.finish("choose a device and analyse a model first")
            return None
        return device, request, self.panel.overrides()

    def _on_sweep(self, parameter: str, values: list) -> None:
        inputs = self._sweep_inputs()
        if inputs is None:
            return
        device, request, overrides = inputs

        def job(progress, cancelled, partial):
            from engine.planner import sweep

            return sweep(request, device, parameter, values, overrides, on_point=partial, progress=progress,
                         cancelled=cancelled)

        self.sweeps.start(parameter, device.capacity_bytes, device.name)
        self._submit("sweep", job)

    def _on_variants(self) -> None:
        inputs = self._sweep_inputs()
        if inputs is None:
            return
        device, request, overrides = inputs

        def job(progress, cancelled, partial):
            from engine.planner import compare_variants

            return compare_variants(request, device, overrides=overrides, on_point=partial, progress=progress,
                                    cancelled=cancelled)

        self.sweeps.start_variants(device.capacity_bytes, device.name)
        self._submit("sweep", job)

    def _on_measure(self) -> None:
        device, request = self.panel.current_device(), self._request()
        if request is None:
            return
        fit, index = self.fit, (device.index if device is not None and device.kind == "cuda" else 0)

        def job(progress, cancelled, partial):
            from engine.measure import measure_on_gpu

            return measure_on_gpu(request, fit, index, progress=progress, cancelled=cancelled)

        self.panel.measure_result.setText("measuring on the GPU…")
        self._submit("measure", job)

    def _on_result(self, kind: str, result) -> None:
        if kind == "devices":
            self.panel.set_detection(*result)
        elif kind == "max_batch":
            self.panel.set_largest(result)
        elif kind == "sweep":
            self.sweeps.finish()
        elif kind == "measure":
            self.panel.set_measurement(result)
            self.overlay(result)

    def _on_partial(self, kind: str, point) -> None:
        if kind == "sweep":
            (self.sweeps.add_variant if hasattr(point, "label") else self.sweeps.add_point)(point)

    def _on_error(self, kind: str, message: str) -> None:
        if kind == "max_batch":
            self.panel.set_largest_error(message)
        elif kind == "sweep":
            self.sweeps.finish(f"sweep failed: {message}")
        elif kind == "measure":
            self.panel.measure_result.setText(f"measurement failed: {message}")
        elif kind == "devices":
            self.panel.status.setText(f"device detection failed: {message}")

    def _on_cancel(self, kind: str) -> None:
        if kind == "devices" and self.panel.detection is None:
            self.detect()  # a new analysis superseded detection: the panel still needs it
        elif kind == "sweep":
            self.sweeps.finish("sweep cancelled")
        elif kind == "max_batch":
            self.panel.set_largest(None)
