"""Atomic file writes: a file is either the old one or the complete new one, never half written."""
from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path


@contextlib.contextmanager
def atomic_path(dest: str | os.PathLike, suffix: str = ".tmp") -> Iterator[Path]:
    """A hidden temporary path beside ``dest`` to write to; moved onto ``dest`` (``os.replace``)
    when the block succeeds, removed when it fails or is interrupted.

    The temporary name is ``.<name>.<random><suffix>``, so leftovers of a killed process (which
    cannot clean up) are recognisable and never taken for ``dest``.
    """
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=suffix, dir=dest.parent)
    os.close(fd)
    tmp = Path(name)
    try:
        yield tmp
        os.chmod(tmp, 0o644)  # mkstemp makes 0600; the result is an ordinary file
        os.replace(tmp, dest)
    finally:
        tmp.unlink(missing_ok=True)
