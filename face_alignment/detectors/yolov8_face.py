"""YOLOv8-face (derronqi/yolov8-face and other YOLOv8-pose face models with five keypoints).

Three ways in, one detector:

- an ONNX export with raw per-stride maps ``(1, 4R + 1 + 15, H, W)``: ``4 x R`` DFL box bins
  (``R = 16``), one face logit, five keypoints ``(x, y, conf)``, decoded as the Ultralytics
  ``Pose`` head does: box sides are the expectation of a softmax over the bins, measured from
  the anchor point ``(grid + 0.5) * stride``; keypoint ``x = (2 raw + grid) * stride``;
- the standard Ultralytics single-output export ``(1, 4 + 1 + 15, N)``: centre-size boxes,
  face probability and keypoints already decoded in input pixels;
- a ``.pt`` YOLOv8-pose checkpoint (one class, five keypoints) through ``ultralytics.YOLO``.
"""
from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np

from ..errors import MissingDependencyError, WeightsError
from ..registry import register_detector
from ..types import Face
from ..weights import WeightSpec
from .base import FaceDetector
from .common import LetterboxOnnxDetector, cell_grid, sigmoid, xywh_to_xyxy

KEYPOINTS = 5
KEYPOINT_VALUES = 3 * KEYPOINTS  # x, y, conf per keypoint

WEIGHTS = WeightSpec(
    "yolov8_face", "yolov8_face", "yolov8-lite-t.onnx",
    "caa9eb121eee8fbf25a5985d3cee4e314df5a08feb4bb8c224fecdeb4afd9b86",
    None, "GPL-3.0", "derronqi/yolov8-face (export of yolov8-lite-t)",
)


def dfl_expectation(logits: np.ndarray) -> np.ndarray:
    """Distribution focal loss decoding: the expected bin index of a softmax over the last axis
    (``(..., R)`` logits to ``(...)`` distances in cells)."""
    weights = np.exp(logits - logits.max(axis=-1, keepdims=True))
    weights /= weights.sum(axis=-1, keepdims=True)
    return weights @ np.arange(logits.shape[-1], dtype=np.float32)


def decode_level(raw: np.ndarray, stride: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One raw map ``(4R + 16, H, W)`` to boxes ``(H*W, 4)`` x1y1x2y2, face probabilities
    ``(H*W,)`` and keypoints ``(H*W, 10)`` interleaved ``x, y``, all in input pixels."""
    channels, rows, cols = raw.shape
    bins = (channels - 1 - KEYPOINT_VALUES) // 4
    p = raw.reshape(channels, rows * cols).T
    grid = cell_grid(rows, cols)
    ltrb = dfl_expectation(p[:, :4 * bins].reshape(-1, 4, bins))
    centre = grid + 0.5
    boxes = np.concatenate([centre - ltrb[:, :2], centre + ltrb[:, 2:]], axis=1) * stride
    keypoints = p[:, 4 * bins + 1:].reshape(-1, KEYPOINTS, 3)[:, :, :2]
    keypoints = (keypoints * 2 + grid[:, None, :]) * stride
    return boxes, sigmoid(p[:, 4 * bins]), keypoints.reshape(-1, 2 * KEYPOINTS)


class YOLOv8FaceOnnx(LetterboxOnnxDetector):
    """The ONNX route: raw per-stride maps or the decoded single-output layout."""

    default_weights = WEIGHTS

    def __init__(self, device="auto", weights_dir=None, weights=None, score_threshold: float = 0.5,
                 nms_threshold: float = 0.45, input_size: int = 640, upscale: bool = False) -> None:
        super().__init__(device, weights_dir, weights, score_threshold, nms_threshold, input_size, upscale)
        shapes = [o.shape for o in self._session.get_outputs()]
        single = len(shapes) == 1 and len(shapes[0]) == 3 and shapes[0][1] == 5 + KEYPOINT_VALUES
        if not single and not all(len(s) == 4 for s in shapes):
            raise WeightsError(f"{self.weight_paths[0]}: expected raw (1, C, H, W) maps per stride or one "
                               f"(1, {5 + KEYPOINT_VALUES}, N) output, got shapes {shapes}")

    def decode(self, outputs):
        if len(outputs) == 1 and outputs[0].ndim == 2:
            rows = outputs[0].T
            keypoints = rows[:, 5:].reshape(-1, KEYPOINTS, 3)[:, :, :2].reshape(-1, 2 * KEYPOINTS)
            return xywh_to_xyxy(rows[:, :4]), rows[:, 4], keypoints
        levels = [decode_level(o, self.input_hw[0] / o.shape[1]) for o in outputs]
        return tuple(np.concatenate(parts) for parts in zip(*levels))


class YOLOv8FaceUltralytics(FaceDetector):
    """The ``.pt`` route: a YOLOv8-pose face model (one class, five keypoints) run by
    ``ultralytics.YOLO``, which does its own letterboxing and NMS. Ultralytics unpickles the
    whole checkpoint (it is not a plain state dict), which can run code: it is refused unless
    the caller says ``trusted=True``."""

    def __init__(self, path: Path, device="auto", score_threshold: float = 0.5, nms_threshold: float = 0.45,
                 input_size: int = 640, trusted: bool = False) -> None:
        super().__init__(device, max_side=0)
        if not trusted:
            raise WeightsError(f"{path} is an ultralytics checkpoint, a full pickle that can run code when loaded; "
                               "pass trusted=True if you trust the file, or use an ONNX export of it")
        try:
            from ultralytics import YOLO
        except ImportError as exc:
            raise MissingDependencyError("a .pt YOLOv8-face model needs ultralytics: pip install ultralytics") from exc
        self.weight_paths = [path]
        self.score_threshold, self.nms_threshold, self.input_size = score_threshold, nms_threshold, input_size
        self._model = YOLO(str(path), task="pose")
        kpt_shape = tuple(getattr(self._model.model, "kpt_shape", ()) or ())
        if self._model.task != "pose" or kpt_shape[:1] != (KEYPOINTS,):
            raise WeightsError(f"{path} is not a five-keypoint YOLOv8-pose model "
                               f"(task {self._model.task!r}, kpt_shape {kpt_shape})")

    def detect(self, images: Sequence[np.ndarray]) -> list[list[Face]]:
        if not images:
            return []
        bgr = [cv2.cvtColor(image, cv2.COLOR_RGB2BGR) for image in images]  # ultralytics reads arrays as BGR
        results = self._model.predict(bgr, conf=self.score_threshold, iou=self.nms_threshold,
                                      imgsz=self.input_size, device=self.device, verbose=False)
        faces = []
        for result in results:
            boxes = result.boxes.xyxy.cpu().numpy()
            scores = result.boxes.conf.cpu().numpy()
            points = result.keypoints.xy.cpu().numpy()
            faces.append([Face(b, s, p) for b, s, p in zip(boxes, scores, points)])
        return faces

    def detect_one(self, image: np.ndarray) -> list[Face]:
        return self.detect([image])[0]


@register_detector("yolov8_face", description="YOLOv8-face lite-t (ONNX Runtime; a .pt via ultralytics with "
                   "weights=), 5 landmarks", requires={"onnxruntime": "onnxruntime"}, weights=(WEIGHTS,))
class YOLOv8FaceDetector(FaceDetector):
    """YOLOv8-face on a letterboxed RGB/255 input. ``weights`` may be an ONNX export (either
    layout) or a ``.pt`` YOLOv8-pose face model, which runs through ultralytics. Landmarks come
    out image-left eye first. ``upscale``: see :class:`~.common.LetterboxOnnxDetector` (ONNX only)."""

    def __init__(self, device="auto", weights_dir=None, weights=None, score_threshold: float = 0.5,
                 nms_threshold: float = 0.45, input_size: int = 640, trusted: bool = False,
                 upscale: bool = False) -> None:
        super().__init__(device, max_side=0)
        if weights is not None and Path(weights).suffix == ".pt":
            if not Path(weights).is_file():
                raise WeightsError(f"weights file {weights} does not exist")
            self._backend = YOLOv8FaceUltralytics(Path(weights), device, score_threshold, nms_threshold, input_size,
                                                  trusted)
        else:
            self._backend = YOLOv8FaceOnnx(device, weights_dir, weights, score_threshold, nms_threshold, input_size,
                                           upscale)
        self.weight_paths = self._backend.weight_paths

    @property
    def real_device(self) -> str:
        return self._backend.real_device

    def detect(self, images: Sequence[np.ndarray]) -> list[list[Face]]:
        return self._backend.detect(images)

    def detect_one(self, image: np.ndarray) -> list[Face]:
        return self._backend.detect_one(image)
