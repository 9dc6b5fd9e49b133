"""LFW verification benchmark: protocol, metrics, runner, reports, CLI."""
from .runner import RunConfig, run_benchmark

__all__ = ["RunConfig", "run_benchmark"]
