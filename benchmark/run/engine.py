"""The engine seam: what runs one method over an image list.

An :class:`Engine` receives a :class:`MethodWork` (the images, the condition they are put under,
the cropper and the embedder) and fills the method's :class:`MethodResults` for every image still
pending, calling ``checkpoint(indices)`` after each whole chunk it has committed, with the indices
of the chunk's images (the runner writes that chunk's cache shard and reports progress there; a
shard needs only the cache folder and the chunk, :class:`benchmark.run.cache.Shard`, so an engine
may as well write it in another process). Whatever the engine, an image's result must not depend
on how the work was split. :class:`LocalEngine` is the pipelined runner of this machine (with
detection replicas: :mod:`benchmark.run.replicas`).
"""
from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from backbones import BaseEmbedder

from ..protocol.conditions import CLEAN, ImageCondition
from .cache import PENDING, MethodResults
from .cropping import Cropper, CropperRecipe
from .pipeline import process_images
from .replicas import DetectionReplicas, resolve_detect_workers


@dataclass(frozen=True)
class MethodWork:
    """One method's work: ``images`` (paths relative to ``root``) under ``condition``, cropped by
    ``cropper`` (built again from ``recipe`` in another process) and embedded by ``embedder``
    (with ``flip`` test-time augmentation)."""

    name: str
    images: Sequence[str]
    root: Path
    cropper: Cropper
    embedder: BaseEmbedder
    flip: bool = False
    condition: ImageCondition = CLEAN
    recipe: CropperRecipe = CropperRecipe()


class Engine(ABC):
    """Fills the results of a :class:`MethodWork` (see the module docstring)."""

    @abstractmethod
    def run(self, work: MethodWork, results: MethodResults,
            checkpoint: Callable[[np.ndarray], None]) -> MethodResults:
        """Fill ``results`` for every pending image, calling ``checkpoint(indices)`` after each
        chunk with the indices of its images."""

    def session(self) -> AbstractContextManager:
        """What this engine keeps open across a method's calls (the Ray engine: the cluster it joined)."""
        return nullcontext()


@dataclass(frozen=True)
class LocalEngine(Engine):
    """Decode, detect + align and embed overlapping on this machine (:mod:`benchmark.run.pipeline`):
    with ``detect_workers`` 1, all in this process; with more (or ``auto``: one per core less
    one, one for a detector on a GPU), in that many detection replicas
    (:mod:`benchmark.run.replicas`) feeding the embedder here, with the same results."""

    workers: int = 2
    detect_batch: int = 8
    progress: bool = True
    detect_workers: int | str = 1

    def run(self, work: MethodWork, results: MethodResults,
            checkpoint: Callable[[np.ndarray], None]) -> MethodResults:
        options = dict(flip=work.flip, workers=self.workers, detect_batch=self.detect_batch, save=checkpoint,
                       desc=work.name, progress=self.progress, condition=work.condition)
        pending = np.flatnonzero(results.status == PENDING)
        wanted = resolve_detect_workers(self.detect_workers, detector_device=work.recipe.device)
        replicas = min(wanted, -(-len(pending) // max(1, self.detect_batch)))
        if work.recipe.known is not None and work.recipe.known.covers(pending):
            replicas = 1  # nothing to detect: decoding and aligning need no process of their own
        if replicas <= 1:  # no process to start for one worker, or for what one slice holds
            return process_images(work.images, work.root, work.cropper, work.embedder, results, **options)
        with DetectionReplicas(replicas, work.recipe, work.images, work.root, work.condition,
                               self.detect_batch) as detection:
            return process_images(work.images, work.root, work.cropper, work.embedder, results,
                                  crop_stage=detection.stage, **options)
