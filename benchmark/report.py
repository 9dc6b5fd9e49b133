"""The CSV report (one row per method) and the per-image log."""
from __future__ import annotations

import csv
import math
import os
import tempfile
from pathlib import Path

import numpy as np

#: report columns, in order; later versions add columns, never rename these
COLUMNS = [
    "method", "n_pairs", "n_images", "success_rate", "accuracy", "accuracy_std", "accuracy_found", "roc_auc",
    "eer", "tar_far_1e-3", "tar_far_1e-2", "threshold", "flip", "detect_ms_median", "detect_ms_p95",
    "embed_img_per_s", "wall_s", "peak_rss_mb", "peak_gpu_mb", "device", "embedder", "embedder_sha256",
    "detector_weights_sha256", "versions", "git_commit", "started_at",
    # added after the first release
    "n_pairs_found", "n_failed_images", "error", "detector_model",
]


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
    """One line per image: its status, the reason for a failure, detector score and time."""
    rows = [[image, status_names[int(results.status[i])], results.reasons.get(i, ""),
             _cell(results.scores[i]), _cell(results.detect_ms[i])] for i, image in enumerate(images)]
    _write_csv(path, ["image", "status", "reason", "score", "detect_ms"], rows)


def _write_csv(path: Path, header: list[str], rows: list[list[str]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", newline="") as fh:
            writer = csv.writer(fh)
            writer.writerow(header)
            writer.writerows(rows)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
