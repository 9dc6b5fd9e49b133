"""Detection replicas (benchmark.run.replicas) on real LFW images: two replica processes give every
image the result one worker gives, clean and degraded, chunk by chunk in order; a replica that
fails or segfaults ends the method with an error that says so, without a wait; ``auto`` sizing."""
from __future__ import annotations

import multiprocessing
import os
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest

from benchmark.protocol.degradations import make_condition
from benchmark.protocol.pairs import read_pairs
from benchmark.run.cache import FOUND, MethodResults
from benchmark.run.cropping import CropperRecipe
from benchmark.run.engine import LocalEngine, MethodWork
from benchmark.run.pipeline import process_images
from benchmark.run.replicas import (
    DetectionReplicas,
    limit_threads,
    replica_threads,
    resolve_detect_workers,
    usable_cores,
)
from face_alignment import pick_target_face
from face_alignment.errors import FaceBenchError
from tests.conftest import LFW_DIR, LFW_IMAGES, REPO, WEIGHTS_DIR, pip_install_plugin

#: 48 LFW images (6 slices of 8), a few people in more than one image
IMAGES = read_pairs(LFW_DIR / "pairs.txt").images[:48] if LFW_DIR.is_dir() else []
YUNET = CropperRecipe("yunet", pick_target_face, "cpu", WEIGHTS_DIR)


@pytest.fixture(scope="module")
def yunet_work(embedder) -> MethodWork:
    return MethodWork("yunet", IMAGES, LFW_IMAGES, YUNET.build(), embedder, recipe=YUNET)


def _engine_run(work: MethodWork, detect_workers) -> tuple[MethodResults, list[list[int]]]:
    saved: list[list[int]] = []
    results = LocalEngine(detect_batch=8, progress=False, detect_workers=detect_workers).run(
        work, MethodResults.empty(len(work.images)), lambda indices: saved.append(indices.tolist()))
    return results, saved


def _assert_identical(a: MethodResults, b: MethodResults) -> None:
    np.testing.assert_array_equal(a.status, b.status)
    np.testing.assert_array_equal(a.landmarks, b.landmarks)
    np.testing.assert_array_equal(a.scores, b.scores)
    np.testing.assert_array_equal(a.embeddings, b.embeddings)  # the same crops in the same batches
    assert a.reasons == b.reasons


@pytest.mark.shared
@pytest.mark.parametrize("condition", [None, ("rotation", 3)], ids=["clean", "rotation-3"])
def test_two_replicas_give_every_image_one_workers_result(yunet_work, condition):
    work = yunet_work if condition is None else MethodWork(
        "yunet", IMAGES, LFW_IMAGES, yunet_work.cropper, yunet_work.embedder, condition=make_condition(*condition),
        recipe=YUNET)
    one, one_saved = _engine_run(work, 1)
    two, two_saved = _engine_run(work, 2)
    _assert_identical(one, two)
    assert one_saved == two_saved == [list(range(48))]
    assert np.count_nonzero(one.status == FOUND) >= 40  # real detections, not fallbacks
    assert np.isfinite(two.detect_ms).all() and (two.detect_ms > 0).all()  # timed in the replicas
    assert not multiprocessing.active_children()


@pytest.mark.shared
def test_peak_memory_counts_the_replicas(yunet_work):
    """A method's peak memory holds its replicas': each replica process (Python, OpenCV, YuNet's
    ONNX Runtime session) holds about 74 MB (measured), counted once per replica."""
    from benchmark.run.sysinfo import PeakMemory

    peaks = {}
    for workers in (1, 2):
        with PeakMemory() as memory:
            _engine_run(yunet_work, workers)
        peaks[workers] = memory
    assert peaks[1].children_peak_mb == 0  # one worker detects in this process
    assert 2 * 50 < peaks[2].children_peak_mb < 2 * 300
    assert peaks[2].peak_rss_mb >= peaks[2].children_peak_mb + 0.9 * peaks[1].peak_rss_mb


@pytest.mark.shared
def test_replica_chunks_are_committed_whole_and_in_order(yunet_work):
    """Chunks of 12 images over slices of 5 (a slice never crosses a chunk): each chunk is saved
    once it is whole, in order, with the one-worker results."""
    one, _ = _engine_run(yunet_work, 1)
    results, saved = MethodResults.empty(len(IMAGES)), []
    with DetectionReplicas(2, YUNET, IMAGES, LFW_IMAGES, detect_batch=5) as replicas:
        process_images(IMAGES, LFW_IMAGES, yunet_work.cropper, yunet_work.embedder, results, detect_batch=5, chunk=12,
                       save=lambda indices: saved.append((indices.tolist(), results.done)), progress=False,
                       crop_stage=replicas.stage)
    assert saved == [(list(range(s, s + 12)), s + 12) for s in range(0, 48, 12)]
    _assert_identical(one, results)


@pytest.mark.shared
def test_a_replica_that_cannot_build_its_detector_is_an_error_and_nothing_is_left_running(embedder):
    recipe = CropperRecipe("no_such_detector", pick_target_face, "cpu", WEIGHTS_DIR)
    work = MethodWork("no_such_detector", IMAGES, LFW_IMAGES, YUNET.build(), embedder, recipe=recipe)
    with pytest.raises(FaceBenchError, match=r"detection replica [12] of 2 failed: .*no_such_detector"):
        _engine_run(work, 2)
    assert not multiprocessing.active_children()
    assert not [t for t in threading.enumerate() if t.name.startswith("facebench-")]


@pytest.fixture(scope="module")
def crash_site(tmp_path_factory) -> Path:
    """tests/crash_plugin (YuNet that segfaults when asked to detect) pip-installed."""
    return pip_install_plugin(Path(__file__).parent / "crash_plugin", tmp_path_factory.mktemp("crash_plugin"))


@pytest.mark.shared
def test_a_segfaulting_replica_ends_the_method_with_its_error_row(crash_site, tmp_path):
    """The whole command, as a user runs it, in a process of its own that must end in time."""
    out = tmp_path / "run"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(crash_site), str(REPO)])}
    done = subprocess.run(
        [sys.executable, "-m", "benchmark", "--methods", "crash_segv", "--detect-workers", "2", "--max-pairs", "40",
         "--lfw-dir", str(LFW_DIR), "--weights-dir", str(WEIGHTS_DIR), "--device", "cpu", "--quiet", "--out", str(out)],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=600)  # a hang fails here
    assert done.returncode == 1, done.stderr
    report = (out / "report.csv").read_text()
    assert "detection replica 1 of 2 crashed (SIGSEGV) on 8 images from " in report or \
        "detection replica 2 of 2 crashed (SIGSEGV) on 8 images from " in report, report
    assert "rerun to resume" in report and "Traceback" not in done.stderr


def test_auto_is_one_replica_per_core_less_the_embedders():
    assert resolve_detect_workers("auto", cores=16) == 15
    assert resolve_detect_workers("auto", cores=2) == resolve_detect_workers("auto", cores=1) == 1
    assert resolve_detect_workers("auto") == max(1, len(os.sched_getaffinity(0)) - 1) == max(1, usable_cores() - 1)
    assert resolve_detect_workers(3) == 3
    assert resolve_detect_workers("auto", cores=16, detector_device="cuda:0") == 1  # a GPU detector: no replicas
    assert resolve_detect_workers(3, cores=16, detector_device="cuda:0") == 3  # unless asked for
    for bad in (0, -2, "two", True, 1.5):
        with pytest.raises(FaceBenchError, match="positive count or auto"):
            resolve_detect_workers(bad)


def test_replicas_share_the_cores_less_the_embedders():
    assert replica_threads(15, cores=16) == 1  # auto on 16 cores
    assert replica_threads(2, cores=16) == 7
    assert replica_threads(2, cores=2) == replica_threads(1, cores=1) == 1


@pytest.mark.shared
def test_limit_threads_sets_opencv_torch_and_the_detectors_onnxruntime(monkeypatch):
    """A replica's share of the cores reaches OpenCV, torch and the onnxruntime session of a
    detector made after it (YOLOv5-face, real weights); made before, onnxruntime's default stays."""
    import cv2
    import torch

    from face_alignment import runtime
    from face_alignment.detectors.yolov5_face import YOLOv5FaceDetector

    monkeypatch.setattr(runtime, "_detector_settings", runtime.ORT_DEFAULTS)
    before_limit = YOLOv5FaceDetector(device="cpu", weights_dir=WEIGHTS_DIR)
    before = cv2.getNumThreads(), torch.get_num_threads()
    try:
        limit_threads(1)
        assert (cv2.getNumThreads(), torch.get_num_threads()) == (1, 1)
        after_limit = YOLOv5FaceDetector(device="cpu", weights_dir=WEIGHTS_DIR)
    finally:
        cv2.setNumThreads(before[0])
        torch.set_num_threads(before[1])
    assert after_limit._session.get_session_options().intra_op_num_threads == 1
    assert before_limit._session.get_session_options().intra_op_num_threads == 0  # one per core
