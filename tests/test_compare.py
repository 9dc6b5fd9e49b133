"""`facebench compare`: hand-made score files whose answers are known, and two real runs."""
import math

import numpy as np
import pytest

from benchmark.cli import main
from benchmark.protocol.metrics import kfold_accuracy, kfold_decisions
from benchmark.protocol.scores import PairScores, summarize
from benchmark.report.compare import (
    RunMismatchError,
    bootstrap_ci,
    compare_runs,
    correct_decisions,
    mcnemar,
    paired_test,
)
from benchmark.report.files import load_run, write_report, write_run_info
from benchmark.run.runner import RunConfig, run_benchmark
from tests.conftest import ALIGNED_DIR, LFW_DIR, WEIGHTS_DIR

N_FOLDS = 10


def hand_made_scores(wrong: set[int], per_fold: int = 20) -> PairScores:
    """10 folds of ``per_fold`` same then ``per_fold`` different pairs; same pairs at distance 0.5
    and different ones at 3.5, except the pairs in ``wrong``, whose distances are swapped. Every
    fold's threshold is then 0.51 (the first of arange(0, 4, 0.01) above 0.5: all thresholds in
    (0.5, 3.5] tie on the other folds), so exactly the pairs in ``wrong`` are decided wrongly."""
    same = np.tile(np.r_[np.ones(per_fold, bool), np.zeros(per_fold, bool)], N_FOLDS)
    distances = np.where(same, 0.5, 3.5)
    flip = np.zeros(len(same), bool)
    flip[list(wrong)] = True
    distances[flip] = 4.0 - distances[flip]
    return PairScores(distances, same, np.repeat(np.arange(N_FOLDS), 2 * per_fold), np.ones(len(same), bool))


def write_hand_made_run(path, methods: dict[str, PairScores], detect_ms: float = 10.0, rss_mb: float = 1000.0,
                        pairs_sha256: str = "pairs-1"):
    """A run folder as the runner writes it (report.csv, scores/, run.json) around given scores."""
    rows = []
    for method, scores in methods.items():
        scores_dir = path / "scores"
        scores_dir.mkdir(parents=True, exist_ok=True)
        scores.save(scores_dir / f"{method}.npz")
        rows.append({"method": method, "n_pairs": len(scores.same), "n_images": 2 * len(scores.same),
                     "success_rate": 1.0, **summarize(scores), "detect_ms_median": detect_ms, "peak_rss_mb": rss_mb,
                     "peak_gpu_mb": 0.0})
    write_report(rows, path / "report.csv")
    write_run_info(path, {"pairs_sha256": pairs_sha256})
    return path


def test_hand_made_decisions_are_the_protocols():
    wrong = {0, 5, 33, 150, 399}
    scores = hand_made_scores(wrong)
    decisions = kfold_decisions(scores.distances, scores.same, scores.folds)
    np.testing.assert_array_equal(kfold_accuracy(scores.distances, scores.same, scores.folds).thresholds,
                                  np.full(N_FOLDS, 0.51))
    assert set(np.flatnonzero(decisions != scores.same)) == wrong
    assert set(np.flatnonzero(~correct_decisions(scores))) == wrong


def test_identical_runs_differ_by_nothing(tmp_path):
    scores = hand_made_scores({1, 2, 50, 77})
    a = write_hand_made_run(tmp_path / "a", {"yunet": scores, "mtcnn": hand_made_scores({3})})
    b = write_hand_made_run(tmp_path / "b", {"yunet": scores, "mtcnn": hand_made_scores({3})})
    table = compare_runs(a, b)
    assert table["method_a"].tolist() == ["yunet", "mtcnn"]
    for _, row in table.iterrows():
        assert row["accuracy_diff"] == 0.0 and (row["ci_low"], row["ci_high"]) == (0.0, 0.0)
        assert row["p_value"] == 1.0 and row["a_only"] == row["b_only"] == 0
        assert row["time_ratio"] == 1.0 and row["regressions"] == ""


def test_exact_mcnemar_on_known_discordant_counts(tmp_path):
    # A wrong on 9 pairs B gets right, B wrong on 3 pairs A gets right, both wrong on 2:
    # exact two-sided p = 2 * sum_{k<=3} C(12, k) / 2^12 = 2 * (1 + 12 + 66 + 220) / 4096
    both = {7, 300}
    a_wrong = both | {0, 21, 42, 63, 84, 105, 126, 147, 168}
    b_wrong = both | {10, 230, 390}
    a = write_hand_made_run(tmp_path / "a", {"m": hand_made_scores(a_wrong)})
    b = write_hand_made_run(tmp_path / "b", {"m": hand_made_scores(b_wrong)})
    row = compare_runs(f"{a}:m", f"{b}:m").iloc[0]
    assert (row["a_only"], row["b_only"]) == (3, 9)
    assert row["test"] == "exact binomial"
    assert row["p_value"] == pytest.approx(2 * (1 + 12 + 66 + 220) / 4096, rel=1e-12)
    assert row["accuracy_diff"] == pytest.approx((9 - 3) / 400)  # B is right on 6 more pairs of 400
    assert row["ci_low"] <= row["accuracy_diff"] <= row["ci_high"]


def test_chi_square_mcnemar_above_25_discordant():
    # A wrong on 30 pairs B gets right, B wrong on 10 others (40 >= 25 discordant): statistic
    # (|10 - 30| - 1)^2 / 40 = 9.025; a chi-square with one degree of freedom has survival
    # function erfc(sqrt(x / 2))
    a_wrong, b_wrong = set(range(0, 390, 13)), set(range(1, 400, 40))
    assert len(a_wrong) == 30 and len(b_wrong) == 10 and not a_wrong & b_wrong
    result = paired_test(hand_made_scores(a_wrong), hand_made_scores(b_wrong))
    assert (result.a_only, result.b_only) == (10, 30)
    assert result.test == "chi-square"
    assert result.p_value == pytest.approx(math.erfc(math.sqrt(9.025 / 2)), rel=1e-9)
    assert mcnemar(0, 0) == (1.0, "none discordant")


def test_bootstrap_ci_contains_the_true_difference():
    # B is right with probability 0.95, A with 0.97, independently: the true difference is -0.02.
    # The interval must contain it and match the normal approximation mean +- 1.96 * sd / sqrt(n).
    rng = np.random.default_rng(7)
    n = 6000
    correct_a, correct_b = rng.random(n) < 0.97, rng.random(n) < 0.95
    low, high = bootstrap_ci(correct_a, correct_b)
    assert low < -0.02 < high
    d = correct_b.astype(float) - correct_a
    half = 1.96 * d.std() / math.sqrt(n)
    assert low == pytest.approx(d.mean() - half, abs=0.0006) and high == pytest.approx(d.mean() + half, abs=0.0006)
    # the multinomial shortcut is the pair resampling it stands for: resample indices directly
    index = rng.integers(0, n, size=(2000, n))
    direct = np.quantile(d[index].mean(axis=1), [0.025, 0.975])
    assert (low, high) == pytest.approx(tuple(direct), abs=0.0008)
    assert bootstrap_ci(correct_a, correct_b) == (low, high)  # fixed seed: the same interval every time


def test_refuses_score_files_over_other_pairs(tmp_path, capsys):
    a = write_hand_made_run(tmp_path / "a", {"m": hand_made_scores(set())})
    fewer = write_hand_made_run(tmp_path / "fewer", {"m": hand_made_scores(set(), per_fold=10)})
    with pytest.raises(RunMismatchError, match="400 pairs against 200"):
        compare_runs(a, fewer)
    other = write_hand_made_run(tmp_path / "other", {"m": hand_made_scores(set())}, pairs_sha256="pairs-2")
    with pytest.raises(RunMismatchError, match="fingerprints differ"):
        compare_runs(a, other)
    relabelled = hand_made_scores(set())
    relabelled = PairScores(relabelled.distances, relabelled.same[::-1].copy(), relabelled.folds, relabelled.found)
    with pytest.raises(RunMismatchError, match="other labels or folds"):
        compare_runs(a, write_hand_made_run(tmp_path / "relabelled", {"m": relabelled}))
    assert main(["compare", str(a), str(fewer)]) == 2
    assert "not scored over the same pairs" in capsys.readouterr().err
    assert main(["compare", str(a), f"{a}:m"]) == 2
    assert "not one of each" in capsys.readouterr().err


def test_regressions_are_flagged(tmp_path, capsys):
    # B wrong on 30 more pairs (p far below 0.05), 2x slower and with 1.5x the memory of A
    a = write_hand_made_run(tmp_path / "a", {"m": hand_made_scores(set())})
    b = write_hand_made_run(tmp_path / "b", {"m": hand_made_scores(set(range(0, 400, 13)))}, detect_ms=20.0,
                            rss_mb=1500.0)
    row = compare_runs(a, b).iloc[0]
    assert row["b_only"] == 0 and row["a_only"] == 31 and row["p_value"] < 1e-6
    assert (row["time_ratio"], row["rss_ratio"]) == (2.0, 1.5)
    assert row["regressions"] == "accuracy,time,memory"
    assert compare_runs(a, b, time_tolerance=1.5, memory_tolerance=0.6).iloc[0]["regressions"] == "accuracy"
    assert main(["compare", str(a), str(b)]) == 1  # for CI: a regression fails the command
    out = capsys.readouterr().out
    assert "accuracy,time,memory" in out and "-7.75" in out  # 31 of 400 pairs: -7.75 percentage points


@pytest.fixture(scope="module")
def real_runs(tmp_path_factory):
    """Two real runs over the same 200 LFW pairs: YuNet and the reference crops, without and
    with flip test-time augmentation."""
    root = tmp_path_factory.mktemp("runs")
    for name, flip in (("plain", False), ("flip", True)):
        run_benchmark(RunConfig(methods=["yunet"], lfw_dir=LFW_DIR, weights_dir=WEIGHTS_DIR, aligned_dir=ALIGNED_DIR,
                                out=root / name, device="cpu", max_pairs=200, flip=flip, progress=False,
                                isolate=False))
    return root / "plain", root / "flip"


@pytest.mark.shared
def test_real_runs(real_runs, capsys):
    plain, flip = real_runs
    table = compare_runs(plain, flip)
    assert table["method_a"].tolist() == ["reference", "yunet"]
    for _, row in table.iterrows():
        report_a, report_b = load_run(plain).row(row["method_a"]), load_run(flip).row(row["method_b"])
        # the LFW folds are equal-sized, so the pooled per-pair accuracy is the report's fold mean
        assert row["accuracy_a"] == pytest.approx(report_a["accuracy"], abs=1e-6)
        assert row["accuracy_b"] == pytest.approx(report_b["accuracy"], abs=1e-6)
        assert row["accuracy_diff"] == pytest.approx((row["b_only"] - row["a_only"]) / 200)
        assert row["ci_low"] <= row["accuracy_diff"] <= row["ci_high"]
        assert 0.0 < row["p_value"] <= 1.0
        assert row["roc_auc_diff"] == pytest.approx(report_b["roc_auc"] - report_a["roc_auc"])
    scores = load_run(plain).scores("yunet")
    decisions = kfold_decisions(scores.distances, scores.same, scores.folds)
    per_fold = [np.mean(decisions[scores.folds == k] == scores.same[scores.folds == k]) for k in range(N_FOLDS)]
    np.testing.assert_allclose(per_fold, kfold_accuracy(scores.distances, scores.same, scores.folds).accuracies)

    same_run = compare_runs(f"{plain}:yunet", f"{plain}:yunet").iloc[0]
    assert (same_run["accuracy_diff"], same_run["p_value"], same_run["time_ratio"]) == (0.0, 1.0, 1.0)
    code = main(["compare", f"{plain}:reference", f"{flip}:yunet", "--quiet"])
    out = capsys.readouterr().out
    assert code in (0, 1) and "reference -> yunet" in out and "95% CI" in out
