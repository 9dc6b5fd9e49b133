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

from backbones import DEFAULT_EMBEDDER
from face_alignment.weights import unverified_weights

from ..protocol.base import REFERENCE
from ..report.files import run_info, write_run_info
from ..report.matrix import write_matrix_outputs
from ..report.summary import write_run_outputs
from .cropping import takes_reference_crops
from .isolation import Progress
from .runner import (
    PreparedRun,
    ReportFile,
    RunConfig,
    cached_row,
    default_out,
    engine_for,
    load_embedder,
    method_row,
    prepare_run,
    run_isolated,
)
from .sysinfo import run_provenance

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
    info = {**run_info(protocol, config.max_pairs), **run_provenance()}
    report = ReportFile(out, info, [n for cells in names.values() for n in cells])
    write_run_info(out, info)
    rows = []
    for method in [REFERENCE, *config.methods] if REFERENCE in names else config.methods:
        args = (method, config, protocol, {e: r.meta for e, r in runs.items()}, out, names[method])
        method_rows = _cached_cells(*args) or _computed_cells(args, config, runs)
        rows.extend(method_rows)
        report.add(method_rows)
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


def _cached_cells(method: str, config: MatrixConfig, protocol, metas: dict[str, dict], out: Path,
                  cells: dict[str, tuple[str, str]]) -> list[dict] | None:
    """The rows of ``method``'s ``cells`` read from their complete caches, without a process or a
    model (:func:`~.runner.cached_row`), or None unless every cell has one."""
    rows = []
    for cell, (embedder, align) in cells.items():
        row = cached_row(method, replace(config, embedder_model=embedder, align=align), protocol,
                         {**metas[embedder], "align": align}, out, name=cell)
        if row is None:
            return None
        rows.append(row)
    return rows


def _computed_cells(args: tuple, config: MatrixConfig, runs: dict[str, PreparedRun]) -> list[dict]:
    """The rows of a method's cells (``args``: :func:`_cells`'), in its own process (with
    ``config.isolate``) or in this one."""
    if not config.isolate:
        return _run_cells(*args)
    method, protocol, cells = args[0], args[2], args[5]
    child = run_isolated(_run_cells, args, method, len(protocol.pairs.images) * len(cells), config.progress)
    return child.result or [{"method": cell, "detector": method, **runs[e].meta, "error": child.error}
                            for cell, (e, _) in cells.items()]


def _run_cells(method: str, config: MatrixConfig, *args, **kwargs) -> list[dict]:
    """:func:`_cells` in one session of the run's engine (Ray: one cluster for every cell)."""
    with engine_for(config).session():
        return _cells(method, config, *args, **kwargs)


def _cells(method: str, config: MatrixConfig, protocol, metas: dict[str, dict], out: Path,
           cells: dict[str, tuple[str, str]], progress: Progress = lambda done, total: None) -> list[dict]:
    """The rows of ``method``'s ``cells`` (row name -> embedder, alignment), in this process: a
    cell with a complete cache is read from it; for the others an embedder is loaded once for
    all its alignment modes, and the first cell to detect caches the detections the others reuse."""
    n, rows, loaded = len(protocol.pairs.images), [], {}
    for i, (cell, (embedder_name, align)) in enumerate(cells.items()):
        cell_config = replace(config, embedder_model=embedder_name, align=align, keep_detections=i > 0)
        meta = {**metas[embedder_name], "align": align}
        row = cached_row(method, cell_config, protocol, meta, out, name=cell)
        if row is None:
            if embedder_name not in loaded and config.engine != "ray":  # Ray's actors build their own
                with unverified_weights(config.allow_unverified_weights):  # the parent has reported the file (meta)
                    loaded = {embedder_name: load_embedder(cell_config, config.device)}  # one in memory at a time
            row = method_row(method, cell_config, protocol, meta, out, loaded.get(embedder_name),
                             lambda done, total, before=i * n: progress(before + done, total * len(cells)), name=cell)
        rows.append(row)
    return rows
