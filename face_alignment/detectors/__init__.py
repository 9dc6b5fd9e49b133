"""Built-in detectors; importing this package registers them."""
from . import mtcnn, yunet  # noqa: F401
from .base import FaceDetector

__all__ = ["FaceDetector"]
