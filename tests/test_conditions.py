"""The image-condition seam: landmark maps between an image and its conditioned copy, the clean
condition changes nothing, and the pipeline logs landmarks in the original image's pixels."""
import cv2
import numpy as np
import pytest

from benchmark.protocol.conditions import CLEAN, Conditioned, ImageCondition
from benchmark.run.cache import FOUND, MethodResults
from benchmark.run.cropping import detector_cropper
from benchmark.run.pipeline import process_images
from tests.conftest import LFW_IMAGES


class HalfSize(ImageCondition):
    """The image at half its size, a scale about the origin: ``x' = x / 2``."""

    name = "half-size"

    def apply(self, image, key):
        small = cv2.resize(image, (image.shape[1] // 2, image.shape[0] // 2), interpolation=cv2.INTER_AREA)
        return Conditioned(small, np.array([[0.5, 0.0, 0.0], [0.0, 0.5, 0.0]]))


def test_points_go_both_ways_through_an_affine_map():
    angle = np.radians(30)
    matrix = np.array([[2 * np.cos(angle), -2 * np.sin(angle), 40.0], [2 * np.sin(angle), 2 * np.cos(angle), -7.0]])
    conditioned = Conditioned(np.zeros((4, 4, 3), np.uint8), matrix)
    points = np.array([[10.0, 20.0], [0.0, 0.0], [-3.5, 100.25]])
    moved = conditioned.to_conditioned(points)
    np.testing.assert_allclose(moved[1], [40.0, -7.0])  # the origin goes to the translation
    np.testing.assert_allclose(np.linalg.norm(moved[0] - moved[1]), 2 * np.hypot(10, 20))  # scale 2
    np.testing.assert_allclose(conditioned.to_original(moved), points, atol=1e-9)


def test_clean_is_the_image_itself():
    image = np.arange(5 * 6 * 3, dtype=np.uint8).reshape(5, 6, 3)
    clean = CLEAN.apply(image, "a/b.jpg")
    points = np.array([[1.25, 2.5], [3.0, 4.0]], np.float32)
    assert clean.image is image and CLEAN.name == "clean"
    np.testing.assert_array_equal(clean.to_original(points), points)
    np.testing.assert_array_equal(clean.to_conditioned(points), points)


@pytest.mark.shared
def test_pipeline_logs_landmarks_in_the_original_images_pixels(small_pairs, yunet, embedder):
    images = small_pairs.images[:12]
    runs = {}
    for condition in (CLEAN, HalfSize()):
        runs[condition.name] = process_images(images, LFW_IMAGES, detector_cropper(yunet), embedder,
                                              MethodResults.empty(len(images)), progress=False, condition=condition)
    clean, half = runs["clean"], runs["half-size"]
    both = (clean.status == FOUND) & (half.status == FOUND)
    assert both.sum() >= 10
    # the same face found at half size lands on the same original pixels, within a few (a 250-px LFW
    # image becomes 125 px, where YuNet's points differ by about 2 of its pixels: measured, median 3.7
    # and at most 7.9 original pixels over these 12 images); unmapped points would be 60+ pixels off
    error = np.linalg.norm(clean.landmarks[both] - half.landmarks[both], axis=2)
    assert np.median(error) < 5 and error.max() < 12, error
    # had the points stayed in the small image's pixels, they would be about half as far from the origin
    ratio = np.linalg.norm(half.landmarks[both], axis=2) / np.linalg.norm(clean.landmarks[both], axis=2)
    assert abs(np.median(ratio) - 1.0) < 0.02
