"""LFW verification benchmark: protocol, metrics, runner, reports, CLI."""
from .runner import RunConfig, run_lfw

__all__ = ["RunConfig", "run_lfw"]
