"""Charts of a run: the six-panel overview, the ROC overlay and the gallery of aligned crops.

Each ``plot_*`` function returns a :class:`matplotlib.figure.Figure` (shown inline by a
notebook); :func:`save_charts` writes them as PNG files beside ``report.csv``. Figures are made
without pyplot (no global state; PNGs are rendered by the Agg backend), and every method has
the colour :func:`method_color` gives its name, in every chart of every run.
"""
from __future__ import annotations

import logging
import os
import zlib
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.text import Text
from matplotlib.ticker import MaxNLocator, PercentFormatter
from matplotlib.transforms import Bbox

from face_alignment import ARCFACE_TEMPLATE, CROP_SIZE, align_face, load_image
from face_alignment.atomic import atomic_path
from face_alignment.errors import FaceBenchError, ImageError

from ..protocol.base import REFERENCE, reference_crop
from ..protocol.metrics import roc_curve
from .files import CHART_FILES, LANDMARK_COLUMNS, Run, dataset_label, describe_embedder, load_run

log = logging.getLogger(__name__)

#: fixed colours of the built-in methods (tab10 without its grey, which marks the reference)
METHOD_COLORS = {
    REFERENCE: "#4d4d4d", "yunet": "#1f77b4", "mtcnn": "#ff7f0e", "retinaface": "#2ca02c",
    "yolov5_face": "#d62728", "yolov8_face": "#9467bd", "dlib": "#8c564b", "dlib_cnn": "#e377c2",
    "mediapipe": "#bcbd22", "mediapipe_simple": "#17becf", "rtmpose": "#393b79",
}
#: colours for other (plug-in) methods, picked by a checksum of the name: stable across runs
EXTRA_COLORS = ("#637939", "#8c6d31", "#843c39", "#7b4173", "#5254a3", "#bd9e39", "#ad494a", "#a55194",
                "#6b6ecf", "#8ca252", "#e7ba52", "#d6616b")
DPI = 110
#: where a point's name may go in the speed panel, in points from the point, in order of preference
LABEL_OFFSETS = tuple((dx, dy) for dy in (3, -14, 13, -24, 23, -34, 33, -44) for dx in (6, -6))
FAILURE_RED = "#b00020"
STATUS_CAPTIONS = {"no_face_fallback": "no face: centre crop", "unreadable": "unreadable"}


def save_figure(figure: Figure, path: str | os.PathLike) -> Path:
    """``figure`` as a PNG at ``path``, written atomically (a chart is never half there)."""
    path = Path(path)
    with atomic_path(path, suffix=".png") as tmp:
        figure.savefig(tmp, dpi=DPI)
    return path


def method_color(method: str) -> str:
    """The colour of ``method`` in every chart: fixed for built-ins, a checksum pick otherwise; a
    matrix cell (``DETECTOR+EMBEDDER+ALIGN``) takes its detector's."""
    detector = method.partition("+")[0]
    return METHOD_COLORS.get(detector) or EXTRA_COLORS[zlib.crc32(detector.encode()) % len(EXTRA_COLORS)]


def _as_run(run: Run | str | os.PathLike) -> Run:
    return run if isinstance(run, Run) else load_run(run)


def _results(report: pd.DataFrame) -> pd.DataFrame:
    """Rows of methods that produced results, best accuracy first."""
    ok = report[(report["error"].fillna("") == "") & report["accuracy"].notna()]
    if ok.empty:
        raise FaceBenchError("no method in this report has results to plot (every row has an error)")
    return ok.sort_values("accuracy", ascending=False, kind="stable").reset_index(drop=True)


def _title(report: pd.DataFrame) -> str:
    first = report.iloc[0]
    flip = ", flip TTA" if bool(first.get("flip", False)) else ""
    embedders = list(dict.fromkeys(report["embedder"]))
    embedder = (f"embedder {describe_embedder(first)}" if len(embedders) == 1
                else f"embedders {', '.join(embedders)} (a matrix: one row per cell)")
    return (f"{dataset_label(first)} verification, {int(first['n_pairs'])} pairs over {int(first['n_images'])} images; "
            f"{embedder}{flip}")


def _bars(ax, rows: pd.DataFrame, column: str, labels: Sequence[str], title: str, xlabel: str,
          fraction: bool = False) -> None:
    """Horizontal bars of ``column`` in the order of ``rows`` (first on top), each with its label.
    ``fraction``: values in [0, 1], shown as percent; when all are above one half (accuracies,
    success rates) the axis starts near the smallest, says so, and labels sit inside the bar ends."""
    values = rows[column].to_numpy(float)
    y = np.arange(len(rows))[::-1]
    ax.barh(y, values, color=[method_color(m) for m in rows["method"]], height=0.7)
    ax.set_yticks(y, rows["method"])
    lo, hi = float(np.nanmin(values)), float(np.nanmax(values))
    zoomed = fraction and lo > 0.5
    if zoomed:  # from 0, differences of a tenth of a percent would be invisible
        span = max(hi - lo, 0.002)
        left = max(0.0, lo - 1.5 * span)
        ax.set_xlim(left, min(1.0, hi + 0.05 * span))
        xlabel += f" (axis starts at {left:.2%})"
    else:
        ax.set_xlim(0, hi * 1.3 if hi > 0 else (0.01 if fraction else 1.0))
    for yi, value, label in zip(y, values, labels):
        if not np.isfinite(value):
            continue
        if zoomed:
            ax.text(value, yi, label + " ", va="center", ha="right", fontsize=9,
                    bbox={"facecolor": "white", "alpha": 0.85, "linewidth": 0, "pad": 1.5})
        else:
            ax.text(value, yi, " " + label, va="center", ha="left", fontsize=9)
    if fraction:
        _percent_ticks(ax.xaxis, *ax.get_xlim())
    ax.set_title(title, fontsize=11, fontweight="bold")
    ax.set_xlabel(xlabel)
    ax.grid(axis="x", alpha=0.3)
    ax.set_axisbelow(True)


def _percent_ticks(axis, low: float, high: float) -> None:
    """At most six ticks on a fraction axis, labelled in percent with as many decimals as the range needs."""
    axis.set_major_locator(MaxNLocator(6, steps=[1, 2, 5, 10]))
    axis.set_major_formatter(PercentFormatter(1.0, decimals=2 if high - low < 0.02 else 1))


def _no_data(ax, title: str, message: str) -> None:
    ax.set_title(title, fontsize=11, fontweight="bold")
    ax.text(0.5, 0.5, message, ha="center", va="center", fontsize=11, color="#555555", transform=ax.transAxes)
    ax.set_xticks([])
    ax.set_yticks([])


def place_labels(fig: Figure, ax, labels: list) -> None:
    """Move each point's name to the offset around it that covers the least of the points and
    names placed before it (greedy; the first free offset in :data:`LABEL_OFFSETS` order wins) and
    stays inside the panel, so that methods of similar speed and accuracy stay legible."""
    fig.draw_without_rendering()  # lays the figure out: text extents in display pixels
    points = ax.transData.transform(np.array([label.xy for label in labels]))
    panel = ax.get_window_extent()
    placed: list[Bbox] = []

    def dots(margin: float) -> list[Bbox]:
        return [Bbox.from_extents(x - margin, y - margin, x + margin, y + margin) for x, y in points]

    own_dots, other_dots = dots(5), dots(12)  # a wider margin round others' dots: no name beside the wrong dot

    def cost(box: Bbox, own: int) -> float:
        """Pixels of ``box`` over the names placed before, the dots, and outside the panel."""
        others = [own_dots[i] if i == own else dot for i, dot in enumerate(other_dots)] + placed
        covered = sum(cut.width * cut.height for cut in (Bbox.intersection(box, o) for o in others) if cut)
        inside = panel.x0 <= box.x0 and box.x1 <= panel.x1 and panel.y0 <= box.y0 and box.y1 <= panel.y1
        return covered + (0.0 if inside else box.width * box.height)

    for i, label in enumerate(labels):
        costs = []
        for dx, dy in LABEL_OFFSETS:
            _move(label, dx, dy)
            costs.append(cost(_text_box(label).padded(3), i))
            if costs[-1] == 0.0:
                break
        _move(label, *LABEL_OFFSETS[int(np.argmin(costs))])
        placed.append(_text_box(label))


def _text_box(label) -> Bbox:
    """The name's own box in display pixels (an annotation's extent also spans its leader line)."""
    return Text.get_window_extent(label)


def _move(label, dx: float, dy: float) -> None:
    label.xyann = (dx, dy)
    label.set_horizontalalignment("left" if dx > 0 else "right")


def _speed_panel(ax, rows: pd.DataFrame) -> list:
    """Accuracy against detect + align time per image; the reference (no detector) as a line.
    Returns the points' name labels (placed by :func:`place_labels` once the figure is laid out)."""
    title = "Accuracy vs time per image"
    detectors = rows[(rows["method"] != REFERENCE) & rows["detect_ms_median"].gt(0)]
    if detectors.empty:
        _no_data(ax, title, "no detector timings")
        return []
    ms, acc = detectors["detect_ms_median"].to_numpy(float), detectors["accuracy"].to_numpy(float)
    ax.scatter(ms, acc, s=70, c=[method_color(m) for m in detectors["method"]], zorder=3, edgecolors="black",
               linewidths=0.5)
    labels = [ax.annotate(method, (x, y), xytext=LABEL_OFFSETS[0], textcoords="offset points", fontsize=9,
                          va="bottom", color=method_color(method), fontweight="bold",
                          arrowprops={"arrowstyle": "-", "color": method_color(method), "linewidth": 0.7,
                                      "shrinkA": 1, "shrinkB": 5})  # a leader line to a name moved away
              for method, x, y in zip(detectors["method"], ms, acc)]
    reference = rows[rows["method"] == REFERENCE]
    if not reference.empty:
        ref = float(reference["accuracy"].iloc[0])
        ax.axhline(ref, color=method_color(REFERENCE), linestyle="--", linewidth=1)
        ax.annotate(f"reference crops {ref:.2%}", (0.99, ref), xycoords=("axes fraction", "data"),
                    xytext=(0, -3), textcoords="offset points", ha="right", va="top", fontsize=8,
                    color=method_color(REFERENCE))
    if ms.max() / ms.min() > 20:
        ax.set_xscale("log")
        ax.set_xlim(ms.min() / 2, ms.max() * 3)
    else:
        ax.set_xlim(0, ms.max() * 1.3)
    accuracies = rows["accuracy"].to_numpy(float)
    span = max(accuracies.max() - accuracies.min(), 0.002)
    ax.set_ylim(accuracies.min() - 0.3 * span, min(1.0, accuracies.max() + 0.3 * span))
    _percent_ticks(ax.yaxis, *ax.get_ylim())
    ax.set_xlabel("detect + align, median ms per image" + (" (log scale)" if ax.get_xscale() == "log" else ""))
    ax.set_ylabel("accuracy")
    ax.set_title(title + " (up and left is better)", fontsize=11, fontweight="bold")
    ax.grid(which="both", alpha=0.3)
    return labels


def _pct(values) -> list[str]:
    return [f"{v:.2%}" for v in values]


def plot_overview(report: Run | pd.DataFrame | str | os.PathLike) -> Figure:
    """Six panels: accuracy, accuracy vs time per image, detection success rate, EER, peak CPU
    memory (process RSS) and peak GPU memory; methods with an error are left out."""
    report = report if isinstance(report, pd.DataFrame) else _as_run(report).report
    rows = _results(report)
    detectors = rows[rows["method"] != REFERENCE]
    fig = Figure(figsize=(18, max(7.0, 4.0 + 0.55 * len(rows))), layout="constrained")
    axes = fig.subplots(2, 3)
    _bars(axes[0, 0], rows, "accuracy", [f"{a:.2%} ± {s:.2%}" for a, s in zip(rows["accuracy"], rows["accuracy_std"])],
          "Verification accuracy (10-fold mean ± std)", "accuracy", fraction=True)
    speed_labels = _speed_panel(axes[0, 1], rows)
    if detectors.empty:
        _no_data(axes[0, 2], "Detection success rate", "no detector in this run")
    else:
        _bars(axes[0, 2], detectors, "success_rate", _pct(detectors["success_rate"]), "Detection success rate",
              "images whose face was found", fraction=True)
    _bars(axes[1, 0], rows, "eer", _pct(rows["eer"]), "Equal error rate (lower is better)", "EER", fraction=True)
    _bars(axes[1, 1], rows, "peak_rss_mb", [f"{v:,.0f} MB" for v in rows["peak_rss_mb"]],
          "Peak CPU memory (process RSS)", "MB")
    if rows["peak_gpu_mb"].fillna(0).gt(0).any():
        _bars(axes[1, 2], rows, "peak_gpu_mb", [f"{v:,.0f} MB" for v in rows["peak_gpu_mb"]],
              "Peak GPU memory (torch)", "MB")
    else:
        _no_data(axes[1, 2], "Peak GPU memory (torch)", f"no GPU memory used\n(device: {rows['device'].iloc[0]})")
    failed = report.loc[report["error"].fillna("") != "", "method"].tolist()
    fig.suptitle(_title(rows) + (f"\nnot shown, failed: {', '.join(failed)} (see summary.md)" if failed else ""),
                 fontsize=13)
    if speed_labels:
        place_labels(fig, axes[0, 1], speed_labels)
    return fig


def plot_roc(run: Run | str | os.PathLike, methods: Sequence[str] | None = None) -> Figure:
    """Every method's ROC curve (true-accept rate against false-accept rate on a log axis, from
    the per-pair cosine similarities), best AUC first in the legend."""
    run = _as_run(run)
    methods = list(methods) if methods is not None else run.methods
    if not methods:
        raise FaceBenchError(f"run {run.path} has no method with per-pair scores to plot")
    rows = pd.DataFrame([run.row(m) for m in methods]).sort_values("roc_auc", ascending=False, kind="stable")
    fig = Figure(figsize=(9, 6.5), layout="constrained")
    ax = fig.subplots()
    smallest_far = 1.0
    for _, row in rows.iterrows():
        scores = run.scores(row["method"])
        far, tar, _ = roc_curve(scores.similarities, scores.same)
        shown = far > 0  # a log axis has no 0: the curve starts at the first false accept
        smallest_far = min(smallest_far, 1.0 / max(1, np.count_nonzero(~scores.same)))
        ax.plot(far[shown], tar[shown], color=method_color(row["method"]), linewidth=1.8,
                label=f"{row['method']}  AUC {row['roc_auc']:.4f}, EER {row['eer']:.2%}")
    ax.set_xscale("log")
    ax.set_xlim(smallest_far, 1.0)
    ax.set_ylim(top=1.0 + 0.02 * (1.0 - ax.get_ylim()[0]))
    _percent_ticks(ax.yaxis, *ax.get_ylim())
    ax.set_xlabel("false accept rate (log scale)")
    ax.set_ylabel("true accept rate")
    ax.grid(which="both", alpha=0.25)
    ax.legend(loc="lower right", fontsize=9, title="method (best AUC first)")
    ax.set_title(f"ROC on {int(rows['n_pairs'].iloc[0])} {dataset_label(rows.iloc[0])} pairs (up and left is better)",
                 fontsize=12, fontweight="bold")
    return fig


def pick_gallery_images(run: Run, n: int = 6, methods: Sequence[str] | None = None) -> list[str]:
    """``n`` images of the run: up to half where the most detectors failed (most instructive),
    the rest spread evenly over the image list. A function of the per-image logs only, so a
    redraw shows the same images, and so do runs whose detectors fail on the same images."""
    methods = [m for m in (methods if methods is not None else run.methods) if m != REFERENCE] or list(run.methods)
    logs = [run.image_log(m) for m in methods]
    images = logs[0]["image"].to_numpy()
    failures = np.sum([log_["status"].to_numpy() != "found" for log_ in logs], axis=0)
    hard = [int(i) for i in np.argsort(-failures, kind="stable")[: n // 2] if failures[i] > 0]
    rest = [i for i in range(len(images)) if i not in set(hard)]
    wanted = min(n, len(images)) - len(hard)
    spread = [rest[k] for k in np.unique(np.linspace(0, len(rest) - 1, wanted).round().astype(int))] if rest else []
    return [str(images[i]) for i in hard + spread]


def _crop(run: Run, method: str, image: str, log_row, image_root: Path | None,
          aligned_dir: Path | None) -> tuple[np.ndarray | None, str]:
    """The crop ``method`` aligned for ``image`` (redrawn from the original with the logged
    landmarks; the reference crop as it is), and a caption when it is not a found face."""
    try:
        if method == REFERENCE:
            if aligned_dir is None:
                return None, "crop folder\nunknown"
            return reference_crop(load_image(aligned_dir / image)), ""
        caption = STATUS_CAPTIONS.get(log_row["status"], "")
        if log_row["status"] == "unreadable":
            return None, caption
        if image_root is None:
            return None, "image folder\nunknown"
        if not set(LANDMARK_COLUMNS) <= set(log_row.index):  # a log from before landmarks were logged
            return None, "no landmarks\nlogged"
        landmarks = log_row[LANDMARK_COLUMNS].to_numpy(float).reshape(5, 2)
        if not np.isfinite(landmarks).all():
            return None, "no landmarks"
        return align_face(load_image(image_root / image), landmarks), caption
    except ImageError as exc:
        log.warning("gallery: %s", exc)
        return None, "image\nnot found"


def _caption(ax, text: str, on_crop: bool) -> None:
    """Why a cell is not a found face, in red: a label at the bottom of the crop, or the cell's only content."""
    if on_crop:
        ax.text(0.5, 0.03, text, transform=ax.transAxes, ha="center", va="bottom", fontsize=7, color="white",
                fontweight="bold", bbox={"facecolor": FAILURE_RED, "alpha": 0.75, "pad": 1.5, "linewidth": 0})
    else:
        ax.text(0.5, 0.5, text, transform=ax.transAxes, ha="center", va="center", fontsize=8, color=FAILURE_RED,
                fontweight="bold")


def _image_label(image: str) -> str:
    """``Abel_Pacheco/Abel_Pacheco_0004.jpg`` -> ``Abel Pacheco\n#4``; another path without its
    suffix, a folder a line (``001/profile/02.jpg`` -> ``001\nprofile\n02``)."""
    name, _, number = Path(image).stem.rpartition("_")
    if name and number.isdigit():
        return f"{name.replace('_', ' ')}\n#{int(number)}"
    return "\n".join(Path(image).with_suffix("").parts)


def plot_gallery(run: Run | str | os.PathLike, images: Sequence[str] | None = None, n_images: int = 6,
                 methods: Sequence[str] | None = None, image_root: str | os.PathLike | None = None,
                 aligned_dir: str | os.PathLike | None = None, marks: bool = True) -> Figure:
    """Rows of images, columns of methods: each method's 112x112 crop of the same image,
    redrawn from the original image with the landmarks the method logged (the reference column
    shows its crop as it is). ``marks`` dots the ArcFace template points, where the eyes, nose
    and mouth corners of a well-aligned face sit. Image folders default to the run's
    ``run.json``; ``image_root`` is the folder of the LFW images (e.g. ``lfw-deepfunneled``)."""
    run = _as_run(run)
    methods = list(methods) if methods is not None else run.methods
    if not methods:
        raise FaceBenchError(f"run {run.path} has no method with results to show")
    images = list(images) if images is not None else pick_gallery_images(run, n_images, methods)
    image_root = image_root or run.info.get("image_root")
    aligned_dir = aligned_dir or run.info.get("aligned_dir")
    roots = (Path(image_root) if image_root else None, Path(aligned_dir) if aligned_dir else None)
    logs = {m: run.image_log(m).set_index("image") for m in methods if m != REFERENCE}
    cell = 1.35
    fig = Figure(figsize=(max(5.0, 1.9 + cell * len(methods)), 0.8 + cell * len(images)), layout="constrained")
    axes = fig.subplots(len(images), len(methods), squeeze=False)
    for r, image in enumerate(images):
        for c, method in enumerate(methods):
            ax = axes[r, c]
            ax.set_xticks([])
            ax.set_yticks([])
            row = logs[method].loc[image] if method in logs and image in logs[method].index else None
            if method != REFERENCE and row is None:
                crop, caption = None, "not in\nthis run"
            else:
                crop, caption = _crop(run, method, image, row, *roots)
            if crop is not None:
                ax.imshow(crop)
                if marks:
                    ax.scatter(*(ARCFACE_TEMPLATE * crop.shape[1] / CROP_SIZE).T, s=6, c="#00e5ff", alpha=0.8,
                               linewidths=0)
            else:  # an empty cell the size of a crop
                ax.set_facecolor("#e6e6e6")
                ax.set_xlim(0, CROP_SIZE)
                ax.set_ylim(CROP_SIZE, 0)
                ax.set_aspect("equal")
            if caption:
                _caption(ax, caption, on_crop=crop is not None)
            for spine in ax.spines.values():
                spine.set_edgecolor(method_color(method))
                spine.set_linewidth(2)
            if r == 0:
                ax.set_title(method, fontsize=10, fontweight="bold", color=method_color(method))
            if c == 0:
                ax.set_ylabel(_image_label(image), fontsize=9, rotation=0, ha="right", va="center")
    fig.suptitle("Each method's 112x112 crop of the same images\n(dots: the template's eye, nose and mouth points)",
                 fontsize=11)
    return fig


def save_charts(run: Run | str | os.PathLike, image_root: str | os.PathLike | None = None,
                aligned_dir: str | os.PathLike | None = None) -> list[Path]:
    """Write ``overview.png``, ``roc.png`` and ``gallery.png`` beside the run's ``report.csv``;
    a chart that cannot be drawn is logged and skipped, so the others are still written."""
    run = _as_run(run)
    drawers = {
        "overview": lambda: plot_overview(run),
        "roc": lambda: plot_roc(run),
        "gallery": lambda: plot_gallery(run, image_root=image_root, aligned_dir=aligned_dir),
    }
    written = []
    for name, draw in drawers.items():
        path = run.path / CHART_FILES[name]
        try:
            save_figure(draw(), path)
        except FaceBenchError as exc:
            log.warning("%s chart not drawn: %s", name, exc)
            continue
        written.append(path)
    return written
