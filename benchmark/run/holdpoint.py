"""A run that stops at a known point, for the tests that kill it there.

``FACEBENCH_HOLD_AFTER_CHUNKS=N``: a method's run, once it has cached N chunks of its own (0: once
it has read its cache, before any work), says so on stderr and waits until it is interrupted or
killed. A kill that lands after a known amount of work makes the kill-and-resume tests
deterministic on any machine; unset (always, outside those tests) it does nothing."""
from __future__ import annotations

import os
import sys
import time

HOLD_AFTER_CHUNKS = "FACEBENCH_HOLD_AFTER_CHUNKS"


def holding_line(chunks: int) -> str:
    """What a held run prints, and the test waits for."""
    return f"holding after {chunks} chunks ({HOLD_AFTER_CHUNKS})"


def hold_point(chunks: int) -> None:
    """Wait here for a signal when ``HOLD_AFTER_CHUNKS`` asks for ``chunks``."""
    if os.environ.get(HOLD_AFTER_CHUNKS) != str(chunks):
        return
    print(holding_line(chunks), file=sys.stderr, flush=True)
    while True:  # a signal's handler (SIGINT, SIGTERM) raises out of the sleep; SIGKILL ends it
        time.sleep(3600)
