"""The pipelined runner (benchmark.run.pipeline) on real LFW images: the plain loop's results whatever
the batch sizes, bounded memory, errors raised in the caller, and batched detection equal to
detection one image at a time."""
import threading
import time

import numpy as np
import pytest

from backbones.onnx_embedder import OnnxEmbedder
from backbones.onnx_export import onnx_model_path
from benchmark.plain_loop import sequential_pass
from benchmark.protocol.pairs import read_pairs
from benchmark.protocol.scores import summarize
from benchmark.run.cache import MethodResults
from benchmark.run.cropping import detector_cropper, reference_cropper
from benchmark.run.pipeline import process_images
from face_alignment import create_detector
from tests.conftest import ALIGNED_DIR, LFW_DIR, LFW_IMAGES, WEIGHTS_DIR

pytestmark = pytest.mark.shared


@pytest.fixture(scope="module")
def pairs(small_pairs):
    return small_pairs


@pytest.fixture(scope="module")
def onnx_embedder(tmp_path_factory):
    """The real EdgeFace-XS on onnxruntime (the export shared with test_onnx_embedder)."""
    cache = tmp_path_factory.getbasetemp() / "onnx-cache"
    return OnnxEmbedder(onnx_model_path(WEIGHTS_DIR / "edgeface" / "edgeface_xs_q.pt", cache), "cpu")


class RecordingDetector:
    """The real detector, noting the size of each batch it is given."""

    def __init__(self, detector) -> None:
        self.detector, self.batches = detector, []

    def detect(self, images):
        self.batches.append(len(images))
        return self.detector.detect(images)


def _run(images, root, cropper, embedder, **options) -> MethodResults:
    return process_images(images, root, cropper, embedder, MethodResults.empty(len(images)), progress=False, **options)


def _assert_same(a: MethodResults, b: MethodResults) -> None:
    np.testing.assert_array_equal(a.status, b.status)
    np.testing.assert_array_equal(a.landmarks, b.landmarks)
    np.testing.assert_allclose(a.embeddings, b.embeddings, atol=1e-5)  # float embedder: batch-independent


def test_pipeline_gives_the_sequential_loops_results(pairs, yunet, onnx_embedder):
    recording = RecordingDetector(yunet)
    pipelined = _run(pairs.images, LFW_IMAGES, detector_cropper(recording), onnx_embedder, detect_batch=8)
    sequential = sequential_pass(pairs.images, LFW_IMAGES, detector_cropper(yunet), onnx_embedder,
                                 MethodResults.empty(len(pairs.images)))
    _assert_same(pipelined, sequential)
    assert summarize(pipelined.score(pairs)) == summarize(sequential.score(pairs))
    # the detector got real batches of 8 (the last of a chunk shorter; single images only for a tilted face's
    # second look)
    assert recording.batches.count(8) == len(pairs.images) // 8


def test_batch_sizes_and_workers_do_not_change_a_number(pairs, yunet, onnx_embedder):
    small = _run(pairs.images, LFW_IMAGES, detector_cropper(yunet), onnx_embedder, detect_batch=1, chunk=7, workers=1)
    large = _run(pairs.images, LFW_IMAGES, detector_cropper(yunet), onnx_embedder, detect_batch=16, chunk=64,
                 workers=3)
    _assert_same(small, large)


def test_memory_stays_bounded_when_the_embedder_is_slow(onnx_embedder):
    """The crop stage runs ahead of a slow embedder only as far as the bounded queue lets it:
    here at most 56 of 320 images (one chunk of 16 being embedded, 8 queued batches of 4, one
    batch in hand and one being cropped), however many images there are."""
    images = read_pairs(LFW_DIR / "pairs.txt").images[:320]
    counts = {"cropped": 0, "embedded": 0, "ahead": 0}

    def cropper(batch, indices=None):
        counts["cropped"] += len(batch)
        counts["ahead"] = max(counts["ahead"], counts["cropped"] - counts["embedded"])
        return reference_cropper()(batch)

    class SlowEmbedder:
        batch_size = 64

        def embed(self, crops, flip=False):
            time.sleep(0.05)
            counts["embedded"] += len(crops)
            return onnx_embedder.embed(crops, flip)

    results = _run(images, ALIGNED_DIR, cropper, SlowEmbedder(), chunk=16, detect_batch=4)
    assert results.done == 320 and 16 <= counts["ahead"] <= 56, counts


def test_an_error_in_the_crop_stage_is_raised_and_every_thread_ends(pairs, onnx_embedder):
    calls = {"n": 0}

    def failing(batch, indices=None):
        calls["n"] += 1
        if calls["n"] == 3:
            raise OSError("disk gone")
        return reference_cropper()(batch)

    results, saved = MethodResults.empty(len(pairs.images)), []
    with pytest.raises(OSError, match="disk gone"):
        process_images(pairs.images, ALIGNED_DIR, failing, onnx_embedder, results, chunk=8, detect_batch=4,
                       save=saved.append, progress=False)
    assert results.done == 8  # the first chunk was committed whole, nothing of the second
    assert [chunk.tolist() for chunk in saved] == [list(range(8))]  # and handed to save, which cached it
    assert not [t for t in threading.enumerate() if t.name.startswith("facebench-")]


@pytest.mark.parametrize("method", ["retinaface", "yolov5_face", "yolov8_face", "mtcnn"])
def test_batched_detection_finds_the_faces_found_one_by_one(method, sample_images):
    """The backends that batch (RetinaFace and MTCNN by image size, the YOLOs as their ONNX batch
    dimension allows) find, in a batch of 10 LFW images, the faces they find in each image alone."""
    detector = create_detector(method, device="cpu", weights_dir=WEIGHTS_DIR)
    images = list(sample_images.values())
    batched = detector.detect(images)
    for image, faces in zip(images, batched):
        alone = detector.detect([image])[0]
        assert len(faces) == len(alone) > 0
        for a, b in zip(faces, alone):
            np.testing.assert_allclose(a.bbox, b.bbox, atol=1e-2)
            np.testing.assert_allclose(a.landmarks, b.landmarks, atol=1e-2)
            assert abs(a.score - b.score) <= 1e-4
