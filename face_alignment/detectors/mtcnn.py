"""MTCNN from facenet-pytorch, with the P/R/O-Net weights its wheel ships."""
from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from ..registry import register_detector
from ..runtime import module_device
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

    @property
    def real_device(self) -> str:
        """Where the three networks' weights are."""
        return module_device(self._net)

    def detect(self, images: Sequence[np.ndarray]) -> list[list[Face]]:
        return self.detect_by_size(images, self._detect_same_size)

    def detect_one(self, image: np.ndarray) -> list[Face]:
        return self.detect([image])[0]

    def _detect_same_size(self, images: list[np.ndarray]) -> list[list[Face]]:
        boxes, probs, points = self._net.detect(np.stack(images), landmarks=True)
        return [_faces(b, p, lm) for b, p, lm in zip(boxes, probs, points)]


def _faces(boxes, probs, points) -> list[Face]:
    if boxes is None:
        return []
    return [Face(np.asarray(b, dtype=np.float32), float(p), np.asarray(lm, dtype=np.float32))
            for b, p, lm in zip(boxes, probs, points)]
