"""Five-point alignment onto an embedding model's crop template (the ArcFace 112x112 one by default)."""
from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

#: ArcFace / insightface template for a 112x112 crop, in LANDMARK_NAMES order
#: (insightface ``utils/face_align.py``, ``arcface_dst``).
ARCFACE_TEMPLATE = np.array(
    [
        [38.2946, 51.6963],
        [73.5318, 51.5014],
        [56.0252, 71.7366],
        [41.5493, 92.3655],
        [70.7299, 92.2041],
    ],
    dtype=np.float32,
)
CROP_SIZE = 112


@dataclass(frozen=True)
class CropTemplate:
    """What an embedding model expects of a face crop: a square of ``size`` pixels with the five
    points (in LANDMARK_NAMES order, crop pixels) at ``points``: the target of every alignment."""

    size: int
    points: tuple[tuple[float, float], ...]

    def __post_init__(self) -> None:
        points = tuple((float(x), float(y)) for x, y in np.asarray(self.points, np.float64).reshape(5, 2))
        object.__setattr__(self, "points", points)
        if int(self.size) < 1:
            raise ValueError(f"a crop template needs a positive size, got {self.size}")
        object.__setattr__(self, "size", int(self.size))

    @property
    def array(self) -> np.ndarray:
        """The five points, ``(5, 2)`` float32."""
        return np.array(self.points, np.float32)

    def scaled(self, size: int) -> CropTemplate:
        """The same template for a crop of ``size`` pixels."""
        return CropTemplate(size, np.array(self.points, np.float64) * (size / self.size))


#: the ArcFace / insightface template (EdgeFace and insightface's recognition models)
ARCFACE = CropTemplate(CROP_SIZE, ARCFACE_TEMPLATE)


def similarity_transform(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """Least-squares similarity transform (rotation, uniform scale, translation) mapping
    ``src`` points onto ``dst`` points (Umeyama 1991, no reflection).

    Parameters
    ----------
    src, dst : ndarray, shape (N, 2)

    Returns
    -------
    ndarray, shape (2, 3), float64
        The affine matrix for ``cv2.warpAffine``.
    """
    src = np.asarray(src, dtype=np.float64)
    dst = np.asarray(dst, dtype=np.float64)
    src_mean, dst_mean = src.mean(axis=0), dst.mean(axis=0)
    src_c, dst_c = src - src_mean, dst - dst_mean
    cov = dst_c.T @ src_c / len(src)
    u, s, vt = np.linalg.svd(cov)
    d = np.ones(2)
    if np.linalg.det(u) * np.linalg.det(vt) < 0:
        d[1] = -1.0
    rotation = u @ np.diag(d) @ vt
    src_var = (src_c**2).sum() / len(src)
    scale = (s * d).sum() / src_var if src_var > 0 else 1.0
    matrix = np.empty((2, 3))
    matrix[:, :2] = scale * rotation
    matrix[:, 2] = dst_mean - scale * rotation @ src_mean
    return matrix


def align_face(image: np.ndarray, landmarks: np.ndarray, size: int = CROP_SIZE) -> np.ndarray:
    """Warp ``image`` so that its five ``landmarks`` land on the ArcFace template.

    Parameters
    ----------
    image : ndarray, HxWx3 uint8 RGB
    landmarks : ndarray, shape (5, 2), in LANDMARK_NAMES order
    size : int
        Output side; the template is scaled from 112 (e.g. 224 for a 2x crop).

    Returns
    -------
    ndarray, size x size x 3 uint8 RGB
    """
    template = ARCFACE_TEMPLATE * (size / CROP_SIZE)
    matrix = similarity_transform(np.asarray(landmarks).reshape(5, 2), template)
    return cv2.warpAffine(image, matrix, (size, size), flags=cv2.INTER_LINEAR, borderValue=0.0)
