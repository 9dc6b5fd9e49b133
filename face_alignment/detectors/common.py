"""Pieces shared by the anchor-based detectors (RetinaFace, YOLOv5-face, YOLOv8-face): cell grids
and prior boxes, letterboxing, greedy NMS, and the conversion of decoded arrays to :class:`Face`.

One implementation of each, so that the three detectors differ only in how they decode their
heads. Everything here works on NumPy arrays in pixel units unless a docstring says otherwise.
"""
from __future__ import annotations

from abc import abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np

from ..runtime import onnx_session, session_device
from ..types import Face
from ..weights import WeightSpec, resolve_weights
from .base import FaceDetector


def cell_grid(rows: int, cols: int) -> np.ndarray:
    """Integer cell coordinates of a ``rows x cols`` feature map, row-major (the order in which a
    head's ``HxW`` map flattens), as ``(rows * cols, 2)`` float32 ``(x, y)``."""
    ys, xs = np.mgrid[0:rows, 0:cols]
    return np.stack([xs.ravel(), ys.ravel()], axis=1).astype(np.float32)


def prior_boxes(height: int, width: int, min_sizes: Sequence[Sequence[int]], steps: Sequence[int]) -> np.ndarray:
    """SSD-style priors of RetinaFace for an input of ``height x width`` pixels.

    For each level (``step``), each cell in row-major order and each of that level's
    ``min_sizes``: ``(cx, cy, w, h)`` normalised by the input size, the centre at the middle of
    the cell. A level has ``ceil(size / step)`` cells per side, which is what stride-2
    convolutions with padding 1 produce for any input size.

    Returns
    -------
    ndarray, shape (N, 4), float32
    """
    levels = []
    for sizes, step in zip(min_sizes, steps):
        rows, cols = -(-height // step), -(-width // step)
        centres = (cell_grid(rows, cols) + 0.5) * step / np.array([width, height], np.float32)
        anchors = len(sizes)
        wh = np.array([[s / width, s / height] for s in sizes], np.float32)
        level = np.concatenate([np.repeat(centres, anchors, axis=0), np.tile(wh, (rows * cols, 1))], axis=1)
        levels.append(level)
    return np.concatenate(levels).astype(np.float32)


def sigmoid(x: np.ndarray) -> np.ndarray:
    """The logistic function, without overflow for large negative logits (``1 / (1 + exp(-x))``
    overflows in ``exp`` there and warns)."""
    return 0.5 * (1.0 + np.tanh(0.5 * np.asarray(x)))


@dataclass(frozen=True)
class Letterbox:
    """How an image was placed on a square network input: scaled by ``scale`` then shifted by
    ``(pad_x, pad_y)``. :meth:`to_image` undoes it for points."""

    scale: float
    pad_x: float
    pad_y: float

    def to_image(self, points: np.ndarray) -> np.ndarray:
        """``(..., 2k)`` interleaved ``x, y`` network-input coordinates to image coordinates."""
        points = np.asarray(points, dtype=np.float32)
        shift = np.tile(np.array([self.pad_x, self.pad_y], np.float32), points.shape[-1] // 2)
        return (points - shift) / self.scale


def letterbox(image: np.ndarray, height: int, width: int, fill: int = 114,
              upscale: bool = True) -> tuple[np.ndarray, Letterbox]:
    """``image`` resized to fit ``height x width`` with its aspect ratio kept and centred on a
    ``fill``-grey canvas, as the YOLO detectors were trained; a smaller image is enlarged only
    with ``upscale``."""
    h, w = image.shape[:2]
    scale = min(height / h, width / w, *(() if upscale else (1.0,)))
    new_w, new_h = max(1, round(w * scale)), max(1, round(h * scale))
    interp = cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR
    resized = cv2.resize(image, (new_w, new_h), interpolation=interp) if (new_w, new_h) != (w, h) else image
    pad_x, pad_y = (width - new_w) // 2, (height - new_h) // 2
    canvas = np.full((height, width, image.shape[2]), fill, dtype=image.dtype)
    canvas[pad_y:pad_y + new_h, pad_x:pad_x + new_w] = resized
    return canvas, Letterbox(scale, float(pad_x), float(pad_y))


def nms(boxes: np.ndarray, scores: np.ndarray, iou_threshold: float) -> np.ndarray:
    """Greedy non-maximum suppression: indices of the kept ``boxes`` (``(N, 4)`` x1y1x2y2),
    highest score first; a box is dropped when its IoU with a kept one exceeds the threshold."""
    order = np.argsort(-scores, kind="stable")
    areas = np.clip(boxes[:, 2] - boxes[:, 0], 0, None) * np.clip(boxes[:, 3] - boxes[:, 1], 0, None)
    keep = []
    while order.size:
        best, rest = order[0], order[1:]
        keep.append(best)
        x1 = np.maximum(boxes[best, 0], boxes[rest, 0])
        y1 = np.maximum(boxes[best, 1], boxes[rest, 1])
        x2 = np.minimum(boxes[best, 2], boxes[rest, 2])
        y2 = np.minimum(boxes[best, 3], boxes[rest, 3])
        inter = np.clip(x2 - x1, 0, None) * np.clip(y2 - y1, 0, None)
        iou = inter / np.maximum(areas[best] + areas[rest] - inter, 1e-9)
        order = rest[iou <= iou_threshold]
    return np.asarray(keep, dtype=np.int64)


def xywh_to_xyxy(boxes: np.ndarray) -> np.ndarray:
    """Centre-size boxes ``(N, 4)`` to corner boxes."""
    half = boxes[:, 2:4] / 2
    return np.concatenate([boxes[:, :2] - half, boxes[:, :2] + half], axis=1)


def select_faces(boxes: np.ndarray, scores: np.ndarray, landmarks: np.ndarray, score_threshold: float,
                 iou_threshold: float, top_k: int = 5000) -> list[Face]:
    """Decoded candidates to faces: those scoring at least ``score_threshold``, the ``top_k`` best
    of them through :func:`nms`, best first.

    Parameters
    ----------
    boxes : ndarray, shape (N, 4), x1y1x2y2 in image pixels
    scores : ndarray, shape (N,)
    landmarks : ndarray, shape (N, 10) or (N, 5, 2), image pixels in the detector's order
    """
    passing = np.flatnonzero(scores >= score_threshold)
    passing = passing[np.argsort(-scores[passing], kind="stable")[:top_k]]
    boxes, scores = boxes[passing], scores[passing]
    landmarks = np.asarray(landmarks)[passing].reshape(-1, 5, 2)
    keep = nms(boxes, scores, iou_threshold)
    return [Face(boxes[i], min(1.0, float(scores[i])), landmarks[i]) for i in keep]


class LetterboxOnnxDetector(FaceDetector):
    """Base of the ONNX YOLO face detectors: RGB/255 input letterboxed to the session's input size,
    raw outputs decoded by :meth:`decode`, then mapped back, thresholded and NMS'd.

    The input size and batch size are read from the session, so other exports with the same
    output layout work; a dynamic size falls back to ``input_size``, and a dynamic batch runs
    a whole ``detect`` batch in one call (letterboxed images all have the same size).

    An image smaller than the input is placed at its own size unless ``upscale``: enlarging a
    loose crop makes its face larger than the faces the models were trained on (WIDER FACE). On
    296 CFP images (every 20th of the FP protocol) yolov5n-0.5 found 205 enlarged and 292 at their
    own size, yolov8-lite-t 281 and 290; on 193 LFW images both found every face either way.
    """

    #: the default weights file, declared with the subclass's ``register_detector``
    default_weights: WeightSpec

    def __init__(self, device="auto", weights_dir=None, weights=None, score_threshold: float = 0.5,
                 nms_threshold: float = 0.45, input_size: int = 640, upscale: bool = False) -> None:
        super().__init__(device, max_side=0)
        path = resolve_weights(self.default_weights, weights, weights_dir)
        self.weight_paths = [path]
        self.score_threshold, self.nms_threshold, self.upscale = score_threshold, nms_threshold, upscale
        self._session = onnx_session(str(path), self.device)
        batch, _, height, width = self._session.get_inputs()[0].shape
        self._input_name = self._session.get_inputs()[0].name
        self.input_hw = tuple(d if isinstance(d, int) else input_size for d in (height, width))
        self._batch = batch if isinstance(batch, int) else None

    @property
    def real_device(self) -> str:
        """The provider ONNX Runtime granted: ``cuda:N``, or ``cpu`` (the CPU wheel, or CUDA failed)."""
        return session_device(self._session)

    @abstractmethod
    def decode(self, outputs: Sequence[np.ndarray]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """One image's outputs (batch axis removed) to candidate boxes ``(N, 4)`` x1y1x2y2,
        scores ``(N,)`` and landmarks ``(N, 10)``, in network-input pixels."""

    def detect(self, images: Sequence[np.ndarray]) -> list[list[Face]]:
        boxed = [letterbox(image, *self.input_hw, upscale=self.upscale) for image in images]
        step = self._batch or max(1, len(images))
        results: list[list[Face]] = []
        for start in range(0, len(boxed), step):
            chunk = boxed[start:start + step]
            batch = np.stack([canvas for canvas, _ in chunk]).transpose(0, 3, 1, 2).astype(np.float32) / 255.0
            outputs = self._session.run(None, {self._input_name: batch})
            for i, (_, placement) in enumerate(chunk):
                boxes, scores, landmarks = self.decode([out[i] for out in outputs])
                results.append(select_faces(placement.to_image(boxes), scores, placement.to_image(landmarks),
                                            self.score_threshold, self.nms_threshold))
        return results

    def detect_one(self, image: np.ndarray) -> list[Face]:
        return self.detect([image])[0]
