"""The detector plugin contract, which built-in and third-party detectors alike keep.

A detector is one module: a :class:`FaceDetector` subclass registered with
:func:`~face_alignment.registry.register_detector`, which also takes the
:class:`~face_alignment.weights.WeightSpec` of each file its default configuration loads.

- Constructor: :func:`~face_alignment.registry.create_detector` calls
  ``cls(device=..., weights_dir=..., **options)``: ``device`` is ``"auto"`` or a torch-style
  device (``"cpu"``, ``"cuda:0"``), resolved by ``super().__init__``; ``weights_dir`` is where
  weights are looked for (None: the default); ``options`` are the user's (by convention
  ``weights=`` is a file to use instead of the default). A backend package is imported here,
  never at module level. :attr:`FaceDetector.weight_paths` lists the files loaded.
- Weights: each default file is a module-level ``WeightSpec``, passed to ``register_detector``
  and resolved by the constructor with ``resolve_weights(spec, weights, weights_dir)`` (found in
  the weights directory or downloaded, its sha256 checked).
- :attr:`FaceDetector.real_device`: where it really runs (``cpu``, ``cuda:0``); the default trusts
  ``device``: a detector whose backend may run elsewhere (its own CPU-only build, a runtime that
  fell back) overrides it with what the backend reports.
- :meth:`FaceDetector.detect`: a sequence of HxWx3 uint8 RGB images in, one list of
  :class:`~face_alignment.types.Face` per image out (box x1y1x2y2, score in [0, 1], five landmarks
  in ``LANDMARK_NAMES`` order, optional ``dense`` points), in each image's own pixels.

A plugin module, named by an entry point of the ``face_alignment.detectors`` group::

    WEIGHTS = WeightSpec("mynet", "mynet", "mynet.onnx", "<sha256>", "https://.../mynet.onnx",
                         "MIT", "me/mynet")

    @register_detector("mynet", description="MyNet, 5 landmarks",
                       requires={"onnxruntime": "onnxruntime"}, weights=(WEIGHTS,))
    class MyNet(FaceDetector):
        def __init__(self, device="auto", weights_dir=None, weights=None, max_side=1280):
            super().__init__(device, max_side)
            self.weight_paths = [resolve_weights(WEIGHTS, weights, weights_dir)]
            ...

        def detect_one(self, image):
            ...  # the faces of one image
"""
from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import cv2
import numpy as np

from ..runtime import device_name, resolve_device
from ..types import Face


class FaceDetector(ABC):
    """Base of every detector: a batch of HxWx3 uint8 RGB images in, one list of faces per image out.

    Images whose longer side exceeds ``max_side`` are downscaled for detection and the results
    mapped back, so an 8000x8000 photo costs what a 1280x1280 one does. Subclasses implement
    :meth:`detect_one`, and override :meth:`detect` where the backend batches (images of one size:
    :meth:`detect_by_size`).
    """

    #: registry name, set by :func:`face_alignment.registry.register_detector`
    name: str = ""

    def __init__(self, device: str = "auto", max_side: int = 1280) -> None:
        self.device = resolve_device(device)
        self.max_side = max_side
        #: the weight files this detector loaded (their sha256 goes into the report)
        self.weight_paths: list[Path] = []

    @property
    def model_label(self) -> str:
        """What actually runs under this method name (the report's ``detector_model`` column):
        the weight files' names, which tell e.g. which keypoint model a top-down method used."""
        files = "+".join(p.name for p in self.weight_paths)
        return f"{self.name} ({files})" if files else self.name

    @property
    def real_device(self) -> str:
        """Where this detector actually runs, ``cpu`` or ``cuda:N`` (stages on different devices:
        joined by ``+``, see :func:`~face_alignment.runtime.joined_devices`), whatever ``device`` asked
        for: the report's ``detector_device``. This default trusts ``device``."""
        return device_name(self.device)

    def detect(self, images: Sequence[np.ndarray]) -> list[list[Face]]:
        return [self._detect_fitted(image) for image in images]

    @abstractmethod
    def detect_one(self, image: np.ndarray) -> list[Face]:
        """Faces in one RGB image, in its own pixel coordinates."""

    def fit(self, image: np.ndarray) -> tuple[np.ndarray, float]:
        """``image`` downscaled so that its longer side is at most ``max_side``, and the factor."""
        longest = max(image.shape[:2])
        if not self.max_side or longest <= self.max_side:
            return image, 1.0
        factor = self.max_side / longest
        size = (max(1, round(image.shape[1] * factor)), max(1, round(image.shape[0] * factor)))
        return cv2.resize(image, size, interpolation=cv2.INTER_AREA), factor

    def detect_by_size(self, images: Sequence[np.ndarray],
                       detect_same_size: Callable[[list[np.ndarray]], list[list[Face]]]) -> list[list[Face]]:
        """:meth:`detect` for a backend that batches: the images fitted to ``max_side``, those of one
        size passed together to ``detect_same_size`` (images of one shape in, their faces out)."""
        fitted = [self.fit(image) for image in images]
        by_shape: dict[tuple, list[int]] = {}
        for index, (small, _) in enumerate(fitted):
            by_shape.setdefault(small.shape, []).append(index)
        results: list[list[Face]] = [[] for _ in images]
        for indices in by_shape.values():
            for i, faces in zip(indices, detect_same_size([fitted[i][0] for i in indices])):
                results[i] = _unfit(faces, fitted[i][1])
        return results

    def _detect_fitted(self, image: np.ndarray) -> list[Face]:
        small, factor = self.fit(image)
        return _unfit(self.detect_one(small), factor)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(device={self.device!r})"


def _unfit(faces: list[Face], factor: float) -> list[Face]:
    """Faces found in an image downscaled by ``factor`` (:meth:`FaceDetector.fit`), in the original's pixels."""
    return faces if factor == 1.0 else [f.scaled(1.0 / factor) for f in faces]


@contextmanager
def opencv_errors_only() -> Iterator[None]:
    """OpenCV's C++ log level at most ERROR inside the block (a quieter level set by the user,
    e.g. ``OPENCV_LOG_LEVEL=SILENT``, is kept), the previous level restored after.

    Around ``cv2.FaceDetectorYN.create`` (or a ``cv2.dnn`` net's ``setPreferableTarget``):
    OpenCV 5's new graph engine ignores the target set there (it runs on the CPU) and says so
    on stderr, ``[ WARN:...] setPreferableTarget Targets are not supported by the new graph
    engine for now``, once per model, whatever target is asked for. Its errors still show.
    """
    from cv2.utils import logging as cv_logging

    previous = cv_logging.getLogLevel()
    cv_logging.setLogLevel(min(previous, cv_logging.LOG_LEVEL_ERROR))
    try:
        yield
    finally:
        cv_logging.setLogLevel(previous)
