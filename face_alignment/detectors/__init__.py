"""Built-in detectors, one module each: the detector class, its registration and its weights.

:mod:`face_alignment` imports every module of this package, which registers its detector. A
backend's optional package is imported inside its detector's constructor, never at module level,
so importing the detectors is cheap and works with only the core dependencies. This package's
``__init__`` itself imports only the base class, so that the registry can use it without
importing the detectors (which import the registry).
"""
from .base import FaceDetector

__all__ = ["FaceDetector"]
