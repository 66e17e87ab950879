"""Device detection, the GPU catalog and the one capacity parser.

This machine has no GPU: real detection must say so plainly. The torch.cuda and NVML paths run
against a fake GPU substituted at the hardware boundary only (the `pynvml` and `torch.cuda` query
functions); everything above them is the real code.
"""
import os
from types import SimpleNamespace

import pynvml
import pytest
import torch

from engine.devices import catalog, detect, find_gpu, load_catalog, resolve_device
from engine.errors import RequestError
from engine.units import parse_bytes

GIB = 2**30


# ---- Real detection on this machine
def test_this_machine_reports_no_gpu_cleanly():
    found = detect()
    assert found.accelerators == ()
    assert not found.has_cuda
    assert found.notes[0] == "no GPU"
    assert "no NVIDIA driver" in found.summary  # libnvidia-ml is absent here
    assert found.host is not None and found.host.capacity_bytes > GIB


def test_asking_for_detected_gpu_0_without_a_gpu_explains_why():
    with pytest.raises(RequestError, match=r"no detected GPU 0 on this machine \(no GPU"):
        resolve_device("0")


# ---- The hardware boundary, substituted
class FakeNvml:
    """Two NVIDIA GPUs as NVML would report them; another process holds 3 GiB on GPU 1."""

    def __init__(self, monkeypatch, procs_known=True):
        self.boards = [("NVIDIA A100-SXM4-80GB", 81920 * 2**20, 1 * GIB), ("NVIDIA A100-SXM4-80GB", 81920 * 2**20, 4 * GIB)]
        self.procs = {0: [], 1: [SimpleNamespace(pid=os.getpid() + 1, usedGpuMemory=3 * GIB if procs_known else None)]}
        for name in ("nvmlInit", "nvmlShutdown", "nvmlSystemGetDriverVersion", "nvmlDeviceGetCount",
                     "nvmlDeviceGetHandleByIndex", "nvmlDeviceGetName", "nvmlDeviceGetMemoryInfo",
                     "nvmlDeviceGetComputeRunningProcesses"):
            monkeypatch.setattr(pynvml, name, getattr(self, name))

    def nvmlInit(self):
        pass

    def nvmlShutdown(self):
        pass

    def nvmlSystemGetDriverVersion(self):
        return "580.65.06"

    def nvmlDeviceGetCount(self):
        return len(self.boards)

    def nvmlDeviceGetHandleByIndex(self, i):
        return i

    def nvmlDeviceGetName(self, h):
        return self.boards[h][0]

    def nvmlDeviceGetMemoryInfo(self, h):
        _, total, used = self.boards[h]
        return SimpleNamespace(total=total, used=used, free=total - used)

    def nvmlDeviceGetComputeRunningProcesses(self, h):
        return self.procs[h]


def fake_cuda(monkeypatch, boards):
    """torch.cuda as a CUDA build with these (name, total, free) devices would answer."""
    monkeypatch.setattr(torch.version, "cuda", "13.0")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: len(boards))
    monkeypatch.setattr(torch.cuda, "get_device_properties",
                        lambda i: SimpleNamespace(name=boards[i][0], total_memory=boards[i][1], major=8, minor=0))
    monkeypatch.setattr(torch.cuda, "mem_get_info", lambda i: (boards[i][2], boards[i][1]))


def test_nvml_alone_lists_gpus_with_driver_and_other_processes(monkeypatch):
    FakeNvml(monkeypatch)
    found = detect()
    assert [d.label for d in found.accelerators] == ["GPU 0: NVIDIA A100-SXM4-80GB", "GPU 1: NVIDIA A100-SXM4-80GB"]
    gpu1 = found.accelerators[1]
    assert gpu1.kind == "nvml" and gpu1.driver_version == "580.65.06"
    assert gpu1.capacity_bytes == 81920 * 2**20 and gpu1.free_bytes == 81920 * 2**20 - 4 * GIB
    assert gpu1.other_processes_bytes == 3 * GIB
    assert not found.has_cuda  # torch here cannot run on them
    assert any("torch cannot use these GPUs" in n for n in found.notes)


def test_nvml_without_per_process_figures_counts_all_used_memory(monkeypatch):
    FakeNvml(monkeypatch, procs_known=False)
    assert detect().accelerators[1].other_processes_bytes == 4 * GIB


def test_torch_cuda_devices_get_nvml_details_when_they_are_the_same_board(monkeypatch):
    FakeNvml(monkeypatch)
    fake_cuda(monkeypatch, [("NVIDIA A100-SXM4-80GB", 81920 * 2**20, 70 * GIB)] * 2)
    found = detect()
    assert found.has_cuda
    gpu0, gpu1 = found.accelerators
    assert gpu0.kind == "cuda" and gpu0.compute_capability == (8, 0) and gpu0.free_bytes == 70 * GIB
    assert gpu1.other_processes_bytes == 3 * GIB and gpu1.driver_version == "580.65.06"
    assert resolve_device("1", found) is gpu1


def test_torch_cuda_without_nvml_still_detects(monkeypatch):
    fake_cuda(monkeypatch, [("NVIDIA GeForce RTX 4090", 24564 * 2**20, 20 * GIB)])
    found = detect()
    assert [d.name for d in found.accelerators] == ["NVIDIA GeForce RTX 4090"]
    assert found.accelerators[0].other_processes_bytes is None  # unknown without NVML
    assert "no NVIDIA driver" in found.notes[0]  # NVML is missing here, said plainly


def test_a_broken_cuda_runtime_is_a_note_not_a_crash(monkeypatch):
    monkeypatch.setattr(torch.version, "cuda", "13.0")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)

    def boom():
        raise RuntimeError("CUDA driver version is insufficient for CUDA runtime version")

    monkeypatch.setattr(torch.cuda, "device_count", boom)
    found = detect()
    assert found.accelerators == ()
    assert any("insufficient" in n for n in found.notes)


def test_nvml_driver_not_loaded_is_said_plainly(monkeypatch):
    def not_loaded():
        raise pynvml.NVMLError_DriverNotLoaded(pynvml.NVML_ERROR_DRIVER_NOT_LOADED)

    monkeypatch.setattr(pynvml, "nvmlInit", not_loaded)
    assert "no NVIDIA driver loaded" in detect().summary


# ---- Catalog
REQUIRED = ["T4", "L4", "L40S", "A10", "A30", "A40", "V100 16GB", "V100 32GB", "A100 40GB", "A100 80GB",
            "H100 PCIe", "H100 SXM", "H200", "B200", "GB200", "RTX A6000", "RTX 6000 Ada", "RTX 3060", "RTX 3090",
            "RTX 4070", "RTX 4080", "RTX 4090", "RTX 5090", "MI250X", "MI300X"]


def test_catalog_lists_every_required_accelerator_with_a_capacity_and_its_source():
    entries = catalog()
    assert len(entries) >= 25
    for name in REQUIRED:
        entry = find_gpu(name)
        assert entry.capacity_bytes > 8 * GIB, name
        assert entry.source, name
    apple = [e for e in entries if e.vendor == "apple"]
    assert apple and all(e.approximate and "APPROXIMATION" in e.source for e in apple)


def test_catalog_capacities_are_the_driver_totals():
    assert find_gpu("A100 80GB").capacity_bytes == 81920 * 2**20 == 85_899_345_920
    assert find_gpu("H100").capacity_bytes == 81559 * 2**20
    assert find_gpu("RTX 4090").capacity_bytes == 24564 * 2**20
    assert find_gpu("MI300X").capacity_bytes == 205_822_885_888


def test_gpu_names_match_loosely():
    assert find_gpu("nvidia geforce rtx-4090").name == "NVIDIA GeForce RTX 4090"
    assert find_gpu("Tesla V100-SXM2-16GB").name == "NVIDIA V100 16GB"


def test_unknown_gpu_suggests_close_names():
    with pytest.raises(RequestError, match=r"unknown GPU 'A100 90GB'; did you mean 'NVIDIA A100 80GB'"):
        find_gpu("A100 90GB")
    with pytest.raises(RequestError, match="RTX 4090"):
        find_gpu("RTX 4099")


def test_a_catalog_entry_without_capacity_is_refused(tmp_path):
    path = tmp_path / "gpus.yaml"
    path.write_text("gpus:\n  - name: Mystery\n    source: rumour\n")
    with pytest.raises(RequestError, match="entry 1 needs a name and a positive integer capacity_bytes"):
        load_catalog(str(path))


# ---- Capacities typed by users (CLI and GUI)
@pytest.mark.parametrize("text, expected", [
    ("24 GiB", 24 * GIB), ("24GiB", 24 * GIB), ("80GB", 80 * 10**9), ("80 gb", 80 * 10**9),
    ("16000 MiB", 16000 * 2**20), ("1.5 TiB", 3 * 2**39), ("512", 512), (4096, 4096),
])
def test_parse_bytes_reads_binary_and_decimal_units(text, expected):
    assert parse_bytes(text) == expected


@pytest.mark.parametrize("text, message", [
    ("24 GB of RAM", r"cannot read '24 GB of RAM' as a size"),
    ("-1", r"a size must be positive, got '-1'"),
    ("0 GiB", r"a size must be positive"),
    ("24 XB", r"unknown unit 'XB'"),
    ("", r"cannot read '' as a size"),
])
def test_parse_bytes_rejects_what_is_not_a_size(text, message):
    with pytest.raises(RequestError, match=message):
        parse_bytes(text)


# ---- Measure on this GPU (needs CUDA: here only its refusal and its pure parts run)
def test_measuring_without_cuda_is_refused_clearly():
    from engine import AnalysisRequest
    from engine.measure import measure_on_gpu

    with pytest.raises(RequestError, match="cannot measure: no CUDA device"):
        measure_on_gpu(AnalysisRequest(model="resnet18", batch=2, device="cuda"))


def test_measured_timeline_follows_the_allocator_snapshot():
    from engine.measure import measured_timeline

    snapshot = {"device_traces": [[
        {"action": "alloc", "size": 512}, {"action": "free_requested", "size": 512},
        {"action": "free_completed", "size": 512}, {"action": "alloc", "size": 1024},
    ]]}
    assert measured_timeline(snapshot, 100) == (100, 612, 100, 1124)


def test_a_measurement_is_explained_against_the_allocated_lines_block_rounding_included():
    """max_memory_allocated counts whole blocks: a GPU that measures the simulated block peak reads +0.0%."""
    from conftest import SPECS
    from engine import AnalysisRequest, analyze
    from engine.footprint import fit_check
    from engine.measure import explain

    a = analyze(AnalysisRequest(model=os.path.join(SPECS, "small_cnn.yaml"), batch=4, device="cuda"))
    fit = fit_check(a, find_gpu("L4"))
    sim = a.cuda.simulation
    assert fit.line("rounding").bytes > 0  # the small CNN has blocks handed out whole
    lines = explain(fit, 0, sim.peak_allocated_bytes, sim.peak_reserved_bytes)
    allocated = next(line for line in lines if line.startswith("allocated: predicted"))
    assert "block rounding" in allocated and "+0.0% (0 B)" in allocated, allocated
