"""``UnifiedFaceDetector``: one object per method, the notebook entry point."""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from .alignment import ARCFACE, CROP_SIZE, CropTemplate, align
from .errors import FaceBenchError
from .images import to_rgb_uint8
from .registry import create_detector, get_method, list_methods
from .selection import refine_targets
from .types import Face


class UnifiedFaceDetector:
    """Detect and align faces with any registered method.

    >>> det = UnifiedFaceDetector("yunet", weights_dir="../shared/weights")
    >>> crop = det.align(rgb_image)        # 112x112x3 uint8 RGB, or None if no face

    An unknown method name raises at once. A known method whose package or weights file is
    missing builds anyway with ``available == False`` and ``error`` saying what to install or
    where to put which file; using it raises that error.

    Images are HxWx3 uint8 RGB (gray, RGBA, uint16 and float [0, 1] arrays are converted).
    """

    def __init__(self, method: str = "yunet", device: str = "auto", weights_dir=None, **options) -> None:
        get_method(method)  # unknown names fail here, with the list of valid ones
        self.method = method
        self.error: FaceBenchError | None = None
        self.detector = None
        try:
            self.detector = create_detector(method, device=device, weights_dir=weights_dir, **options)
        except FaceBenchError as exc:
            self.error = exc

    @property
    def available(self) -> bool:
        return self.detector is not None

    @staticmethod
    def list_methods(weights_dir=None):
        """Every registered method with ``ready`` and the reason when it is not."""
        return list_methods(weights_dir)

    def _require(self):
        if self.detector is None:
            raise self.error
        return self.detector

    def detect(self, images: Sequence[np.ndarray]) -> list[list[Face]]:
        """All faces of each image (a batch in, one list of :class:`Face` per image out)."""
        return self._require().detect([to_rgb_uint8(im) for im in images])

    def detect_faces(self, image: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """All faces of one image as arrays: boxes ``(N, 4)`` x1y1x2y2 and landmarks ``(N, 5, 2)``."""
        faces = self.detect([image])[0]
        boxes = np.array([f.bbox for f in faces], dtype=np.float32).reshape(-1, 4)
        landmarks = np.array([f.landmarks for f in faces], dtype=np.float32).reshape(-1, 5, 2)
        return boxes, landmarks

    def target_face(self, image: np.ndarray) -> Face | None:
        """The face :func:`~face_alignment.selection.refine_targets` picks (the largest at the centre)."""
        image = to_rgb_uint8(image)
        return refine_targets(self._require(), [image], self.detect([image]))[0]

    def align(self, image: np.ndarray, size: int = CROP_SIZE, template: CropTemplate | None = None,
              mode: str = "similarity") -> np.ndarray | None:
        """The target face aligned, or None when no face is found: onto the ArcFace template at
        ``size`` by default, or onto an embedder's ``template`` (``embedder.model_input.template``),
        by alignment ``mode`` (:data:`~face_alignment.alignment.ALIGN_MODES`)."""
        return self.align_batch([image], size, template, mode)[0]

    def align_batch(self, images: Sequence[np.ndarray], size: int = CROP_SIZE, template: CropTemplate | None = None,
                    mode: str = "similarity") -> list[np.ndarray | None]:
        """:meth:`align` over a batch, detected in one call."""
        template = template or ARCFACE.scaled(size)
        rgb = [to_rgb_uint8(im) for im in images]
        targets = refine_targets(self._require(), rgb, self._require().detect(rgb))
        return [None if face is None else align(image, face, template, mode) for image, face in zip(rgb, targets)]

    def __repr__(self) -> str:
        state = "ready" if self.available else f"unavailable: {self.error}"
        return f"UnifiedFaceDetector({self.method!r}, {state})"
