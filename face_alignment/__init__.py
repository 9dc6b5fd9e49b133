"""Face detection and five-point alignment behind one interface.

Not the PyPI ``face-alignment`` package (1adrianb), which also imports as ``face_alignment``:
do not install both in one environment.
"""
import importlib
import pkgutil

from . import detectors
from .alignment import (
    ALIGN_MODES,
    ARCFACE,
    ARCFACE_TEMPLATE,
    CROP_SIZE,
    CropTemplate,
    align,
    align_face,
    alignment_matrix,
    landmark_box,
    similarity_transform,
)
from .errors import (
    ChecksumError,
    DatasetError,
    FaceBenchError,
    ImageError,
    MissingDependencyError,
    NameTakenError,
    UnknownMethodError,
    WeightsError,
)
from .facade import UnifiedFaceDetector
from .images import load_image, to_rgb_uint8
from .registry import create_detector, list_methods, method_names, register_detector
from .selection import pick_target_face
from .types import LANDMARK_NAMES, Face

for _module in pkgutil.iter_modules(detectors.__path__):  # each built-in registers itself on import
    if _module.name != "base":
        importlib.import_module(f"{detectors.__name__}.{_module.name}")

__all__ = [
    "ALIGN_MODES", "ARCFACE", "ARCFACE_TEMPLATE", "CROP_SIZE", "LANDMARK_NAMES", "ChecksumError",
    "CropTemplate", "DatasetError", "Face", "FaceBenchError", "ImageError", "MissingDependencyError",
    "NameTakenError", "UnifiedFaceDetector", "UnknownMethodError", "WeightsError", "align",
    "align_face", "alignment_matrix", "create_detector", "landmark_box", "list_methods", "load_image",
    "method_names", "pick_target_face", "register_detector", "similarity_transform", "to_rgb_uint8",
]
