"""The detector plugin interface."""
from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np

from ..runtime import resolve_device
from ..types import Face


class FaceDetector(ABC):
    """Base of every detector: a batch of HxWx3 uint8 RGB images in, one list of faces per image out.

    Images whose longer side exceeds ``max_side`` are downscaled for detection and the results
    mapped back, so an 8000x8000 photo costs what a 1280x1280 one does. Subclasses implement
    :meth:`detect_one`, or override :meth:`detect` where the backend batches.
    """

    #: registry name, set by :func:`face_alignment.registry.register_detector`
    name: str = ""

    def __init__(self, device: str = "auto", max_side: int = 1280) -> None:
        self.device = resolve_device(device)
        self.max_side = max_side
        #: the weight files this detector loaded (their sha256 goes into the report)
        self.weight_paths: list[Path] = []

    @property
    def model_label(self) -> str:
        """What actually runs under this method name (the report's ``detector_model`` column):
        the weight files' names, which tell e.g. which keypoint model a top-down method used."""
        files = "+".join(p.name for p in self.weight_paths)
        return f"{self.name} ({files})" if files else self.name

    def detect(self, images: Sequence[np.ndarray]) -> list[list[Face]]:
        return [self._detect_fitted(image) for image in images]

    @abstractmethod
    def detect_one(self, image: np.ndarray) -> list[Face]:
        """Faces in one RGB image, in its own pixel coordinates."""

    def fit(self, image: np.ndarray) -> tuple[np.ndarray, float]:
        """``image`` downscaled so that its longer side is at most ``max_side``, and the factor."""
        longest = max(image.shape[:2])
        if not self.max_side or longest <= self.max_side:
            return image, 1.0
        factor = self.max_side / longest
        size = (max(1, round(image.shape[1] * factor)), max(1, round(image.shape[0] * factor)))
        return cv2.resize(image, size, interpolation=cv2.INTER_AREA), factor

    def _detect_fitted(self, image: np.ndarray) -> list[Face]:
        small, factor = self.fit(image)
        faces = self.detect_one(small)
        return faces if factor == 1.0 else [f.scaled(1.0 / factor) for f in faces]

    def __repr__(self) -> str:
        return f"{type(self).__name__}(device={self.device!r})"
