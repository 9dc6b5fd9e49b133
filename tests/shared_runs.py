"""Benchmark runs that several test modules compare with, made once per test session.

The CLI on a 220-pair LFW subset (11 pairs of each kind per fold: 344 unique images, one saved
chunk of 256 and a partial one) with YuNet on the CPU, each method in its own process (the
default), without interruption.
"""
from __future__ import annotations

import atexit
import functools
import shutil
import tempfile
from pathlib import Path

from benchmark.cli import main
from tests.conftest import LFW_DIR, WEIGHTS_DIR

MAX_PAIRS = 220


def cli_args(max_pairs: int = MAX_PAIRS) -> list[str]:
    """The command line of a YuNet run on ``max_pairs`` pairs, without ``--out``."""
    return ["--methods", "yunet", "--lfw-dir", str(LFW_DIR), "--weights-dir", str(WEIGHTS_DIR),
            "--max-pairs", str(max_pairs), "--device", "cpu"]


RUN_ARGS = cli_args()
#: unique images of the MAX_PAIRS subset: 344 (see the module docstring)
N_IMAGES = 344
#: the report's accuracy columns, which runs on the same inputs must share exactly
METRICS = ("accuracy", "accuracy_std", "strict_accuracy", "strict_accuracy_std", "accuracy_found", "roc_auc", "eer",
           "tar_far_1e-3", "tar_far_1e-2", "threshold", "success_rate", "n_failed_images", "n_pairs_found")


@functools.cache
def uninterrupted_run() -> Path:
    """The output folder of the uninterrupted run (removed when the session ends)."""
    out = Path(tempfile.mkdtemp(prefix="facebench-uninterrupted-"))
    atexit.register(shutil.rmtree, out, ignore_errors=True)
    code = main([*RUN_ARGS, "--out", str(out), "--quiet"])
    assert code == 0, f"the uninterrupted run failed with status {code}"
    return out


def report_row(out: Path, method: str = "yunet") -> dict[str, str]:
    import csv

    with open(out / "report.csv", newline="") as fh:
        return next(row for row in csv.DictReader(fh) if row["method"] == method)
