"""YOLOv5-face (deepcam-cn/yolov5-face) ONNX exports: anchor-based boxes plus five landmarks.

Two output layouts are understood:

- raw head maps, one per stride, ``(1, A*16, H, W)`` with ``A`` anchors of 16 values each
  (``x, y, w, h, obj``, five landmark ``x, y``, ``cls``), decoded here as the upstream
  ``Detect`` layer does: sigmoid on box/obj/cls, ``xy = (2 s - 0.5 + grid) * stride``,
  ``wh = (2 s)^2 * anchor``, ``landmark = raw * anchor + grid * stride``;
- one already-decoded ``(1, N, 16)`` output (exports that keep the ``Detect`` layer).
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ..errors import WeightsError
from ..registry import register_detector
from ..weights import WeightSpec
from .common import LetterboxOnnxDetector, cell_grid, sigmoid, xywh_to_xyxy

#: anchor (w, h) in input pixels per level, strides 8, 16, 32 (yolov5-face yamls)
ANCHORS = (
    ((4, 5), (8, 10), (13, 16)),
    ((23, 29), (43, 55), (73, 105)),
    ((146, 217), (231, 300), (335, 433)),
)
VALUES = 16  # x, y, w, h, obj, 10 landmark coordinates, cls

WEIGHTS = WeightSpec(
    "yolov5_face", "yolov5_face", "yolov5n-0.5.onnx",
    "67a107113568398d3d57325ff0b1cda1887a13f8e96a95c0fd15b7058ed1589f",
    None, "GPL-3.0", "deepcam-cn/yolov5-face (export of yolov5n-0.5)",
)


def decode_level(raw: np.ndarray, stride: float, anchors: Sequence[Sequence[float]]) -> np.ndarray:
    """One raw head map ``(A*16, H, W)`` to decoded rows ``(A*H*W, 16)`` in the layout of the
    upstream ``Detect`` output: ``cx, cy, w, h`` and landmarks in input pixels, obj and cls as
    probabilities."""
    count, (rows, cols) = len(anchors), raw.shape[1:]
    p = raw.reshape(count, VALUES, rows, cols).transpose(0, 2, 3, 1).reshape(-1, VALUES)
    grid = np.tile(cell_grid(rows, cols), (count, 1))
    anchor = np.repeat(np.asarray(anchors, np.float32), rows * cols, axis=0)
    out = np.empty_like(p)
    out[:, 0:2] = (sigmoid(p[:, 0:2]) * 2 - 0.5 + grid) * stride
    out[:, 2:4] = (sigmoid(p[:, 2:4]) * 2) ** 2 * anchor
    out[:, 4] = sigmoid(p[:, 4])
    out[:, 5:15] = p[:, 5:15] * np.tile(anchor, 5) + np.tile(grid * stride, 5)
    out[:, 15] = sigmoid(p[:, 15])
    return out


@register_detector("yolov5_face", description="YOLOv5-face n-0.5 (ONNX Runtime), 5 landmarks",
                   requires={"onnxruntime": "onnxruntime"}, weights=(WEIGHTS,))
class YOLOv5FaceDetector(LetterboxOnnxDetector):
    """YOLOv5-face on a letterboxed RGB/255 input; score is ``obj * cls``. Landmarks come out
    image-left eye first. ``anchors`` overrides :data:`ANCHORS` for exports trained with others."""

    default_weights = WEIGHTS

    def __init__(self, device="auto", weights_dir=None, weights=None, score_threshold: float = 0.5,
                 nms_threshold: float = 0.45, input_size: int = 640, anchors=ANCHORS, upscale: bool = False) -> None:
        super().__init__(device, weights_dir, weights, score_threshold, nms_threshold, input_size, upscale)
        self.anchors = anchors
        shapes = [o.shape for o in self._session.get_outputs()]
        if not (len(shapes) == 1 and len(shapes[0]) == 3) and len(shapes) != len(anchors):
            raise WeightsError(f"{self.weight_paths[0]}: expected {len(anchors)} raw head outputs or one "
                               f"(1, N, {VALUES}) output, got shapes {shapes}")

    def decode(self, outputs):
        if len(outputs) == 1 and outputs[0].ndim == 2:
            rows = outputs[0]
        else:
            levels = sorted(outputs, key=lambda o: -o.shape[-1])  # finest map (stride 8) first
            rows = np.concatenate([decode_level(o, self.input_hw[0] / o.shape[1], a)
                                   for o, a in zip(levels, self.anchors)])
        return xywh_to_xyxy(rows[:, :4]), rows[:, 4] * rows[:, 15], rows[:, 5:15]
