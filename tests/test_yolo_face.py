"""YOLOv5-face and YOLOv8-face: letterboxing, head decoding on hand-made maps, the alternative
output layouts, and the ultralytics ``.pt`` route."""
from __future__ import annotations

import os

import numpy as np
import pytest

from face_alignment import WeightsError
from face_alignment.detectors.common import Letterbox, letterbox
from face_alignment.detectors.yolov5_face import YOLOv5FaceDetector
from face_alignment.detectors.yolov5_face import decode_level as decode_v5
from face_alignment.detectors.yolov8_face import YOLOv8FaceDetector, dfl_expectation
from face_alignment.detectors.yolov8_face import decode_level as decode_v8
from tests.conftest import SHARED, WEIGHTS_DIR, optional_module

# ultralytics reads these when first imported (collection runs before any test): never go online
os.environ.setdefault("YOLO_OFFLINE", "1")
os.environ.setdefault("YOLO_VERBOSE", "False")


def test_letterbox_round_trip():
    ys, xs = np.mgrid[0:100, 0:250]
    image = np.stack([xs, 2 * ys, np.full_like(xs, 7)], axis=2).astype(np.uint8)  # smooth ramps
    canvas, placement = letterbox(image, 640, 640)
    assert canvas.shape == (640, 640, 3)
    assert placement == Letterbox(2.56, 0.0, 192.0)
    assert (canvas[:192] == 114).all() and (canvas[448:] == 114).all()
    points = np.array([[0, 0, 250, 100], [10.5, 20.25, 249, 1]], np.float32)
    on_canvas = points * 2.56 + np.array([0, 192, 0, 192], np.float32)
    np.testing.assert_allclose(placement.to_image(on_canvas), points, atol=1e-4)
    # a pixel of the image lands where the placement says (pixel centres: (i + 0.5) * scale - 0.5)
    np.testing.assert_allclose(canvas[192 + round(50.5 * 2.56 - 0.5), round(125.5 * 2.56 - 0.5)], image[50, 125],
                               atol=1)


def test_letterbox_of_a_large_portrait_image_downscales():
    canvas, placement = letterbox(np.zeros((1280, 960, 3), np.uint8), 640, 640)
    assert canvas.shape == (640, 640, 3) and placement == Letterbox(0.5, 80.0, 0.0)


def test_dfl_expectation_of_hand_made_distributions():
    logits = np.full((3, 16), -1e4, np.float32)
    logits[0, 3] = 0.0  # all mass on bin 3
    logits[1, [2, 4]] = 0.0  # half on 2, half on 4
    logits[2] = 0.0  # uniform
    np.testing.assert_allclose(dfl_expectation(logits), [3.0, 3.0, 7.5], atol=1e-5)


def test_yolov8_level_decoding():
    raw = np.zeros((80, 2, 2), np.float32)  # 64 bins, 1 logit, 15 keypoint values; cells (x, y)
    cell = (0, 1)  # row 0, column 1: flat index 1
    bins = np.full((4, 16), -1e4, np.float32)
    bins[np.arange(4), [1, 2, 3, 4]] = 0.0  # l, t, r, b distances of 1, 2, 3, 4 cells
    raw[:64, cell[0], cell[1]] = bins.ravel()
    raw[64, cell[0], cell[1]] = 2.0
    raw[65:80, cell[0], cell[1]] = np.tile([0.25, -0.25, 0.0], 5)
    boxes, scores, keypoints = decode_v8(raw, stride=8)
    np.testing.assert_allclose(boxes[1], np.array([1.5 - 1, 0.5 - 2, 1.5 + 3, 0.5 + 4]) * 8, atol=1e-4)
    assert scores[1] == pytest.approx(1 / (1 + np.exp(-2.0)))
    np.testing.assert_allclose(keypoints[1], np.tile([(0.5 + 1) * 8, (-0.5 + 0) * 8], 5))


def test_yolov5_level_decoding():
    anchors = ((4, 5), (8, 10), (13, 16))
    raw = np.zeros((48, 2, 3), np.float32)  # 3 anchors x 16 values, 2 rows x 3 columns
    raw[16 + 5:16 + 15, 1, 2] = 1.0  # anchor 1, row 1, column 2: landmarks one anchor from the cell
    rows = decode_v5(raw, stride=16, anchors=anchors)
    assert rows.shape == (3 * 6, 16)
    index = 1 * 6 + 1 * 3 + 2
    np.testing.assert_allclose(rows[index, :4], [(2 + 0.5) * 16, (1 + 0.5) * 16, 8, 10])  # sigmoid(0) = 0.5
    np.testing.assert_allclose(rows[index, 5:15], np.tile([2 * 16 + 8, 1 * 16 + 10], 5))
    np.testing.assert_allclose(rows[:, [4, 15]], 0.5)


@pytest.fixture(scope="module")
def yolov8(weights_dir):
    return YOLOv8FaceDetector(device="cpu", weights_dir=weights_dir)


@pytest.fixture(scope="module")
def yolov5(weights_dir):
    return YOLOv5FaceDetector(device="cpu", weights_dir=weights_dir)


def test_input_size_and_layout_come_from_the_session(yolov5, yolov8):
    assert yolov5.input_hw == (640, 640) and yolov8._backend.input_hw == (640, 640)


def test_single_output_layouts_decode(yolov5, yolov8):
    """The decoded exports: YOLOv5-face ``(N, 16)`` rows, Ultralytics pose ``(20, N)`` columns."""
    row = np.array([100, 200, 40, 60, 0.8, *range(10), 0.5], np.float32)
    boxes, scores, points = yolov5.decode([row[None]])
    np.testing.assert_allclose(boxes, [[80, 170, 120, 230]])
    assert scores.tolist() == pytest.approx([0.4]) and points.tolist() == [list(range(10))]
    column = np.array([100, 200, 40, 60, 0.9, *np.ravel([[x, x + 1, 0.7] for x in range(0, 10, 2)])], np.float32)
    boxes, scores, points = yolov8._backend.decode([column[:, None]])
    np.testing.assert_allclose(boxes, [[80, 170, 120, 230]])
    assert scores.tolist() == pytest.approx([0.9]) and points.tolist() == [list(range(10))]


def test_ultralytics_pt_route(tmp_path, sample_images):
    """Checks the plumbing of ``weights=<file>.pt`` (load through ultralytics, colour order,
    result conversion), not accuracy: the model is a YOLOv8n-pose built from Ultralytics' YAML
    with one class and five keypoints and random weights."""
    ultralytics = optional_module("ultralytics")
    from ultralytics.utils import YAML

    cfg = YAML.load(os.path.join(os.path.dirname(ultralytics.__file__), "cfg/models/v8/yolov8-pose.yaml"))
    cfg.update(nc=1, kpt_shape=[5, 3], scale="n")
    YAML.save(tmp_path / "yolov8n-face.yaml", cfg)
    model = ultralytics.YOLO(str(tmp_path / "yolov8n-face.yaml"), task="pose")
    model.save(tmp_path / "yolov8n-face.pt")

    with pytest.raises(WeightsError, match="trusted=True"):  # a full pickle: refused unless trusted
        YOLOv8FaceDetector(device="cpu", weights=tmp_path / "yolov8n-face.pt")
    detector = YOLOv8FaceDetector(device="cpu", weights=tmp_path / "yolov8n-face.pt", score_threshold=0.0,
                                  input_size=320, trusted=True)
    images = list(sample_images.values())[:2]
    results = detector.detect(images)
    assert len(results) == 2 and detector.weight_paths == [tmp_path / "yolov8n-face.pt"]
    for image, faces in zip(images, results):
        assert faces, "with score_threshold=0 even random weights give candidates"
        for face in faces:
            assert face.bbox.shape == (4,) and face.landmarks.shape == (5, 2) and 0.0 <= face.score <= 1.0
            assert -image.shape[1] < face.bbox[0] <= face.bbox[2] < 2 * image.shape[1]


@pytest.mark.shared
@pytest.mark.parametrize("method", ["yolov5_face", "yolov8_face"])
def test_a_face_that_fills_a_loose_crop_is_found_at_its_own_size(method):
    """CFP's loose crops: enlarged to the 640-px input, a face filling the image is larger than the
    faces the models learnt on and is missed; at the image's own size it is found."""
    from face_alignment import create_detector, load_image

    image = load_image(SHARED / "data/cfp/Data/Images/002/frontal/09.jpg")  # 279x256, the face fills it
    own_size = create_detector(method, device="cpu", weights_dir=WEIGHTS_DIR)
    enlarged = create_detector(method, device="cpu", weights_dir=WEIGHTS_DIR, upscale=True)
    faces = own_size.detect([image])[0]
    assert len(faces) == 1 and faces[0].area > 0.4 * image.shape[0] * image.shape[1]
    if method == "yolov5_face":  # yolov8-lite-t still finds this one enlarged, if not 3% of others
        assert enlarged.detect([image])[0] == []
