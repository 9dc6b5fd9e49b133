"""A method's images through decode, detect + align, and embed, the three stages overlapping.

- decode: a pool of ``workers`` threads reads the images in order, at most ``prefetch`` ahead,
  and applies the image condition (:mod:`benchmark.protocol.conditions`; the clean image by default);
- crop: one thread runs the cropper (detect a batch of ``detect_batch`` images, pick each
  image's target face, align it) and hands the crops on through a bounded queue
  (:class:`DecodeCropStage`; with detection replicas, :mod:`benchmark.run.replicas`, processes
  that each hold their own detector decode and crop, and this thread gathers their crops in order);
- embed: the calling thread embeds the crops in batches of the embedder's batch size as they
  arrive, and commits the results one whole chunk (``chunk`` images, in order) at a time, then
  calls ``save`` with the chunk's image indices (the runner writes them as one cache shard).

The stages share the machine's cores. While they run, torch's intra-op thread pool is limited to
half the cores (:func:`stage_threads`): the embedder runs two batches at once, one thread each
(on a 2-core machine whose cores are busy, torch's 2-thread embedding measured 35 CPU-ms per
image against 4.6 for one thread). OpenCV keeps every core: the single crop thread is the
bottleneck when the embedder is light, and YuNet on two threads there took a full LFW pass with
the onnx embedder from 26.1 s to 21.6 s (torch: 28.2 against 28.6 s, no loss).

Memory is bounded by the queues, whatever the number of images. Because ``results`` only ever
receives whole chunks, what is saved after a chunk never holds part of the next one, and a
resumed run does the remaining chunks as an uninterrupted run would. An image's result does
not depend on the images it shares a batch with (detectors look at each image alone, the float
embedder is batch-independent), so batch sizes and the overlap cannot change a number.

An error in any stage, or an interrupt, stops the others and is raised in the calling thread.
"""
from __future__ import annotations

import contextlib
import itertools
import os
import queue
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from face_alignment import load_image
from face_alignment.errors import ImageError

from ..protocol.conditions import CLEAN, Conditioned, ImageCondition
from .cache import PENDING, UNREADABLE, MethodResults
from .cropping import Cropper, Outcome

_DONE = object()  # end of the crop stage's output
_POLL_S = 0.1  # how often a blocked stage looks whether it should stop


def safe_load(path: Path) -> tuple[np.ndarray | None, str]:
    """The decoded image, or None and the reason it could not be read."""
    try:
        return load_image(path), ""
    except ImageError as exc:
        return None, str(exc)


def decode(path: Path, key: str, condition: ImageCondition = CLEAN) -> tuple[Conditioned | None, str]:
    """The image at ``path`` under ``condition`` (``key`` seeds it), or None and why it is unreadable."""
    image, error = safe_load(path)
    return (None, error) if image is None else (condition.apply(image, key), "")


@dataclass
class Cropped:
    """One image out of the crop stage: its outcome (None when unreadable, ``error`` says why) and
    its share of the detection time."""

    index: int
    outcome: Outcome | None
    error: str = ""
    detect_ms: float = float("nan")


class _Stop(Exception):
    """Raised inside a crop stage when the calling thread has given up."""


class CropStage(threading.Thread):
    """The crop stage's thread: :meth:`produce` crops the ``chunks`` of image indices, in order,
    and hands each image's :class:`Cropped` on through :meth:`put` (a few at a time, a chunk's
    images in order); the stage then puts ``_DONE``, or the exception that stopped it, for the
    calling thread to raise. Setting ``stop`` ends it at its next :meth:`put` or :meth:`check_stop`.

    :class:`DecodeCropStage` does the work in this process; a detection replicas' stage
    (:mod:`benchmark.run.replicas`) in other processes.
    """

    def __init__(self, chunks: list[np.ndarray], out: queue.Queue) -> None:
        super().__init__(name="facebench-crop", daemon=True)
        self.chunks, self.out = chunks, out
        self.stop = threading.Event()

    def produce(self) -> None:
        raise NotImplementedError

    def run(self) -> None:
        try:
            self.produce()
            last = _DONE
        except _Stop:
            return
        except BaseException as exc:  # handed to the calling thread, which raises it
            last = exc
        try:
            self.put(last)
        except _Stop:
            return

    def check_stop(self) -> None:
        """End the stage here if the calling thread has given up."""
        if self.stop.is_set():
            raise _Stop

    def put(self, item: list[Cropped] | object) -> None:
        """Hand ``item`` (a few crops, or the stage's last word) on, waiting while the queue is full
        (memory stays bounded)."""
        while not self.stop.is_set():
            try:
                self.out.put(item, timeout=_POLL_S)
                return
            except queue.Full:
                continue
        raise _Stop


#: builds the crop stage of :func:`process_images` from the chunks of image indices and the queue it fills
StageFactory = Callable[[list[np.ndarray], queue.Queue], CropStage]


class DecodeCropStage(CropStage):
    """Decodes (``workers`` threads, ``prefetch`` images ahead) and crops in this process."""

    def __init__(self, chunks: list[np.ndarray], out: queue.Queue, images: Sequence[str], root: Path,
                 condition: ImageCondition, cropper: Cropper, workers: int, detect_batch: int, prefetch: int) -> None:
        super().__init__(chunks, out)
        self.images, self.root, self.condition, self.cropper = images, root, condition, cropper
        self.workers, self.detect_batch, self.prefetch = max(1, workers), max(1, detect_batch), max(1, prefetch)

    def produce(self) -> None:
        pool = ThreadPoolExecutor(self.workers, thread_name_prefix="facebench-decode")
        try:
            self._crop_all(self._decoded(pool))
        finally:
            pool.shutdown(wait=True, cancel_futures=True)

    def _decoded(self, pool: ThreadPoolExecutor):
        """(index, image, error) for every index of every chunk, decoding ``prefetch`` ahead."""
        order = (int(i) for chunk in self.chunks for i in chunk)
        window: deque = deque()
        for i in order:
            window.append((i, pool.submit(decode, self.root / self.images[i], self.images[i], self.condition)))
            if len(window) >= self.prefetch:
                index, future = window.popleft()
                yield (index, *future.result())
        while window:
            index, future = window.popleft()
            yield (index, *future.result())

    def _crop_all(self, decoded: Iterator[tuple[int, Conditioned | None, str]]) -> None:
        for chunk in self.chunks:
            for cropped in crop_in_batches(itertools.islice(decoded, len(chunk)), self.cropper, self.detect_batch,
                                           self.check_stop):
                self.put(cropped)


def crop_in_batches(decoded: Iterable[tuple[int, Conditioned | None, str]], cropper: Cropper, detect_batch: int,
                    before_batch: Callable[[], None] = lambda: None) -> Iterator[list[Cropped]]:
    """Crops of decoded (index, image or None, error) items, ``detect_batch`` images per cropper
    call (``before_batch()`` first); an unreadable image is handed on alone, as it comes."""
    batch: list[tuple[int, Conditioned]] = []
    for index, image, error in decoded:
        if image is None:
            yield [Cropped(index, None, error)]
            continue
        batch.append((index, image))
        if len(batch) == detect_batch:
            before_batch()
            yield crop_conditioned(batch, cropper)
            batch = []
    if batch:
        before_batch()
        yield crop_conditioned(batch, cropper)


def crop_conditioned(batch: list[tuple[int, Conditioned]], cropper: Cropper) -> list[Cropped]:
    """Crop a batch of (index, conditioned image); landmarks go back to the original image's pixels.
    An image's detection time is its share of the cropper's call among the images detected there
    (a detection reused from earlier work keeps its own time)."""
    t0 = time.perf_counter()
    outcomes = cropper([conditioned.image for _, conditioned in batch], [index for index, _ in batch])
    fresh = sum(outcome.detect_ms is None for outcome in outcomes)
    per_image_ms = (time.perf_counter() - t0) * 1000.0 / max(1, fresh)
    return [Cropped(index, replace(outcome, landmarks=conditioned.to_original(outcome.landmarks).astype(np.float32)),
                    detect_ms=per_image_ms if outcome.detect_ms is None else outcome.detect_ms)
            for (index, conditioned), outcome in zip(batch, outcomes)]


def decode_and_crop(indices: Sequence[int], images: Sequence[str], root: Path, condition: ImageCondition,
                    cropper: Cropper, detect_batch: int = 8) -> list[Cropped]:
    """The crop stage's work on a few images in one call, in order (for a process of its own: a
    detection replica, a Ray actor): each image decoded and put under ``condition``, then cropped
    ``detect_batch`` at a time; the same results as the pipeline's."""
    decoded = ((int(index), *decode(Path(root) / images[index], images[index], condition)) for index in indices)
    out = [cropped for batch in crop_in_batches(decoded, cropper, detect_batch) for cropped in batch]
    position_of = {int(index): position for position, index in enumerate(indices)}
    return sorted(out, key=lambda cropped: position_of[cropped.index])


@contextlib.contextmanager
def stage_threads(cores: int | None = None) -> Iterator[int]:
    """Limit torch's intra-op threads to half of ``cores`` (default: this machine's) while the
    block runs; the previous setting is restored after it. Where torch is not imported (the models,
    built before, do not use it) there is nothing to limit, and importing it would cost a method
    1.5 s of start-up (a fully cached rerun's whole 'images' stage)."""
    per_stage = max(1, (cores or os.cpu_count() or 1) // 2)
    torch = sys.modules.get("torch")
    if torch is None:
        yield per_stage
        return
    before = torch.get_num_threads()
    torch.set_num_threads(per_stage)
    try:
        yield per_stage
    finally:
        torch.set_num_threads(before)


def process_images(images: Sequence[str], root: Path, cropper: Cropper, embedder, results: MethodResults,
                   flip: bool = False, workers: int = 2, detect_batch: int = 8, chunk: int = 256,
                   save: Callable[[np.ndarray], None] | None = None, desc: str = "", progress: bool = True,
                   prefetch: int | None = None, embed_workers: int = 2,
                   condition: ImageCondition = CLEAN, crop_stage: StageFactory | None = None) -> MethodResults:
    """Fill ``results`` for every image still pending; ``save(indices)`` is called after each
    chunk with the indices of the images it committed.

    ``cropper`` turns a batch of RGB images into one ``Outcome`` (crop, status, landmarks,
    score, reason) per image; ``embedder`` has a thread-safe ``embed(crops, flip)`` and
    ``batch_size``. ``prefetch`` (default: two detection batches, at least ``2 * workers``)
    bounds the decoded images held ahead of the detector. ``embed_workers`` threads embed a
    chunk's batches at once: with the intra-op pools at half the cores, the embedder then takes
    up the time the single crop thread leaves on the cores. ``crop_stage`` builds the stage that
    decodes and crops (default: :class:`DecodeCropStage`, in this process, with ``cropper``).
    """
    todo = np.flatnonzero(results.status == PENDING)
    chunks = [todo[s:s + chunk] for s in range(0, len(todo), chunk)]
    bar = tqdm(total=len(images), initial=len(images) - len(todo), desc=desc, unit="img", disable=not progress,
               leave=False)
    handoff: queue.Queue = queue.Queue(maxsize=max(4, 2 * chunk // max(1, detect_batch)))
    embed_batch = max(1, getattr(embedder, "batch_size", 64))
    if crop_stage is None:
        def crop_stage(chunks: list[np.ndarray], out: queue.Queue) -> CropStage:
            return DecodeCropStage(chunks, out, images, Path(root), condition, cropper, workers, detect_batch,
                                   prefetch or max(2 * detect_batch, 2 * workers))
    started = time.perf_counter()
    with (stage_threads(),
          ThreadPoolExecutor(max(1, embed_workers), thread_name_prefix="facebench-embed") as embed_pool):
        stage = crop_stage(chunks, handoff)
        stage.start()
        try:
            for indices in chunks:
                cropped = _receive(handoff, len(indices), stage)
                commit(results, cropped, _embed(embedder, cropped, flip, embed_batch, results, embed_pool))
                results.wall_seconds += time.perf_counter() - started
                started = time.perf_counter()
                if save is not None:
                    save(indices)
                bar.update(len(indices))
        finally:
            stage.stop.set()
            stage.join()
            bar.close()
    return results


def _receive(handoff: queue.Queue, count: int, stage: CropStage) -> list[Cropped]:
    """The next ``count`` images from the crop stage (an error there is raised here)."""
    items: list[Cropped] = []
    while len(items) < count:
        try:
            item = handoff.get(timeout=_POLL_S)
        except queue.Empty:
            if not stage.is_alive() and handoff.empty():
                raise RuntimeError("the crop stage ended early") from None
            continue
        if isinstance(item, BaseException):
            raise item
        items.extend(item)
    return items


def _embed(embedder, cropped: list[Cropped], flip: bool, batch: int, results: MethodResults,
           pool: ThreadPoolExecutor) -> np.ndarray:
    """Embeddings of the chunk's readable images, in batches of ``batch`` run by ``pool``."""
    crops = [c.outcome.crop for c in cropped if c.outcome is not None]
    batches = [np.stack(crops[start:start + batch]) for start in range(0, len(crops), batch)]
    t0 = time.perf_counter()
    out = list(pool.map(lambda b: embedder.embed(b, flip=flip), batches))
    results.embed_seconds += time.perf_counter() - t0
    return np.concatenate(out) if out else np.zeros((0, results.embeddings.shape[1]), np.float32)


def commit(results: MethodResults, cropped: list[Cropped], embeddings: np.ndarray) -> None:
    """Write one whole chunk into ``results``."""
    readable = (c for c in cropped if c.outcome is not None)
    for item, embedding in zip(readable, embeddings):
        i, outcome = item.index, item.outcome
        results.embeddings[i] = embedding
        results.landmarks[i], results.scores[i] = outcome.landmarks, outcome.score
        results.status[i], results.detect_ms[i] = outcome.status, item.detect_ms
        if outcome.face is not None:
            results.boxes[i], results.points[i] = outcome.face.bbox, outcome.face.landmarks
        results.detections_reused += outcome.detect_ms is not None
        if outcome.reason:
            results.reasons[i] = outcome.reason
    for item in cropped:
        if item.outcome is None:
            results.status[item.index], results.reasons[item.index] = UNREADABLE, item.error
