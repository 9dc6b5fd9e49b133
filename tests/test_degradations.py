"""The condition catalogue on real LFW images: each condition is deterministic (in a fresh process
and in threads too), severity 0 is the clean image, parameters mean what the table says, the
geometric maps are exact to a hundredth of a pixel, occluders sit on the given landmarks, and
``--conditions`` parses."""
import hashlib
import json
import subprocess
import sys

import numpy as np
import pytest

from benchmark.protocol.conditions import CLEAN, IDENTITY
from benchmark.protocol.degradations import (
    CONDITIONS,
    GAMMA,
    GEOMETRIC,
    OCCLUSION,
    PHOTOMETRIC,
    QUICK,
    RESOLUTION,
    SEVERITIES,
    ConditionError,
    conditions_table,
    fallback_landmarks,
    make_condition,
    parse_conditions,
)
from face_alignment import load_image
from tests.conftest import LFW_IMAGES, REPO, SAMPLE_IMAGES

pytestmark = pytest.mark.shared

KEY = SAMPLE_IMAGES[0]  # Aaron_Eckhart_0001
#: YuNet's 5 points on KEY (measured), image-left eye first
POINTS = np.array([[104.5, 109.0], [148.0, 108.6], [130.8, 133.2], [110.7, 152.8], [147.0, 151.1]])
LANDMARKS = {KEY: POINTS}
ALL = [(name, severity) for name in CONDITIONS for severity in SEVERITIES]
KEYS = SAMPLE_IMAGES[:2]
#: in a fresh process: the digest of every condition on KEYS, applied from 4 threads at once
DIGESTS = f"""
import hashlib, json, sys
from concurrent.futures import ThreadPoolExecutor
import numpy as np
from benchmark.protocol.degradations import CONDITIONS, make_condition
from face_alignment import load_image
landmarks = {{{KEY!r}: np.array({POINTS.tolist()})}}
def digest(job):
    (name, severity), key = job
    out = make_condition(name, severity, landmarks).apply(load_image({str(LFW_IMAGES)!r} + '/' + key), key)
    return hashlib.sha256(out.image.tobytes() + out.matrix.tobytes()).hexdigest()
jobs = [((name, s), key) for name in CONDITIONS for s in range(1, 6) for key in {KEYS!r}]
with ThreadPoolExecutor(4) as pool:
    print(json.dumps({{'digests': list(pool.map(digest, jobs)), 'torch': 'torch' in sys.modules}}))
"""


@pytest.fixture(scope="module")
def images() -> dict[str, np.ndarray]:
    return {key: load_image(LFW_IMAGES / key) for key in SAMPLE_IMAGES[:4]}


def _apply(name, severity, image, key=KEY):
    return make_condition(name, severity, LANDMARKS).apply(image, key)


def _dot_image(point, shape=(250, 230)):
    """A black image with a bright Gaussian dot (sigma 5 px) centred on ``point``."""
    yy, xx = np.mgrid[0:shape[0], 0:shape[1]]
    dot = np.exp(-((xx - point[0]) ** 2 + (yy - point[1]) ** 2) / (2 * 5.0**2))
    return np.repeat(np.rint(dot * 255).astype(np.uint8)[..., None], 3, axis=2)


def _centroid(image):
    grey = image[..., 0].astype(np.float64)
    yy, xx = np.mgrid[0:grey.shape[0], 0:grey.shape[1]]
    return np.array([(grey * xx).sum(), (grey * yy).sum()]) / grey.sum()


@pytest.mark.parametrize("name", CONDITIONS)
def test_a_condition_gives_the_same_bytes_each_time(name, images):
    for severity in SEVERITIES:
        for key in KEYS:
            first = _apply(name, severity, images[key], key)
            again = make_condition(name, severity, LANDMARKS).apply(images[key].copy(), key)  # a fresh object
            assert first.image.dtype == np.uint8 and first.image.ndim == 3 and first.image.shape[2] == 3
            assert first.matrix.shape == (2, 3)
            np.testing.assert_array_equal(first.image, again.image)
            np.testing.assert_array_equal(first.matrix, again.matrix)


def test_a_fresh_process_and_threads_give_the_same_bytes_without_torch(images):
    result = subprocess.run([sys.executable, "-c", DIGESTS], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    found = json.loads(result.stdout.strip().splitlines()[-1])
    here = []
    for name, severity in ALL:
        for key in KEYS:
            out = _apply(name, severity, images[key], key)
            here.append(hashlib.sha256(out.image.tobytes() + out.matrix.tobytes()).hexdigest())
    assert found["digests"] == here
    assert not found["torch"]  # albumentations would import torch through albumentations.pytorch


def test_only_the_drawn_parts_depend_on_the_key(images):
    image, keys = images[KEY], [f"person/{i}.jpg" for i in range(8)]
    for name, spec in CONDITIONS.items():
        outs = [make_condition(name, 3, {}).apply(image, key) for key in keys]
        same = all(np.array_equal(outs[0].image, out.image) for out in outs[1:])
        assert same != bool(spec.draw), name  # a noise pattern, angle, sign or position: it varies


def test_severity_zero_is_the_clean_image():
    for name in CONDITIONS:
        assert make_condition(name, 0) is CLEAN  # occlusions too, without landmarks
    assert make_condition("rotation", 3).name == "rotation:3"


@pytest.mark.parametrize("name", [name for name, spec in CONDITIONS.items() if spec.kind == PHOTOMETRIC])
def test_a_photometric_condition_keeps_the_pixels_in_place(name, images):
    image = images[KEY]
    for severity in SEVERITIES:
        out = _apply(name, severity, image)
        assert out.image.shape == image.shape and out.matrix is IDENTITY
        assert not np.array_equal(out.image, image), (name, severity)


def test_photometric_parameters_mean_what_the_table_says(images):
    grey = np.full((250, 250, 3), 128, np.uint8)
    for severity, std in zip(SEVERITIES, CONDITIONS["gaussian_noise"].values):
        noise = _apply("gaussian_noise", severity, grey).image - 128.0
        # albumentations truncates the noise toward zero (0.4 grey levels less); 3% is clipped at 60
        assert abs(noise.std() / std - 1) < 0.05, (std, noise.std())
    image = images[KEY].astype(np.float64)
    for name in ("underexposure", "overexposure"):
        for severity, stops in zip(SEVERITIES, CONDITIONS[name].values):
            out = _apply(name, severity, images[KEY]).image.astype(np.float64)
            assert np.abs(out - np.minimum(255, image * 2 ** (stops / GAMMA))).max() <= 1
    for severity, kept in zip(SEVERITIES, CONDITIONS["low_contrast"].values):
        out = _apply("low_contrast", severity, images[KEY]).image.astype(np.float64)
        assert np.abs(out - (image.mean() + kept * (image - image.mean()))).max() <= 1


@pytest.mark.parametrize("name", [name for name, spec in CONDITIONS.items() if spec.kind in (GEOMETRIC, RESOLUTION)])
def test_a_known_point_lands_where_the_matrix_says(name):
    for point in (np.array([83.0, 171.0]), np.array([140.3, 60.7])):
        image = _dot_image(point)
        for severity in SEVERITIES:
            out = make_condition(name, severity).apply(image, "a/b.jpg")
            mapped = out.to_conditioned(point[None])[0]
            # a hundredth of a pixel: the half-pixel shift of a resize is 0.2-0.44 px at these scales
            np.testing.assert_allclose(_centroid(out.image), mapped, atol=0.02, err_msg=f"{name}:{severity}")
            np.testing.assert_allclose(out.to_original(mapped[None])[0], point, atol=1e-9)


def test_downscale_keeps_the_small_size_and_small_offcentre_the_canvas(images):
    image = images[KEY]
    for severity, factor in zip(SEVERITIES, CONDITIONS["downscale"].values):
        assert _apply("downscale", severity, image).image.shape == (round(250 * factor), round(250 * factor), 3)
    for severity in SEVERITIES:
        out = _apply("small_offcentre", severity, image)
        assert out.image.shape == image.shape
        small = round(250 * CONDITIONS["small_offcentre"].values[severity - 1])
        assert np.count_nonzero(out.image.any(axis=2)) <= small**2  # the rest is black canvas
        # the centre moved as far as the square canvas allows, within the whole-pixel rounding
        centre = out.to_conditioned(np.array([[124.5, 124.5]]))[0]
        assert abs(np.linalg.norm(centre - 124.5) - (250 - small) / 2) < 0.75


def test_rotation_enlarges_the_canvas_so_nothing_is_cut():
    white = np.full((250, 180, 3), 255, np.uint8)
    quarter = make_condition("rotation", 5).apply(white, "a/b.jpg")  # 90 degrees
    assert quarter.image.shape == (180, 250, 3) and (quarter.image == 255).all()
    corners = np.array([[-0.5, -0.5], [179.5, -0.5], [179.5, 249.5], [-0.5, 249.5]])
    for severity in SEVERITIES:
        out = make_condition("rotation", severity).apply(white, "a/b.jpg")
        height, width = out.image.shape[:2]
        moved = out.to_conditioned(corners)
        assert (moved >= -0.5 - 1e-6).all() and (moved <= [width - 0.5 + 1e-6, height - 0.5 + 1e-6]).all()
        assert abs(out.image[..., 0].sum() / 255 - 250 * 180) < 250 + 180  # the area, within its edge


def _changed(out, image):
    return np.abs(out.image.astype(int) - image).max(axis=2) > 0


def _at(mask, point):
    x, y = np.round(point).astype(int)
    return mask[y - 2:y + 3, x - 2:x + 3].all()


def test_the_mask_covers_the_mouth_and_nose_and_sunglasses_the_eyes(images):
    image = images[KEY]
    for severity, top in zip(SEVERITIES, CONDITIONS["mask_occlusion"].values):
        changed = _changed(_apply("mask_occlusion", severity, image), image)
        assert _at(changed, POINTS[3]) and _at(changed, POINTS[4])  # the mouth
        assert _at(changed, POINTS[2]) == (top <= 0.5)  # the nose tip, at 0.56 eye-to-mouth distances
        assert not changed[:100].any() and not changed[:, :40].any()  # not the eyes, not a far corner
    for severity in SEVERITIES:
        changed = _changed(_apply("sunglasses", severity, image), image)
        assert _at(changed, POINTS[0]) and _at(changed, POINTS[1])
        assert not changed[140:].any() and not changed[:80].any()


def test_an_occluder_follows_the_landmarks_and_falls_back_without_them(images):
    image = images[KEY]
    shifted = {KEY: POINTS + [40, -10]}
    for name in ("mask_occlusion", "sunglasses"):
        here = np.argwhere(_changed(_apply(name, 3, image), image)).mean(0)
        there = np.argwhere(_changed(make_condition(name, 3, shifted).apply(image, KEY), image)).mean(0)
        np.testing.assert_allclose(there - here, [-10, 40], atol=1.5)
        fallback = make_condition(name, 3, {KEY: fallback_landmarks(image.shape)}).apply(image, KEY)
        for landmarks in ({}, {KEY: np.full((5, 2), np.nan)}):
            np.testing.assert_array_equal(make_condition(name, 3, landmarks).apply(image, KEY).image, fallback.image)
        with pytest.raises(ConditionError, match="landmarks"):
            make_condition(name, 3)


def test_the_fallback_is_near_lfws_faces():
    median = [[104.1, 112.7], [147.3, 112.1], [127.3, 137.2], [108.6, 156.6], [145.2, 155.9]]  # YuNet, 70 images
    np.testing.assert_array_less(np.linalg.norm(fallback_landmarks((250, 250, 3)) - median, axis=1), 10.5)


def test_bad_names_and_severities_are_clear_errors():
    with pytest.raises(ConditionError, match="gaussian_noise, motion_blur"):
        make_condition("fog", 1)
    assert issubclass(ConditionError, ValueError)
    for severity in (6, -1, 1.5, True, "3"):
        with pytest.raises(ConditionError, match="severity"):
            make_condition("jpeg", severity)


def test_parse_conditions():
    quick = parse_conditions("quick")
    assert len(quick) == 18 and {name for name, _ in quick} == set(QUICK)
    assert {CONDITIONS[name].kind for name in QUICK} == {PHOTOMETRIC, RESOLUTION, GEOMETRIC, OCCLUSION}
    assert parse_conditions(" all ") == ALL
    assert parse_conditions("rotation:2, jpeg:1-3,rotation:2,jpeg:3") == [
        ("rotation", 2), ("jpeg", 1), ("jpeg", 2), ("jpeg", 3)]
    assert parse_conditions("downscale:0") == [("downscale", 0)]
    for bad, message in [("", "expected"), ("rotation", "expected"), ("rotation:6", "0 \\(clean\\) to 5"),
                         ("rotation:3-1", "0 \\(clean\\) to 5"), ("rotation:x", "range"), ("fog:1", "unknown"),
                         ("rotation:1,", "expected")]:
        with pytest.raises(ConditionError, match=message):
            parse_conditions(bad)


def test_the_table_lists_every_condition():
    rows = conditions_table().splitlines()
    assert len(rows) == 2 + len(CONDITIONS)
    assert all(row.count("|") == 11 for row in rows)
    for row, (name, spec) in zip(rows[2:], CONDITIONS.items()):
        assert row.startswith(f"| `{name}` | {spec.kind} |") and f"{spec.values[-1]:g} |" in row
