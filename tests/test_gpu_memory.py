"""GPU memory peaks (benchmark/run/gpu_memory.py): "n/a" and why where NVML cannot answer (this
machine: no GPU), the peak of this process's samples where it can (a fake ``pynvml``, since there is
no GPU here to measure), and the report row's device, memory and TF32 columns."""
from __future__ import annotations

import os
import sys
import threading
import types

import pytest

from benchmark.run.gpu_memory import GpuMemory
from benchmark.run.sysinfo import PeakMemory


def test_without_an_nvml_binding_the_peak_is_na_and_says_why(monkeypatch):
    monkeypatch.setitem(sys.modules, "pynvml", None)  # import pynvml raises ImportError
    with GpuMemory() as gpu:
        pass
    assert gpu.nvml_mb == "n/a: no NVML binding (the nvidia-ml-py package: `make setup GPU=1` installs it)"
    assert gpu.torch_allocated_mb == gpu.torch_reserved_mb == 0.0


def test_here_nvml_cannot_answer_and_nothing_breaks():
    with PeakMemory() as memory:
        pass
    assert isinstance(memory.gpu.nvml_mb, str) and memory.gpu.nvml_mb.startswith("n/a: ")
    assert memory.peak_gpu_mb == memory.gpu.torch_allocated_mb >= 0.0


def _fake_nvml(samples: list[list[tuple[int, int | None]]], fail_init: bool = False) -> types.ModuleType:
    """A ``pynvml`` with two GPUs whose process lists are ``samples[i]`` at the i-th call for GPU 0
    (the last one repeated), and this process using 1 MiB on GPU 1; ``served`` is set once every
    sample has been served."""
    nvml = types.ModuleType("pynvml")
    nvml.served = threading.Event()
    nvml.shut_down = False
    calls = iter(range(10**9))

    class NVMLError(Exception):
        pass

    def init():
        if fail_init:
            raise NVMLError("Driver Not Loaded")

    def processes(handle):
        if handle == 1:
            return [types.SimpleNamespace(pid=os.getpid(), usedGpuMemory=2**20)]
        index = next(calls)
        if index >= len(samples) - 1:
            nvml.served.set()
        listed = samples[min(index, len(samples) - 1)]
        return [types.SimpleNamespace(pid=pid, usedGpuMemory=used) for pid, used in listed]

    nvml.NVMLError = NVMLError
    nvml.nvmlInit = init
    nvml.nvmlShutdown = lambda: setattr(nvml, "shut_down", True)
    nvml.nvmlDeviceGetCount = lambda: 2
    nvml.nvmlDeviceGetHandleByIndex = lambda i: i
    nvml.nvmlDeviceGetComputeRunningProcesses = processes
    return nvml


def test_the_nvml_peak_is_the_largest_sample_of_this_process(monkeypatch):
    mine, other = os.getpid(), os.getpid() + 1
    mib = 2**20
    samples = [[(mine, 100 * mib)], [(other, 9000 * mib), (mine, 700 * mib)], [(mine, None)], [(mine, 300 * mib)]]
    nvml = _fake_nvml(samples)
    monkeypatch.setitem(sys.modules, "pynvml", nvml)
    with GpuMemory(interval=0.001) as gpu:
        assert nvml.served.wait(10)
    assert gpu.nvml_mb == 700 + 1  # GPU 0's largest sample, plus GPU 1; the other process's 9000 not
    assert nvml.shut_down


def test_a_process_nvml_never_lists_is_na(monkeypatch):
    monkeypatch.setitem(sys.modules, "pynvml", _fake_nvml([[(os.getpid() + 1, 2**30)]]))
    monkeypatch.setattr(sys.modules["pynvml"], "nvmlDeviceGetCount", lambda: 1)
    with GpuMemory(interval=0.001) as gpu:
        pass
    assert gpu.nvml_mb.startswith("n/a: NVML never listed this process")


def test_nvml_without_a_driver_is_na_with_the_reason(monkeypatch):
    monkeypatch.setitem(sys.modules, "pynvml", _fake_nvml([[]], fail_init=True))
    with GpuMemory() as gpu:
        pass
    assert gpu.nvml_mb.startswith("n/a: NVML did not start (NVMLError: Driver Not Loaded)")


@pytest.mark.shared
def test_the_report_row_says_where_each_stage_ran_and_reads_back(tmp_path):
    from benchmark.report.files import read_report
    from benchmark.run.runner import RunConfig, run_benchmark
    from tests.conftest import LFW_DIR, WEIGHTS_DIR

    config = RunConfig(methods=["yunet"], lfw_dir=LFW_DIR, weights_dir=WEIGHTS_DIR, out=tmp_path, device="cpu",
                       max_pairs=20, embedder_backend="onnx", isolate=False, progress=False)
    (row,) = run_benchmark(config)
    assert row["detector_device"] == row["embedder_device"] == "cpu"
    assert row["tf32"] is False
    assert row["peak_gpu_nvml_mb"].startswith("n/a: ")
    assert 0.0 <= row["peak_gpu_torch_allocated_mb"] <= row["peak_gpu_torch_reserved_mb"]
    report = read_report(tmp_path / "report.csv").iloc[0]
    assert report["detector_device"] == "cpu" and not report["tf32"]
    assert report["peak_gpu_nvml_mb"] == row["peak_gpu_nvml_mb"]
    (again,) = run_benchmark(config)  # every image from the cache, which keeps the peaks of the first run
    assert again["peak_gpu_nvml_mb"] == row["peak_gpu_nvml_mb"]  # NVML absent then and now: the same reason
    assert again["peak_gpu_torch_reserved_mb"] == row["peak_gpu_torch_reserved_mb"]
