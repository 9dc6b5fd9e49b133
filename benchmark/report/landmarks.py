"""The landmark-accuracy outputs: the summary CSV (one row per method), the per-image CSV of each
method and the cumulative-error-distribution chart (see :mod:`benchmark.protocol.landmarks` for
the metrics: NME is the mean point error over the inter-ocular distance of the labels).

Files are written atomically (a temporary file, then ``os.replace``), like the run folder's.
"""
from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.ticker import PercentFormatter

from ..protocol.landmarks import AUC_LIMIT, METRIC_COLUMNS, NORMALISER_TEXT, ced_area
from .files import LANDMARK_COLUMNS, read_frame, typed_frame, write_frame
from .plots import method_color, save_figure

SUMMARY_FILE = "landmarks.csv"
IMAGES_FOLDER = "landmarks"
CED_FILE = "landmarks_ced.png"
#: summary columns, in order (metrics as in :data:`benchmark.protocol.landmarks.METRIC_COLUMNS`)
SUMMARY_COLUMNS = ["method", *METRIC_COLUMNS, "detect_ms_median", "normaliser", "n_label_lines",
                   "n_skipped_lines", "detector_model", "error"]
SUMMARY_TEXT_COLUMNS = ("method", "normaliser", "detector_model", "error")
SUMMARY_COUNT_COLUMNS = ("n_faces", "n_found", "n_label_lines", "n_skipped_lines")
#: per-image columns: the label line, found / missed / error (the detector raised or the image
#: could not be read; counted as a miss), the picked face's score, the time to detect and pick,
#: its five points (empty for a miss) and its NME, raw and with the method's mean offset removed
#: (empty for a miss, whose NME is infinite)
IMAGE_COLUMNS = ["image", "line", "status", "reason", "score", "detect_ms", *LANDMARK_COLUMNS, "nme",
                 "nme_offset_removed"]
IMAGE_TEXT_COLUMNS = ("image", "status", "reason")
#: the CED chart's x range
CED_MAX = 0.20


def _finite_or_nan(frame: pd.DataFrame) -> pd.DataFrame:
    numbers = frame.select_dtypes("number").columns
    frame[numbers] = frame[numbers].replace([np.inf, -np.inf], np.nan)
    return frame


def write_summary(rows: list[dict], path: str | os.PathLike) -> pd.DataFrame:
    """Write the summary rows (one per method; a missing column is empty) to ``path``; returns
    them as a DataFrame with :data:`SUMMARY_COLUMNS` in order."""
    frame = pd.DataFrame([{c: row.get(c) for c in SUMMARY_COLUMNS} for row in rows], columns=SUMMARY_COLUMNS)
    frame = _finite_or_nan(typed_frame(frame, SUMMARY_TEXT_COLUMNS, SUMMARY_COUNT_COLUMNS))
    write_frame(frame, path)
    return frame


def read_summary(path: str | os.PathLike) -> pd.DataFrame:
    """A summary CSV back, typed as :func:`write_summary` returns it."""
    return read_frame(path, SUMMARY_TEXT_COLUMNS, SUMMARY_COUNT_COLUMNS)


def write_image_table(table: pd.DataFrame, path: str | os.PathLike) -> Path:
    """Write one method's per-image table (:data:`IMAGE_COLUMNS`; an infinite NME is written empty)."""
    return write_frame(_finite_or_nan(table.reindex(columns=IMAGE_COLUMNS).copy()), path)


def read_image_table(path: str | os.PathLike) -> pd.DataFrame:
    """A per-image CSV back; a miss's NME is ``inf`` again (as the metrics count it)."""
    frame = pd.read_csv(path, dtype={c: str for c in IMAGE_TEXT_COLUMNS}, keep_default_na=False,
                        na_values={c: [""] for c in IMAGE_COLUMNS if c not in IMAGE_TEXT_COLUMNS})
    for column in ("nme", "nme_offset_removed"):
        frame.loc[frame["status"] != "found", column] = np.inf
    return frame


def plot_ced(nmes: Mapping[str, np.ndarray], offset_removed: Mapping[str, np.ndarray] | None = None,
             x_max: float = CED_MAX) -> Figure:
    """The cumulative error distribution of each method: the fraction of the labelled faces with
    NME <= x, for x from 0 to ``x_max`` (a miss has infinite NME, so a method's curve ends below
    1 by its miss rate). ``nmes`` maps a method to its per-face NMEs (N,); ``offset_removed``,
    where given, the same with the method's mean offset removed, drawn dashed. The legend gives
    each method's area up to 0.10 (normalised: 1 is perfect) and miss rate."""
    fig = Figure(figsize=(11.5, 6.0), layout="constrained")
    ax = fig.subplots()
    for method, values in nmes.items():
        values = np.asarray(values, dtype=np.float64)
        if values.size == 0:
            continue
        color = method_color(method)
        area = ced_area(values, AUC_LIMIT)
        miss = float(np.mean(~np.isfinite(values)))
        ax.step(*_curve(values, x_max), where="post", color=color, linewidth=2.0,
                label=f"{method} (AUC@{AUC_LIMIT:.2f} {area:.3f}, missed {miss:.1%})")
        if offset_removed is not None and method in offset_removed:
            ax.step(*_curve(np.asarray(offset_removed[method], np.float64), x_max), where="post", color=color,
                    linewidth=1.2, linestyle="--", label=f"{method}, mean offset removed")
    ax.axvline(AUC_LIMIT, color="#999999", linewidth=0.8, linestyle=":")
    ax.set_xlim(0.0, x_max)
    ax.set_ylim(0.0, 1.0)
    ax.yaxis.set_major_formatter(PercentFormatter(1.0))
    ax.grid(True, alpha=0.3)
    ax.set_xlabel("NME: mean point error / inter-ocular distance of the labels")
    ax.set_ylabel("faces with NME <= x (misses never)")
    n = max((len(v) for v in nmes.values()), default=0)
    ax.set_title(f"Cumulative error distribution, 5 points, {n} labelled faces\n"
                 f"normalised by the {NORMALISER_TEXT}", fontsize=10)
    if ax.get_legend_handles_labels()[0]:
        ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8)  # beside the curves, not over them
    return fig


def _curve(values: np.ndarray, x_max: float) -> tuple[np.ndarray, np.ndarray]:
    """The CED as a step function's corners: x from 0 to ``x_max``, the fraction at or below x."""
    inside = np.sort(values[values <= x_max])
    x = np.concatenate([[0.0], inside, [x_max]])
    y = np.concatenate([[np.mean(values <= 0.0)], np.arange(1, len(inside) + 1) / len(values),
                        [len(inside) / len(values)]])
    return x, y


def save_ced(path: str | os.PathLike, nmes: Mapping[str, np.ndarray],
             offset_removed: Mapping[str, np.ndarray] | None = None) -> Path:
    """:func:`plot_ced` written as a PNG at ``path``."""
    return save_figure(plot_ced(nmes, offset_removed), path)
