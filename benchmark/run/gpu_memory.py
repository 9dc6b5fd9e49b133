"""Peak GPU memory of this process, as NVML sees it and as PyTorch's allocator counts it.

torch's ``max_memory_allocated`` misses the CUDA context, the allocator's cached reserve and every
other library's memory (ONNX Runtime's arena among them); NVML's per-process used memory (what
``nvidia-smi`` lists) has all of them. :class:`GpuMemory` samples it in a thread while a block runs
and keeps the peak, beside torch's allocated and reserved peaks. Without NVML (no ``pynvml`` module,
from the ``nvidia-ml-py`` package; no driver) the NVML peak is ``"n/a: <reason>"``, never an error.
"""
from __future__ import annotations

import os
import sys
import threading

MIB = 2**20


class GpuMemory:
    """Peaks in MiB while the ``with`` block runs: :attr:`nvml_mb` (a number, or ``"n/a: <reason>"``),
    :attr:`torch_allocated_mb` and :attr:`torch_reserved_mb` (summed over the GPUs; 0 where torch
    has not used CUDA). NVML is sampled every ``interval`` s, so a peak shorter than that can be missed."""

    def __init__(self, interval: float = 0.2) -> None:
        self.interval = interval
        self.nvml_mb: float | str = "n/a: not measured"
        self.torch_allocated_mb = 0.0
        self.torch_reserved_mb = 0.0
        self._nvml = None
        self._handles: list = []
        self._peak_bytes: int | None = None  # None until this process is seen in NVML's list
        self._failure = ""
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def __enter__(self) -> GpuMemory:
        torch = _torch_on_cuda()
        if torch is not None:
            for index in range(torch.cuda.device_count()):
                torch.cuda.reset_peak_memory_stats(index)
        self._nvml, self._handles, reason = _open_nvml()
        if self._nvml is None:
            self.nvml_mb = f"n/a: {reason}"
        else:
            self._thread = threading.Thread(target=self._run, name="nvml-sampler", daemon=True)
            self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        if self._thread is not None:
            self._stop.set()
            self._thread.join()
            self._sample()  # the block's end, however short it was
            try:
                self._nvml.nvmlShutdown()
            except Exception:  # a failed shutdown changes no measurement
                pass
            self.nvml_mb = self._result()
        torch = _torch_on_cuda()
        if torch is not None:
            indices = range(torch.cuda.device_count())
            self.torch_allocated_mb = sum(torch.cuda.max_memory_allocated(i) for i in indices) / MIB
            self.torch_reserved_mb = sum(torch.cuda.max_memory_reserved(i) for i in indices) / MIB

    def _run(self) -> None:
        while not self._failure:
            self._sample()
            if self._stop.wait(self.interval):
                return

    def _sample(self) -> None:
        """Add this process's used memory over every GPU now to the peak; an NVML error stops sampling."""
        if self._failure:
            return
        pid, used, seen = os.getpid(), 0, False
        try:
            for handle in self._handles:
                for process in self._nvml.nvmlDeviceGetComputeRunningProcesses(handle):
                    if process.pid == pid and process.usedGpuMemory is not None:  # None: not available (WDDM)
                        used, seen = used + process.usedGpuMemory, True
        except Exception as exc:  # pynvml raises its own NVMLError subclasses
            self._failure = f"NVML failed while sampling ({type(exc).__name__}: {exc})"
            return
        if seen:
            self._peak_bytes = max(self._peak_bytes or 0, used)

    def _result(self) -> float | str:
        if self._failure:
            return f"n/a: {self._failure}"
        if self._peak_bytes is None:
            return (f"n/a: NVML never listed this process (pid {os.getpid()}): no CUDA work, or a container "
                    "whose PID namespace hides it")
        return self._peak_bytes / MIB


def gpu_names() -> list[str]:
    """The names of this machine's NVIDIA GPUs as NVML gives them ([] without NVML or a GPU)."""
    nvml, handles, _ = _open_nvml()
    if nvml is None:
        return []
    try:
        return [str(nvml.nvmlDeviceGetName(h)) for h in handles]
    finally:
        nvml.nvmlShutdown()


def _open_nvml():
    """``(pynvml, device handles, "")`` with NVML started, or ``(None, [], why not)``."""
    try:
        import pynvml
    except ImportError:
        return None, [], "no NVML binding (the nvidia-ml-py package: `make setup GPU=1` installs it)"
    try:
        pynvml.nvmlInit()
    except Exception as exc:  # NVMLError_LibraryNotFound, NVMLError_DriverNotLoaded, ...
        return None, [], f"NVML did not start ({type(exc).__name__}: {exc}): no NVIDIA driver here?"
    try:
        handles = [pynvml.nvmlDeviceGetHandleByIndex(i) for i in range(pynvml.nvmlDeviceGetCount())]
    except Exception as exc:  # an NVMLError
        pynvml.nvmlShutdown()
        return None, [], f"NVML listed no GPU ({type(exc).__name__}: {exc})"
    return pynvml, handles, ""


def _torch_on_cuda():
    """torch, where it is imported and has started CUDA; else None (nothing of torch is on a GPU,
    and asking would start CUDA)."""
    torch = sys.modules.get("torch")
    return torch if torch is not None and torch.cuda.is_initialized() else None
