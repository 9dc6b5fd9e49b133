"""``facebench compare A B``: do two methods, or the same methods in two runs, differ significantly?

Each side's per-pair decisions are taken at the protocol's fold thresholds
(:func:`benchmark.protocol.metrics.kfold_decisions`: a pair is judged at the threshold chosen on the other
nine folds), so a pair counts as correct exactly when it counts towards the reported accuracy.
On those paired decisions:

* **paired bootstrap**: the pairs are resampled with replacement (fixed seed) and the 2.5th and
  97.5th percentiles of the accuracy difference B - A give its 95% confidence interval (the
  decisions are held fixed: the interval is about the pairs, not about threshold choice);
* **McNemar's test** on the discordant pairs (``a_only``: A right and B wrong; ``b_only``: the
  reverse): exact two-sided binomial when ``a_only + b_only < 25``, else chi-square with
  continuity correction, one degree of freedom.

Both are done twice: on the report's accuracy (a face not found aligned at its fallback crop) and on
strict accuracy (every pair with a face not found decided "different": the decisions on
:meth:`benchmark.protocol.scores.PairScores.strict`), the latter's columns prefixed ``strict_``.

A regression (B worse than A) is flagged when the accuracy drop is significant (p < ``alpha``),
or B's median detect time is more than ``time_tolerance`` (25%) above A's, or B's peak CPU or GPU
memory more than ``memory_tolerance`` (20%) above A's. The tolerances are wide because time and
peak RSS vary by about that much between two runs of the same code on a shared machine.
"""
from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from face_alignment.errors import FaceBenchError

from ..protocol.base import REFERENCE
from ..protocol.metrics import kfold_decisions
from ..protocol.scores import PairScores
from .files import Run, load_run

N_BOOTSTRAP = 10_000
SEED = 0
ALPHA = 0.05
#: below this many discordant pairs McNemar's test is the exact binomial one
EXACT_BELOW = 25
TIME_TOLERANCE = 0.25
MEMORY_TOLERANCE = 0.20


class RunMismatchError(FaceBenchError):
    """Two score files that are not over the same pairs, or nothing in common to compare."""


@dataclass(frozen=True)
class Side:
    """One method of one run."""

    run: Run
    method: str

    @property
    def label(self) -> str:
        return f"{self.run.path}:{self.method}"


@dataclass(frozen=True)
class PairedTest:
    """The paired comparison of two methods' decisions over the same pairs (B - A)."""

    n_pairs: int
    accuracy_a: float
    accuracy_b: float
    ci_low: float
    ci_high: float
    a_only: int  # pairs A decided right and B wrong
    b_only: int  # pairs B decided right and A wrong
    p_value: float
    test: str

    @property
    def accuracy_diff(self) -> float:
        return self.accuracy_b - self.accuracy_a


def correct_decisions(scores: PairScores) -> np.ndarray:
    """(N,) bool: whether each pair is decided right at its fold's protocol threshold."""
    return kfold_decisions(scores.distances, scores.same, scores.folds) == scores.same


def bootstrap_ci(correct_a: np.ndarray, correct_b: np.ndarray, n_boot: int = N_BOOTSTRAP, seed: int = SEED,
                 level: float = 0.95) -> tuple[float, float]:
    """Percentile interval of the accuracy difference B - A when the pairs are resampled with
    replacement. A pair's difference is -1, 0 or +1, so a resample is fully described by how
    many of each it drew: a multinomial draw over the three counts, which is the same
    distribution as resampling the pairs one by one, at a fraction of the cost."""
    diff = np.asarray(correct_b, np.int8) - np.asarray(correct_a, np.int8)
    n = len(diff)
    counts = np.array([np.count_nonzero(diff == v) for v in (-1, 0, 1)])
    draws = np.random.default_rng(seed).multinomial(n, counts / n, size=n_boot)
    resampled = (draws[:, 2] - draws[:, 0]) / n
    tail = (1.0 - level) / 2.0
    low, high = np.quantile(resampled, [tail, 1.0 - tail])
    return float(low), float(high)


def mcnemar(a_only: int, b_only: int) -> tuple[float, str]:
    """Two-sided p-value of McNemar's test on the discordant counts, and which test gave it."""
    from scipy import stats  # here: scipy.stats takes a second to import, the CLI's --help need not wait

    n = a_only + b_only
    if n == 0:
        return 1.0, "none discordant"
    if n < EXACT_BELOW:
        return float(min(1.0, 2.0 * stats.binom.cdf(min(a_only, b_only), n, 0.5))), "exact binomial"
    statistic = max(0, abs(a_only - b_only) - 1) ** 2 / n
    return float(stats.chi2.sf(statistic, 1)), "chi-square"


def decisions_p(correct_a: np.ndarray, correct_b: np.ndarray) -> float:
    """McNemar's p between two methods' per-pair decisions (right or wrong) over the same pairs."""
    return mcnemar(int(np.count_nonzero(correct_a & ~correct_b)), int(np.count_nonzero(correct_b & ~correct_a)))[0]


def holm(p_values) -> list[float]:
    """Holm's step-down adjustment of ``p_values`` (one family of comparisons), in their order:
    the i-th smallest is multiplied by ``m - i`` (0-based), made non-decreasing, capped at 1."""
    p = np.asarray(p_values, np.float64)
    order = np.argsort(p, kind="stable")
    adjusted = np.minimum(1.0, np.maximum.accumulate(p[order] * (len(p) - np.arange(len(p)))))
    out = np.empty_like(p)
    out[order] = adjusted
    return out.tolist()


def paired_test(scores_a: PairScores, scores_b: PairScores, n_boot: int = N_BOOTSTRAP,
                seed: int = SEED) -> PairedTest:
    """Bootstrap interval and McNemar's test of B against A (over the same pairs)."""
    correct_a, correct_b = correct_decisions(scores_a), correct_decisions(scores_b)
    a_only = int(np.count_nonzero(correct_a & ~correct_b))
    b_only = int(np.count_nonzero(correct_b & ~correct_a))
    p_value, test = mcnemar(a_only, b_only)
    low, high = bootstrap_ci(correct_a, correct_b, n_boot, seed)
    return PairedTest(len(correct_a), float(correct_a.mean()), float(correct_b.mean()), low, high, a_only, b_only,
                      p_value, test)


def _test_columns(test: PairedTest, prefix: str = "") -> dict:
    """A paired test as the comparison's columns, each name prefixed with ``prefix``."""
    return {f"{prefix}accuracy_a": test.accuracy_a, f"{prefix}accuracy_b": test.accuracy_b,
            f"{prefix}accuracy_diff": test.accuracy_diff, f"{prefix}ci_low": test.ci_low,
            f"{prefix}ci_high": test.ci_high, f"{prefix}a_only": test.a_only, f"{prefix}b_only": test.b_only,
            f"{prefix}p_value": test.p_value, f"{prefix}test": test.test}


def check_same_pairs(a: Side, b: Side, scores_a: PairScores, scores_b: PairScores) -> None:
    """Refuse two score files that are not over the same pairs in the same order."""
    problem = None
    if len(scores_a.same) != len(scores_b.same):
        problem = f"{len(scores_a.same)} pairs against {len(scores_b.same)}"
    elif not (np.array_equal(scores_a.same, scores_b.same) and np.array_equal(scores_a.folds, scores_b.folds)):
        problem = "the same number of pairs, but other labels or folds"
    else:
        fingerprints = a.run.info.get("pairs_sha256"), b.run.info.get("pairs_sha256")
        if all(fingerprints) and fingerprints[0] != fingerprints[1]:
            problem = "other pairs (the runs' run.json pair fingerprints differ)"
    if problem:
        raise RunMismatchError(f"{a.label} and {b.label} are not scored over the same pairs: {problem}. Compare runs "
                               "made with the same pairs file and the same --max-pairs.")


def _side(spec: str | os.PathLike) -> tuple[Run, str | None]:
    """``RUN`` (a run folder) or ``RUN:METHOD``."""
    spec = str(spec)
    if Path(spec).is_dir():
        return load_run(spec), None
    folder, sep, method = spec.rpartition(":")
    if sep and method and Path(folder).is_dir():
        return load_run(folder), method
    raise FaceBenchError(f"{spec!r} is neither a run folder nor RUN:METHOD with an existing run folder")


def resolve_sides(a: str | os.PathLike, b: str | os.PathLike) -> list[tuple[Side, Side]]:
    """The (A, B) method pairs to compare: both ``RUN:METHOD`` gives one; two run folders give
    every method with results in both, in A's order."""
    (run_a, method_a), (run_b, method_b) = _side(a), _side(b)
    if run_a.dataset != run_b.dataset:
        raise RunMismatchError(f"{run_a.path} holds {run_a.dataset} and {run_b.path} holds {run_b.dataset}: compare "
                               "runs on the same data set")
    if (method_a is None) != (method_b is None):
        raise FaceBenchError("give two run folders (to compare their common methods) or two RUN:METHOD specs, "
                             f"not one of each: {a!r}, {b!r}")
    if method_a is not None:
        for run, method in ((run_a, method_a), (run_b, method_b)):
            if method not in run.methods:
                raise FaceBenchError(f"{run.path} has no results for {method!r}; it has {', '.join(run.methods)}")
        return [(Side(run_a, method_a), Side(run_b, method_b))]
    common = [m for m in run_a.methods if m in run_b.methods]
    if not common:
        raise RunMismatchError(f"{run_a.path} ({', '.join(run_a.methods) or 'no results'}) and {run_b.path} "
                               f"({', '.join(run_b.methods) or 'no results'}) have no method with results in common")
    return [(Side(run_a, m), Side(run_b, m)) for m in common]


def _ratio(b: float, a: float) -> float:
    return b / a if a > 0 and b > 0 else float("nan")


def compare_runs(a: str | os.PathLike, b: str | os.PathLike, n_boot: int = N_BOOTSTRAP, seed: int = SEED,
                 alpha: float = ALPHA, time_tolerance: float = TIME_TOLERANCE,
                 memory_tolerance: float = MEMORY_TOLERANCE) -> pd.DataFrame:
    """Compare B against A (run folders, or ``RUN:METHOD`` specs; see the module docstring).

    Returns one row per compared pair of methods: ``run_a``, ``method_a``, ``run_b``,
    ``method_b``, the paired test (``accuracy_a``, ``accuracy_b``, ``accuracy_diff`` B - A,
    ``ci_low``, ``ci_high``, ``a_only``, ``b_only``, ``p_value``, ``test``), the same test on strict
    accuracy (those columns prefixed ``strict_``: ``strict_accuracy_a`` ...), the differences
    B - A of ``roc_auc``, ``eer`` and ``success_rate`` (``*_diff``), the ratios B / A of the
    median detect time and the peak memories (``time_ratio``, ``rss_ratio``, ``gpu_ratio``; NaN
    where not measured), and ``regressions`` ("" when none)."""
    rows = []
    for side_a, side_b in resolve_sides(a, b):
        scores_a, scores_b = side_a.run.scores(side_a.method), side_b.run.scores(side_b.method)
        check_same_pairs(side_a, side_b, scores_a, scores_b)
        test = paired_test(scores_a, scores_b, n_boot, seed)
        strict = paired_test(scores_a.strict(), scores_b.strict(), n_boot, seed)
        ra, rb = side_a.run.row(side_a.method), side_b.run.row(side_b.method)
        detects = REFERENCE not in (side_a.method, side_b.method)  # the reference runs no detector
        row = {"run_a": str(side_a.run.path), "method_a": side_a.method, "run_b": str(side_b.run.path),
               "method_b": side_b.method, **_test_columns(test), **_test_columns(strict, "strict_"),
               **{f"{c}_diff": float(rb[c] - ra[c]) for c in ("roc_auc", "eer", "success_rate")},
               "time_ratio": _ratio(rb["detect_ms_median"], ra["detect_ms_median"]) if detects else float("nan"),
               "rss_ratio": _ratio(rb["peak_rss_mb"], ra["peak_rss_mb"]),
               "gpu_ratio": _ratio(rb["peak_gpu_mb"], ra["peak_gpu_mb"])}
        flags = []
        if test.p_value < alpha and test.accuracy_diff < 0:
            flags.append("accuracy")
        if row["time_ratio"] > 1.0 + time_tolerance:
            flags.append("time")
        if row["rss_ratio"] > 1.0 + memory_tolerance or row["gpu_ratio"] > 1.0 + memory_tolerance:
            flags.append("memory")
        row["regressions"] = ",".join(flags)
        rows.append(row)
    return pd.DataFrame(rows)


def _pp(value: float) -> str:
    """A difference of fractions in percentage points, signed."""
    return f"{value * 100:+.2f}"


def _times(value: float) -> str:
    return "-" if math.isnan(value) else f"{value:.2f}x"


#: the paired tests in the text table: (column prefix, header label, with the discordant counts)
_PAIRED_GROUPS = (("", "acc", True), ("strict_", "strict", False))


def _paired_widths(label: str) -> tuple[int, int]:
    """The widths of a paired test's accuracy cells and of its difference cell."""
    return max(7, len(label) + 2), max(8, len(label) + 4)


def _paired_header(label: str, counts: bool) -> str:
    width, diff = _paired_widths(label)
    return (f"{label + ' A':>{width}s} {label + ' B':>{width}s} {'Δ' + label + ' pp':>{diff}s} {'95% CI (pp)':>16s} "
            + (f"{'A-only':>6s} {'B-only':>6s} " if counts else "") + f"{'p':>7s}")


def _paired_cells(r: pd.Series, prefix: str, label: str, counts: bool, alpha: float) -> str:
    """One row's paired test (its columns prefixed ``prefix``) under :func:`_paired_header`."""
    width, diff = _paired_widths(label)
    significant = "*" if r[f"{prefix}p_value"] < alpha else " "
    interval = f"[{_pp(r[f'{prefix}ci_low'])}, {_pp(r[f'{prefix}ci_high'])}]"
    return (f"{r[f'{prefix}accuracy_a']:{width}.2%} {r[f'{prefix}accuracy_b']:{width}.2%} "
            f"{_pp(r[f'{prefix}accuracy_diff']):>{diff}s} {interval:>16s} "
            + (f"{r[f'{prefix}a_only']:6d} {r[f'{prefix}b_only']:6d} " if counts else "")
            + f"{r[f'{prefix}p_value']:6.4f}{significant}")


def format_comparison(table: pd.DataFrame, alpha: float = ALPHA) -> str:
    """The delta table as text (differences in percentage points, B - A; ratios B / A)."""
    names = [a if a == b else f"{a} -> {b}" for a, b in zip(table["method_a"], table["method_b"])]
    width = max(12, *(len(n) for n in names))
    lines = [f"A = {table['run_a'].iloc[0]}", f"B = {table['run_b'].iloc[0]}", "",
             f"{'method':{width}s} " + "  ".join(_paired_header(label, counts) for _, label, counts in _PAIRED_GROUPS)
             + f"  {'ΔAUC':>8s} {'ΔEER pp':>8s} {'Δsucc pp':>8s} {'time':>6s} {'RSS':>6s} {'GPU':>6s}  regressions"]
    for name, (_, r) in zip(names, table.iterrows()):
        lines.append(
            f"{name:{width}s} "
            + "  ".join(_paired_cells(r, prefix, label, counts, alpha) for prefix, label, counts in _PAIRED_GROUPS)
            + f"  {r['roc_auc_diff']:+8.4f} {_pp(r['eer_diff']):>8s} {_pp(r['success_rate_diff']):>8s} "
            f"{_times(r['time_ratio']):>6s} {_times(r['rss_ratio']):>6s} {_times(r['gpu_ratio']):>6s}  "
            f"{r['regressions'] or '-'}")
    lines += ["", "pp: percentage points, B - A. A-only / B-only: pairs only A / only B decided right. p: McNemar's "
                  f"test (* below {alpha}). strict: the same test with every pair whose face was not found decided "
                  "\"different\" (no face, no match). time, RSS, GPU: B / A. Regressions: a significant accuracy "
                  "drop, or time or memory beyond the tolerance."]
    return "\n".join(lines)
