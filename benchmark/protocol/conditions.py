"""The image-condition seam: a deterministic transform of an image before detection.

An :class:`ImageCondition` turns a decoded image into a :class:`Conditioned` one: the new image
and the affine map from the original image's pixels to the new one's, so that landmarks move
both ways between them (an oracle alignment from the clean image, a method's points mapped back
for a consistency check). Photometric conditions keep the identity map; geometric ones (scale,
rotation, a larger canvas) are affine. ``key`` (the image's path in the protocol) seeds any
randomness, so an image is degraded the same way in every run, batch and worker.

:data:`CLEAN` is the identity; :mod:`benchmark.protocol.degradations` holds the catalogue of
conditions at severities 1-5. A condition's ``name`` goes into the cache key and the report.
"""
from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field

import numpy as np

IDENTITY = np.array([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]])
IDENTITY.flags.writeable = False


@dataclass(frozen=True)
class Conditioned:
    """An image under a condition, and ``matrix`` (2x3 affine): original pixel -> its pixel."""

    image: np.ndarray
    matrix: np.ndarray = field(default_factory=lambda: IDENTITY)

    def to_conditioned(self, points: np.ndarray) -> np.ndarray:
        """``(N, 2)`` points of the original image in this image's pixels."""
        return np.asarray(points, np.float64) @ self.matrix[:, :2].T + self.matrix[:, 2]

    def to_original(self, points: np.ndarray) -> np.ndarray:
        """``(N, 2)`` points of this image in the original image's pixels."""
        linear, offset = self.matrix[:, :2], self.matrix[:, 2]
        return (np.asarray(points, np.float64) - offset) @ np.linalg.inv(linear).T


class ImageCondition(ABC):
    """A named, deterministic transform of an image (see the module docstring)."""

    name: str

    @abstractmethod
    def apply(self, image: np.ndarray, key: str) -> Conditioned:
        """``image`` (HxWx3 uint8 RGB) under this condition; ``key`` seeds any randomness."""


class Clean(ImageCondition):
    """The image as it is."""

    name = "clean"

    def apply(self, image: np.ndarray, key: str) -> Conditioned:
        return Conditioned(image)


CLEAN = Clean()
