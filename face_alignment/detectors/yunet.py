"""YuNet (OpenCV Zoo, 2023mar) through ``cv2.FaceDetectorYN``."""
from __future__ import annotations

import cv2
import numpy as np

from ..registry import register_detector
from ..types import Face
from ..weights import WeightSpec, resolve_weights
from .base import FaceDetector, opencv_errors_only

WEIGHTS = WeightSpec(
    "yunet", "yunet", "face_detection_yunet_2023mar.onnx",
    "8f2383e4dd3cfbb4553ea8718107fc0423210dc964f9f4280604804ed2552fa4",
    "https://github.com/opencv/opencv_zoo/raw/main/models/face_detection_yunet/"
    "face_detection_yunet_2023mar.onnx",
    "MIT", "opencv/opencv_zoo",
)


@register_detector("yunet", description="YuNet 2023mar (OpenCV FaceDetectorYN), 5 landmarks",
                   weights=(WEIGHTS,))
class YuNetDetector(FaceDetector):
    """YuNet runs on the CPU through OpenCV's DNN module; its rows are
    ``x, y, w, h, 5 x (x, y), score`` with the image-left eye first."""

    #: ``FaceDetectorYN`` is built with OpenCV's default backend and its CPU target, whatever
    #: ``device`` says (the pip wheels of OpenCV have no CUDA, and OpenCV 5's new graph engine
    #: ignores the target anyway: see :func:`~.base.opencv_errors_only`)
    real_device = "cpu"

    def __init__(self, device="auto", weights_dir=None, weights=None, score_threshold: float = 0.5,
                 nms_threshold: float = 0.3, top_k: int = 5000, max_side: int = 1280) -> None:
        super().__init__(device, max_side)
        path = resolve_weights(WEIGHTS, weights, weights_dir)
        self.weight_paths = [path]
        with opencv_errors_only():  # OpenCV 5 warns that its new engine ignores the (CPU) target
            self._net = cv2.FaceDetectorYN.create(str(path), "", (320, 320), score_threshold, nms_threshold, top_k)

    def detect_one(self, image: np.ndarray) -> list[Face]:
        height, width = image.shape[:2]
        self._net.setInputSize((width, height))
        _, rows = self._net.detect(cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
        if rows is None:
            return []
        faces = []
        for row in rows:
            x, y, w, h = row[:4]
            faces.append(Face(np.array([x, y, x + w, y + h]), row[14], row[4:14].reshape(5, 2)))
        return faces
