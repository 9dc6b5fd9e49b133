"""Where a run's seconds go: its stages timed in order and logged as one line each with
``--verbose`` (``FACEBENCH_VERBOSE=1``, which the method processes inherit), e.g.
``yunet: seconds: process start 2.10, embedder 0.41, detector 0.05, images 31.20, scores 0.30``."""
from __future__ import annotations

import logging
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psutil

log = logging.getLogger(__name__)

VERBOSE_ENV = "FACEBENCH_VERBOSE"


def verbose() -> bool:
    return os.environ.get(VERBOSE_ENV) == "1"


def process_age() -> float:
    """Seconds since this process started: on Linux from ``/proc`` (to 10 ms: its start and the
    uptime both in clock ticks since boot), elsewhere from psutil's start time (whose boot time is
    whole seconds)."""
    try:
        start_ticks = int(Path("/proc/self/stat").read_text().rsplit(")", 1)[1].split()[19])
        return float(Path("/proc/uptime").read_text().split()[0]) - start_ticks / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return time.time() - psutil.Process().create_time()


class StageTimes:
    """Wall seconds per named stage of ``label`` (a method, or the run), in the order first seen."""

    def __init__(self, label: str) -> None:
        self.label = label
        self.seconds: dict[str, float] = {}

    def add(self, name: str, seconds: float) -> None:
        self.seconds[name] = self.seconds.get(name, 0.0) + seconds

    def since_process_start(self, name: str) -> None:
        """``name``: the seconds from this process's start to now (the interpreter, imports and,
        in a method's process, its spawn)."""
        self.add(name, process_age())

    @contextmanager
    def stage(self, name: str) -> Iterator[None]:
        start = time.perf_counter()
        try:
            yield
        finally:
            self.add(name, time.perf_counter() - start)

    def line(self) -> str:
        return f"{self.label}: seconds: " + ", ".join(f"{name} {s:.2f}" for name, s in self.seconds.items())

    def log(self) -> None:
        if verbose():
            log.info("%s", self.line())
