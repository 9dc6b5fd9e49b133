"""LFW verification benchmark: protocol, metrics, runner, reports, CLI, and the notebook API
(:mod:`benchmark.api`: ``run_lfw``, ``load_run``, ``plot_*``, ``compare_runs``).

The names are imported on first use: every benchmark method runs in a fresh child process that
imports this package, and the notebook API pulls in matplotlib and scipy, which the runner does
not need (about 1-2 s per method).
"""
from importlib import import_module

_EXPORTS = {
    "Run": "report", "load_run": "report", "compare_runs": "compare", "plot_gallery": "plots",
    "plot_overview": "plots", "plot_roc": "plots", "run_lfw": "api", "RunConfig": "runner",
    "run_benchmark": "runner",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name not in _EXPORTS:
        raise AttributeError(f"module 'benchmark' has no attribute {name!r}")
    return getattr(import_module(f".{_EXPORTS[name]}", __name__), name)
