"""Detect once, embed many: a second (embedder, alignment) cell of a method reuses the method's
cached detections, and gives the numbers a fresh run of that cell gives."""
import numpy as np
import pytest

from benchmark.cli import main
from benchmark.protocol.scores import PairScores
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
