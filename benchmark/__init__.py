"""The verification benchmark in layers (``docs/ARCHITECTURE.md``): ``protocol`` (pairs, folds,
metrics, scores, image conditions), ``report`` (run folders, summary, charts, compare), ``run``
(runner, engine, pipeline, cache, isolation), and on top the CLI and the notebook API
(:mod:`benchmark.api`: ``run_lfw``, ``run_cfp``, ``run_matrix``, ``run_landmarks``, ``robustness``,
``load_run``, ``plot_*``, ``compare_runs``, ``write_leaderboard``).

The names are imported on first use: every benchmark method runs in a fresh child process that
imports this package, and the notebook API pulls in matplotlib and scipy, which the runner does
not need (about 1-2 s per method).
"""
from importlib import import_module

_EXPORTS = {
    "Run": "report.files", "load_run": "report.files", "compare_runs": "report.compare",
    "plot_gallery": "report.plots", "plot_overview": "report.plots", "plot_roc": "report.plots", "run_lfw": "api",
    "run_cfp": "api", "robustness": "api", "run_landmarks": "run.landmarks", "RunConfig": "run.runner",
    "run_benchmark": "run.runner", "run_matrix": "api", "write_leaderboard": "leaderboard",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name not in _EXPORTS:
        raise AttributeError(f"module 'benchmark' has no attribute {name!r}")
    return getattr(import_module(f".{_EXPORTS[name]}", __name__), name)
