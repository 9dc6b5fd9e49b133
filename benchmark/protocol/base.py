"""The protocol seam: what a benchmark is scored on.

A :class:`VerificationProtocol` says which images are processed (``image_root`` and the pairs'
relative paths), which pairs are compared with which labels and folds (:class:`PairList`),
where reference-aligned crops are (optional: the embedder alone, the ceiling detectors are read
against) and how the target face of an image is chosen among the faces a detector finds.
:func:`benchmark.protocol.lfw.lfw_protocol` builds the LFW ones (View 1, View 2, a pairs CSV);
another data set is another function that returns this type.
"""
from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from face_alignment import CROP_SIZE, pick_target_face
from face_alignment.errors import DatasetError
from face_alignment.selection import FacePicker

from .pairs import PairList

log = logging.getLogger(__name__)

#: the method name of the reference crops' row: the embedder alone on pre-aligned crops
REFERENCE = "reference"


@dataclass(frozen=True)
class VerificationProtocol:
    """Images, pairs, folds, optional reference crops and the face choice of one protocol.

    ``name`` identifies the data set (``lfw``); ``data_hint`` is appended to data errors (how to
    get the data). ``pick_face`` must be a module-level function: a method's process receives
    the protocol pickled.
    """

    name: str
    image_root: Path
    pairs: PairList
    reference_dir: Path | None = None
    pick_face: FacePicker = pick_target_face
    data_hint: str = ""

    def check_images(self) -> None:
        """Raise when none of the pairs' images is under a folder (the wrong folder was given);
        warn, before any work, when some are missing (they are counted as unreadable)."""
        for root in (self.image_root, *([self.reference_dir] if self.reference_dir else [])):
            missing = [p for p in self.pairs.images if not (root / p).is_file()]
            if len(missing) == len(self.pairs.images):
                raise DatasetError(f"none of the {len(missing)} images of {self.pairs.source} is under {root} "
                                   f"(first expected: {root / missing[0]}). {self.data_hint}".rstrip())
            if missing:
                log.warning("%d of %d images are missing under %s (counted as unreadable), e.g. %s",
                            len(missing), len(self.pairs.images), root, missing[0])


def find_data_dir(explicit: str | os.PathLike | None, env: str, candidates: tuple[str, ...], what: str,
                  hint: str) -> Path:
    """A data set's folder: ``explicit``, else ``$env``, else the first of ``candidates`` that
    exists; a :class:`DatasetError` naming where it looked, with ``hint`` (how to get the data)."""
    if explicit is not None:
        return Path(explicit)
    for candidate in (os.environ.get(env), *candidates):
        if candidate and Path(candidate).is_dir():
            return Path(candidate)
    raise DatasetError(f"no {what} folder given or found (looked in ${env}, {', '.join(candidates)}). {hint}")


def reference_crop(image: np.ndarray, size: int = CROP_SIZE) -> np.ndarray:
    """A reference crop as the embedder takes it: as it is, or resized to ``size`` square."""
    if image.shape[:2] == (size, size):
        return image
    interpolation = cv2.INTER_AREA if size < min(image.shape[:2]) else cv2.INTER_LINEAR
    return cv2.resize(image, (size, size), interpolation=interpolation)
