"""A detector's detections, cached by image name for every run over the same image folder.

Detect once, embed many: the detections (status, score, time, box and five points of the target
face) of a detector under one image condition are kept apart from any embedder or alignment, in
``<cache>/detections/<method>-<key>``, the key over the detector (its class, weights, code), the
face choice, the library versions, the image folder, the condition and the devices, not the image list. Each
committed chunk is one file, ``detections-<hash of its names>.npz``: its images' names (relative
to the folder) and their rows. A run over any list of the folder's images, then, aligns from the
detections it finds there: a matrix's later cells, a robustness run's later embedders, a
``--max-pairs`` subset after the full run, CFP-FF after CFP-FP (they share 3,760 frontal images)
given the same ``--cache-dir``.
"""
from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from face_alignment.atomic import atomic_path

from .cache import FALLBACK, FOUND, PENDING, STATUS_NAMES, MethodResults
from .cropping import KnownDetections

log = logging.getLogger(__name__)

#: the per-image arrays a detection file stores, with their shapes after the image axis
ARRAYS = {"status": (), "scores": (), "detect_ms": (), "boxes": (4,), "points": (5, 2)}


class DetectionCache:
    """The folder of one detector's detections under one condition (module docstring)."""

    def __init__(self, folder: Path, key: str) -> None:
        self.folder = Path(folder)
        self.key = key

    def files(self) -> list[Path]:
        return sorted(self.folder.glob("detections-*.npz"))

    def known(self, images: Sequence[str]) -> KnownDetections | None:
        """The detections cached of ``images`` (indexed like them), or None where there are none.
        A damaged file is removed, one whose arrays do not fit ignored, each with a warning."""
        n, position = len(images), {name: i for i, name in enumerate(images)}
        known = KnownDetections(np.full(n, PENDING, np.int8), np.zeros((n, 4), np.float32),
                                np.zeros((n, 5, 2), np.float32), np.full(n, np.nan, np.float32),
                                np.full(n, np.nan, np.float32), {})
        for path in self.files():
            try:
                with np.load(path, allow_pickle=False) as data:
                    names, rows = [str(name) for name in data["images"]], {a: data[a] for a in ARRAYS}
                    reasons = json.loads(str(data["reasons"]))
            except Exception as exc:  # a truncated zip, not an npz, a missing array, bad JSON ...
                log.warning("removing unreadable detections file %s (%s: %s); its images are detected again", path,
                            type(exc).__name__, exc)
                path.unlink(missing_ok=True)
                continue
            if any(rows[a].shape != (len(names), *shape) for a, shape in ARRAYS.items()) or \
                    not np.isin(rows["status"], list(STATUS_NAMES)).all():
                log.warning("ignoring detections file %s: its arrays do not fit its %d images", path, len(names))
                continue
            here = np.array([position.get(name, -1) for name in names], np.int64)
            take = np.flatnonzero(here >= 0)
            take = take[known.status[here[take]] == PENDING]  # the first file that has an image gives it
            for array in ARRAYS:
                getattr(known, array)[here[take]] = rows[array][take]
            known.reasons.update({int(here[i]): reasons[names[i]] for i in take if names[i] in reasons})
        return known if np.any(known.status != PENDING) else None

    def add(self, results: MethodResults, images: Sequence[str], indices: np.ndarray,
            known: KnownDetections | None) -> None:
        """Cache the detections of a chunk's images (``indices`` into ``images``) that were not
        ``known`` before this run (an unreadable image is not a detection: it is decoded again)."""
        fresh = np.array([i for i in indices if results.status[i] in (FOUND, FALLBACK)
                          and (known is None or not known.knows(int(i)))], np.int64)
        if not fresh.size:
            return
        names = [images[i] for i in fresh]
        digest = hashlib.sha256("\n".join(names).encode()).hexdigest()[:16]
        with atomic_path(self.folder / f"detections-{digest}.npz") as tmp, open(tmp, "wb") as fh:
            np.savez(fh, images=np.array(names), reasons=np.array(json.dumps(
                {images[i]: results.reasons[int(i)] for i in fresh if int(i) in results.reasons})),
                **{array: getattr(results, array)[fresh] for array in ARRAYS})

    def clear(self) -> None:
        """Remove every detection of the folder (``--no-resume``: detect again)."""
        for path in self.files():
            path.unlink(missing_ok=True)

