"""dlib: the HOG frontal detector or the MMOD CNN detector, then a shape predictor.

The model files come with the ``face_recognition_models`` package (its folder is found without
importing it: the package imports ``pkg_resources``). Landmarks default to the 68-point
predictor, mapped to five points by :data:`~face_alignment.landmark_maps.IBUG_68`; the 5-point
predictor (eye corners and the point under the nose, no mouth) is ``landmarks="5"``, with the
mouth corners derived by :func:`five_from_dlib5`. Note the 68-point model's training data
(iBUG 300-W) is licensed for research only; the 5-point model has no such restriction.
"""
from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np

from ..errors import FaceBenchError, MissingDependencyError
from ..landmark_maps import IBUG_68, to_five
from ..registry import register_detector
from ..runtime import joined_devices
from ..types import Face
from .base import FaceDetector

_REQUIRES = {"dlib": "dlib-bin", "face_recognition_models": "face-recognition-models"}

#: dlib's 5-point predictor: image-right eye outer / inner corner, image-left eye outer / inner
#: corner, the base of the nose (sub-nasal point).
DLIB5_RIGHT_EYE, DLIB5_LEFT_EYE, DLIB5_NOSE = (0, 1), (2, 3), 4

#: mouth corners from the 5-point predictor: the nose base moved by -/+ MOUTH_ALONG eye distances
#: along the eye axis and MOUTH_ACROSS down the face; nose tip the nose base moved NOSE_ACROSS.
#: Least squares against MTCNN's points on 500 LFW images.
MOUTH_ALONG, MOUTH_ACROSS, NOSE_ACROSS = 0.46, 0.34, -0.17

#: where the HOG detector puts its (square) box relative to the eyes, in eye distances: centre
#: offset from the eye midpoint (x, y) and side. The 68-point predictor was trained on HOG boxes;
#: medians over 157 faces of 150 View-1 training images (pairsDevTrain.txt, not the test pairs).
HOG_BOX_DX, HOG_BOX_DY, HOG_BOX_SIDE = 0.066, 0.557, 2.506


def model_file(filename: str) -> Path:
    """A model file of the ``face_recognition_models`` package."""
    spec = importlib.util.find_spec("face_recognition_models")
    if spec is None or not spec.submodule_search_locations:
        raise MissingDependencyError("dlib methods need the model files: pip install face-recognition-models")
    path = Path(spec.submodule_search_locations[0]) / "models" / filename
    if not path.is_file():
        raise FaceBenchError(f"{path} is missing: reinstall face-recognition-models")
    return path


def five_from_dlib5(points: np.ndarray) -> np.ndarray:
    """Five points (LANDMARK_NAMES order) from dlib's 5-point predictor output (5, 2)."""
    left_eye = points[list(DLIB5_LEFT_EYE)].mean(axis=0)
    right_eye = points[list(DLIB5_RIGHT_EYE)].mean(axis=0)
    axis = right_eye - left_eye
    down = np.array([-axis[1], axis[0]])
    base = points[DLIB5_NOSE]
    mouth = base + MOUTH_ACROSS * down
    return np.stack([left_eye, right_eye, base + NOSE_ACROSS * down,
                     mouth - MOUTH_ALONG * axis, mouth + MOUTH_ALONG * axis]).astype(np.float32)


def _score(margin: float) -> float:
    """dlib's detection margins are unbounded; the logistic function maps them into (0, 1)."""
    return float(1.0 / (1.0 + np.exp(-margin)))


class _DlibDetector(FaceDetector):
    """Box detection at growing upsample levels until a face is found, then the shape predictor.

    ``upsample`` lists the levels to try: each doubles the image, halving the smallest face
    found (HOG: ~80 px at level 0). Trying 0 first costs LFW-sized faces nothing; the further
    levels find small faces in small images.
    """

    def __init__(self, device, landmarks: str, upsample, max_side: int) -> None:
        super().__init__(device, max_side)
        import dlib

        if landmarks not in ("68", "5"):
            raise FaceBenchError(f"landmarks must be '68' or '5', not {landmarks!r}")
        self._dlib = dlib
        self.upsample = tuple(upsample)
        predictor = model_file(f"shape_predictor_{landmarks}_face_landmarks.dat")
        self._predictor = dlib.shape_predictor(str(predictor))
        self._to_five = five_from_dlib5 if landmarks == "5" else (lambda p: to_five(p, IBUG_68))
        self.weight_paths = [predictor]

    @property
    def real_device(self) -> str:
        """dlib's HOG detector and shape predictors run on the CPU, whatever ``device`` says."""
        return "cpu"

    def _boxes(self, image: np.ndarray, upsample: int) -> list[tuple[object, float]]:
        """(dlib rectangle, margin) pairs."""
        raise NotImplementedError

    def _predictor_box(self, image: np.ndarray, rect):
        """The box the shape predictor starts from: the detector's own, by default."""
        return rect

    def detect_one(self, image: np.ndarray) -> list[Face]:
        found = []
        for level in self.upsample:
            found = self._boxes(image, level)
            if found:
                break
        faces = []
        for rect, margin in found:
            shape = self._predictor(image, self._predictor_box(image, rect))
            points = np.array([(p.x, p.y) for p in shape.parts()], dtype=np.float32)
            box = np.array([rect.left(), rect.top(), rect.right(), rect.bottom()], dtype=np.float32)
            faces.append(Face(box, _score(margin), self._to_five(points), points))
        return faces


@register_detector("dlib", description="dlib HOG frontal detector + 68-point shape predictor, mapped to 5",
                   requires=_REQUIRES)
class DlibHogDetector(_DlibDetector):
    """dlib's HOG + linear SVM frontal face detector (fast on CPU; upright, frontal faces)."""

    def __init__(self, device="auto", weights_dir=None, landmarks: str = "68", upsample=(0, 1, 2),
                 max_side: int = 1280) -> None:
        super().__init__(device, landmarks, upsample, max_side)
        self._net = self._dlib.get_frontal_face_detector()

    def _boxes(self, image, upsample):
        rects, margins, _ = self._net.run(image, upsample, 0.0)
        return list(zip(rects, margins))


@register_detector("dlib_cnn", description="dlib MMOD CNN detector + 68-point shape predictor, mapped to 5",
                   requires=_REQUIRES)
class DlibCnnDetector(_DlibDetector):
    """dlib's MMOD CNN face detector: finds more poses than HOG, about 50x slower on a CPU
    (0.2 s for a 250x250 image), so large images are detected at ``max_side`` 640.

    Its boxes sit differently from HOG's (smaller, and shifted towards the far side of a turned
    face), and the 68-point predictor, trained on HOG boxes, then misplaces the whole face on
    turned heads (eyes 20 px off on a 250 px LFW image). So the 68 points start from a HOG-style
    box placed on the eyes of dlib's 5-point predictor, which dlib trained on both detectors'
    boxes (see :func:`hog_style_box`).
    """

    def __init__(self, device="auto", weights_dir=None, landmarks: str = "68", upsample=(0, 1),
                 max_side: int = 640) -> None:
        super().__init__(device, landmarks, upsample, max_side)
        path = model_file("mmod_human_face_detector.dat")
        self._net = self._dlib.cnn_face_detection_model_v1(str(path))
        self.weight_paths.insert(0, path)
        self._eyes = None
        if landmarks == "68":
            eyes_path = model_file("shape_predictor_5_face_landmarks.dat")
            self._eyes = self._dlib.shape_predictor(str(eyes_path))
            self.weight_paths.append(eyes_path)

    @property
    def real_device(self) -> str:
        """The MMOD CNN runs on dlib's current GPU where dlib was built with CUDA (``DLIB_USE_CUDA``,
        whatever ``device`` says), else on the CPU; the shape predictors always on the CPU."""
        if not self._dlib.DLIB_USE_CUDA:
            return "cpu"
        return joined_devices(f"cuda:{self._dlib.cuda.get_device()}", "cpu")

    def _boxes(self, image, upsample):
        return [(d.rect, d.confidence) for d in self._net(image, upsample)]

    def _predictor_box(self, image, rect):
        if self._eyes is None:
            return rect
        points = np.array([(p.x, p.y) for p in self._eyes(image, rect).parts()], dtype=np.float32)
        return self._dlib.rectangle(*hog_style_box(points))


def hog_style_box(dlib5: np.ndarray) -> tuple[int, int, int, int]:
    """A box (left, top, right, bottom) placed on the eyes of dlib's 5-point output the way the
    HOG detector places its boxes (:data:`HOG_BOX_DX`, ...)."""
    left_eye = dlib5[list(DLIB5_LEFT_EYE)].mean(axis=0)
    right_eye = dlib5[list(DLIB5_RIGHT_EYE)].mean(axis=0)
    eye_distance = float(np.linalg.norm(right_eye - left_eye))
    cx, cy = (left_eye + right_eye) / 2 + np.array([HOG_BOX_DX, HOG_BOX_DY]) * eye_distance
    half = HOG_BOX_SIDE * eye_distance / 2
    return round(cx - half), round(cy - half), round(cx + half), round(cy + half)
