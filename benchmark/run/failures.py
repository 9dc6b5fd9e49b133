"""One broken method must not end a run: its exception becomes its row's ``error``. An output
folder that cannot be written is the exception: every further method would fail the same way,
so the run stops with :class:`OutputNotWritable`."""
from __future__ import annotations

import errno
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from face_alignment.errors import FaceBenchError

log = logging.getLogger(__name__)

#: what an OSError says when a folder cannot take what is written to it
UNWRITABLE = {errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM}


class OutputNotWritable(FaceBenchError):
    """The run's output folder cannot be written (full, read-only): the run stops."""


def unwritable_output(exc: BaseException, out: Path) -> OutputNotWritable | None:
    """The :class:`OutputNotWritable` that ``exc`` (or an exception it was raised from or while
    handling) means: an OSError of :data:`UNWRITABLE` on a path in ``out``, or on none (a write
    to an open file, which a full disk fails without naming it); else None."""
    seen = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        if isinstance(exc, OSError) and exc.errno in UNWRITABLE and _in_output(exc.filename, out):
            return OutputNotWritable(f"cannot write to {out}: {exc.strerror}; the run stops. Finished chunks are "
                                     "kept there: make room (or make it writable) and run the same command again to "
                                     "resume")
        exc = exc.__cause__ or exc.__context__
    return None


def _in_output(filename, out: Path) -> bool:
    return filename is None or Path(filename).resolve().is_relative_to(Path(out).resolve())


@contextmanager
def method_failure(row: dict, method: str, out: Path | None = None) -> Iterator[None]:
    """Run the block; an exception in it is logged and written to ``row["error"]`` instead of
    raised (a :class:`FaceBenchError` by its message, anything else with its type and a traceback
    in the log). ``KeyboardInterrupt`` still stops the run, and so does a folder ``out`` that
    cannot be written (:class:`OutputNotWritable`, raised without the chain of tracebacks)."""
    try:
        yield
    except FaceBenchError as exc:
        log.error("%s: %s", method, exc)
        row["error"] = str(exc)
    except Exception as exc:  # any backend failure
        if out is not None and (fatal := unwritable_output(exc, out)) is not None:
            raise fatal from None
        log.exception("%s failed", method)
        row["error"] = f"{type(exc).__name__}: {exc}"
