"""The engine seam: what runs one method over an image list.

An :class:`Engine` receives a :class:`MethodWork` (the images, the condition they are put under,
the cropper and the embedder) and fills the method's :class:`MethodResults` for every image still
pending, calling ``checkpoint(indices)`` after each whole chunk it has committed, with the indices
of the chunk's images (the runner writes that chunk's cache shard and reports progress there; a
shard needs only the cache folder and the chunk, :class:`benchmark.run.cache.Shard`, so an engine
may as well write it in another process). Whatever the engine, an image's result must not depend
on how the work was split. :class:`LocalEngine`, the pipelined runner of this process, is the
only one today.
"""
from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from backbones import BaseEmbedder

from ..protocol.conditions import CLEAN, ImageCondition
from .cache import MethodResults
from .cropping import Cropper
from .pipeline import process_images


@dataclass(frozen=True)
class MethodWork:
    """One method's work: ``images`` (paths relative to ``root``) under ``condition``, cropped by
    ``cropper`` and embedded by ``embedder`` (with ``flip`` test-time augmentation)."""

    name: str
    images: Sequence[str]
    root: Path
    cropper: Cropper
    embedder: BaseEmbedder
    flip: bool = False
    condition: ImageCondition = CLEAN


class Engine(ABC):
    """Fills the results of a :class:`MethodWork` (see the module docstring)."""

    @abstractmethod
    def run(self, work: MethodWork, results: MethodResults,
            checkpoint: Callable[[np.ndarray], None]) -> MethodResults:
        """Fill ``results`` for every pending image, calling ``checkpoint(indices)`` after each
        chunk with the indices of its images."""


@dataclass(frozen=True)
class LocalEngine(Engine):
    """Decode, detect + align and embed overlapping in this process (:mod:`benchmark.run.pipeline`)."""

    workers: int = 2
    detect_batch: int = 8
    progress: bool = True

    def run(self, work: MethodWork, results: MethodResults,
            checkpoint: Callable[[np.ndarray], None]) -> MethodResults:
        return process_images(work.images, work.root, work.cropper, work.embedder, results, work.flip, self.workers,
                              self.detect_batch, save=checkpoint, desc=work.name, progress=self.progress,
                              condition=work.condition)
