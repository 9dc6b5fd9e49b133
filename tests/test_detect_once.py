"""Detect once, embed many: a second (embedder, alignment) cell of a method reuses the method's
cached detections, and gives the numbers a fresh run of that cell gives; detections are cached by
image name, so another run over some of the same images (CFP-FF after CFP-FP) reuses them too."""
import logging
from dataclasses import replace

import numpy as np
import pytest

import benchmark
from benchmark.cli import main
from benchmark.protocol.cfp import cfp_protocol
from benchmark.protocol.conditions import CLEAN
from benchmark.protocol.scores import PairScores
from benchmark.run.cropping import image_source
from benchmark.run.detections import DetectionCache
from benchmark.run.runner import detection_cache
from face_alignment.selection import pick_target_face
from tests.conftest import SHARED, WEIGHTS_DIR
from tests.shared_runs import METRICS, cli_args, report_row

pytestmark = pytest.mark.shared

PAIRS = 40


def _run(out, *extra) -> dict:
    assert main([*cli_args(PAIRS), "--out", str(out), "--quiet", *extra]) == 0
    return report_row(out)


def test_a_later_cell_reuses_the_detections_and_equals_a_fresh_run(tmp_path):
    fresh = _run(tmp_path / "fresh", "--align", "eyes", "--embedder-model", "edgeface_xxs")
    first = _run(tmp_path / "shared")  # edgeface_xs, similarity: detects every image
    first_scores = PairScores.load(tmp_path / "shared" / "scores" / "yunet.npz")
    later = _run(tmp_path / "shared", "--align", "eyes", "--embedder-model", "edgeface_xxs")
    n_images = int(first["n_images"])
    assert int(fresh["detections_reused"]) == 0 and int(first["detections_reused"]) == 0
    assert int(later["detections_reused"]) == n_images  # not one image detected again
    assert (later["align"], later["embedder"]) == ("eyes", "edgeface_xxs")
    assert {m: later[m] for m in METRICS} == {m: fresh[m] for m in METRICS}  # as if detected anew
    assert later["detect_ms_median"] == first["detect_ms_median"]  # the detector's own time, carried over
    assert float(later["wall_s"]) < float(first["wall_s"])
    later_scores, fresh_scores = (PairScores.load(tmp_path / run / "scores" / "yunet.npz")
                                  for run in ("shared", "fresh"))
    assert np.array_equal(later_scores.distances, fresh_scores.distances)  # pair by pair, to the bit
    assert np.abs(later_scores.distances - first_scores.distances).mean() > 0.05  # and another cell indeed


def test_cfp_ff_aligns_from_the_detections_of_cfp_fp_in_one_cache_dir(tmp_path, caplog):
    def run(dataset, out, cache_dir=None):
        report = benchmark.run_cfp(["yunet"], dataset, cfp_dir=SHARED / "data" / "cfp", weights_dir=WEIGHTS_DIR,
                                   out=tmp_path / out, cache_dir=cache_dir, device="cpu", max_pairs=40,
                                   progress=False, isolate=False)
        return report.iloc[0]

    fresh = run("cfp-ff", "ff-fresh")
    run("cfp-fp", "fp", tmp_path / "cache")
    ff = run("cfp-ff", "ff", tmp_path / "cache")
    ff_images, fp_images = (cfp_protocol(name, SHARED / "data" / "cfp", 40).pairs.images
                            for name in ("cfp-ff", "cfp-fp"))
    shared = set(ff_images) & set(fp_images)
    assert len(shared) == 19 and fresh["detections_reused"] == 0
    assert ff["detections_reused"] == len(shared)  # FP's detections of the frontal images both lists hold
    assert {m: ff[m] for m in METRICS} == {m: fresh[m] for m in METRICS}
    reused, detected = (PairScores.load(tmp_path / run / "scores" / "yunet.npz") for run in ("ff", "ff-fresh"))
    assert np.array_equal(reused.distances, detected.distances)  # pair by pair, to the bit

    (folder,) = (tmp_path / "cache" / "detections").iterdir()
    files = DetectionCache(folder, "").files()
    files[0].write_bytes(b"not an npz")  # a damaged file is removed, and only its images are detected again
    with caplog.at_level(logging.WARNING):
        known = DetectionCache(folder, "").known(ff_images)
    assert "removing unreadable detections file" in caplog.text and not files[0].exists()
    assert 0 < np.count_nonzero(known.status) < len(ff_images)


def test_two_face_choices_over_one_folder_keep_their_detections_apart(tmp_path):
    """Detections are keyed by the folder, not the image list: a protocol that picks another face
    of the same images (CFP's central face, LFW's target face) must not read the other's."""
    protocol = cfp_protocol("cfp-ff", SHARED / "data" / "cfp", 4)
    central = image_source("yunet", protocol, "cpu", WEIGHTS_DIR)
    target = image_source("yunet", replace(protocol, pick_face=pick_target_face), "cpu", WEIGHTS_DIR)
    meta = {"versions": "same"}
    assert central.code_version == target.code_version  # one module holds both pickers
    assert detection_cache("yunet", central, meta, CLEAN, tmp_path, {}).folder != \
        detection_cache("yunet", target, meta, CLEAN, tmp_path, {}).folder
    assert detection_cache("yunet", central, meta, CLEAN, tmp_path, {}).folder == \
        detection_cache("yunet", image_source("yunet", protocol, "cpu", WEIGHTS_DIR), meta, CLEAN, tmp_path, {}).folder
