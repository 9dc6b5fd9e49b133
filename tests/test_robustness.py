"""The robustness benchmark: the summary's arithmetic on a hand-made table, and real runs on an LFW
subset (YuNet as method and oracle, to stay fast): the oracle under the identity condition equals
its method's clean row pair for pair, the landmark shift under rotation is small for a detector that
finds the face, a rerun reads everything from the cache, and the charts are written."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from benchmark.cli import main
from benchmark.protocol.lfw import lfw_protocol
from benchmark.protocol.pairs import select_folds
from benchmark.report.files import load_run
from benchmark.report.robustness import CHART_FILES, ORACLE, read_table, row_name, summarize
from benchmark.run.robustness import RobustnessConfig, run_robustness
from face_alignment.errors import DatasetError
from tests.conftest import LFW_DIR, WEIGHTS_DIR


def _row(method, condition, severity, accuracy, error=""):
    return {"method": method, "condition": condition, "severity": severity, "accuracy": accuracy, "error": error}


def test_summary_splits_the_loss_between_embedder_and_detector():
    table = pd.DataFrame([
        _row("a", "clean", 0, 0.99), _row("a", "blur", 3, 0.90), _row("a", "jpeg", 3, 0.96),
        _row(ORACLE, "clean", 0, 0.98), _row(ORACLE, "blur", 3, 0.94), _row(ORACLE, "jpeg", 3, 0.97),
        _row("b", "clean", 0, 0.97), _row("b", "blur", 3, np.nan, error="crashed"),
    ])
    summary = summarize(table).set_index("method")
    a = summary.loc["a"]
    assert a["mean_accuracy"] == pytest.approx(0.93) and a["mean_drop"] == pytest.approx(0.06)
    assert a["embedder_loss"] == pytest.approx((0.04 + 0.01) / 2)  # clean oracle minus oracle
    assert a["detector_loss"] == pytest.approx((0.04 + 0.01) / 2)  # oracle minus method
    assert a["detector_share"] == pytest.approx(0.05 / (0.08 + 0.02))  # of the loss below the clean oracle
    assert a["worst_condition"] == "blur-3" and a["worst_accuracy"] == pytest.approx(0.90)
    assert summary.loc["b", "n_conditions"] == 0  # its only condition failed
    assert list(summary.index)[-1] == ORACLE


def test_row_names_are_compare_specs():
    assert row_name("yunet") == "yunet" and row_name("yunet", "jpeg", 5) == "yunet@jpeg-5"


@pytest.mark.shared
def test_selected_folds_keep_only_their_pairs_and_images():
    pairs = lfw_protocol(LFW_DIR).pairs
    two = select_folds(pairs, [1, 3])
    assert len(two) == 1200 and sorted(set(two.folds)) == [0, 2]
    assert set(two.images) == {two.images[i] for i in np.concatenate([two.first, two.second])}
    with pytest.raises(DatasetError, match="between 1 and 10"):
        select_folds(pairs, [0])


@pytest.fixture(scope="module")
def robustness_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("robustness")
    config = RobustnessConfig(methods=["yunet"], oracle="yunet", conditions="rotation:2,mask_occlusion:3",
                              lfw_dir=LFW_DIR, weights_dir=WEIGHTS_DIR, out=out, device="cpu", max_pairs=80,
                              progress=False)
    table, summary = run_robustness(config)
    return config, out, table, summary


@pytest.mark.shared
def test_the_oracle_under_the_identity_is_its_method_clean(robustness_run):
    _, out, table, _ = robustness_run
    run = load_run(out)
    clean, oracle = run.scores("yunet"), run.scores(ORACLE)
    np.testing.assert_array_equal(clean.distances, oracle.distances)
    np.testing.assert_array_equal(clean.found, oracle.found)
    rows = table.set_index("row")
    assert rows.loc["yunet", "accuracy"] == rows.loc[ORACLE, "accuracy"]
    assert (table["error"] == "").all(), table[table["error"] != ""]


@pytest.mark.shared
def test_rows_per_condition_and_the_landmark_shift(robustness_run):
    _, out, table, summary = robustness_run
    rows = table.set_index("row")
    assert set(rows.index) == {"yunet", "yunet@rotation-2", "yunet@mask_occlusion-3", ORACLE,
                               "oracle@rotation-2", "oracle@mask_occlusion-3"}
    # 30 degrees: YuNet's points on the rotated probe, mapped back, land near its clean points. Its
    # points move with rotation (median 0.17 inter-ocular distances on SAMPLE_IMAGES at 30 degrees,
    # RetinaFace's 0.04); points not mapped back would be off by more than one
    assert rows.loc["yunet@rotation-2", "landmark_shift_iod"] < 0.25
    assert rows.loc["yunet@rotation-2", "n_probes"] == rows.loc["oracle@rotation-2", "n_probes"] > 0
    assert np.isnan(rows.loc[ORACLE, "landmark_shift_iod"])
    pd.testing.assert_frame_equal(read_table(out / "robustness.csv"), table, rtol=1e-5)  # 6 digits in the CSV
    assert list(summary["method"]) == ["yunet", ORACLE]
    for name in CHART_FILES.values():
        assert (out / name).stat().st_size > 10_000, name


@pytest.mark.shared
def test_a_rerun_reads_every_pass_from_the_cache(robustness_run):
    """A rerun gives the same table without computing anything: every cache file (the passes'
    shards and totals, the detections) is the same file, unwritten (a pass that recomputed
    would replace its shards: a new inode and time), and no new cache appears."""
    config, out, table, _ = robustness_run

    def cache_files() -> dict:
        return {p: (p.stat().st_ino, p.stat().st_mtime_ns, p.read_bytes())
                for p in (out / "cache").rglob("*") if p.is_file()}

    before = cache_files()
    assert len([p for p in before if p.name.startswith("shard-")]) >= len(table)  # every pass has its shards
    again, _ = run_robustness(config)
    pd.testing.assert_frame_equal(again.drop(columns=["wall_s"]), table.drop(columns=["wall_s"]))
    assert cache_files() == before


def test_list_conditions_prints_the_table(capsys):
    assert main(["robustness", "--list-conditions"]) == 0
    text = capsys.readouterr().out
    assert "gaussian_blur" in text and "mask_occlusion" in text


def test_bad_folds_are_refused(capsys):
    with pytest.raises(SystemExit):
        main(["robustness", "--folds", "0-3"])
    assert "folds are numbered 1 to 10" in capsys.readouterr().err


@pytest.mark.shared
def test_several_embedders_share_the_detections_and_keep_the_single_embedder_numbers(robustness_run, tmp_path):
    """``--embedders edgeface_xs,edgeface_xxs``: a row per embedder (its name in the row's name),
    the first embedder's figures those of the single-embedder run, each embedder read against its
    own oracle, and the second embedder detecting nothing."""
    config, _, single, _ = robustness_run
    two = RobustnessConfig(**{**config.__dict__, "out": tmp_path, "embedders": ("edgeface_xs", "edgeface_xxs")})
    table, summary = run_robustness(two)
    assert (table["error"] == "").all(), table[table["error"] != ""]
    rows = table.set_index("row")
    for embedder in ("edgeface_xs", "edgeface_xxs"):
        assert {f"yunet+{embedder}", f"yunet+{embedder}@rotation-2", f"oracle+{embedder}@mask_occlusion-3"} <= \
            set(rows.index)
        assert rows.loc[f"yunet+{embedder}", "accuracy"] == rows.loc[f"oracle+{embedder}", "accuracy"]
    xs = table[table["embedder"] == "edgeface_xs"].set_index(["method", "condition", "severity"])
    one = single.set_index(["method", "condition", "severity"]).loc[xs.index]
    np.testing.assert_array_equal(xs["accuracy"], one["accuracy"])
    np.testing.assert_array_equal(xs["strict_accuracy"], one["strict_accuracy"])
    assert sorted(zip(summary["embedder"], summary["method"])) == [
        ("edgeface_xs", ORACLE), ("edgeface_xs", "yunet"), ("edgeface_xxs", ORACLE), ("edgeface_xxs", "yunet")]
    report = load_run(tmp_path).report.set_index("method")
    assert report.loc["yunet+edgeface_xxs@rotation-2", "detections_reused"] == report.loc[
        "yunet+edgeface_xxs@rotation-2", "n_images"]
