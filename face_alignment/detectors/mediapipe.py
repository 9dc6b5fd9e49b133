"""MediaPipe: Face Mesh (478 points) and Face Detection (6 keypoints), reduced to five points.

The legacy ``mp.solutions`` graphs ship inside the ``mediapipe<=0.10.21`` wheel; where they are
gone (``mediapipe>=1.0``), Face Mesh runs through the Tasks API with ``face_landmarker.task``.
One graph is built per detector instance and released by :meth:`close` (or garbage collection).
"""
from __future__ import annotations

import logging

import numpy as np

from ..errors import MissingDependencyError
from ..landmark_maps import MESH_478, to_five
from ..registry import register_detector
from ..types import Face
from ..weights import resolve_weights
from .base import FaceDetector

log = logging.getLogger(__name__)

_REQUIRES = {"mediapipe": "mediapipe"}

#: Face Detection gives no mouth corners: each is the mouth centre moved along the eye axis by
#: CORNER_ALONG and perpendicular to it (towards the eyes when negative) by CORNER_ACROSS, both
#: in units of the eye distance. Fitted by least squares to MTCNN's corners on 500 LFW images.
CORNER_ALONG, CORNER_ACROSS = 0.40, -0.04


def _legacy_solutions():
    """``mp.solutions`` where this mediapipe still has it, else None."""
    import mediapipe as mp

    return getattr(mp, "solutions", None)


class _MediaPipeDetector(FaceDetector):
    """Shared life cycle: one graph, closed once."""

    _graph = None

    def close(self) -> None:
        """Release the MediaPipe graph; the detector cannot be used afterwards."""
        graph, self._graph = self._graph, None
        if graph is not None:
            graph.close()

    def __del__(self) -> None:
        self.close()


@register_detector("mediapipe", description="MediaPipe Face Mesh, 478 points (iris-refined) mapped to 5",
                   requires=_REQUIRES)
class MediaPipeMeshDetector(_MediaPipeDetector):
    """Face Mesh in static-image mode with refined irises. ``dense`` holds all 478 points in
    pixels, the box is their extent, and the score is 1.0 (the mesh graph reports none)."""

    def __init__(self, device="auto", weights_dir=None, weights=None, max_faces: int = 5,
                 min_confidence: float = 0.5, max_side: int = 1280) -> None:
        super().__init__(device, max_side)
        solutions = _legacy_solutions()
        if solutions is not None and weights is None:
            self._graph = solutions.face_mesh.FaceMesh(
                static_image_mode=True, refine_landmarks=True, max_num_faces=max_faces,
                min_detection_confidence=min_confidence)
            self._tasks = False
        else:
            path = resolve_weights("face_landmarker", weights, weights_dir)
            self.weight_paths = [path]
            self._graph = _tasks_landmarker(str(path), max_faces, min_confidence)
            self._tasks = True

    def detect_one(self, image: np.ndarray) -> list[Face]:
        height, width = image.shape[:2]
        if self._tasks:
            import mediapipe as mp

            found = self._graph.detect(mp.Image(image_format=mp.ImageFormat.SRGB, data=image)).face_landmarks
        else:
            found = [f.landmark for f in (self._graph.process(image).multi_face_landmarks or [])]
        faces = []
        for landmarks in found:
            dense = np.array([(p.x * width, p.y * height) for p in landmarks], dtype=np.float32)
            box = np.concatenate([dense.min(axis=0), dense.max(axis=0)])
            faces.append(Face(box, 1.0, to_five(dense, MESH_478), dense))
        return faces


def _tasks_landmarker(model_path: str, max_faces: int, min_confidence: float):
    from mediapipe.tasks.python import BaseOptions, vision

    options = vision.FaceLandmarkerOptions(
        base_options=BaseOptions(model_asset_path=model_path), running_mode=vision.RunningMode.IMAGE,
        num_faces=max_faces, min_face_detection_confidence=min_confidence)
    return vision.FaceLandmarker.create_from_options(options)


@register_detector("mediapipe_simple", description="MediaPipe Face Detection (short range), 6 keypoints mapped to 5",
                   requires=_REQUIRES)
class MediaPipeFaceDetector(_MediaPipeDetector):
    """Face Detection (BlazeFace). Its keypoints are, image-left first: eye, eye, nose tip, mouth
    centre, tragion, tragion; the mouth corners are derived (see :func:`mouth_corners`).

    ``model_selection=0`` is the short-range model (faces within ~2 m, i.e. filling a good part
    of the frame, as in LFW and ID photos); 1 is the full-range sparse model for small faces.
    Needs the legacy ``mp.solutions`` API (``mediapipe<=0.10.21``).
    """

    def __init__(self, device="auto", weights_dir=None, model_selection: int = 0,
                 min_confidence: float = 0.5, max_side: int = 1280) -> None:
        super().__init__(device, max_side)
        solutions = _legacy_solutions()
        if solutions is None:
            raise MissingDependencyError(
                "mediapipe_simple needs the legacy mp.solutions API: pip install 'mediapipe<=0.10.21'")
        self._graph = solutions.face_detection.FaceDetection(
            model_selection=model_selection, min_detection_confidence=min_confidence)

    def detect_one(self, image: np.ndarray) -> list[Face]:
        height, width = image.shape[:2]
        size = np.array([width, height], dtype=np.float32)
        faces = []
        for detection in self._graph.process(image).detections or []:
            location = detection.location_data
            rel = location.relative_bounding_box
            box = np.array([rel.xmin, rel.ymin, rel.xmin + rel.width, rel.ymin + rel.height]) * np.tile(size, 2)
            keypoints = np.array([(k.x, k.y) for k in location.relative_keypoints], dtype=np.float32) * size
            left_eye, right_eye, nose, mouth = keypoints[:4]
            five = np.stack([left_eye, right_eye, nose, *mouth_corners(left_eye, right_eye, mouth)])
            faces.append(Face(box, detection.score[0], five, keypoints))
        return faces


def mouth_corners(left_eye: np.ndarray, right_eye: np.ndarray, mouth: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Image-left and image-right mouth corners from the mouth centre and the eyes: the centre
    moved by ``-/+ CORNER_ALONG`` eye distances along the eye axis and ``CORNER_ACROSS`` across it."""
    axis = right_eye - left_eye
    across = np.array([-axis[1], axis[0]])  # the eye axis turned 90 degrees, pointing down the face
    offset = CORNER_ACROSS * across
    return mouth - CORNER_ALONG * axis + offset, mouth + CORNER_ALONG * axis + offset
