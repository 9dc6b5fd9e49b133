"""Top-down keypoints: a box detector, then an ONNX keypoint model on each face crop.

Two output kinds are decoded:

- SimCC (RTMPose, RTMW): ``simcc_x`` (N, K, W * r) and ``simcc_y`` (N, K, H * r), one 1-D
  classification per axis; a keypoint is the argmax divided by the split ratio ``r`` (2.0).
- Regression (PFLD and kin): one (N, 2K) output of ``(x, y)`` pairs normalised to the crop.

The crop follows rtmlib: the box centre, the box size times ``padding``, widened to the model's
aspect ratio, warped by one affine map that is inverted to carry the keypoints back.
The keypoints are reduced to five by :mod:`face_alignment.landmark_maps` (by their count).
"""
from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from ..errors import FaceBenchError, WeightsError
from ..landmark_maps import to_five
from ..registry import create_detector, register_detector
from ..runtime import joined_devices, onnx_session, session_device
from ..types import Face
from ..weights import WeightSpec, resolve_weights
from .base import FaceDetector
from .yunet import WEIGHTS as YUNET_WEIGHTS

_IMAGENET_MEAN = (123.675, 116.28, 103.53)
_IMAGENET_STD = (58.395, 57.12, 57.375)


@dataclass(frozen=True)
class KeypointModel:
    """How one keypoint model wants its crop, and how its output is read.

    ``input_size`` is (width, height); ``mean`` / ``std`` apply to 0-255 values in the channel
    order ``bgr`` says; ``simcc_split`` is None for regression models; ``weights`` is the
    default file, None where the user must pass ``weights=``.
    """

    input_size: tuple[int, int]
    padding: float
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    bgr: bool
    simcc_split: float | None
    weights: WeightSpec | None
    origin: str


PFLD = WeightSpec(
    "pfld", "landmarks", "pfld.onnx",
    "7d7bbd5c6a1d9272e58d9773898284a1905d872eba9a662df9b5f20f1ba6f83e",
    None, "none stated (test use only)", "cunjian/pytorch_face_landmark",
)

KEYPOINT_MODELS: dict[str, KeypointModel] = {
    # cunjian/pytorch_face_landmark: values / 255, no mean or std, BGR as its batch demo feeds it
    # (its camera demo feeds RGB: on LFW the two differ by 0.0004 in crop cosine); its demos crop a
    # square of 1.1 to 1.2 box sides: 1.1 of YuNet's box aligned best on 250 LFW images.
    "pfld": KeypointModel((112, 112), 1.1, (0.0, 0.0, 0.0), (255.0, 255.0, 255.0), True, None, PFLD,
                          "cunjian/pytorch_face_landmark PFLD, 68 points"),
    # mmpose RTMPose face6 (LaPa 106 points) and RTMW / DWPose (COCO-WholeBody 133): trained on RGB
    # (bgr_to_rgb=True in their configs; rtmlib feeds BGR, its issue #48), box padding 1.25.
    "rtmpose_face106": KeypointModel((256, 256), 1.25, _IMAGENET_MEAN, _IMAGENET_STD, False, 2.0, None,
                                     "mmpose rtmpose-*_simcc-face6 256x256 ONNX"),
    "rtmw_wholebody133": KeypointModel((288, 384), 1.25, _IMAGENET_MEAN, _IMAGENET_STD, False, 2.0, None,
                                       "mmpose RTMW / DWPose wholebody 384x288 ONNX"),
}


def crop_matrix(box: np.ndarray, input_size: tuple[int, int], padding: float) -> np.ndarray:
    """The 2x3 affine map from image pixels to the crop of ``box`` (x1, y1, x2, y2): centred,
    ``padding`` times the box, enlarged on one side to the ``input_size`` (w, h) aspect ratio."""
    width, height = input_size
    x1, y1, x2, y2 = (float(v) for v in box)
    span_w, span_h = (x2 - x1) * padding, (y2 - y1) * padding
    span_w = max(span_w, span_h * width / height)
    scale = width / span_w
    cx, cy = (x1 + x2) / 2.0, (y1 + y2) / 2.0
    return np.array([[scale, 0.0, width / 2.0 - scale * cx], [0.0, scale, height / 2.0 - scale * cy]])


def decode_simcc(simcc_x: np.ndarray, simcc_y: np.ndarray, split_ratio: float = 2.0):
    """Keypoints from SimCC outputs, as rtmlib decodes them.

    Parameters
    ----------
    simcc_x, simcc_y : ndarray, shapes (N, K, W * r) and (N, K, H * r)

    Returns
    -------
    points : ndarray, shape (N, K, 2), float32, in crop pixels
    scores : ndarray, shape (N, K), the lower of the two axis maxima
    """
    points = np.stack([simcc_x.argmax(axis=2), simcc_y.argmax(axis=2)], axis=-1).astype(np.float32)
    scores = np.minimum(simcc_x.max(axis=2), simcc_y.max(axis=2))
    return points / split_ratio, scores


def decode_regression(output: np.ndarray, input_size: tuple[int, int]) -> np.ndarray:
    """Keypoints (N, K, 2) in crop pixels from (N, 2K) coordinates normalised to the crop."""
    return output.reshape(len(output), -1, 2) * np.asarray(input_size, dtype=np.float32)


@register_detector("rtmpose", description="top-down: YuNet box + ONNX keypoint model (PFLD-68 by default; "
                   "RTMPose face-106 / wholebody-133 SimCC with weights=), mapped to 5", weights=(YUNET_WEIGHTS, PFLD))
class TopDownDetector(FaceDetector):
    """A box detector from the registry, then ``keypoint_model`` (a key of
    :data:`KEYPOINT_MODELS`) on every box. ``weights`` is the keypoint model's ONNX file (needed
    for the RTMPose models, which have no default file); ``dense`` holds all keypoints.
    Box and score are the box detector's."""

    def __init__(self, device="auto", weights_dir=None, weights=None, keypoint_model: str = "pfld",
                 box_detector: str = "yunet", box_options: dict | None = None, max_side: int = 1280) -> None:
        super().__init__(device, max_side)
        try:
            self.model = KEYPOINT_MODELS[keypoint_model]
        except KeyError:
            raise FaceBenchError(
                f"unknown keypoint model {keypoint_model!r}; known: {', '.join(KEYPOINT_MODELS)}") from None
        if weights is None and self.model.weights is None:
            raise WeightsError(f"keypoint model {keypoint_model!r} ({self.model.origin}) has no default file: "
                               "pass weights='path/to/model.onnx'")
        path = resolve_weights(self.model.weights or keypoint_model, weights, weights_dir)
        self._boxes = create_detector(box_detector, device=device, weights_dir=weights_dir, **(box_options or {}))
        self._session = onnx_session(str(path), self.device)
        self._input = self._session.get_inputs()[0].name
        self.weight_paths = [*self._boxes.weight_paths, path]

    @property
    def real_device(self) -> str:
        """The box detector's device, then the keypoint session's where they differ (``cpu+cuda:0``)."""
        return joined_devices(self._boxes.real_device, session_device(self._session))

    def detect_one(self, image: np.ndarray) -> list[Face]:
        boxes = self._boxes.detect([image])[0]
        if not boxes:
            return []
        matrices = [crop_matrix(face.bbox, self.model.input_size, self.model.padding) for face in boxes]
        batch = np.stack([self._prepare(image, matrix) for matrix in matrices])
        outputs = self._session.run(None, {self._input: batch})
        if self.model.simcc_split is None:
            points = decode_regression(outputs[0], self.model.input_size)
        else:
            points, _ = decode_simcc(outputs[0], outputs[1], self.model.simcc_split)
        faces = []
        for face, matrix, crop_points in zip(boxes, matrices, points):
            inverse = cv2.invertAffineTransform(matrix)
            dense = crop_points @ inverse[:, :2].T + inverse[:, 2]
            faces.append(Face(face.bbox, face.score, to_five(dense), dense))
        return faces

    def _prepare(self, image: np.ndarray, matrix: np.ndarray) -> np.ndarray:
        """The normalised CHW float32 crop."""
        crop = cv2.warpAffine(image, matrix, self.model.input_size, flags=cv2.INTER_LINEAR, borderValue=0.0)
        if self.model.bgr:
            crop = crop[:, :, ::-1]
        crop = (crop.astype(np.float32) - np.float32(self.model.mean)) / np.float32(self.model.std)
        return crop.transpose(2, 0, 1)
