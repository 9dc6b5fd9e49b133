"""MTCNN from facenet-pytorch, with the P/R/O-Net weights its wheel ships."""
from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from ..registry import register_detector
from ..types import Face
from .base import FaceDetector


@register_detector("mtcnn", description="MTCNN (facenet-pytorch), 5 landmarks",
                   requires={"facenet_pytorch": "facenet-pytorch", "torchvision": "torchvision"})
class MTCNNDetector(FaceDetector):
    """MTCNN cascade. Images of the same size are detected as one batch (on the GPU this is
    where MTCNN gains); landmarks come out image-left eye first."""

    def __init__(self, device="auto", weights_dir=None, min_face_size: int = 20,
                 thresholds=(0.6, 0.7, 0.7), max_side: int = 1280) -> None:
        super().__init__(device, max_side)
        import facenet_pytorch
        from facenet_pytorch import MTCNN

        self._net = MTCNN(keep_all=True, min_face_size=min_face_size, thresholds=list(thresholds),
                          device=self.device, select_largest=False, post_process=False)
        data = Path(facenet_pytorch.__file__).parent / "data"
        self.weight_paths = [data / f"{n}.pt" for n in ("pnet", "rnet", "onet")]

    def detect(self, images: Sequence[np.ndarray]) -> list[list[Face]]:
        fitted = [self.fit(image) for image in images]
        results: list[list[Face]] = [[] for _ in images]
        by_shape: dict[tuple, list[int]] = {}
        for index, (small, _) in enumerate(fitted):
            by_shape.setdefault(small.shape, []).append(index)
        for indices in by_shape.values():
            batch = np.stack([fitted[i][0] for i in indices])
            boxes, probs, points = self._net.detect(batch, landmarks=True)
            for i, b, p, lm in zip(indices, boxes, probs, points):
                factor = fitted[i][1]
                results[i] = [f.scaled(1.0 / factor) if factor != 1.0 else f for f in _faces(b, p, lm)]
        return results

    def detect_one(self, image: np.ndarray) -> list[Face]:
        return self.detect([image])[0]


def _faces(boxes, probs, points) -> list[Face]:
    if boxes is None:
        return []
    return [Face(np.asarray(b, dtype=np.float32), float(p), np.asarray(lm, dtype=np.float32))
            for b, p, lm in zip(boxes, probs, points)]
