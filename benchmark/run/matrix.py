"""``facebench matrix``: every detector x embedder x alignment cell on one protocol, detecting once.

A cell is a (detection method, embedder, alignment mode); its report row is named
``DETECTOR+EMBEDDER+ALIGN`` (:func:`cell_name`) so that ``facebench compare RUN:CELL RUN:CELL``
tests two cells pair by pair, and carries ``detector``, ``embedder`` and ``align`` columns. Each
method runs in its own process (as in :func:`~.runner.run_benchmark`) and does its cells one after
another: the first detects and caches the detections, the others align from them and embed
(:class:`~.runner.DetectionCache`). The reference crops, where the data set has them, are a row per
embedder whose template they fit (``reference+EMBEDDER``). At the end the matrix outputs
(:mod:`benchmark.report.matrix`) are written beside the usual run outputs.
"""
from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from backbones import DEFAULT_EMBEDDER, embedder_spec
from face_alignment.weights import unverified_weights

from ..protocol.base import REFERENCE
from ..report.files import run_info, write_report, write_run_info
from ..report.matrix import write_matrix_outputs
from ..report.summary import write_run_outputs
from .cropping import takes_reference_crops
from .isolation import Progress
from .runner import (
    PreparedRun,
    RunConfig,
    default_out,
    earlier_rows,
    load_embedder,
    method_row,
    prepare_run,
    run_isolated,
)

log = logging.getLogger(__name__)


@dataclass
class MatrixConfig(RunConfig):
    """A run's options, with the embedders and alignment modes to cross with its methods."""

    embedders: Sequence[str] = (DEFAULT_EMBEDDER,)
    aligns: Sequence[str] = ("similarity",)


def cell_name(method: str, embedder: str, align: str | None = None) -> str:
    """A cell's row name: ``yunet+edgeface_xs+eyes`` (the reference: ``reference+edgeface_xs``);
    an ``onnx:PATH`` embedder by its file's stem."""
    label = Path(embedder.partition(":")[2]).stem if embedder.startswith("onnx:") else embedder
    return "+".join(part for part in (method, label, align) if part)


def default_matrix_out(dataset: str) -> Path:
    """``results/matrix-<dataset>`` (a pairs file: ``results/matrix-<its name>``)."""
    return default_out(dataset).with_name(f"matrix-{default_out(dataset).name}")


def run_matrix(config: MatrixConfig) -> list[dict]:
    """Every cell of ``config.methods`` x ``config.embedders`` x ``config.aligns``; returns the
    report rows (written to ``<out>/report.csv`` after each method). Every embedder and alignment
    is checked before any work."""
    if not config.embedders or not config.aligns:
        raise ValueError("a matrix needs at least one embedder and one alignment mode")
    out = config.out or default_matrix_out(config.dataset)
    runs = {embedder: prepare_run(replace(config, embedder_model=embedder, align=config.aligns[0]), out)
            for embedder in config.embedders}
    for align in config.aligns[1:]:  # every alignment mode checked up front too
        prepare_run(replace(config, embedder_model=config.embedders[0], align=align), out)
    first = next(iter(runs.values()))
    protocol, out = first.protocol, first.out
    names = _cell_names(config, runs)
    info = run_info(protocol, config.max_pairs)
    report = {row["method"]: row for row in earlier_rows(out, info, [n for cells in names.values() for n in cells])}
    write_run_info(out, info)
    rows = []
    for method in [REFERENCE, *config.methods] if REFERENCE in names else config.methods:
        args = (method, config, protocol, {e: r.meta for e, r in runs.items()}, out)
        if config.isolate:
            total = len(protocol.pairs.images) * len(names[method])
            child = run_isolated(_run_cells, args, method, total, config.progress)
            method_rows = child.result or [{"method": cell, "detector": method, **runs[e].meta, "error": child.error}
                                           for cell, (e, _) in names[method].items()]
        else:
            method_rows = _run_cells(*args)
        for row in method_rows:
            rows.append(row)
            report[row["method"]] = row
        write_report(list(report.values()), out / "report.csv")
    log.info("report written to %s", out / "report.csv")
    write_run_outputs(out)
    write_matrix_outputs(out)
    return rows


def _cell_names(config: MatrixConfig, runs: dict[str, PreparedRun]) -> dict[str, dict[str, tuple[str, str]]]:
    """Per method, its cells' row names -> (embedder, align)."""
    names = {method: {cell_name(method, e, a): (e, a) for e in config.embedders for a in config.aligns}
             for method in config.methods}
    referenced = [e for e, run in runs.items()
                  if run.protocol.reference_dir and takes_reference_crops(run.embedder.model_input.template)]
    if referenced:
        names[REFERENCE] = {cell_name(REFERENCE, e): (e, "similarity") for e in referenced}
    return names


def _run_cells(method: str, config: MatrixConfig, protocol, metas: dict[str, dict], out: Path,
               progress: Progress = lambda done, total: None) -> list[dict]:
    """The rows of ``method``'s cells, in this process: an embedder is loaded once for all its
    alignment modes; the first cell detects, the others reuse its detections."""
    aligns = ("similarity",) if method == REFERENCE else tuple(config.aligns)
    embedders = [e for e in config.embedders
                 if method != REFERENCE or takes_reference_crops(embedder_spec(e).model_input.template)]
    n, cells = len(protocol.pairs.images), len(aligns) * len(embedders)
    rows: list[dict] = []
    for embedder_name in embedders:
        embedder_config = replace(config, embedder_model=embedder_name)
        with unverified_weights(config.allow_unverified_weights):  # the parent has reported the file (meta)
            embedder = load_embedder(embedder_config, config.device)
        for align in aligns:
            before = len(rows) * n
            rows.append(method_row(method, replace(embedder_config, align=align), protocol,
                                    {**metas[embedder_name], "align": align}, out, embedder,
                                    lambda done, total, before=before: progress(before + done, total * cells),
                                    name=cell_name(method, embedder_name, None if method == REFERENCE else align)))
    return rows
