"""RetinaFace: prior boxes, decoding, NMS, strict checkpoint loading (MobileNet-0.25 with the
real file; ResNet-50 by state-dict round trip, no real weights being available) and batching."""
from __future__ import annotations

import numpy as np
import pytest

from face_alignment.detectors.common import nms, prior_boxes
from face_alignment.detectors.retinaface import (
    MIN_SIZES,
    STEPS,
    RetinaFaceDetector,
    build_network,
    decode,
    load_network,
)
from face_alignment.errors import WeightsError
from tests.conftest import optional_module

torch = optional_module("torch")


def test_prior_boxes_for_640():
    priors = prior_boxes(640, 640, MIN_SIZES, STEPS)
    assert priors.shape == ((80 * 80 + 40 * 40 + 20 * 20) * 2, 4) == (16800, 4)
    # first cell of stride 8: both min sizes at the cell centre, then the next cell to the right
    np.testing.assert_allclose(priors[:3] * 640, [[4, 4, 16, 16], [4, 4, 32, 32], [12, 4, 16, 16]])
    # second row of stride 8 starts after 80 cells
    np.testing.assert_allclose(priors[160] * 640, [4, 12, 16, 16])
    np.testing.assert_allclose(priors[12800] * 640, [8, 8, 64, 64])  # first prior of stride 16
    np.testing.assert_allclose(priors[-1] * 640, [624, 624, 512, 512])  # last cell of stride 32


def test_prior_boxes_match_network_output_for_odd_sizes():
    net = build_network("mobilenet0.25")
    for height, width in ((250, 250), (97, 333)):
        loc, scores, points = net(torch.zeros(1, 3, height, width))
        assert loc.shape[1] == scores.shape[1] == points.shape[1] == len(prior_boxes(height, width, MIN_SIZES, STEPS))


def test_zero_regression_decodes_to_the_prior():
    priors = np.array([[0.5, 0.25, 0.2, 0.1]], np.float32)
    boxes, points = decode(np.zeros((1, 4), np.float32), np.zeros((1, 10), np.float32), priors)
    np.testing.assert_allclose(boxes, [[0.4, 0.2, 0.6, 0.3]], atol=1e-6)
    np.testing.assert_allclose(points.reshape(5, 2), np.tile([0.5, 0.25], (5, 1)))
    boxes, points = decode(np.array([[1, 0, np.log(2) / 0.2, 0]], np.float32), np.full((1, 10), 1.0, np.float32),
                           priors)
    np.testing.assert_allclose(boxes, [[0.52 - 0.2, 0.2, 0.52 + 0.2, 0.3]], atol=1e-6)  # centre + 0.1*w, w doubled
    np.testing.assert_allclose(points[0, :2], [0.5 + 0.1 * 0.2, 0.25 + 0.1 * 0.1], atol=1e-6)


def test_nms_on_hand_made_boxes():
    boxes = np.array([[0, 0, 10, 10], [1, 1, 11, 11], [20, 20, 30, 30], [0, 0, 10, 5]], np.float32)
    scores = np.array([0.8, 0.9, 0.7, 0.6], np.float32)
    # box 0 overlaps box 1 with IoU 81/119 = 0.68; box 3 is half of box 0 (IoU 0.5 with 0, 0.39 with 1)
    assert nms(boxes, scores, 0.5).tolist() == [1, 2, 3]
    assert nms(boxes, scores, 0.3).tolist() == [1, 2]
    assert nms(boxes, scores, 0.7).tolist() == [1, 0, 2, 3]
    assert nms(boxes[:0], scores[:0], 0.5).tolist() == []


def test_official_checkpoint_loads_strictly(weights_dir):
    path = weights_dir / "retinaface" / "mobilenet0.25_Final.pth"
    file_keys = set(torch.load(path, map_location="cpu", weights_only=True))
    net = load_network(path)
    assert set(net.state_dict()) == file_keys


def test_a_foreign_checkpoint_is_a_weights_error(tmp_path, weights_dir):
    state = torch.load(weights_dir / "retinaface" / "mobilenet0.25_Final.pth", map_location="cpu", weights_only=True)
    state.pop("ClassHead.0.conv1x1.bias")
    torch.save(state, tmp_path / "broken.pth")
    with pytest.raises(WeightsError, match="ClassHead.0.conv1x1.bias"):
        load_network(tmp_path / "broken.pth")
    torch.save({"conv.weight": torch.zeros(1)}, tmp_path / "other.pth")
    with pytest.raises(WeightsError, match="not a RetinaFace checkpoint"):
        load_network(tmp_path / "other.pth")


def test_resnet50_layout_round_trips(tmp_path):
    """No Resnet50_Final.pth is available offline: this checks the architecture's keys and shapes
    against the biubug6 layout and that a DataParallel-style (``module.``) dict of it loads
    strictly through the detector. It does not check accuracy."""
    optional_module("torchvision")
    state = build_network("resnet50").state_dict()
    expected = {
        "body.conv1.weight": (64, 3, 7, 7),
        "body.layer4.2.conv3.weight": (2048, 512, 1, 1),
        "fpn.output1.0.weight": (256, 512, 1, 1),
        "fpn.output3.0.weight": (256, 2048, 1, 1),
        "fpn.merge1.0.weight": (256, 256, 3, 3),
        "ssh1.conv3X3.0.weight": (128, 256, 3, 3),
        "ssh3.conv7x7_3.1.running_var": (64,),
        "ClassHead.0.conv1x1.weight": (4, 256, 1, 1),
        "BboxHead.1.conv1x1.weight": (8, 256, 1, 1),
        "LandmarkHead.2.conv1x1.bias": (20,),
    }
    assert {k: tuple(state[k].shape) for k in expected} == expected
    path = tmp_path / "Resnet50_Final.pth"
    torch.save({f"module.{k}": v for k, v in state.items()}, path)
    detector = RetinaFaceDetector(device="cpu", weights=path)
    assert detector._net.body.__class__.__name__ == "ResNetBody"
    assert isinstance(detector.detect([np.zeros((64, 80, 3), np.uint8)])[0], list)


@pytest.fixture(scope="module")
def retinaface(weights_dir):
    return RetinaFaceDetector(device="cpu", weights_dir=weights_dir)


def test_batched_detection_equals_per_image(retinaface, sample_images):
    images = list(sample_images.values())[:4]
    images.append(images[0][20:200, 10:240].copy())  # another size: its own sub-batch
    batched = retinaface.detect(images)
    for image, faces in zip(images, batched):
        alone = retinaface.detect([image])[0]
        assert len(faces) == len(alone) >= 1
        for a, b in zip(faces, alone):
            np.testing.assert_allclose(a.bbox, b.bbox, atol=1e-2)
            np.testing.assert_allclose(a.landmarks, b.landmarks, atol=1e-2)
            assert a.score == pytest.approx(b.score, abs=1e-4)


def test_landmarks_come_image_left_eye_first(retinaface, sample_images):
    face = max(retinaface.detect([sample_images["Aaron_Eckhart/Aaron_Eckhart_0001.jpg"]])[0], key=lambda f: f.score)
    (le, re, nose, ml, mr) = face.landmarks
    assert le[0] < nose[0] < re[0] and ml[0] < mr[0]
