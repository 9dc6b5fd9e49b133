"""What a person reads beside ``report.csv``: ``summary.md`` (every metric in one table, and the
run's metadata) and the charts. Written at the end of a run (:func:`write_run_outputs`) and
redrawn from a finished run folder (:func:`redraw_run`, ``facebench plot``)."""
from __future__ import annotations

import hashlib
import json
import logging
import os
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from .files import (
    CHART_FILES,
    DATASET_LABELS,
    Run,
    dataset_label,
    describe_embedder,
    load_run,
    read_report_rows,
    write_text,
)

log = logging.getLogger(__name__)

SUMMARY_FILE = "summary.md"
#: the sha256 of the inputs the charts were drawn from (chart_inputs)
CHARTS_MEMO = "charts.sha256"
#: the modules whose code draws the charts
CHART_CODE = ("plots.py", "files.py")
#: pairs of each built-in data set's full protocol (LFW: View 2's pairs.txt): fewer means a
#: --max-pairs subset or another pairs list
FULL_PAIRS = {"lfw": 6000, "cfp-fp": 7000, "cfp-ff": 7000}


def _pct(value: float) -> str:
    return "" if pd.isna(value) else f"{value:.2%}"


def _num(digits: int) -> Callable[[float], str]:
    return lambda value: "" if pd.isna(value) else f"{value:,.{digits}f}"


#: (report column, table header, format) of the results table, in order
TABLE = [
    ("accuracy", "accuracy", _pct), ("accuracy_std", "± std", _pct),
    ("strict_accuracy", "strict accuracy", _pct),
    ("accuracy_found", "accuracy, both found", _pct), ("success_rate", "success rate", _pct),
    ("roc_auc", "ROC AUC", _num(4)), ("eer", "EER", _pct), ("tar_far_1e-3", "TAR@FAR 0.1%", _pct),
    ("tar_far_1e-2", "TAR@FAR 1%", _pct), ("threshold", "threshold", _num(2)),
    ("detect_ms_median", "ms/img median", _num(2)), ("detect_ms_p95", "ms/img p95", _num(2)),
    ("embed_img_per_s", "embed img/s", _num(0)), ("wall_s", "wall s", _num(1)),
    ("peak_rss_mb", "peak RSS MB", _num(0)), ("peak_gpu_mb", "peak GPU MB", _num(0)),
    ("n_failed_images", "images not found", lambda v: "" if pd.isna(v) else str(int(v))),
]


def _metadata(run: Run) -> list[tuple[str, str]]:
    rows = run.report
    first = rows[rows["error"] == ""].iloc[0] if (rows["error"] == "").any() else rows.iloc[0]
    info = run.info
    pairs = f"{first['n_pairs']} pairs over {first['n_images']} images"
    if info.get("pairs_file"):
        pairs += f", from `{info['pairs_file']}`"
    items = [("pairs", pairs)]
    dataset, full = dataset_label(first), FULL_PAIRS.get(run.dataset)
    if info.get("max_pairs") or (full and first["n_pairs"] != full):
        items.append(("**subset**", f"not {dataset}'s {full or 'full'} pairs: the numbers are not comparable "
                                    f"with published {dataset} figures"))
    items += [
        ("protocol", f"10-fold {dataset} verification, insightface threshold rule (squared L2, thresholds 0..4 by "
                     f"0.01, each fold scored at the other nine's best); flip TTA {'on' if first['flip'] else 'off'}"),
        ("embedder", f"{describe_embedder(first)}; weights sha256 {first['embedder_sha256'][:12]}"),
    ]
    if info.get("image_root"):
        items.append(("images", f"`{info['image_root']}`"))
    if info.get("aligned_dir"):
        items.append(("reference crops", f"`{info['aligned_dir']}`"))
    items += [("code", f"git {first['git_commit']}"), ("started", f"{first['started_at']} (UTC)"),
              ("libraries", first["versions"].replace(";", ", "))]
    unverified = sorted({f for cell in rows.get("unverified_weights", []) for f in cell.split(";") if f})
    if unverified:
        items.append(("**unverified weights**", "sha256 not the manifest's (--allow-unverified-weights): "
                                                + ", ".join(f"`{f}`" for f in unverified)))
    return items


def summary_markdown(run: Run, charts: Sequence[Path] = ()) -> str:
    """The Markdown text of ``summary.md`` for ``run``; ``charts`` are linked by file name."""
    lines = [f"# facebench {DATASET_LABELS.get(run.dataset, run.dataset)} run `{run.path.name}`", "", "| | |",
             "|---|---|"]
    lines += [f"| {key} | {value} |" for key, value in _metadata(run)]
    ok = run.report[run.report["error"] == ""].sort_values("accuracy", ascending=False, kind="stable")
    lines += ["", "## Results, best accuracy first", "",
              "| method | " + " | ".join(header for _, header, _ in TABLE) + " |",
              "|---|" + "---:|" * len(TABLE)]
    for _, row in ok.iterrows():
        # a column a report of an older version lacks (strict_accuracy) is left empty
        lines.append(f"| {row['method']} | " + " | ".join(fmt(row.get(col)) for col, _, fmt in TABLE) + " |")
    models = [(row["method"], row["detector_model"]) for _, row in ok.iterrows() if row.get("detector_model")]
    if models:
        lines += ["", "Detector models: " + "; ".join(f"{method}: `{model}`" for method, model in models) + "."]
    failed = run.report[run.report["error"] != ""]
    if not failed.empty:
        lines += ["", "## Methods that failed", ""]
        lines += [f"- `{row['method']}`: {row['error']}" for _, row in failed.iterrows()]
    if charts:
        lines += ["", "## Charts", ""] + [f"![{Path(c).stem}]({Path(c).name})" for c in charts]
    lines += ["", "Accuracy aligns a face the detector did not find at LFW faces' median position (the "
                  "fallback); strict accuracy decides every pair with a face not found \"different\" (no face, no "
                  "match), as a real system would. Columns are explained in docs/GUIDE.md (section *Outputs*); "
                  "`report.csv` has the full-precision values, `scores/` the per-pair distances that `facebench "
                  "compare` tests.", ""]
    return "\n".join(lines)


def write_summary(run: Run, charts: Sequence[Path] = ()) -> Path:
    path = run.path / SUMMARY_FILE
    write_text(path, summary_markdown(run, charts))
    return path


def redraw_run(path: str | os.PathLike, image_root: str | os.PathLike | None = None,
               aligned_dir: str | os.PathLike | None = None) -> list[Path]:
    """Draw the charts and write ``summary.md`` of the run folder ``path``; returns the files.
    Matplotlib is imported here, not with the module: a method's process, which imports the
    runner and so this module, draws nothing (0.4 s of its start-up)."""
    from .plots import save_charts

    run = load_run(path)
    charts = save_charts(run, image_root=image_root, aligned_dir=aligned_dir)
    written = [*charts, write_summary(run, charts)]
    log.info("charts and summary written: %s", ", ".join(str(p) for p in written))
    return written


def chart_inputs(out: Path) -> str:
    """A sha256 over what the charts of the run folder ``out`` draw: its report rows (without
    ``started_at``), per-pair scores (their arrays: an ``.npz`` file's bytes hold its write time),
    per-image logs, and the charting code."""
    digest = hashlib.sha256()
    rows = [{k: v for k, v in row.items() if k != "started_at"} for row in read_report_rows(out / "report.csv")]
    digest.update(json.dumps(rows, sort_keys=True).encode())
    for path in sorted((out / "scores").glob("*.npz")):
        with np.load(path) as arrays:
            for name in sorted(arrays.files):
                digest.update(f"{path.name}:{name}".encode() + arrays[name].tobytes())
    for path in [*sorted((out / "images").glob("*.csv")), *(Path(__file__).with_name(f) for f in CHART_CODE)]:
        digest.update(path.name.encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()


def write_run_outputs(out: Path) -> list[Path]:
    """End of a run: the charts and ``summary.md``. Charts whose inputs (:func:`chart_inputs`) are
    those they were drawn from (a rerun read from the cache) are kept, not drawn again (seconds,
    and matplotlib's import). The report is already on disk, so a failure here is logged, not
    raised: it must not cost a finished run."""
    try:
        inputs, memo = chart_inputs(out), out / CHARTS_MEMO
        charts = [out / name for name in CHART_FILES.values()]
        if memo.is_file() and memo.read_text() == inputs and all(c.is_file() for c in charts):
            log.info("charts of %s kept: drawn from the same rows, scores and code", out)
            return [*charts, write_summary(load_run(out), charts)]
        written = redraw_run(out)
        write_text(memo, inputs)
        return written
    except Exception:  # a chart bug must not turn a finished run into a crash
        log.exception("could not write the charts and summary of %s (redraw with `facebench plot %s`)", out, out)
        return []
