"""Landmark accuracy of detection methods on hand-labelled 5-point faces (CUHK list format).

:func:`run_landmarks` runs each method on every labelled image that is here, one image at a
time and in this process: decode, detect, pick the labelled face (the face whose box centre is
nearest the centre of the labels' box, among the faces whose box contains that centre if any:
:func:`benchmark.protocol.landmarks.pick_labelled_face`), with the benchmark's second look at
rolled faces (:func:`face_alignment.selection.refine_targets`), and scores the picked face's five
points against the labels. NME is the mean point error over the inter-ocular distance of the
labels (the distance between the two labelled eye centres); a face not found counts as a miss:
an infinite NME in the CED and the failure rates, left out of the mean, median and p90 NME (see
:mod:`benchmark.protocol.landmarks`).
"""
from __future__ import annotations

import logging
import os
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from face_alignment import create_detector, load_image
from face_alignment.errors import DatasetError, FaceBenchError, ImageError
from face_alignment.registry import get_method
from face_alignment.runtime import check_device
from face_alignment.selection import refine_targets

from ..protocol.landmarks import NORMALISER, LabelSet, labelled_face_picker, landmark_metrics, read_labels
from ..report.files import LANDMARK_COLUMNS, output_folder, write_run_info
from ..report.landmarks import CED_FILE, IMAGES_FOLDER, SUMMARY_FILE, save_ced, write_image_table, write_summary
from .failures import method_failure
from .sysinfo import git_commit, run_provenance

log = logging.getLogger(__name__)

#: a detector that raises on this many first images (all it was given, if fewer) is stopped
BROKEN_AFTER = 10


def run_landmarks(methods: Sequence[str], labels: str | os.PathLike, images_dir: str | os.PathLike | None,
                  out: str | os.PathLike, weights_dir: str | os.PathLike | None = None, device: str = "cpu",
                  progress: bool = True) -> pd.DataFrame:
    """Score the five landmarks of each of ``methods`` against the CUHK label file ``labels``.

    ``images_dir`` is the folder the label file's image paths are relative to (None: the label
    file's folder); lines whose image is not there are skipped and counted (``n_skipped_lines``).
    Writes ``<out>/landmarks.csv`` (the summary, one row per method, rewritten after each method),
    ``<out>/landmarks/<method>.csv`` (one row per labelled face: status found / missed / error,
    the five predicted points, the NME) and ``<out>/landmarks_ced.png`` (the cumulative error
    distribution); returns the summary.

    Errors are divided by the inter-ocular distance of the labels. A method that cannot be built
    (missing package or weights) or whose detector raises on every image gets an ``error`` in its
    row and the run goes on; an image the detector raises on, or that cannot be decoded, is a
    miss with status ``error``. An unknown method or device, a missing label file or images
    folder, a malformed label line or a label file with no image here raise before any work.
    """
    device = check_device(device)
    methods = list(dict.fromkeys(methods))
    if not methods:
        raise FaceBenchError("no method given")
    for method in methods:
        get_method(method)  # an unknown name raises, listing the registered ones
    label_set = read_labels(labels, images_dir)
    if not label_set.faces:
        raise DatasetError(f"none of the {label_set.n_lines} lines of {label_set.source} has its image under "
                           f"{label_set.images_dir}: give the folder the label paths (such as "
                           f"{_first_path(label_set.source)}) are relative to")
    log.info("%s: %d labelled faces with an image, %d lines skipped (image absent)", label_set.source,
             len(label_set), label_set.n_skipped)
    out = output_folder(out)
    (out / IMAGES_FOLDER).mkdir(exist_ok=True)
    write_run_info(out, {"dataset": "landmarks", "labels": str(label_set.source), "git_commit": git_commit(),
                         "started_at": datetime.now(UTC).isoformat(timespec="seconds"), **run_provenance()})
    rows, raw, unbiased = [], {}, {}
    for method in methods:
        row, table = _run_method(method, label_set, device, weights_dir, progress)
        if table is not None:
            write_image_table(table, out / IMAGES_FOLDER / f"{method}.csv")
            raw[method] = table["nme"].to_numpy(np.float64)
            unbiased[method] = table["nme_offset_removed"].to_numpy(np.float64)
        rows.append(row)
        summary = write_summary(rows, out / SUMMARY_FILE)
    save_ced(out / CED_FILE, raw, unbiased)
    log.info("landmark summary written to %s", out / SUMMARY_FILE)
    return summary


def _first_path(labels: Path) -> str:
    """The first image path of a label file, with ``/``, for messages."""
    for line in labels.read_text(encoding="utf-8").splitlines():
        if line.strip():
            return line.split()[0].replace("\\", "/")
    return "none: the file is empty"


def _run_method(method: str, label_set: LabelSet, device: str, weights_dir, progress: bool
                ) -> tuple[dict, pd.DataFrame | None]:
    """One method's summary row and per-image table (None where the method failed; the row's
    ``error`` says why)."""
    row: dict = {"method": method, "normaliser": NORMALISER, "n_label_lines": label_set.n_lines,
                 "n_skipped_lines": label_set.n_skipped}
    with method_failure(row, method):
        detector = create_detector(method, device=device, weights_dir=weights_dir)
        row["detector_model"] = detector.model_label
        table, pred = _detect_all(method, detector, label_set, progress)
        scores = landmark_metrics(pred, label_set.points)
        table["nme"], table["nme_offset_removed"] = scores.nme, scores.nme_offset_removed
        row.update(scores.metrics)
        times = table["detect_ms"].dropna()
        row["detect_ms_median"] = float(times.median()) if len(times) else float("nan")
        log.info("%s: NME mean %.4f (offset removed %.4f), missed %.1f%%", method, row["nme_mean"],
                 row["nme_mean_offset_removed"], 100 * row["miss_rate"])
        return row, table
    return row, None


def _detect_all(method: str, detector, label_set: LabelSet, progress: bool) -> tuple[pd.DataFrame, np.ndarray]:
    """Each labelled face's outcome (the per-image table without its NME columns) and the picked
    faces' points (N, 5, 2), NaN for a miss."""
    n = len(label_set)
    pred = np.full((n, 5, 2), np.nan)
    status, reasons = ["missed"] * n, [""] * n
    scores, times = np.full(n, np.nan), np.full(n, np.nan)
    raised = 0
    for i, face in enumerate(tqdm(label_set.faces, desc=method, unit="img", disable=not progress, leave=False)):
        try:
            image = load_image(label_set.images_dir / face.image)
        except ImageError as exc:
            status[i], reasons[i] = "error", str(exc)
            continue
        started = time.perf_counter()
        try:
            target = refine_targets(detector, [image], detector.detect([image]),
                                    pick=labelled_face_picker(face))[0]
        except Exception as exc:  # any backend failure costs only this image
            status[i], reasons[i] = "error", f"detector raised {type(exc).__name__}: {exc}"
            raised += 1
            if raised == i + 1 and raised >= min(n, BROKEN_AFTER):
                raise FaceBenchError(f"the detector raised on all of the first {raised} images, e.g. "
                                     f"{face.image}: {type(exc).__name__}: {exc}") from exc
            continue
        times[i] = (time.perf_counter() - started) * 1000.0
        if target is None:
            reasons[i] = "no face found"
        else:
            pred[i] = target.landmarks
            scores[i] = target.score
            status[i] = "found"
    table = pd.DataFrame({"image": [f.image for f in label_set.faces], "line": [f.line for f in label_set.faces],
                          "status": status, "reason": reasons, "score": scores, "detect_ms": times})
    points = pd.DataFrame(pred.reshape(n, 10), columns=LANDMARK_COLUMNS)
    return pd.concat([table, points], axis=1), pred
