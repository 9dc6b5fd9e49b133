"""Where a run's seconds go: its stages timed in order and logged as one line each with
``--verbose`` (``FACEBENCH_VERBOSE=1``, which the method processes inherit), e.g.
``yunet: seconds: process start 2.10, embedder 0.41, detector 0.05, images 31.20, scores 0.30``."""
from __future__ import annotations

import logging
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager

import psutil

log = logging.getLogger(__name__)

VERBOSE_ENV = "FACEBENCH_VERBOSE"


def verbose() -> bool:
    return os.environ.get(VERBOSE_ENV) == "1"


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
        self.add(name, time.time() - psutil.Process().create_time())

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
