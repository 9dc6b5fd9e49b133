"""Top-down keypoints: crop geometry, SimCC decoding through a real ONNX graph built here, and
the real 68-point PFLD model behind YuNet."""
from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

from face_alignment import FaceBenchError, WeightsError, create_detector
from face_alignment.detectors.rtmpose import KEYPOINT_MODELS, crop_matrix, decode_regression, decode_simcc
from face_alignment.landmark_maps import IBUG_68, LAPA_106, to_five
from tests.conftest import SAMPLE_IMAGES, WEIGHTS_DIR


def test_crop_matrix_centres_the_box_and_keeps_the_aspect_ratio():
    box = np.array([100.0, 50.0, 200.0, 250.0])  # 100 wide, 200 tall
    matrix = crop_matrix(box, (192, 256), padding=1.25)
    centre = matrix[:, :2] @ [150.0, 150.0] + matrix[:, 2]
    np.testing.assert_allclose(centre, [96.0, 128.0])
    # 250 px of padded height fills the 256 rows; the scale is uniform
    assert matrix[0, 0] == pytest.approx(256 / 250) and matrix[0, 0] == matrix[1, 1]


def test_decoders():
    simcc_x = np.zeros((2, 3, 20), np.float32)
    simcc_y = np.zeros((2, 3, 16), np.float32)
    simcc_x[:, :, 7] = 0.9
    simcc_y[:, :, 5] = 0.6
    points, scores = decode_simcc(simcc_x, simcc_y, 2.0)
    np.testing.assert_allclose(points, np.broadcast_to([3.5, 2.5], (2, 3, 2)))
    np.testing.assert_allclose(scores, 0.6)
    regression = decode_regression(np.array([[0.5, 0.25, 1.0, 0.0]], np.float32), (112, 112))
    np.testing.assert_allclose(regression, [[[56.0, 28.0], [112.0, 0.0]]])


def _simcc_model(path, peaks: np.ndarray, size=(256, 256), ratio=2.0) -> None:
    """An ONNX graph with RTMPose's interface (input N x 3 x H x W; outputs simcc_x N x K x W*r,
    simcc_y N x K x H*r) whose outputs peak at ``peaks`` (K, 2) crop pixels for every input."""
    k = len(peaks)
    width, height = int(size[0] * ratio), int(size[1] * ratio)
    simcc_x = np.zeros((1, k, width), np.float32)
    simcc_y = np.zeros((1, k, height), np.float32)
    simcc_x[0, np.arange(k), (peaks[:, 0] * ratio).astype(int)] = 1.0
    simcc_y[0, np.arange(k), (peaks[:, 1] * ratio).astype(int)] = 1.0
    nodes = [
        helper.make_node("ReduceMean", ["input"], ["mean"], axes=[1, 2, 3], keepdims=0),
        helper.make_node("Unsqueeze", ["mean", "axes"], ["mean3"]),
        helper.make_node("Mul", ["mean3", "zero"], ["zeros"]),  # N x 1 x 1 zeros: the batch size
        helper.make_node("Add", ["zeros", "sx"], ["simcc_x"]),
        helper.make_node("Add", ["zeros", "sy"], ["simcc_y"]),
    ]
    inits = [helper.make_tensor("axes", TensorProto.INT64, [2], [1, 2]),
             helper.make_tensor("zero", TensorProto.FLOAT, [], [0.0]),
             onnx.numpy_helper.from_array(simcc_x, "sx"), onnx.numpy_helper.from_array(simcc_y, "sy")]
    graph = helper.make_graph(
        nodes, "simcc", [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["N", 3, size[1], size[0]])],
        [helper.make_tensor_value_info("simcc_x", TensorProto.FLOAT, ["N", k, width]),
         helper.make_tensor_value_info("simcc_y", TensorProto.FLOAT, ["N", k, height])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    onnx.checker.check_model(model)
    onnx.save(model, path)


def test_simcc_route_end_to_end(tmp_path, sample_images):
    rng = np.random.default_rng(0)
    peaks = rng.integers(0, 256, size=(106, 2)).astype(np.float32) + 0.5
    path = tmp_path / "rtmpose_face.onnx"
    _simcc_model(path, peaks)
    det = create_detector("rtmpose", device="cpu", weights_dir=WEIGHTS_DIR, weights=path,
                          keypoint_model="rtmpose_face106")
    image = sample_images[SAMPLE_IMAGES[0]]
    faces = det.detect([image])[0]
    assert faces
    for face in faces:
        matrix = crop_matrix(face.bbox, (256, 256), KEYPOINT_MODELS["rtmpose_face106"].padding)
        np.testing.assert_allclose(face.dense @ matrix[:, :2].T + matrix[:, 2], peaks, atol=1e-3)
        np.testing.assert_allclose(face.landmarks, to_five(face.dense, LAPA_106))
    assert det.weight_paths[-1] == path


def test_pfld_route_agrees_with_yunet(sample_images):
    """The real 68-point model on YuNet's boxes: its five points land near YuNet's own (which
    differ from MTCNN's by about as much: PFLD's nose tip sits lower than YuNet's)."""
    det = create_detector("rtmpose", device="cpu", weights_dir=WEIGHTS_DIR)
    yunet = create_detector("yunet", device="cpu", weights_dir=WEIGHTS_DIR)
    assert [p.name for p in det.weight_paths] == ["face_detection_yunet_2023mar.onnx", "pfld.onnx"]
    for rel in SAMPLE_IMAGES[:5]:
        image = sample_images[rel]
        face = max(det.detect([image])[0], key=lambda f: f.area)
        reference = max(yunet.detect([image])[0], key=lambda f: f.area)
        assert face.dense.shape == (68, 2)
        np.testing.assert_allclose(face.landmarks, to_five(face.dense, IBUG_68))
        eye_distance = np.linalg.norm(reference.landmarks[1] - reference.landmarks[0])
        error = np.linalg.norm(face.landmarks - reference.landmarks, axis=1)
        assert error.mean() < 0.15 * eye_distance and error.max() < 0.25 * eye_distance, f"{rel}: {error.round(1)}"


def test_configuration_errors():
    with pytest.raises(FaceBenchError, match="unknown keypoint model"):
        create_detector("rtmpose", device="cpu", weights_dir=WEIGHTS_DIR, keypoint_model="nope")
    with pytest.raises(WeightsError, match="pass weights="):
        create_detector("rtmpose", device="cpu", weights_dir=WEIGHTS_DIR, keypoint_model="rtmw_wholebody133")
