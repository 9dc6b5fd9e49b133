"""The one result type every detector returns."""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

#: Landmark order used everywhere, as seen in the image (the subject's right eye is the
#: image's left eye).
LANDMARK_NAMES = ("left_eye", "right_eye", "nose", "mouth_left", "mouth_right")


@dataclass(frozen=True)
class Face:
    """One detected face in pixel coordinates of the image it was found in.

    Attributes
    ----------
    bbox : ndarray, shape (4,), float32
        ``x1, y1, x2, y2``.
    score : float
        Detector confidence in [0, 1] (1.0 where a backend gives none).
    landmarks : ndarray, shape (5, 2), float32
        ``(x, y)`` in the order of :data:`LANDMARK_NAMES`.
    dense : ndarray, shape (N, 2), float32, optional
        All landmarks of a dense model (Face Mesh, 68-point models), when there are any.
    """

    bbox: np.ndarray
    score: float
    landmarks: np.ndarray
    dense: np.ndarray | None = field(default=None, compare=False)

    def __post_init__(self) -> None:
        bbox = np.asarray(self.bbox, dtype=np.float32).reshape(4)
        landmarks = np.asarray(self.landmarks, dtype=np.float32).reshape(5, 2)
        object.__setattr__(self, "bbox", bbox)
        object.__setattr__(self, "landmarks", landmarks)
        object.__setattr__(self, "score", float(self.score))
        if self.dense is not None:
            object.__setattr__(self, "dense", np.asarray(self.dense, dtype=np.float32).reshape(-1, 2))

    @property
    def area(self) -> float:
        w = max(0.0, float(self.bbox[2] - self.bbox[0]))
        h = max(0.0, float(self.bbox[3] - self.bbox[1]))
        return w * h

    def scaled(self, factor: float) -> Face:
        """The same face in an image resized by ``factor``."""
        dense = None if self.dense is None else self.dense * factor
        return Face(self.bbox * factor, self.score, self.landmarks * factor, dense)
