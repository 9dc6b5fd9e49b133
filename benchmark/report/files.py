"""A run folder's files: the CSV report (one row per method), the per-image log, the run's
settings (``run.json``), written by the runner and read back by :func:`load_run`."""
from __future__ import annotations

import csv
import json
import math
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import numpy as np
import pandas as pd

from face_alignment import LANDMARK_NAMES
from face_alignment.atomic import atomic_path
from face_alignment.errors import FaceBenchError

from ..protocol.base import VerificationProtocol
from ..protocol.scores import PairScores

#: report columns, in order; later versions add columns, never rename these
COLUMNS = [
    "method", "n_pairs", "n_images", "success_rate", "accuracy", "accuracy_std", "accuracy_found", "roc_auc",
    "eer", "tar_far_1e-3", "tar_far_1e-2", "threshold", "flip", "detect_ms_median", "detect_ms_p95",
    "embed_img_per_s", "wall_s", "peak_rss_mb", "peak_gpu_mb", "device", "embedder", "embedder_sha256",
    "detector_weights_sha256", "versions", "git_commit", "started_at",
    # added after the first release
    "n_pairs_found", "n_failed_images", "error", "detector_model", "unverified_weights",
    "embedder_backend", "precision", "dataset",
    # where each stage really ran, GPU memory as NVML and torch count it ("n/a: <why>" where NVML
    # could not tell), and whether TF32 was on
    "detector_device", "embedder_device", "peak_gpu_nvml_mb", "peak_gpu_torch_allocated_mb",
    "peak_gpu_torch_reserved_mb", "tf32",
    # the accuracy with a pair whose face was not found decided "different" (no face, no match)
    "strict_accuracy", "strict_accuracy_std",
    # the embedder's alignment mode, and the images aligned from cached detections (detect once, embed many)
    "align", "detections_reused",
    # the detection method of the row (a matrix row's method is its cell: DETECTOR+EMBEDDER+ALIGN)
    "detector",
]
TEXT_COLUMNS = ("method", "device", "embedder", "embedder_sha256", "detector_weights_sha256", "versions",
                "git_commit", "started_at", "error", "unverified_weights", "detector_model", "embedder_backend",
                "precision", "dataset", "detector_device", "embedder_device", "peak_gpu_nvml_mb", "align",
                "detector")
COUNT_COLUMNS = ("n_pairs", "n_images", "n_pairs_found", "n_failed_images", "detections_reused")
BOOL_COLUMNS = ("flip", "tf32")
#: the per-image log's landmark columns: x and y of each landmark in the original image's pixels
LANDMARK_COLUMNS = [f"{name}_{axis}" for name in LANDMARK_NAMES for axis in "xy"]
IMAGE_LOG_COLUMNS = ["image", "status", "reason", "score", "detect_ms", *LANDMARK_COLUMNS]
RUN_INFO = "run.json"
#: a run folder's charts (benchmark.report.plots.save_charts)
CHART_FILES = {"overview": "overview.png", "roc": "roc.png", "gallery": "gallery.png"}


def _cell(value) -> str:
    if value is None:
        return ""
    if isinstance(value, bool | np.bool_):
        return str(bool(value)).lower()
    if isinstance(value, float | np.floating):
        return "" if math.isnan(value) else f"{float(value):.6g}"
    return str(value)


def write_report(rows: list[dict], path: Path) -> None:
    """Write ``rows`` atomically (a temporary file, then ``os.replace``)."""
    _write_csv(path, COLUMNS, [[_cell(row.get(c)) for c in COLUMNS] for row in rows])


def write_image_log(path: Path, images: list[str], results, status_names: dict[int, str]) -> None:
    """One line per image: its status, the reason for a failure, detector score and time, and
    the five landmarks it was aligned with (empty where there are none: reference crops,
    unreadable images), so that any crop can be redrawn from the original image."""
    rows = [[image, status_names[int(results.status[i])], results.reasons.get(i, ""),
             _cell(results.scores[i]), _cell(results.detect_ms[i]),
             *(_cell(v) for v in np.asarray(results.landmarks[i], np.float64).ravel())]
            for i, image in enumerate(images)]
    _write_csv(path, IMAGE_LOG_COLUMNS, rows)


def output_folder(path: str | os.PathLike) -> Path:
    """``path``, created, after checking that files can be written there (before any work)."""
    out = Path(path)
    try:
        out.mkdir(parents=True, exist_ok=True)
        tempfile.TemporaryFile(dir=out).close()
    except OSError as exc:
        raise FaceBenchError(f"cannot write to the output folder {out} ({exc.strerror or exc}); "
                             "choose another with --out") from None
    return out


def run_info(protocol: VerificationProtocol, max_pairs: int | None) -> dict:
    """What ``run.json`` holds: the run's settings that the report rows do not carry (the data set,
    where the images and reference crops were, the pairs file and its fingerprint)."""
    reference = protocol.reference_dir
    return {
        "dataset": protocol.name, "image_root": str(protocol.image_root.resolve()),
        "aligned_dir": str(reference.resolve()) if reference else None,
        "pairs_file": str(Path(protocol.pairs.source).resolve()), "pairs_sha256": protocol.pairs.fingerprint(),
        "max_pairs": max_pairs,
    }


def write_run_info(out: Path, info: dict) -> Path:
    """``<out>/run.json`` (see :func:`run_info`)."""
    path = Path(out) / RUN_INFO
    text = json.dumps(info, indent=2, sort_keys=True, default=str) + "\n"
    write_text(path, text)
    return path


def read_run_info(out: Path) -> dict:
    """``<out>/run.json``, or ``{}`` where there is none."""
    path = Path(out) / RUN_INFO
    return json.loads(path.read_text()) if path.is_file() else {}


def read_report_rows(path: Path) -> list[dict[str, str]]:
    """``report.csv``'s rows as written (text cells), to be written again as they are."""
    if not path.is_file():
        return []
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


def write_frame(frame: pd.DataFrame, path: str | os.PathLike) -> Path:
    """``frame`` as CSV at ``path``, atomically: six significant digits, NaN written empty."""
    path = Path(path)
    with atomic_path(path) as tmp:
        frame.to_csv(tmp, index=False, float_format="%.6g", na_rep="")
    return path


def typed_frame(frame: pd.DataFrame, text_columns, count_columns) -> pd.DataFrame:
    """``frame`` with text columns as strings ("" where empty), counts as nullable integers and
    every other column as floats: the same types whether built in memory or read back."""
    for column in frame.columns:
        if column in text_columns:
            frame[column] = frame[column].fillna("").astype(str)
        elif column in count_columns:
            frame[column] = pd.to_numeric(frame[column]).astype("Int64")
        else:
            frame[column] = pd.to_numeric(frame[column]).astype(float)
    return frame


def read_frame(path: str | os.PathLike, text_columns, count_columns) -> pd.DataFrame:
    """A CSV written by :func:`write_frame` back, typed by :func:`typed_frame`."""
    frame = pd.read_csv(path, dtype={c: str for c in text_columns}, keep_default_na=False, na_values=[""])
    return typed_frame(frame, text_columns, count_columns)


@contextmanager
def _atomic_write(path: Path, newline: str | None = None) -> Iterator[IO[str]]:
    """A text file that appears at ``path`` only once complete (see :func:`atomic_path`)."""
    with atomic_path(path) as tmp, open(tmp, "w", newline=newline) as fh:
        yield fh


def _write_csv(path: Path, header: list[str], rows: list[list[str]]) -> None:
    with _atomic_write(path, newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(header)
        writer.writerows(rows)


def write_text(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` atomically, like the CSV files."""
    with _atomic_write(path) as fh:
        fh.write(text)


#: how the built-in data sets are named in titles; another (a pairs file) by its path
DATASET_LABELS = {"lfw": "LFW", "cfp-fp": "CFP-FP", "cfp-ff": "CFP-FF"}


def dataset_label(row) -> str:
    """A report row's data set for titles: ``LFW``, ``CFP-FP``, ... (reports of older versions: LFW)."""
    name = row.get("dataset") or "lfw"
    return DATASET_LABELS.get(name, name)


def describe_embedder(row) -> str:
    """A report row's embedder for titles: ``edgeface_xs (onnx fp32) on cpu`` (backend and
    precision where the report records them; reports of older versions do not)."""
    runtime = " ".join(str(row[k]) for k in ("embedder_backend", "precision") if k in row and pd.notna(row[k]))
    return f"{row['embedder']}{f' ({runtime})' if runtime else ''} on {row['device']}"


def read_report(path: Path) -> pd.DataFrame:
    """``report.csv`` as a DataFrame: metrics as floats (NaN where empty), counts as nullable
    integers, ``flip`` and ``tf32`` as bool, text columns as strings ("" where empty); a column this
    version does not know is left as pandas reads it."""
    frame = pd.read_csv(path, dtype={c: str for c in TEXT_COLUMNS}, keep_default_na=False, na_values=[""])
    for column in frame.columns:
        if column in TEXT_COLUMNS:
            frame[column] = frame[column].fillna("")
        elif column in COUNT_COLUMNS:
            frame[column] = pd.to_numeric(frame[column]).astype("Int64")
        elif column in BOOL_COLUMNS:
            frame[column] = frame[column].astype(str).str.lower().eq("true")
        elif column in COLUMNS:  # every other known column is a number
            frame[column] = pd.to_numeric(frame[column]).astype(float)
    return frame


@dataclass
class Run:
    """A run folder read back: ``report`` (one row per method, as in ``report.csv``), ``info``
    (``run.json``, empty for runs that did not finish), per-pair scores and per-image logs."""

    path: Path
    report: pd.DataFrame
    info: dict

    @property
    def dataset(self) -> str:
        """The data set the run scored (runs from before data sets were recorded: LFW)."""
        return self.info.get("dataset") or "lfw"

    @property
    def methods(self) -> list[str]:
        """Methods with results: no error, and a score file present (report order)."""
        ok = self.report[self.report["error"] == ""]["method"]
        return [m for m in ok if (self.path / "scores" / f"{m}.npz").is_file()]

    def row(self, method: str) -> pd.Series:
        """The report row of ``method``."""
        rows = self.report[self.report["method"] == method]
        if rows.empty:
            raise FaceBenchError(f"run {self.path} has no method {method!r}; it has "
                                 f"{', '.join(self.report['method']) or 'none'}")
        return rows.iloc[-1]

    def scores(self, method: str) -> PairScores:
        """Per-pair distances, labels, folds and found flags of ``method``."""
        error = self.row(method)["error"]  # raises for a method not in this run
        path = self.path / "scores" / f"{method}.npz"
        if error or not path.is_file():  # a file left by an earlier run in this folder is not this run's
            raise FaceBenchError(f"{method} has no scores in run {self.path} (error: {error or 'none recorded'})")
        return PairScores.load(path)

    def image_log(self, method: str) -> pd.DataFrame:
        """``images/<method>.csv``: one row per image (status, reason, score, time, landmarks)."""
        path = self.path / "images" / f"{method}.csv"
        if not path.is_file():
            raise FaceBenchError(f"{path} does not exist: {method} has no per-image log in this run")
        return pd.read_csv(path, dtype={"image": str, "status": str, "reason": str}, keep_default_na=False,
                           na_values={c: [""] for c in ("score", "detect_ms", *LANDMARK_COLUMNS)})

    def _repr_html_(self) -> str:  # a notebook shows the report
        return f"<p>facebench run <code>{self.path}</code></p>" + self.report.to_html()


def load_run(path: str | os.PathLike) -> Run:
    """Read the run folder ``path`` (a runner's ``--out``)."""
    path = Path(path)
    if not (path / "report.csv").is_file():
        raise FaceBenchError(f"{path} holds no report.csv: give the output folder (--out) of a facebench run")
    return Run(path, read_report(path / "report.csv"), read_run_info(path))
