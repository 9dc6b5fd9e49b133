"""Small copies of run folders, to commit beside a document generated from them (``docs/results``):
the files the leaderboard reads (report, run.json, the matrix, robustness and landmark tables) and
each row's per-pair decisions (as scored and strict) packed as hex (:data:`~.evidence.DECISIONS_FILE`)
in place of the scores, caches, logs and charts: a full LFW matrix in a few hundred kilobytes."""
from __future__ import annotations

import shutil
from pathlib import Path

import pandas as pd

from ..report.compare import correct_decisions
from ..report.files import RUN_INFO, load_run, write_frame
from .evidence import DECISIONS_FILE, LANDMARKS_FILE, ROBUSTNESS_FILE, folder_kind, pack_decisions

#: the files a copy keeps, where the folder has them
KEPT = ("report.csv", RUN_INFO, "matrix.csv", ROBUSTNESS_FILE, "robustness_summary.csv", LANDMARKS_FILE)


def copy_run(folder: str | Path, dest: str | Path) -> Path:
    """Copy the run folder ``folder`` into ``dest/<its name>`` (replaced if there); returns it."""
    folder = Path(folder)
    folder_kind(folder)  # refuses what is not a run folder
    target = Path(dest) / folder.name
    if target.exists():
        shutil.rmtree(target)
    target.mkdir(parents=True)
    for name in KEPT:
        if (folder / name).is_file():
            shutil.copy2(folder / name, target / name)
    if (folder / "report.csv").is_file() and (folder / "scores").is_dir():
        run = load_run(folder)
        rows = []
        for method in run.methods:
            scores = run.scores(method)
            correct = correct_decisions(scores)
            rows.append({"row": method, "n_pairs": len(correct), "correct": pack_decisions(correct),
                         "strict": pack_decisions(correct_decisions(scores.strict()))})
        write_frame(pd.DataFrame(rows, columns=["row", "n_pairs", "correct", "strict"]), target / DECISIONS_FILE)
    return target
