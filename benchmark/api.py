"""The notebook API: run the benchmark, read a run back, draw its charts, compare runs.

>>> import benchmark
>>> report = benchmark.run_lfw(["yunet"], lfw_dir="../shared/data/lfw", weights_dir="../shared/weights",
...                            out="results/nb", max_pairs=600)          # doctest: +SKIP
>>> run = benchmark.load_run("results/nb")                               # doctest: +SKIP
>>> benchmark.plot_roc(run)                                              # doctest: +SKIP

The command line calls the same functions (``facebench``, ``facebench plot``, ``facebench compare``).
"""
from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import fields

import pandas as pd

from backbones import DEFAULT_EMBEDDER
from face_alignment.errors import FaceBenchError

from .report.compare import compare_runs
from .report.files import Run, load_run
from .report.plots import plot_gallery, plot_overview, plot_roc
from .run.landmarks import run_landmarks
from .run.matrix import MatrixConfig, default_matrix_out
from .run.matrix import run_matrix as run_matrix_cells
from .run.robustness import RobustnessConfig, run_robustness
from .run.runner import RunConfig, default_out, run_benchmark

__all__ = ["Run", "compare_runs", "load_run", "plot_gallery", "plot_overview", "plot_roc", "resolve_methods",
           "robustness", "run_cfp", "run_landmarks", "run_lfw"]


def resolve_methods(methods: str | Sequence[str], weights_dir: str | os.PathLike | None = None) -> list[str]:
    """Method names from a list or a comma-separated string; ``"all"`` is every method ready here
    (its weights and packages present). An unknown name is an error listing the valid ones."""
    from face_alignment import list_methods, method_names

    if isinstance(methods, str) and methods.strip() == "all":
        return [status.name for status in list_methods(weights_dir) if status.ready]
    names = [m.strip() for m in (methods.split(",") if isinstance(methods, str) else methods) if m.strip()]
    unknown = [m for m in names if m not in method_names()]
    if unknown:
        raise FaceBenchError(f"unknown method(s) {', '.join(unknown)}; choose from {', '.join(method_names())}")
    return names


def run_lfw(methods: str | Sequence[str] = ("yunet", "mtcnn"), lfw_dir: str | os.PathLike | None = None,
            weights_dir: str | os.PathLike | None = None, out: str | os.PathLike | None = None,
            **options) -> pd.DataFrame:
    """Run the LFW benchmark (as ``facebench`` does) and return its report, one row per method.

    ``options`` are :class:`~benchmark.run.runner.RunConfig`'s other fields: ``aligned_dir`` (adds the
    reference row), ``pairs`` (another pairs file), ``device``, ``flip``, ``max_pairs``,
    ``batch_size``, ``workers``, ``detect_workers`` (detection replicas, or ``"auto"``), ``cache_dir`` (runs
    that share one share their detections), ``engine``
    (``"local"`` or ``"ray"``) and ``ray_address``, ``resume``, ``progress`` (the tqdm bars), ... The run folder ``out``
    (default ``results/lfw``) holds everything else (per-pair scores, per-image logs, charts,
    summary.md): read it with :func:`load_run`.
    """
    return _run("run_lfw", methods, weights_dir, out, dict(options, lfw_dir=lfw_dir))


def run_cfp(methods: str | Sequence[str] = ("yunet", "mtcnn"), protocol: str = "cfp-fp",
            cfp_dir: str | os.PathLike | None = None, weights_dir: str | os.PathLike | None = None,
            out: str | os.PathLike | None = None, **options) -> pd.DataFrame:
    """Run the CFP benchmark, ``protocol`` ``cfp-fp`` (frontal to profile) or ``cfp-ff`` (frontal to
    frontal), as ``facebench --dataset cfp-fp`` does; returns its report, one row per method.
    ``out`` defaults to ``results/<protocol>``; ``options`` as :func:`run_lfw`'s."""
    return _run("run_cfp", methods, weights_dir, out, dict(options, dataset=protocol, cfp_dir=cfp_dir))


def robustness(methods: str | Sequence[str] = ("yunet",), conditions: str = "quick",
               weights_dir: str | os.PathLike | None = None, out: str | os.PathLike | None = None,
               **options) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Run the robustness benchmark (as ``facebench robustness`` does): each method with the probe
    of every pair under ``conditions`` (``quick``, ``all`` or ``"jpeg:1-5,rotation:3"``), and the
    oracle. Returns the table (one row per method x condition x severity) and the summary per
    method. ``options``: :func:`run_lfw`'s, and ``oracle`` (its landmark method, default
    retinaface), ``folds`` (e.g. ``(1, 2)``), ``dataset``; ``out`` defaults to
    ``results/robustness-<dataset>``."""
    config = _config("robustness", RobustnessConfig, methods, weights_dir, out, dict(options, conditions=conditions))
    return run_robustness(config)


def run_matrix(methods: str | Sequence[str] = ("yunet",), embedders: Sequence[str] = (DEFAULT_EMBEDDER,),
               aligns: Sequence[str] = ("similarity",), weights_dir: str | os.PathLike | None = None,
               out: str | os.PathLike | None = None, **options) -> pd.DataFrame:
    """Every method x embedder x alignment mode cell (as ``facebench matrix`` does), each method
    detecting once; returns the report, a row per cell named ``DETECTOR+EMBEDDER+ALIGN`` with
    ``detector``, ``embedder`` and ``align`` columns. ``embedders``: registered names
    (:func:`backbones.list_embedders`) or ``onnx:PATH``; ``aligns``: of
    :data:`face_alignment.ALIGN_MODES`; ``options``: :func:`run_lfw`'s (``dataset`` too). ``out``
    (default ``results/matrix-<dataset>``) also holds matrix.csv, the rankings and heat maps."""
    config = _config("run_matrix", MatrixConfig, methods, weights_dir, out,
                     dict(options, embedders=tuple(embedders), aligns=tuple(aligns)))
    run_matrix_cells(config)
    return load_run(out or default_matrix_out(config.dataset)).report


def _config(caller: str, kind, methods, weights_dir, out, options: dict):
    """``kind`` (:class:`RunConfig` or a subclass) from the options, an unknown one refused by name."""
    known = {f.name for f in fields(kind)} - {"methods", "weights_dir", "out"}
    unknown = sorted(set(options) - known)
    if unknown:
        raise FaceBenchError(f"unknown option(s) {', '.join(unknown)}; {caller} takes {', '.join(sorted(known))}")
    return kind(methods=resolve_methods(methods, weights_dir), weights_dir=weights_dir, out=out, **options)


def _run(caller: str, methods, weights_dir, out, options: dict) -> pd.DataFrame:
    config = _config(caller, RunConfig, methods, weights_dir, out, options)
    run_benchmark(config)
    return load_run(out or default_out(config.dataset)).report
