"""Strict accuracy: a pair with a face not found is decided "different" (no face, no match) instead of
being scored at its fallback crop. Hand-made scores whose strict accuracy is worked out here by hand,
then real LFW runs (the benchmark with the reference crops, and the robustness benchmark under a
downscale where YuNet misses faces), and a run folder from before strict accuracy."""
from __future__ import annotations

import csv

import numpy as np
import pandas as pd
import pytest

from benchmark.protocol.metrics import DEFAULT_THRESHOLDS, kfold_accuracy
from benchmark.protocol.scores import UNSCORABLE_DISTANCE, PairScores, summarize
from benchmark.report.compare import compare_runs, correct_decisions, format_comparison
from benchmark.report.files import load_run, write_report, write_run_info
from benchmark.report.robustness import ORACLE, TABLE_COLUMNS, read_table
from benchmark.report.robustness import summarize as summarize_robustness
from benchmark.report.summary import summary_markdown
from tests.conftest import ALIGNED_DIR, LFW_DIR, WEIGHTS_DIR

N_FOLDS = 10
PER_FOLD = 20  # same pairs, then as many different pairs, in each fold


def fold_scores() -> PairScores:
    """10 folds of 20 same pairs at distance 0.5 and 20 different pairs at 3.5, every face found:
    each fold's threshold is 0.51 (the first of the grid that separates them), every pair right."""
    same = np.tile(np.r_[np.ones(PER_FOLD, bool), np.zeros(PER_FOLD, bool)], N_FOLDS)
    return PairScores(np.where(same, 0.5, 3.5), same, np.repeat(np.arange(N_FOLDS), 2 * PER_FOLD),
                      np.ones(len(same), bool))


def pair(fold: int, index: int, same: bool) -> int:
    """The position of the ``index``-th same (or different) pair of ``fold`` in :func:`fold_scores`."""
    return fold * 2 * PER_FOLD + (0 if same else PER_FOLD) + index


def with_changes(scores: PairScores, distances: dict[int, float] | None = None,
                 not_found: set[int] = frozenset()) -> PairScores:
    """``scores`` with some pairs' ``distances`` changed and the pairs ``not_found`` not found."""
    d, found = scores.distances.copy(), scores.found.copy()
    for i, value in (distances or {}).items():
        d[i] = value
    found[list(not_found)] = False
    return PairScores(d, scores.same, scores.folds, found)


#: three genuine pairs of fold 3 whose faces were not found (their fallback crops still matched: 0.5)
GENUINE_MISSED = {pair(3, 0, True), pair(3, 7, True), pair(3, 19, True)}
#: an impostor pair of fold 7 whose faces were not found and whose fallback crops matched (0.5)
IMPOSTOR_FALSE_MATCH = pair(7, 4, False)
#: an impostor pair of fold 7 not found, its fallback crops told apart (3.5)
IMPOSTOR_MISSED = pair(7, 11, False)


def missed_scores() -> PairScores:
    return with_changes(fold_scores(), {IMPOSTOR_FALSE_MATCH: 0.5},
                        GENUINE_MISSED | {IMPOSTOR_FALSE_MATCH, IMPOSTOR_MISSED})


def test_unscorable_distance_is_above_every_threshold():
    assert UNSCORABLE_DISTANCE > DEFAULT_THRESHOLDS.max()
    assert not (UNSCORABLE_DISTANCE < DEFAULT_THRESHOLDS).any()  # "same" is distance < threshold


@pytest.mark.parametrize("seed", [0, 1])
def test_all_found_strict_is_accuracy_exactly(seed):
    rng = np.random.default_rng(seed)
    same = rng.random(600) < 0.5
    distances = np.clip(rng.normal(np.where(same, 1.0, 1.6), 0.4), 0, 4)
    distances[5] = UNSCORABLE_DISTANCE  # an unreadable image is also the largest distance: no change
    found = np.ones(600, bool)
    found[5] = False
    scores = PairScores(distances, same, np.repeat(np.arange(N_FOLDS), 60), found)
    row = summarize(scores)
    assert row["strict_accuracy"] == row["accuracy"] and row["strict_accuracy_std"] == row["accuracy_std"]
    np.testing.assert_array_equal(scores.strict_distances, distances)
    np.testing.assert_array_equal(correct_decisions(scores.strict()), correct_decisions(scores))


def test_missed_genuine_pairs_cost_exactly_themselves():
    """Worked out by hand. Accuracy: every fold's threshold stays 0.51 (on any nine folds, a
    threshold in (0.5, 3.5] errs only on the impostor at 0.5, one at most 0.5 misses every genuine
    pair, one above 3.5 accepts every impostor), so only the impostor at 0.5 is wrong: fold 7 scores
    39/40. Strict: the three genuine pairs of fold 3 are at 4.0, never below a threshold, so wrong
    whatever the threshold; the thresholds stay 0.51 by the same count (three errors in (0.5, 3.5]);
    fold 3 scores 37/40, and the impostor at 0.5 is now decided "different": right, fold 7 40/40."""
    scores = missed_scores()
    expected_accuracy = np.ones(N_FOLDS)
    expected_accuracy[7] = 39 / 40
    expected_strict = np.ones(N_FOLDS)
    expected_strict[3] = 37 / 40
    row = summarize(scores)
    assert row["accuracy"] == pytest.approx(np.mean(expected_accuracy), abs=1e-15)
    assert row["accuracy_std"] == pytest.approx(np.std(expected_accuracy), abs=1e-15)
    assert row["strict_accuracy"] == pytest.approx(1 - 3 / 400, abs=1e-15)  # the three pairs of 400
    assert row["strict_accuracy_std"] == pytest.approx(np.std(expected_strict), abs=1e-15)
    np.testing.assert_allclose(kfold_accuracy(scores.strict_distances, scores.same, scores.folds).thresholds,
                               np.full(N_FOLDS, 0.51))
    assert set(np.flatnonzero(~correct_decisions(scores.strict()))) == GENUINE_MISSED
    assert set(np.flatnonzero(~correct_decisions(scores))) == {IMPOSTOR_FALSE_MATCH}
    # the fallback stays for accuracy: the distances and found flags are the file's
    assert scores.distances[list(GENUINE_MISSED)].tolist() == [0.5] * 3
    assert scores.strict_distances[sorted(GENUINE_MISSED | {IMPOSTOR_FALSE_MATCH, IMPOSTOR_MISSED})].tolist() == [
        UNSCORABLE_DISTANCE] * 5
    assert row["n_pairs_found"] == 395


def test_a_missed_impostor_pair_is_right_under_strict():
    # alone: accuracy 399/400 (the fallback's false match), strict 400/400
    scores = with_changes(fold_scores(), {IMPOSTOR_FALSE_MATCH: 0.5}, {IMPOSTOR_FALSE_MATCH})
    row = summarize(scores)
    assert row["accuracy"] == pytest.approx(1 - 1 / 400, abs=1e-15)
    assert row["strict_accuracy"] == 1.0 and row["strict_accuracy_std"] == 0.0
    assert correct_decisions(scores.strict())[IMPOSTOR_FALSE_MATCH]


def write_run(path, methods: dict[str, PairScores], strict_columns: bool = True):
    """A run folder as the runner writes it; without ``strict_columns``, as a version before strict
    accuracy did (its report.csv has no strict columns)."""
    rows = []
    (path / "scores").mkdir(parents=True)
    for method, scores in methods.items():
        scores.save(path / "scores" / f"{method}.npz")
        metrics = summarize(scores)
        if not strict_columns:
            metrics = {k: v for k, v in metrics.items() if not k.startswith("strict_")}
        rows.append({"method": method, "n_pairs": len(scores.same), "n_images": 2 * len(scores.same),
                     "success_rate": float(scores.found.mean()), **metrics, "detect_ms_median": 10.0,
                     "peak_rss_mb": 1000.0, "peak_gpu_mb": 0.0, "error": ""})
    write_report(rows, path / "report.csv")
    if not strict_columns:
        drop_strict_columns(path)
    write_run_info(path, {"pairs_sha256": "pairs-1", "dataset": "lfw"})
    return path


def drop_strict_columns(path) -> None:
    """Rewrite ``path/report.csv`` without the strict columns, as an older version wrote it."""
    with open(path / "report.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    header = [c for c in rows[0] if not c.startswith("strict_")]
    with open(path / "report.csv", "w", newline="") as fh:
        writer = csv.DictWriter(fh, header, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)


@pytest.mark.parametrize("strict_columns", [True, False], ids=["current", "old-report"])
def test_compare_tests_strict_accuracy_beside_accuracy(tmp_path, strict_columns):
    """A: every face found, the fallback's false match of the impostor included (wrong); B: the
    same distances with the five pairs not found. Accuracy: the same decisions. Strict: B is wrong
    on the three genuine pairs A gets right and right on the impostor A gets wrong: 3 and 1
    discordant, exact McNemar p = 2 (C(4,0) + C(4,1)) / 2^4 = 10 / 16."""
    a_scores = with_changes(fold_scores(), {IMPOSTOR_FALSE_MATCH: 0.5})
    a = write_run(tmp_path / "a", {"m": a_scores}, strict_columns)
    b = write_run(tmp_path / "b", {"m": missed_scores()}, strict_columns)
    row = compare_runs(a, b).iloc[0]
    assert (row["accuracy_diff"], row["a_only"], row["b_only"], row["p_value"]) == (0.0, 0, 0, 1.0)
    assert (row["strict_a_only"], row["strict_b_only"]) == (3, 1)
    assert row["strict_test"] == "exact binomial" and row["strict_p_value"] == pytest.approx(10 / 16, rel=1e-12)
    assert row["strict_accuracy_a"] == pytest.approx(399 / 400)
    assert row["strict_accuracy_b"] == pytest.approx(397 / 400)
    assert row["strict_accuracy_diff"] == pytest.approx(-2 / 400)
    assert row["strict_ci_low"] <= row["strict_accuracy_diff"] <= row["strict_ci_high"]
    assert row["regressions"] == ""  # only a significant drop in accuracy is flagged
    text = format_comparison(compare_runs(a, b))
    header, line = text.splitlines()[3:5]
    assert "strict A" in header and "Δstrict pp" in header
    assert "99.75%" in line and "99.25%" in line and "-0.50" in line and "0.6250" in line
    # the report's columns: in a current run, not in an old one; summary.md has them or leaves them empty
    report = load_run(b).report
    if strict_columns:
        assert report.iloc[0]["strict_accuracy"] == pytest.approx(397 / 400)
    else:
        assert "strict_accuracy" not in report.columns
    summary = summary_markdown(load_run(b))
    assert "strict accuracy" in summary
    cells = next(line for line in summary.splitlines() if line.startswith("| m |")).split(" | ")
    # B's accuracy 399/400 (fold 7 at 39/40: std 0.75%), then its strict accuracy 397/400
    assert cells[1:4] == ["99.75%", "0.75%", "99.25%" if strict_columns else ""]


def test_robustness_summary_in_strict_accuracy():
    def row(method, condition, severity, accuracy, strict):
        return {"method": method, "condition": condition, "severity": severity, "accuracy": accuracy,
                "strict_accuracy": strict, "error": ""}

    table = pd.DataFrame([
        row("a", "clean", 0, 0.99, 0.99), row("a", "downscale", 5, 0.95, 0.60), row("a", "jpeg", 5, 0.96, 0.96),
        row(ORACLE, "clean", 0, 0.98, 0.98), row(ORACLE, "downscale", 5, 0.93, 0.93),
        row(ORACLE, "jpeg", 5, 0.97, 0.97),
    ])
    a = summarize_robustness(table).set_index("method").loc["a"]
    assert a["clean_strict_accuracy"] == 0.99 and a["mean_strict_accuracy"] == pytest.approx(0.78)
    assert a["strict_detector_loss"] == pytest.approx(((0.93 - 0.60) + (0.97 - 0.96)) / 2)
    assert a["detector_loss"] == pytest.approx(((0.93 - 0.95) + (0.97 - 0.96)) / 2)  # the fallback's accuracy
    old = summarize_robustness(table.drop(columns=["strict_accuracy"])).set_index("method")  # an older table
    assert old["mean_strict_accuracy"].isna().all()
    new = summarize_robustness(table).set_index("method")
    pd.testing.assert_series_equal(old["detector_loss"], new["detector_loss"])


# --- real runs ---------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def benchmark_run(tmp_path_factory):
    """YuNet and the reference crops on 40 LFW pairs (four per fold)."""
    from benchmark.run.runner import RunConfig, run_benchmark

    out = tmp_path_factory.mktemp("strict-run")
    run_benchmark(RunConfig(methods=["yunet"], lfw_dir=LFW_DIR, weights_dir=WEIGHTS_DIR, aligned_dir=ALIGNED_DIR,
                            out=out, device="cpu", max_pairs=40, progress=False, isolate=False))
    return out


@pytest.fixture(scope="module")
def downscale_run(tmp_path_factory):
    """The robustness benchmark on 40 LFW pairs with the probes downscaled to 0.12x (a face of
    about 12 pixels), where YuNet finds few faces; YuNet is also the oracle's method."""
    from benchmark.run.robustness import RobustnessConfig, run_robustness

    out = tmp_path_factory.mktemp("strict-robustness")
    table, summary = run_robustness(RobustnessConfig(
        methods=["yunet"], oracle="yunet", conditions="downscale:5", lfw_dir=LFW_DIR, weights_dir=WEIGHTS_DIR,
        out=out, device="cpu", max_pairs=40, progress=False))
    return out, table, summary


def check_report_rows(out) -> pd.DataFrame:
    """Every row of the run's report: strict accuracy recomputed from its scores file, at most its
    accuracy, equal to it where both faces of every pair were found."""
    run = load_run(out)
    report = run.report.set_index("method")
    for method in run.methods:
        scores, row = run.scores(method), report.loc[method]
        strict = kfold_accuracy(np.where(scores.found, scores.distances, UNSCORABLE_DISTANCE), scores.same,
                                scores.folds)
        assert row["strict_accuracy"] == pytest.approx(strict.mean, abs=1e-6), method  # six digits in the CSV
        assert row["strict_accuracy_std"] == pytest.approx(strict.std, abs=1e-6), method
        assert row["strict_accuracy"] <= row["accuracy"], method
        if scores.found.all():
            assert row["strict_accuracy"] == row["accuracy"], method
            assert row["strict_accuracy_std"] == row["accuracy_std"], method
    return report


@pytest.mark.shared
def test_real_run_reference_row_is_unchanged(benchmark_run, tmp_path):
    report = check_report_rows(benchmark_run)
    run = load_run(benchmark_run)
    for method in run.methods:  # in the benchmark, every image's face found: every pair's
        assert (report.loc[method, "success_rate"] == 1.0) == run.scores(method).found.all(), method
    assert report.loc["reference", "success_rate"] == 1.0  # so its strict accuracy is its accuracy (checked above)
    assert "strict accuracy" in (benchmark_run / "summary.md").read_text()
    table = compare_runs(f"{benchmark_run}:reference", f"{benchmark_run}:yunet")
    row = table.iloc[0]
    assert row["strict_accuracy_a"] == pytest.approx(report.loc["reference", "strict_accuracy"], abs=1e-6)
    assert row["strict_accuracy_b"] == pytest.approx(report.loc["yunet", "strict_accuracy"], abs=1e-6)
    # the same folder as an older version wrote it: it loads, compares and summarises the same
    old = tmp_path / "old"
    old.mkdir()
    for name in ("report.csv", "run.json"):
        (old / name).write_bytes((benchmark_run / name).read_bytes())
    (old / "scores").mkdir()
    for npz in (benchmark_run / "scores").iterdir():
        (old / "scores" / npz.name).write_bytes(npz.read_bytes())
    drop_strict_columns(old)
    old_table = compare_runs(f"{old}:reference", f"{old}:yunet")
    pd.testing.assert_frame_equal(old_table.drop(columns=["run_a", "run_b"]), table.drop(columns=["run_a", "run_b"]))
    assert "strict accuracy" in summary_markdown(load_run(old))


@pytest.mark.shared
def test_real_downscale_strict_accuracy_counts_the_missed_faces(downscale_run):
    out, table, summary = downscale_run
    assert (table["error"] == "").all(), table[table["error"] != ""]
    assert list(table.columns) == TABLE_COLUMNS
    report = check_report_rows(out)
    rows = table.set_index("row")
    for name, row in rows.iterrows():  # the robustness table has the report's figures
        assert row["strict_accuracy"] == pytest.approx(report.loc[name, "strict_accuracy"], abs=1e-6), name
    down = rows.loc["yunet@downscale-5"]
    assert down["success_rate"] < 1.0
    assert down["strict_accuracy"] < down["accuracy"]
    pd.testing.assert_frame_equal(read_table(out / "robustness.csv"), table, rtol=1e-5)
    yunet = summary.set_index("method").loc["yunet"]
    assert yunet["mean_strict_accuracy"] == pytest.approx(down["strict_accuracy"])
    assert yunet["strict_detector_loss"] == pytest.approx(rows.loc["oracle@downscale-5", "strict_accuracy"]
                                                          - down["strict_accuracy"])
    # compare on the condition's rows: the strict test is over the same pairs as the accuracy test
    row = compare_runs(f"{out}:yunet", f"{out}:yunet@downscale-5").iloc[0]
    assert row["strict_accuracy_b"] == pytest.approx(down["strict_accuracy"], abs=1e-6)
    assert row["strict_accuracy_diff"] == pytest.approx((row["strict_b_only"] - row["strict_a_only"]) / 40)
