"""One broken method must not end a run: its exception becomes its row's ``error``."""
from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager

from face_alignment.errors import FaceBenchError

log = logging.getLogger(__name__)


@contextmanager
def method_failure(row: dict, method: str) -> Iterator[None]:
    """Run the block; an exception in it is logged and written to ``row["error"]`` instead of
    raised (a :class:`FaceBenchError` by its message, anything else with its type and a traceback
    in the log). ``KeyboardInterrupt`` still stops the run."""
    try:
        yield
    except FaceBenchError as exc:
        log.error("%s: %s", method, exc)
        row["error"] = str(exc)
    except Exception as exc:  # any backend failure
        log.exception("%s failed", method)
        row["error"] = f"{type(exc).__name__}: {exc}"
