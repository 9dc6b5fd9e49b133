"""dlib specifics: the model files, the 5-point predictor's order and its five-point rule, the
upsample levels that find small faces. dlib_cnn is slow on a CPU: it sees one image here."""
from __future__ import annotations

import numpy as np
import pytest

from face_alignment import FaceBenchError, align_face, create_detector, load_image, pick_target_face
from face_alignment.detectors.dlib import five_from_dlib5, model_file
from tests.conftest import ALIGNED_DIR, LFW_IMAGES, SAMPLE_IMAGES, optional_module
from tests.transforms import scaled

optional_module("dlib", "dlib-bin")


@pytest.fixture(scope="module")
def image(sample_images):
    return sample_images[SAMPLE_IMAGES[0]]


def test_model_files_are_found():
    for name in ("shape_predictor_5_face_landmarks.dat", "shape_predictor_68_face_landmarks.dat",
                 "mmod_human_face_detector.dat"):
        assert model_file(name).stat().st_size > 0


def test_five_point_predictor_order(image):
    """dlib's 5 points: image-right eye (outer, inner corner), image-left eye (outer, inner), nose base."""
    face = create_detector("dlib", device="cpu", landmarks="5").detect([image])[0][0]
    p = face.dense
    assert p.shape == (5, 2)
    assert p[2, 0] < p[3, 0] < p[4, 0] < p[1, 0] < p[0, 0]  # left to right across the face
    assert p[4, 1] > p[:4, 1].max()  # the nose base is below the eyes
    np.testing.assert_allclose(face.landmarks, five_from_dlib5(p))
    le, re, nose, ml, mr = face.landmarks
    assert le[0] < re[0] and ml[0] < mr[0] and max(le[1], re[1]) < nose[1] < min(ml[1], mr[1])


def test_upsampling_finds_small_faces(image):
    small, _ = scaled(image, 0.4)  # 100x100, the face ~40 px: below HOG's 80 px window
    assert create_detector("dlib", device="cpu", upsample=(0,)).detect([small])[0] == []
    faces = create_detector("dlib", device="cpu").detect([small])[0]
    assert len(faces) == 1 and 0.0 < faces[0].score < 1.0


def test_cnn_detector(image):
    det = create_detector("dlib_cnn", device="cpu")
    face = det.detect([image])[0][0]
    assert face.dense.shape == (68, 2) and [p.name for p in det.weight_paths] == [
        "mmod_human_face_detector.dat", "shape_predictor_68_face_landmarks.dat",
        "shape_predictor_5_face_landmarks.dat"]


#: turned heads on which the 68-point predictor, started from the MMOD box itself, put the eyes
#: 20-25 px off: their crops' cosine to YuNet's crops was 0.15 / 0.27 / 0.29 (full LFW run)
TURNED_FACES = ["Mike_Krzyzewski/Mike_Krzyzewski_0006.jpg", "Pervez_Musharraf/Pervez_Musharraf_0006.jpg",
                "Hitomi_Soga/Hitomi_Soga_0001.jpg"]


def test_cnn_landmarks_start_from_a_hog_style_box(embedder):
    """With the box re-placed on the 5-point predictor's eyes, the aligned crops of those faces
    embed like the reference crops (measured 0.985 / 0.970 / 0.975; 0.8 leaves room)."""
    det = create_detector("dlib_cnn", device="cpu")
    for rel in TURNED_FACES:
        image = load_image(LFW_IMAGES / rel)
        face = pick_target_face(det.detect([image])[0], image.shape)
        crop = align_face(image, face.landmarks)
        reference = embedder.embed(load_image(ALIGNED_DIR / rel)[None])[0]
        cosine = float(embedder.embed(crop[None])[0] @ reference)
        assert cosine > 0.8, f"{rel}: {cosine:.3f}"


def test_bad_landmarks_option():
    with pytest.raises(FaceBenchError, match="landmarks"):
        create_detector("dlib", device="cpu", landmarks="7")
