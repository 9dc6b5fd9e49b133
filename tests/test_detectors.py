"""Every registered detector, tested by being registered: real weights, real LFW images.

Checks: a face is found at the centre, the five landmarks come in the documented order, and the
aligned crop embeds close to the reference crop of the same image (insightface's lfw.bin
alignment, ``aligned-112``), also on rotated, small, large, wide and gray versions of the images.
"""
from __future__ import annotations

import numpy as np
import pytest

from face_alignment import UnifiedFaceDetector, align_face, list_methods
from tests.conftest import SAMPLE_IMAGES, WEIGHTS_DIR, method_params
from tests.transforms import TRANSFORMS

pytestmark = pytest.mark.shared

STATUS = {s.name: s for s in list_methods(WEIGHTS_DIR)}
#: methods that only run when their optional package is installed; the lock installs them all
METHODS = method_params(STATUS.values())

#: median / minimum cosine between a method's crop embedding and the reference crop's. Measured
#: for YuNet on SAMPLE_IMAGES: median 0.93, minimum 0.86; a crop off by a few pixels drops to ~0.7.
MEDIAN_COSINE, MIN_COSINE = 0.85, 0.6


@pytest.fixture(scope="module", params=METHODS)
def detector(request):
    det = UnifiedFaceDetector(request.param, device="cpu", weights_dir=WEIGHTS_DIR)
    assert det.available, det.error
    return det


def _target(det, image):
    return det.target_face(image)


def test_landmark_order_and_boxes(detector, sample_images):
    for rel, image in sample_images.items():
        face = _target(detector, image)
        assert face is not None, f"{detector.method}: no face in {rel}"
        x1, y1, x2, y2 = face.bbox
        h, w = image.shape[:2]
        assert x1 < w / 2 < x2 and y1 < h / 2 < y2, f"{rel}: box {face.bbox} misses the centre"
        assert 0.15 * w < x2 - x1 < 0.9 * w, f"{rel}: implausible box width {x2 - x1}"
        le, re, nose, ml, mr = face.landmarks
        assert le[0] < re[0] and ml[0] < mr[0], f"{rel}: left/right swapped {face.landmarks}"
        assert max(le[1], re[1]) < nose[1] < min(ml[1], mr[1]), f"{rel}: vertical order wrong {face.landmarks}"
        margin = 0.15 * (x2 - x1)
        assert np.all(face.landmarks[:, 0] > x1 - margin) and np.all(face.landmarks[:, 0] < x2 + margin)
        assert 0.0 <= face.score <= 1.0 + 1e-6


def _crop_cosines(det, images, embedder, reference_embeddings, transform=None):
    cosines = []
    for rel in SAMPLE_IMAGES:
        image = images[rel] if transform is None else transform(images[rel])[0]
        face = _target(det, image)
        if face is None:
            cosines.append(-1.0)
            continue
        crop = align_face(image, face.landmarks)
        cosines.append(float(embedder.embed(crop[None])[0] @ reference_embeddings[rel]))
    return np.array(cosines)


def test_aligned_crop_matches_reference(detector, sample_images, embedder, reference_embeddings):
    cos = _crop_cosines(detector, sample_images, embedder, reference_embeddings)
    assert np.median(cos) >= MEDIAN_COSINE and cos.min() >= MIN_COSINE, f"{detector.method}: {np.round(cos, 3)}"


@pytest.mark.parametrize("transform", sorted(TRANSFORMS))
def test_not_lfw_shaped_photos(detector, sample_images, embedder, reference_embeddings, transform):
    cos = _crop_cosines(detector, sample_images, embedder, reference_embeddings, TRANSFORMS[transform])
    found = np.count_nonzero(cos > -1.0)
    assert found >= 9, f"{detector.method}/{transform}: found {found}/10"
    # gray costs the embedder some similarity whatever the alignment
    assert np.median(cos[cos > -1]) >= (0.75 if transform == "gray" else MEDIAN_COSINE - 0.05), np.round(cos, 3)
    if transform == "tight":  # MTCNN without its border: 0.39 and 0.52 on two of these faces
        assert cos[cos > -1].min() >= MIN_COSINE, np.round(cos, 3)


def test_align_batch_and_detect_faces(detector, sample_images):
    images = list(sample_images.values())[:3]
    crops = detector.align_batch(images)
    assert [c.shape for c in crops] == [(112, 112, 3)] * 3 and all(c.dtype == np.uint8 for c in crops)
    boxes, landmarks = detector.detect_faces(images[0])
    assert boxes.shape[1:] == (4,) and landmarks.shape[1:] == (5, 2) and len(boxes) == len(landmarks) >= 1


def test_no_face_in_a_blank_image(detector):
    blank = np.full((240, 320, 3), 128, np.uint8)
    assert detector.align(blank) is None
