"""Built-in detectors: every module of this package registers its detector on import.

A backend's optional package is imported inside its detector's constructor, never at module
level, so importing this package is cheap and works with only the core dependencies.
"""
import importlib
import pkgutil

from .base import FaceDetector

for _module in pkgutil.iter_modules(__path__):
    if _module.name != "base":
        importlib.import_module(f"{__name__}.{_module.name}")

__all__ = ["FaceDetector"]
