"""The leaderboard's charts: accuracy against time per data set and embedder with the Pareto front
marked, and heat maps (detector x embedder per data set, detector x robustness condition), each
saved as a PNG beside ``leaderboard.md`` and inlined in the page."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from ..report.matrix import plot_heatmap
from ..report.plots import LABEL_OFFSETS, method_color, place_labels, save_figure
from .board import DATASET_NAMES, MAIN_ALIGN, datasets, embedders
from .evidence import ROBUSTNESS, Evidence, Result


def pareto_front(points: list[tuple[float, float]]) -> list[int]:
    """Indices of the (time, accuracy) points no other point beats on both (as fast or faster and
    as accurate or more, better on one), fastest first."""
    front = [i for i, (t, a) in enumerate(points)
             if not any((t2 <= t and a2 >= a) and (t2 < t or a2 > a) for t2, a2 in points)]
    return sorted(front, key=lambda i: points[i][0])


def plot_pareto(results: list[Result], title: str):
    """Accuracy against time per image, one point per detector, the Pareto front joined."""
    from matplotlib.figure import Figure

    timed = [r for r in results if np.isfinite(r.ms_per_image) and r.ms_per_image > 0]
    figure = Figure(figsize=(7.5, 4.6), layout="constrained")
    ax = figure.subplots()
    points = [(r.ms_per_image, 100 * r.accuracy) for r in timed]
    front = pareto_front(points)
    labels = []
    for i, (r, (t, a)) in enumerate(zip(timed, points, strict=True)):
        on_front = i in front
        ax.scatter(t, a, s=60 if on_front else 30, color=method_color(r.detector), zorder=3,
                   edgecolors="black" if on_front else "none")
        labels.append(ax.annotate(r.detector, (t, a), xytext=LABEL_OFFSETS[0], textcoords="offset points",
                                  fontsize=8, va="bottom", arrowprops={"arrowstyle": "-", "linewidth": 0.5,
                                                                      "shrinkA": 1, "shrinkB": 4}))
    if len(front) > 1:
        ax.plot([points[i][0] for i in front], [points[i][1] for i in front], "k--", lw=1, zorder=2,
                label="Pareto front")
        ax.legend(loc="lower right", fontsize=8)
    ax.set_xscale("log")
    ax.set_xlabel("detect + align, ms per image (median, log scale)")
    ax.set_ylabel("accuracy (%)")
    ax.set_title(title, fontsize=10)
    ax.grid(alpha=0.3)
    place_labels(figure, ax, labels)  # names of detectors of like speed and accuracy kept apart
    return figure


CHARTS_FOLDER = "charts"


def save_charts(evidence: Evidence, out: Path) -> list[tuple[str, Path]]:
    """Every chart of the leaderboard as (caption, PNG path) in ``out/charts``."""
    out = out / CHARTS_FOLDER
    out.mkdir(parents=True, exist_ok=True)
    charts = []
    main = [r for r in evidence.results if r.align == MAIN_ALIGN]
    for data in datasets(evidence):
        name = DATASET_NAMES.get(data, data)
        for embedder in embedders(evidence):
            chosen = [r for r in main if r.evidence == data and r.embedder == embedder]
            if len(chosen) >= 2:
                path = out / f"pareto-{data}-{embedder}.png"
                save_figure(plot_pareto(chosen, f"{name}, {embedder}: accuracy against time"), path)
                charts.append((f"{name}, {embedder}: accuracy against time (dashed: the Pareto front)", path))
        grid = pd.DataFrame([{"detector": r.detector, "embedder": r.embedder, "accuracy": r.accuracy}
                             for r in main if r.evidence == data])
        if not grid.empty and grid["embedder"].nunique() > 1:
            path = out / f"heatmap-{data}.png"
            save_figure(plot_heatmap(grid, "detector", "embedder", f"{name}: accuracy, detector x embedder"), path)
            charts.append((f"{name}: detector x embedder", path))
    robust = pd.DataFrame([{"detector": r.detector, "condition": r.evidence.partition("@")[2],
                            "embedder": r.embedder, "accuracy": r.accuracy}
                           for r in evidence.results if r.evidence.startswith(ROBUSTNESS)])
    for embedder, group in (robust.groupby("embedder", sort=False) if not robust.empty else []):
        path = out / f"robustness-{embedder}.png"
        save_figure(plot_heatmap(group, "detector", "condition", f"robustness, {embedder}: accuracy per condition"),
                    path)
        charts.append((f"Robustness, {embedder}: accuracy per condition", path))
    return charts
