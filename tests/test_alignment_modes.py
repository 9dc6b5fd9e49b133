"""The alignment modes (``face_alignment.align``), on real LFW images and YuNet's faces.

Known answers: ``similarity`` with ARCFACE is ``align_face`` bit for bit and matches the reference
crops (aligned-112) in geometry; ``eyes`` puts both eyes on the template's eyes; ``affine``
recovers an exact affine image of the template; ``roll`` levels the eye line, keeps the aspect
ratio and matches deepface's steps done one by one with OpenCV; ``box`` neither rotates nor
stretches and puts the box centre on the crop centre; a scaled template scales every matrix; odd
images (gray, tiny) still give a crop of the right shape.
"""
from __future__ import annotations

import cv2
import numpy as np
import pytest

from face_alignment import (
    ALIGN_MODES,
    ARCFACE,
    CropTemplate,
    Face,
    align,
    align_face,
    alignment_matrix,
    landmark_box,
    load_image,
    pick_target_face,
    similarity_transform,
)
from face_alignment.alignment import box_enlargement, roll_padding
from tests.conftest import ALIGNED_DIR, LFW_IMAGES, SAMPLE_IMAGES, WEIGHTS_DIR

pytestmark = pytest.mark.shared

TEMPLATE = ARCFACE.array.astype(np.float64)


@pytest.fixture(scope="module")
def detector():
    from face_alignment import create_detector

    return create_detector("yunet", device="cpu", weights_dir=WEIGHTS_DIR)


def _target(detector, image: np.ndarray) -> Face:
    face = pick_target_face(detector.detect([image])[0], image.shape)
    assert face is not None
    return face


@pytest.fixture(scope="module")
def cases(detector):
    """``(name, image, reference crop, YuNet's target face)`` for each sample image."""
    out = []
    for rel in SAMPLE_IMAGES:
        image = load_image(LFW_IMAGES / rel)
        out.append((rel, image, load_image(ALIGNED_DIR / rel), _target(detector, image)))
    return out


#: the turn of the tilted images, degrees (counter-clockwise as seen)
TURN = 25.0


@pytest.fixture(scope="module")
def tilted(cases):
    """Each sample image turned by :data:`TURN` degrees about its centre, with the upright face
    turned with it: the landmarks exactly, the box's centre (its size kept, as deepface keeps it).
    YuNet itself is no use here: its landmarks lean towards an upright face (on these images it
    finds rolls of 3-17 degrees, not 25)."""
    out = []
    for rel, image, _, face in cases:
        h, w = image.shape[:2]
        turn = cv2.getRotationMatrix2D((w / 2, h / 2), TURN, 1.0)
        turned = cv2.warpAffine(image, turn, (w, h))
        size = face.bbox[2:].astype(np.float64) - face.bbox[:2]
        centre = _apply(turn, (face.bbox[:2].astype(np.float64) + face.bbox[2:]) / 2)
        box = np.concatenate([centre - size / 2, centre + size / 2])
        out.append((rel, turned, Face(box, face.score, _apply(turn, face.landmarks))))
    return out


def _apply(matrix: np.ndarray, points: np.ndarray) -> np.ndarray:
    return np.asarray(points, np.float64) @ matrix[:, :2].T + matrix[:, 2]


# --- similarity -------------------------------------------------------------------------------


def test_similarity_is_align_face_bit_for_bit(cases):
    for rel, image, _, face in cases:
        assert np.array_equal(align(image, face), align_face(image, face.landmarks)), rel
        assert np.array_equal(align(image, face, ARCFACE, "similarity"), align_face(image, face.landmarks)), rel
        assert np.array_equal(align(image, face, ARCFACE.scaled(224)), align_face(image, face.landmarks, 224)), rel


def _registration(crop: np.ndarray, reference: np.ndarray) -> tuple[np.ndarray, float]:
    """Where ``reference``'s template points sit in ``crop`` (mean displacement, px) and the scale
    between them, from an intensity-based affine registration (ECC) of the two crops."""
    gray = [cv2.cvtColor(a, cv2.COLOR_RGB2GRAY).astype(np.float32) for a in (reference, crop)]
    criteria = (cv2.TERM_CRITERIA_EPS | cv2.TERM_CRITERIA_COUNT, 100, 1e-5)
    start = np.eye(2, 3, dtype=np.float32)
    _, warp = cv2.findTransformECC(gray[0], gray[1], start, cv2.MOTION_AFFINE, criteria, None, 5)
    warp = warp.astype(np.float64)
    return (_apply(warp, TEMPLATE) - TEMPLATE).mean(axis=0), float(np.sqrt(abs(np.linalg.det(warp[:, :2]))))


#: Measured on SAMPLE_IMAGES with YuNet's landmarks: mean absolute difference from the reference
#: 14.7 grey levels (per image 6-19: the reference's own landmarks put a face up to ~5 degrees,
#: ~10 % and several pixels away from ours, and a 1-px shift alone costs ~5), median displacement
#: 1.1 px, median scale 1.021. The ARCFACE template moved down 2 px gives 16.9 and 3.1 px, down
#: 4 px 20.1 and 5.1 px, shrunk to 0.9 gives 20.1 and scale 0.918, grown to 1.05 scale 1.073.
REFERENCE_MAD, REFERENCE_SHIFT, REFERENCE_SCALE = 16.0, 1.6, (0.99, 1.05)


def _reference_agreement(cases, template: CropTemplate) -> tuple[float, float, float]:
    mads, shifts, scales = [], [], []
    for _, image, reference, face in cases:
        crop = align(image, face, template)
        mads.append(np.abs(crop.astype(np.float64) - reference).mean())
        shift, scale = _registration(crop, reference)
        shifts.append(shift)
        scales.append(scale)
    return float(np.mean(mads)), float(np.linalg.norm(np.median(shifts, axis=0))), float(np.median(scales))


def _agrees(mad: float, shift: float, scale: float) -> bool:
    return mad < REFERENCE_MAD and shift < REFERENCE_SHIFT and REFERENCE_SCALE[0] < scale < REFERENCE_SCALE[1]


def test_similarity_matches_the_reference_crops(cases):
    assert _agrees(*_reference_agreement(cases, ARCFACE)), _reference_agreement(cases, ARCFACE)
    # the bounds tell templates apart: a template 3 px lower or 5 % smaller fails them
    lower = CropTemplate(ARCFACE.size, TEMPLATE + [0.0, 3.0])
    smaller = CropTemplate(ARCFACE.size, (TEMPLATE - 56.0) * 0.95 + 56.0)
    for wrong in (lower, smaller):
        assert not _agrees(*_reference_agreement(cases, wrong))


# --- eyes, affine -----------------------------------------------------------------------------


def test_eyes_land_exactly_on_the_template_eyes(cases, tilted):
    for template in (ARCFACE, ARCFACE.scaled(224)):
        for face in [c[3] for c in cases] + [t[2] for t in tilted]:
            matrix = alignment_matrix(face, template, "eyes")
            np.testing.assert_allclose(_apply(matrix, face.landmarks[:2]), template.array[:2], atol=1e-4)
            assert np.isclose(matrix[0, 0], matrix[1, 1]) and np.isclose(matrix[0, 1], -matrix[1, 0])


def test_affine_recovers_an_exact_affine_image_and_fits_best(cases):
    rng = np.random.default_rng(0)
    for _ in range(20):
        linear = np.eye(2) * rng.uniform(1.0, 3.0) + rng.normal(0.0, 0.3, (2, 2))  # shear, anisotropy
        forward = np.hstack([linear, rng.uniform(0.0, 100.0, (2, 1))])  # template -> image
        points = _apply(forward, TEMPLATE)
        matrix = alignment_matrix(Face([0, 0, 1, 1], 1.0, points), ARCFACE, "affine")
        np.testing.assert_allclose(_apply(matrix, points.astype(np.float32)), TEMPLATE, atol=1e-3)
        assert np.abs(matrix[:, :2] @ linear - np.eye(2)).max() < 1e-4  # the inverse of the map
    for rel, _, _, face in cases:
        residual = {
            mode: np.linalg.norm(_apply(alignment_matrix(face, ARCFACE, mode), face.landmarks) - TEMPLATE)
            for mode in ("similarity", "affine")
        }
        assert residual["affine"] <= residual["similarity"] + 1e-9, (rel, residual)


# --- roll (deepface) --------------------------------------------------------------------------


def _deepface_steps(image: np.ndarray, face: Face, size: int) -> np.ndarray:
    """deepface's roll alignment step by step: a black border, the rotation that levels the eyes
    about the box centre, the detector box cut in whole pixels, the aspect-keeping resize and the
    black padding to the square (two resamplings, where ``align`` does one warp)."""
    x1, y1, x2, y2 = face.bbox.astype(np.float64)
    (lx, ly), (rx, ry) = face.landmarks[:2].astype(np.float64)
    h, w = image.shape[:2]
    padded = cv2.copyMakeBorder(image, h, h, w, w, cv2.BORDER_CONSTANT, value=0)
    cx, cy = (x1 + x2) / 2 + w, (y1 + y2) / 2 + h
    rotation = cv2.getRotationMatrix2D((cx, cy), float(np.degrees(np.arctan2(ry - ly, rx - lx))), 1.0)
    turned = cv2.warpAffine(padded, rotation, padded.shape[1::-1], flags=cv2.INTER_CUBIC)
    bw, bh = x2 - x1, y2 - y1
    cut = turned[int(round(cy - bh / 2)):int(round(cy + bh / 2)), int(round(cx - bw / 2)):int(round(cx + bw / 2))]
    factor = min(size / cut.shape[0], size / cut.shape[1])
    cut = cv2.resize(cut, (int(cut.shape[1] * factor), int(cut.shape[0] * factor)))
    dh, dw = size - cut.shape[0], size - cut.shape[1]
    return np.pad(cut, ((dh // 2, dh - dh // 2), (dw // 2, dw - dw // 2), (0, 0)))


def test_roll_levels_the_eyes_and_keeps_the_aspect_ratio(cases, tilted):
    faces = [c[3] for c in cases] + [t[2] for t in tilted]
    for face in faces:
        matrix = alignment_matrix(face, ARCFACE, "roll")
        left, right = _apply(matrix, face.landmarks[:2])
        assert abs(left[1] - right[1]) < 1e-6 and right[0] > left[0]
        linear = matrix[:, :2]
        assert np.isclose(linear[0, 0], linear[1, 1]) and np.isclose(linear[0, 1], -linear[1, 0])
        # the detector box's longer side fills the crop: scale = size / max(w, h)
        w, h = face.bbox[2:] - face.bbox[:2]
        assert np.isclose(np.hypot(*linear[0]), ARCFACE.size / max(w, h), rtol=1e-5)
    # the tilted faces really are tilted: the levelling is not a no-op
    assert min(abs(np.degrees(np.arctan2(*(t[2].landmarks[1] - t[2].landmarks[0])[::-1]))) for t in tilted) > 15


def test_roll_undoes_a_turn_of_the_image(cases, tilted):
    """The roll crop of a turned image is the roll crop of the upright one (the same box about the
    same face, levelled), to resampling noise; the box crop, which does not turn, is not."""
    for (rel, image, _, face), (_, turned, turned_face) in zip(cases, tilted):
        upright = align(image, face, ARCFACE, "roll").astype(np.float64)
        assert np.abs(align(turned, turned_face, ARCFACE, "roll") - upright).mean() < 4.0, rel
        box = align(image, face, ARCFACE, "box").astype(np.float64)
        assert np.abs(align(turned, turned_face, ARCFACE, "box") - box).mean() > 15.0, rel


def test_roll_is_deepfaces_crop(cases, tilted):
    """One warp plus the black bands gives what deepface's separate steps give, to resampling
    noise (a mean of 0.9-4.2 grey levels here; the eyes swapped, i.e. the opposite turn, give > 20)."""
    for rel, image, face in [(c[0], c[1], c[3]) for c in cases] + tilted:
        crop, steps = align(image, face, ARCFACE, "roll"), _deepface_steps(image, face, ARCFACE.size)
        assert crop.shape == steps.shape == (112, 112, 3)
        assert np.abs(crop.astype(np.float64) - steps).mean() < 6.0, rel
        left, top, right, bottom = roll_padding(face, ARCFACE)
        assert top == bottom == 0 and left + right > 0  # LFW boxes are taller than wide
        assert not crop[:, :left].any() and not crop[:, ARCFACE.size - right:].any()
    rel, image, face = tilted[0]
    swapped = Face(face.bbox, face.score, face.landmarks[[1, 0, 2, 4, 3]])
    wrong_turn = align(image, swapped, ARCFACE, "roll").astype(np.float64)
    assert np.abs(wrong_turn - _deepface_steps(image, face, 112)).mean() > 20


# --- box (facenet-pytorch) --------------------------------------------------------------------


def test_box_neither_rotates_nor_stretches_and_centres_the_box(cases, tilted):
    for face in [c[3] for c in cases] + [t[2] for t in tilted]:
        for template in (ARCFACE, ARCFACE.scaled(160)):
            matrix = alignment_matrix(face, template, "box")
            assert matrix[0, 1] == 0.0 and matrix[1, 0] == 0.0 and matrix[0, 0] == matrix[1, 1] > 0
            centre = (face.bbox[:2].astype(np.float64) + face.bbox[2:]) / 2.0
            np.testing.assert_allclose(_apply(matrix, centre), [template.size / 2] * 2, atol=1e-6)
            side = float(max(face.bbox[2:] - face.bbox[:2]))
            assert np.isclose(matrix[0, 0], template.size / (side * box_enlargement(template)))


def test_box_puts_the_face_at_the_templates_scale(cases):
    """The margin is chosen so that the five points take the template's size in the crop: on the
    sample faces their spread (RMS about the centroid) is the template's to within 10 % (median
    within 3 %)."""
    template_rms = np.sqrt(((TEMPLATE - TEMPLATE.mean(0)) ** 2).sum(1).mean())
    ratios = []
    for _, _, _, face in cases:
        points = _apply(alignment_matrix(face, ARCFACE, "box"), face.landmarks)
        ratios.append(np.sqrt(((points - points.mean(0)) ** 2).sum(1).mean()) / template_rms)
    assert 0.9 < min(ratios) and max(ratios) < 1.1 and abs(np.median(ratios) - 1) < 0.03, ratios
    assert 1.0 < box_enlargement(ARCFACE) < 1.1


# --- every mode -------------------------------------------------------------------------------


def test_a_scaled_template_scales_every_mode(cases, tilted):
    big = ARCFACE.scaled(224)
    for image, face in [(c[1], c[3]) for c in cases[:3]] + [(t[1], t[2]) for t in tilted[:3]]:
        for mode in ALIGN_MODES:
            small_m, big_m = alignment_matrix(face, ARCFACE, mode), alignment_matrix(face, big, mode)
            np.testing.assert_allclose(big_m, 2.0 * small_m, rtol=1e-5, atol=1e-4, err_msg=mode)
            crop = align(image, face, big, mode)
            assert crop.shape == (224, 224, 3) and crop.dtype == np.uint8
            # the same picture at twice the size: halved, it is the small crop to resampling noise
            half = cv2.resize(crop, (112, 112), interpolation=cv2.INTER_AREA).astype(np.float64)
            assert np.abs(half - align(image, face, ARCFACE, mode)).mean() < 6.0, mode


def test_every_mode_on_gray_and_tiny_images(cases):
    _, image, _, face = cases[0]
    gray = cv2.cvtColor(cv2.cvtColor(image, cv2.COLOR_RGB2GRAY), cv2.COLOR_GRAY2RGB)
    tiny = cv2.resize(image, (20, 20), interpolation=cv2.INTER_AREA)
    small_face = face.scaled(20 / image.shape[1])
    point = Face([5, 5, 5, 5], 1.0, np.full((5, 2), 7.0))  # an empty box, all five points in one spot
    for mode in ALIGN_MODES:
        for picture, target in ((gray, face), (tiny, small_face), (tiny, point)):
            for template in (ARCFACE, ARCFACE.scaled(64)):
                crop = align(picture, target, template, mode)
                assert crop.shape == (template.size, template.size, 3) and crop.dtype == np.uint8, mode
        crop = align(gray, face, ARCFACE, mode)
        assert np.array_equal(crop[..., 0], crop[..., 1]) and np.array_equal(crop[..., 1], crop[..., 2])
        assert crop.any()


def test_an_unknown_mode_names_the_modes(cases):
    _, image, _, face = cases[0]
    with pytest.raises(ValueError, match="similarity, eyes, affine, roll, box"):
        align(image, face, ARCFACE, "tilt")
    with pytest.raises(ValueError, match="unknown alignment mode"):
        alignment_matrix(face, ARCFACE, "Similarity")
    assert ALIGN_MODES[0] == "similarity"


# --- landmark_box -----------------------------------------------------------------------------


def test_landmark_box_is_the_similarity_crop_square(cases, tilted):
    for face in [c[3] for c in cases] + [t[2] for t in tilted]:
        box = landmark_box(face.landmarks)
        assert box.shape == (4,) and box.dtype == np.float32
        inverse = cv2.invertAffineTransform(similarity_transform(face.landmarks, ARCFACE.array))
        corners = _apply(inverse, [[0, 0], [112, 0], [112, 112], [0, 112]])
        np.testing.assert_allclose(box[:2], corners.min(0), atol=1e-3)
        np.testing.assert_allclose(box[2:], corners.max(0), atol=1e-3)
        # the landmarks are inside it, and the similarity crop's square maps onto [0, 112]
        assert np.all(face.landmarks >= box[:2]) and np.all(face.landmarks <= box[2:])
        # for a face found at all, its box and this one overlap much (LFW: a face per image)
        x1, y1 = np.maximum(box[:2], face.bbox[:2])
        x2, y2 = np.minimum(box[2:], face.bbox[2:])
        overlap = max(0.0, x2 - x1) * max(0.0, y2 - y1)
        assert overlap / face.area > 0.8
    # a scaled template cuts the same square, so the box does not change
    face = cases[0][3]
    big = landmark_box(face.landmarks, ARCFACE.scaled(224))
    np.testing.assert_allclose(big, landmark_box(face.landmarks), atol=1e-3)


def test_box_and_roll_work_from_a_landmark_box(cases):
    """A face the detector missed has only fallback landmarks; its landmark box serves as the
    detector box (an upright face: ``roll`` then cuts about the same square as ``similarity``)."""
    for _, image, _, face in cases:
        fallback = Face(landmark_box(face.landmarks), 0.0, face.landmarks)
        for mode in ("box", "roll"):
            crop = align(image, fallback, ARCFACE, mode)
            assert crop.shape == (112, 112, 3) and crop.any()
        roll = alignment_matrix(fallback, ARCFACE, "roll")
        similarity = alignment_matrix(fallback, ARCFACE, "similarity")
        centre = np.array([[56.0, 56.0]])
        back = _apply(cv2.invertAffineTransform(similarity), centre)
        # the landmark box is centred on the similarity square's centre, which roll then centres
        assert np.linalg.norm(_apply(roll, back) - centre) < 1e-3
