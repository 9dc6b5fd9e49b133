"""The detector x embedder x alignment matrix of a ``facebench matrix`` run folder, read back.

From the cells' report rows and per-pair scores:

- ``matrix.csv``: one row per detector, a column per (measure, embedder, alignment):
  ``accuracy:EMBEDDER:ALIGN`` and ``strict_accuracy:EMBEDDER:ALIGN`` (the wide table);
- ``matrix_ranking.csv``: per (embedder, alignment), the detectors ranked by accuracy, each with
  McNemar's p against the best (:func:`~.compare.paired_test` on the pairs' decisions), Holm's
  correction over the comparisons of that ranking (:func:`~.compare.holm`), and whether it is
  tied with the best (not significantly below it at ``alpha``);
- ``matrix_tau.csv``: per alignment and pair of embedders, Kendall's tau between their rankings of
  the detectors both scored (does the best detector depend on the embedder?);
- ``matrix.md``: those tables for a person; heat maps ``matrix_align-<ALIGN>.png`` (detector x
  embedder) and ``matrix_embedder-<EMBEDDER>.png`` (detector x alignment).
"""
from __future__ import annotations

import itertools
import logging
import os
from pathlib import Path

import numpy as np
import pandas as pd

from ..protocol.base import REFERENCE
from .compare import ALPHA, correct_decisions, decisions_p, holm
from .files import Run, load_run, write_frame, write_text

log = logging.getLogger(__name__)

MEASURES = ("accuracy", "strict_accuracy")


def cells(run: Run) -> pd.DataFrame:
    """The run's detector cells with results: ``method`` (the cell's row name), ``detector``,
    ``embedder``, ``align`` and the measures (the reference rows are left out: they detect nothing)."""
    report = run.report
    ok = report[(report["error"] == "") & report["method"].isin(run.methods)]
    ok = ok[ok["detector"] != REFERENCE] if "detector" in ok else ok.iloc[0:0]
    return ok[["method", "detector", "embedder", "align", *MEASURES]].reset_index(drop=True)


def wide_table(table: pd.DataFrame) -> pd.DataFrame:
    """``matrix.csv``: a row per detector, a column per (measure, embedder, alignment)."""
    wide = table.pivot_table(index="detector", columns=["embedder", "align"], values=list(MEASURES), sort=False)
    wide.columns = [":".join(column) for column in wide.columns]
    return wide.reset_index()


def ranking(run: Run, table: pd.DataFrame, alpha: float = ALPHA) -> pd.DataFrame:
    """Per (embedder, alignment) the detectors by accuracy, best first, with McNemar's test of each
    against the best, Holm-corrected over that ranking's comparisons."""
    out = []
    for (embedder, align), group in table.groupby(["embedder", "align"], sort=False):
        group = group.sort_values("accuracy", ascending=False, kind="stable").reset_index(drop=True)
        best = correct_decisions(run.scores(group.loc[0, "method"]))
        p_values = []
        for method in group["method"][1:]:
            other = correct_decisions(run.scores(method))
            p_values.append(decisions_p(best, other))
        adjusted = [np.nan, *holm(p_values)]
        for rank, row in group.iterrows():
            out.append({"embedder": embedder, "align": align, "rank": rank + 1, "detector": row["detector"],
                        "accuracy": row["accuracy"], "strict_accuracy": row["strict_accuracy"],
                        "p_vs_best": np.nan if rank == 0 else p_values[rank - 1], "p_holm": adjusted[rank],
                        "tied_with_best": bool(rank == 0 or adjusted[rank] >= alpha)})
    return pd.DataFrame(out)


def rank_agreement(table: pd.DataFrame) -> pd.DataFrame:
    """Kendall's tau (tau-b) between two embedders' accuracies over the detectors both scored, per
    alignment mode: 1 when they order the detectors alike, -1 when reversed."""
    from scipy import stats

    out = []
    for align, group in table.groupby("align", sort=False):
        by_embedder = group.pivot_table(index="detector", columns="embedder", values="accuracy", sort=False)
        for a, b in itertools.combinations(by_embedder.columns, 2):
            both = by_embedder[[a, b]].dropna()
            tau, p = stats.kendalltau(both[a], both[b]) if len(both) >= 2 else (np.nan, np.nan)
            out.append({"align": align, "embedder_a": a, "embedder_b": b, "n_detectors": len(both),
                        "tau": float(tau), "p_value": float(p)})
    return pd.DataFrame(out, columns=["align", "embedder_a", "embedder_b", "n_detectors", "tau", "p_value"])


def plot_heatmap(table: pd.DataFrame, rows: str, columns: str, title: str):
    """A heat map of accuracy, ``rows`` x ``columns`` of ``table``, each cell annotated in percent."""
    from matplotlib.figure import Figure

    grid = table.pivot_table(index=rows, columns=columns, values="accuracy", sort=False)
    figure = Figure(figsize=(1.6 + 1.3 * grid.shape[1], 1.2 + 0.45 * grid.shape[0]), layout="constrained")
    ax = figure.subplots()
    image = ax.imshow(grid.to_numpy() * 100, cmap="viridis", aspect="auto")
    ax.set_xticks(range(grid.shape[1]), grid.columns, rotation=30, ha="right")
    ax.set_yticks(range(grid.shape[0]), grid.index)
    for (i, j), value in np.ndenumerate(grid.to_numpy()):
        if not np.isnan(value):
            ax.text(j, i, f"{value:.2%}", ha="center", va="center", fontsize=8,
                    color="white" if value * 100 < np.nanmean(grid.to_numpy() * 100) else "black")
    figure.colorbar(image, ax=ax, label="accuracy (%)")
    ax.set_title(title, fontsize=10)
    return figure


def _markdown(ranks: pd.DataFrame, taus: pd.DataFrame) -> str:
    lines = ["# The detector x embedder x alignment matrix", "",
             "Per embedder and alignment, the detectors by accuracy; **tied** = not significantly below the "
             f"best (McNemar's test on the pairs' decisions, Holm-corrected, alpha {ALPHA}).", ""]
    for (embedder, align), group in ranks.groupby(["embedder", "align"], sort=False):
        lines += [f"## {embedder}, {align}", "",
                  "| rank | detector | accuracy | strict accuracy | p vs best (Holm) | |", "|---|---|---|---|---|---|"]
        for _, row in group.iterrows():
            p = "" if pd.isna(row["p_holm"]) else f"{row['p_holm']:.3g}"
            lines.append(f"| {row['rank']} | {row['detector']} | {row['accuracy']:.2%} | {row['strict_accuracy']:.2%} "
                         f"| {p} | {'tied' if row['tied_with_best'] else ''} |")
        lines.append("")
    if not taus.empty:
        lines += ["## Do the embedders rank the detectors alike?", "", "Kendall's tau between two embedders' "
                  "accuracies over the same detectors (1: the same order; 0: unrelated).", "",
                  "| alignment | embedder A | embedder B | detectors | tau | p |", "|---|---|---|---|---|---|"]
        for _, row in taus.iterrows():
            lines.append(f"| {row['align']} | {row['embedder_a']} | {row['embedder_b']} | {row['n_detectors']} | "
                         f"{row['tau']:.3f} | {row['p_value']:.3g} |")
    return "\n".join(lines) + "\n"


def write_matrix_outputs(out: str | os.PathLike) -> list[Path]:
    """Write the matrix's tables and heat maps into the run folder ``out``; returns their paths
    (none where the run has no detector cell with results)."""
    from .plots import save_figure

    out = Path(out)
    run = load_run(out)
    table = cells(run)
    if table.empty:
        log.warning("%s has no matrix cell with results: no matrix outputs written", out)
        return []
    ranks, taus = ranking(run, table), rank_agreement(table)
    written = [write_frame(wide_table(table), out / "matrix.csv"), write_frame(ranks, out / "matrix_ranking.csv"),
               write_frame(taus, out / "matrix_tau.csv")]
    write_text(out / "matrix.md", _markdown(ranks, taus))
    written.append(out / "matrix.md")
    for align, group in table.groupby("align", sort=False):
        figure = plot_heatmap(group, "detector", "embedder", f"accuracy, alignment {align}")
        written.append(save_figure(figure, out / f"matrix_align-{align}.png"))
    for embedder, group in table.groupby("embedder", sort=False):
        figure = plot_heatmap(group, "detector", "align", f"accuracy, embedder {embedder}")
        written.append(save_figure(figure, out / f"matrix_embedder-{embedder}.png"))
    log.info("matrix outputs written to %s", out)
    return written
