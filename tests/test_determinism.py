"""Determinism: the numbers of a run depend on its inputs only, not on --batch-size, --workers,
--detect-batch, process isolation or resuming (the resumed case: tests/test_resume.py compares
a thrice-interrupted run with the same uninterrupted run as here)."""
from __future__ import annotations

import csv

import numpy as np
import pytest

from benchmark.cli import main
from tests.shared_runs import METRICS, RUN_ARGS, report_row, uninterrupted_run

pytestmark = pytest.mark.shared


def _statuses(out) -> list[tuple[str, str]]:
    with open(out / "images/yunet.csv", newline="") as fh:
        return [(row["image"], row["status"]) for row in csv.DictReader(fh)]


def test_batch_size_workers_and_isolation_do_not_change_the_numbers(tmp_path):
    base = uninterrupted_run()  # --batch-size 64 --workers 2 --detect-batch 8, a child process per method
    other = tmp_path / "other"
    assert main([*RUN_ARGS, "--out", str(other), "--batch-size", "5", "--workers", "1", "--detect-batch", "3",
                 "--in-process", "--quiet"]) == 0
    a, b = report_row(base), report_row(other)
    assert {m: a[m] for m in METRICS} == {m: b[m] for m in METRICS}
    assert _statuses(base) == _statuses(other)
    # the embedder's output for an image does not depend on its batch-mates, up to float rounding
    # of the batch-size-dependent BLAS kernels (< 1e-6 on the embeddings): far below the 0.01
    # steps of the threshold search
    da, db = np.load(base / "scores/yunet.npz")["distances"], np.load(other / "scores/yunet.npz")["distances"]
    assert np.abs(da - db).max() < 1e-5
