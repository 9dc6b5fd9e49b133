"""LFW verification benchmark: protocol, metrics, runner, reports, CLI, and the notebook API
(:mod:`benchmark.api`: ``run_lfw``, ``load_run``, ``plot_*``, ``compare_runs``)."""
from .api import Run, compare_runs, load_run, plot_gallery, plot_overview, plot_roc, run_lfw
from .runner import RunConfig, run_benchmark

__all__ = ["Run", "RunConfig", "compare_runs", "load_run", "plot_gallery", "plot_overview", "plot_roc",
           "run_benchmark", "run_lfw"]
