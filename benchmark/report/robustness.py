"""The robustness benchmark's outputs: its table (one row per method x condition x severity, and
the oracle's), the summary per method, and the charts (heat map, degradation curves, gallery).

The protocol is cross-quality: each pair's first image stays clean (the enrolment photo), its
second is degraded (the probe). The **oracle** aligns the degraded probe with the landmarks a
fixed strong method found on the clean image, carried through the condition's exact transform,
so that for a condition c and a method m:

- ``clean(oracle) - oracle(c)`` is what the embedder loses to the degradation (``embedder_loss``);
- ``oracle(c) - m(c)`` is what m's detection and alignment lose on top (``detector_loss``);
- ``detector_share`` = detector_loss / (clean(oracle) - m(c)), summed over the conditions: the
  part of m's loss below the oracle's clean accuracy that is its detector's fault.

Accuracy aligns a face the detector did not find at LFW faces' median position, which on LFW's
framing is nearly the oracle's crop; ``strict_accuracy`` decides such a pair "different" (no face,
no match), so a detector that finds no face under a condition loses those pairs there, and
``strict_detector_loss`` = oracle(c) - m(c) in strict accuracy counts that loss too. (The oracle
counts a probe as found where its method found the clean face.)

Every (method, condition, severity) is also a row of the run folder's ``report.csv`` named
:func:`row_name` (``yunet@gaussian_blur-3``), with its per-pair scores, so ``facebench compare
RUN:yunet@jpeg-5 RUN:mtcnn@jpeg-5`` tests two methods under one condition.
"""
from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from face_alignment import align_face, load_image

from .files import LANDMARK_COLUMNS, load_run, read_frame, typed_frame, write_frame
from .plots import method_color, save_figure

ORACLE = "oracle"
CLEAN_CONDITION = "clean"
TABLE_FILE = "robustness.csv"
SUMMARY_FILE = "robustness_summary.csv"
CHART_FILES = {"heatmap": "robustness_heatmap.png", "curves": "robustness_curves.png",
               "gallery": "robustness_gallery.png"}
#: the table's columns, in order
TABLE_COLUMNS = ["method", "condition", "severity", "kind", "row", "accuracy", "accuracy_std", "strict_accuracy",
                 "strict_accuracy_std", "roc_auc", "eer", "tar_far_1e-3", "success_rate", "landmark_shift_iod",
                 "n_pairs", "n_probes", "detect_ms_median", "wall_s", "error", "embedder"]
TEXT_COLUMNS = ("method", "condition", "kind", "row", "error", "embedder")
COUNT_COLUMNS = ("severity", "n_pairs", "n_probes")
SUMMARY_COLUMNS = ["embedder", "method", "clean_accuracy", "mean_accuracy", "mean_drop", "embedder_loss",
                   "detector_loss", "detector_share", "worst_condition", "worst_accuracy", "n_conditions",
                   "clean_strict_accuracy", "mean_strict_accuracy", "strict_detector_loss"]
#: the severity the heat map shows when the run has it
HEATMAP_SEVERITY = 3


def row_name(method: str, condition: str = CLEAN_CONDITION, severity: int = 0, embedder: str = "") -> str:
    """The report.csv name of a robustness row: the method alone when clean, else
    ``<method>@<condition>-<severity>``; with ``embedder`` (a run of several) ``<method>+<embedder>...``."""
    label = f"{method}+{embedder}" if embedder else method
    return label if condition == CLEAN_CONDITION else f"{label}@{condition}-{severity}"


def write_table(rows: Sequence[dict], path: str | os.PathLike) -> pd.DataFrame:
    """The robustness rows as :data:`TABLE_COLUMNS` (a missing value empty), written atomically."""
    frame = pd.DataFrame([{c: row.get(c) for c in TABLE_COLUMNS} for row in rows], columns=TABLE_COLUMNS)
    frame = typed_frame(frame, TEXT_COLUMNS, COUNT_COLUMNS)
    write_frame(frame, path)
    return frame


def read_table(path: str | os.PathLike) -> pd.DataFrame:
    """``robustness.csv`` back, typed as :func:`write_table` returns it."""
    return read_frame(path, TEXT_COLUMNS, COUNT_COLUMNS)


def _scored(table: pd.DataFrame) -> pd.DataFrame:
    return table[(table["error"] == "") & table["accuracy"].notna()]


def summarize(table: pd.DataFrame) -> pd.DataFrame:
    """One row per embedder and method (the oracle last): its clean accuracy, its mean accuracy over
    the degraded conditions, the mean drop from clean, the embedder's and the detector's mean loss
    and the detector's share (module docstring), and its worst condition. Losses in accuracy
    fractions, like the accuracies. The same in strict accuracy: the clean and mean strict accuracy,
    and the detector's mean loss in strict accuracy (NaN for a table from before strict accuracy).
    Each embedder's rows are read against its own oracle."""
    table = table.assign(embedder=table["embedder"].fillna("")) if "embedder" in table else table.assign(embedder="")
    parts = [_summarize_embedder(group).assign(embedder=embedder)
             for embedder, group in table.groupby("embedder", sort=False)]
    return pd.concat(parts, ignore_index=True)[SUMMARY_COLUMNS] if parts else pd.DataFrame(columns=SUMMARY_COLUMNS)


def _summarize_embedder(table: pd.DataFrame) -> pd.DataFrame:
    """:func:`summarize` of one embedder's rows."""
    ok = _scored(table)
    if "strict_accuracy" not in ok:
        ok = ok.assign(strict_accuracy=np.nan)
    degraded = ok[ok["condition"] != CLEAN_CONDITION]
    clean_both = ok[ok["condition"] == CLEAN_CONDITION].set_index("method")
    clean, clean_strict = clean_both["accuracy"], clean_both["strict_accuracy"]
    oracle_both = degraded[degraded["method"] == ORACLE].set_index(["condition", "severity"])
    oracle, oracle_strict = oracle_both["accuracy"], oracle_both["strict_accuracy"]
    oracle_clean = clean.get(ORACLE, np.nan)
    rows = []
    for method in sorted(dict.fromkeys(ok["method"]), key=lambda m: m == ORACLE):  # the oracle last
        both = degraded[degraded["method"] == method].set_index(["condition", "severity"])
        mine, strict = both["accuracy"], both["strict_accuracy"]
        if mine.empty:
            rows.append({"method": method, "clean_accuracy": clean.get(method, np.nan), "n_conditions": 0,
                         "clean_strict_accuracy": clean_strict.get(method, np.nan)})
            continue
        at_oracle = oracle.reindex(mine.index)
        detector_loss = at_oracle - mine
        below_clean_oracle = oracle_clean - mine
        worst = mine.idxmin()
        rows.append({
            "method": method, "clean_accuracy": clean.get(method, np.nan), "mean_accuracy": mine.mean(),
            "mean_drop": (clean.get(method, np.nan) - mine).mean(),
            "embedder_loss": (oracle_clean - at_oracle).mean(), "detector_loss": detector_loss.mean(),
            "detector_share": detector_loss.sum() / below_clean_oracle.sum() if below_clean_oracle.sum() else np.nan,
            "worst_condition": f"{worst[0]}-{worst[1]}", "worst_accuracy": mine.min(), "n_conditions": len(mine),
            "clean_strict_accuracy": clean_strict.get(method, np.nan), "mean_strict_accuracy": strict.mean(),
            "strict_detector_loss": (oracle_strict.reindex(strict.index) - strict).mean(),
        })
    return pd.DataFrame(rows, columns=[c for c in SUMMARY_COLUMNS if c != "embedder"])


def write_summary(table: pd.DataFrame, path: str | os.PathLike) -> pd.DataFrame:
    summary = summarize(table)
    write_frame(summary, path)
    return summary


def heatmap_severity(table: pd.DataFrame) -> int:
    """The severity the heat map and the gallery show: 3 where the run has it, else its middle one."""
    severities = sorted({int(s) for s in table["severity"].dropna()} - {0}) or [0]
    return HEATMAP_SEVERITY if HEATMAP_SEVERITY in severities else severities[len(severities) // 2]


def plot_heatmap(table: pd.DataFrame, severity: int | None = None) -> Figure:
    """Method x condition: the accuracy drop from the method's clean accuracy, in points, at
    ``severity`` (default 3, or the middle severity of the run), each cell annotated."""
    ok = _scored(table)
    degraded = ok[ok["condition"] != CLEAN_CONDITION]
    fig = Figure(figsize=(1.6 + 1.1 * max(1, degraded["condition"].nunique()), 1.4 + 0.45 * ok["method"].nunique()),
                 layout="constrained")
    ax = fig.subplots()
    if degraded.empty:
        ax.set_axis_off()
        ax.set_title("no degraded condition has results")
        return fig
    severity = heatmap_severity(table) if severity is None else severity
    at = degraded[degraded["severity"] == severity]
    clean = ok[ok["condition"] == CLEAN_CONDITION].set_index("method")["accuracy"]
    drop = at.assign(drop=100.0 * (at["method"].map(clean) - at["accuracy"]))
    grid = drop.pivot_table(index="method", columns="condition", values="drop", sort=False)
    order = [m for m in summarize(table)["method"] if m in grid.index]
    grid = grid.reindex(order)
    image = ax.imshow(grid.to_numpy(float), cmap="Reds", aspect="auto", vmin=0.0)
    ax.set_xticks(range(grid.shape[1]), grid.columns, rotation=30, ha="right")
    ax.set_yticks(range(grid.shape[0]), grid.index)
    limit = np.nanmax(grid.to_numpy(float)) if np.isfinite(grid.to_numpy(float)).any() else 1.0
    for (i, j), value in np.ndenumerate(grid.to_numpy(float)):
        if np.isfinite(value):
            ax.text(j, i, f"{value:.1f}", ha="center", va="center", fontsize=8,
                    color="white" if value > 0.6 * limit else "black")
    fig.colorbar(image, ax=ax, label="accuracy drop from clean (points)")
    ax.set_title(f"Accuracy lost to each condition at severity {severity} (clean enrolment, degraded probe)",
                 fontsize=10)
    return fig


def plot_curves(table: pd.DataFrame) -> Figure:
    """Accuracy against severity (0 = clean) for each condition, a line per method, the oracle
    dashed: where a method's line falls below the oracle's, its detector loses the accuracy."""
    ok = _scored(table)
    conditions = [c for c in dict.fromkeys(ok["condition"]) if c != CLEAN_CONDITION]
    columns = min(3, max(1, len(conditions)))
    rows = max(1, -(-len(conditions) // columns))
    fig = Figure(figsize=(4.2 * columns + 2.4, 3.2 * rows), layout="constrained")
    axes = fig.subplots(rows, columns, squeeze=False, sharey=True).ravel()
    clean = ok[ok["condition"] == CLEAN_CONDITION].set_index("method")["accuracy"]
    for ax, condition in zip(axes, conditions):
        here = ok[ok["condition"] == condition]
        for method in dict.fromkeys(ok["method"]):
            points = here[here["method"] == method].sort_values("severity")
            if points.empty:
                continue
            x = [0, *points["severity"].astype(int)]
            y = [clean.get(method, np.nan), *points["accuracy"]]
            oracle = method == ORACLE
            ax.plot(x, np.asarray(y, float) * 100.0, marker="o", markersize=3,
                    color="black" if oracle else method_color(method), linestyle="--" if oracle else "-",
                    linewidth=1.8 if oracle else 1.2, label=method)
        ax.set_title(condition, fontsize=10)
        ax.set_xticks(range(6))
        ax.set_xlabel("severity (0: clean)")
        ax.set_ylabel("accuracy (%)")
        ax.grid(True, alpha=0.3)
    for ax in axes[len(conditions):]:
        ax.set_axis_off()
    handles, labels = axes[0].get_legend_handles_labels()
    if handles:
        fig.legend(handles, labels, loc="outside right upper", fontsize=8)
    fig.suptitle("Accuracy under each condition (clean enrolment, degraded probe; oracle dashed)", fontsize=11)
    return fig


def plot_gallery(run_folder: str | os.PathLike, probe: str, conditions: Sequence, image_root: str | os.PathLike,
                 methods: Sequence[str], oracle_method: str, embedder: str = "") -> Figure:
    """One probe under each of ``conditions`` (:class:`~benchmark.protocol.conditions.ImageCondition`
    objects, as the run applied them): the degraded image on top, then each method's crop, redrawn
    from the landmarks in its per-image log (mapped into the degraded image); the oracle's from
    ``oracle_method``'s clean landmarks. ``embedder``: the rows' embedder in a run of several."""
    run = load_run(run_folder)
    image = load_image(Path(image_root) / probe)
    fig = Figure(figsize=(1.5 * len(conditions) + 1.0, 1.6 * (len(methods) + 1)), layout="constrained")
    axes = fig.subplots(len(methods) + 1, len(conditions), squeeze=False)
    for column, condition in enumerate(conditions):
        conditioned = condition.apply(image, probe)
        axes[0, column].imshow(conditioned.image)
        axes[0, column].set_title(condition.name, fontsize=7)
        for row, method in enumerate(methods, start=1):
            logged = (row_name(oracle_method, embedder=embedder) if method == ORACLE
                      else row_name(method, *_condition_parts(condition.name), embedder=embedder))
            crop = _gallery_crop(run, logged, probe, conditioned)
            ax = axes[row, column]
            if crop is None:
                ax.text(0.5, 0.5, "no face", ha="center", va="center", fontsize=7, transform=ax.transAxes)
            else:
                ax.imshow(crop)
            if column == 0:
                ax.set_ylabel(method, fontsize=8)
    for ax in axes.ravel():
        ax.set_xticks([])
        ax.set_yticks([])
    fig.suptitle(f"{probe}\nunder each condition; each method's crop", fontsize=8)
    return fig


def _condition_parts(name: str) -> tuple[str, int]:
    """``"jpeg:3"`` -> ``("jpeg", 3)``; ``"clean"`` -> ``("clean", 0)``."""
    condition, _, severity = name.partition(":")
    return condition, int(severity or 0)


def _gallery_crop(run, name: str, probe: str, conditioned) -> np.ndarray | None:
    """The crop ``name`` made of ``probe``: its logged landmarks (original pixels) into the
    degraded image; None where it found no face or has no log."""
    try:
        log = run.image_log(name)
    except Exception:  # a row that failed has no log
        return None
    rows = log[log["image"] == probe]
    if rows.empty or rows.iloc[0]["status"] != "found":
        return None
    points = rows.iloc[0][LANDMARK_COLUMNS].to_numpy(float).reshape(5, 2)
    if not np.isfinite(points).all():
        return None
    return align_face(conditioned.image, conditioned.to_conditioned(points).astype(np.float32))


def save_robustness_charts(out: str | os.PathLike, table: pd.DataFrame, conditions: Sequence, image_root,
                           probe: str | None, methods: Sequence[str], oracle_method: str) -> dict[str, Path]:
    """The heat map, the degradation curves and (for ``probe``, under ``conditions``) the gallery,
    as PNGs in ``out`` (:data:`CHART_FILES`)."""
    out = Path(out)
    embedders = list(dict.fromkeys(table["embedder"])) if "embedder" in table else [""]
    embedder = embedders[0] if len(embedders) > 1 else ""  # several: the charts show the first one's rows
    table = table[table["embedder"] == embedders[0]] if "embedder" in table else table
    written = {"heatmap": save_figure(plot_heatmap(table), out / CHART_FILES["heatmap"]),
               "curves": save_figure(plot_curves(table), out / CHART_FILES["curves"])}
    if probe is not None and conditions:
        written["gallery"] = save_figure(plot_gallery(out, probe, conditions, image_root, methods, oracle_method,
                                                      embedder), out / CHART_FILES["gallery"])
    return written
