"""Detection replicas (``--detect-workers N|auto``): processes that each hold their own detector
and decode, condition, detect and align slices of a method's images for the embedder of this
process, so that a CPU-bound detector keeps up with an embedder on a GPU, or on many cores.

:class:`DetectionReplicas` starts N processes (``spawn``: a fresh interpreter, no fork of a
process that holds threads or a CUDA context); each builds the method's cropper from its
:class:`~.cropping.CropperRecipe` and runs :func:`~.pipeline.decode_and_crop` on the slices of
``detect_batch`` image indices it is given, so only the 112x112 crops, landmarks and scores cross
back. Their :meth:`~DetectionReplicas.stage` is the pipeline's crop stage
(:func:`~.pipeline.process_images`): it gives a slice to each replica that has room and hands the
crops on in the images' order, so chunks are committed and cached exactly as with one worker. An
image's result does not depend on the replica or the batch that cropped it.

Memory: a replica holds at most :data:`IN_FLIGHT` slices, and no slice is given out more than
``IN_FLIGHT * N`` slices ahead of the oldest one not yet handed on, however slow one replica is.

Threads: each replica limits its libraries to :func:`replica_threads` threads, ``(cores - 1) // N``
and at least 1 (one core is left to the embedder; with ``auto``, one replica per core besides it,
one thread each): onnxruntime's detector sessions (the YOLOs, RTMPose) through
:func:`~face_alignment.runtime.limit_detector_threads` before the detector is made, OpenCV through
``cv2.setNumThreads`` (YuNet) and torch's intra-op pool through ``torch.set_num_threads`` (MTCNN,
RetinaFace) once it is loaded.

Failures: an exception in a replica (its detector failing to load, say) is raised here as a
:class:`~face_alignment.errors.FaceBenchError` naming the replica; a replica that dies (a segfault
in native code, a kill) ends the method with an error that says so, never a wait. A replica
ignores Ctrl-C (this process stops the replicas) and ends when this process's end of its pipe
closes, also when this process is killed.
"""
from __future__ import annotations

import logging
import multiprocessing
import multiprocessing.connection
import os
import queue
import signal
import sys
import time
import traceback
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import numpy as np

from face_alignment.errors import FaceBenchError

from ..protocol.conditions import CLEAN, ImageCondition
from .cropping import CropperRecipe
from .isolation import start_without_callers_main, stop_process
from .pipeline import Cropped, CropStage, decode_and_crop

log = logging.getLogger(__name__)

#: slices a replica holds at once: one it crops, one waiting, so that it never idles on the pipe
IN_FLIGHT = 2
#: seconds the replicas have to end by themselves once told to, before they are terminated
GRACE_SECONDS = 5.0
_POLL_S = 0.1  # how often the gathering thread looks whether it should stop


def usable_cores() -> int:
    """The cores this process may run on (its CPU affinity where the OS has one)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def resolve_detect_workers(value: int | str, cores: int | None = None, detector_device: str = "cpu") -> int:
    """The number of detection replicas ``value`` asks for: a positive count as it is, ``auto``
    one per core less one (the embedder's), at least 1; ``auto`` for a detector on a GPU is 1
    (replicas relieve the CPU, and each would hold a CUDA context of its own)."""
    if value == "auto":
        return 1 if detector_device.startswith("cuda") else max(1, (cores or usable_cores()) - 1)
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < 1:
        raise FaceBenchError(f"detect workers must be a positive count or auto, not {value!r}")
    return int(value)


def replica_threads(count: int, cores: int | None = None) -> int:
    """The library threads of each of ``count`` replicas: the cores less the embedder's, shared out."""
    return max(1, ((cores or usable_cores()) - 1) // count)


def limit_threads(threads: int) -> None:
    """Limit OpenCV's and (where it is loaded) torch's intra-op threads in this process, and
    those of the onnxruntime sessions that detectors make from now on."""
    import cv2

    from face_alignment.runtime import limit_detector_threads

    limit_detector_threads(threads)

    cv2.setNumThreads(threads)
    torch = sys.modules.get("torch")
    if torch is not None:
        torch.set_num_threads(threads)


class DetectionReplicas:
    """``count`` replica processes cropping ``images`` (paths relative to ``root``) under
    ``condition`` with the cropper of ``recipe``, ``detect_batch`` images per slice; a context
    manager (the processes run inside the ``with`` block)."""

    def __init__(self, count: int, recipe: CropperRecipe, images: Sequence[str], root: Path,
                 condition: ImageCondition = CLEAN, detect_batch: int = 8, threads: int | None = None) -> None:
        self.count, self.recipe, self.images, self.root = count, recipe, list(images), Path(root)
        self.condition, self.detect_batch = condition, max(1, detect_batch)
        self.threads = threads or replica_threads(count)
        self._processes: list = []
        self._conns: list[multiprocessing.connection.Connection] = []

    def __enter__(self) -> DetectionReplicas:
        context = multiprocessing.get_context("spawn")
        try:
            for number in range(self.count):
                here, there = context.Pipe()
                process = context.Process(
                    target=_replica_main, name=f"facebench-detect-{number + 1}", daemon=True,
                    args=(there, self.recipe, self.images, self.root, self.condition, self.detect_batch, self.threads))
                start_without_callers_main(process)
                there.close()  # the replica holds the only other end: the pipe ends when it does
                self._processes.append(process)
                self._conns.append(here)
        except BaseException:
            self._close(failed=True)
            raise
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        self._close(failed=exc_type is not None)

    def stage(self, chunks: list[np.ndarray], out: queue.Queue) -> CropStage:
        """The pipeline's crop stage over these replicas (:data:`~.pipeline.StageFactory`)."""
        return _ReplicaStage(chunks, out, self)

    def crop(self, slices: Sequence[np.ndarray], check_stop: Callable[[], None] = lambda: None
             ) -> Iterator[list[Cropped]]:
        """Each slice's crops, in the order of ``slices``; ``check_stop()`` is called while waiting."""
        waiting = deque(range(len(slices)))  # slices not given out yet
        owned: list[deque[int]] = [deque() for _ in self._processes]  # each replica's slices, oldest first
        done: dict[int, list[Cropped]] = {}
        window, following = IN_FLIGHT * len(self._processes), 0  # following: the next slice to hand on
        while following < len(slices):
            if following in done:
                yield done.pop(following)
                following += 1
                continue
            for replica, (conn, mine) in enumerate(zip(self._conns, owned)):
                while waiting and len(mine) < IN_FLIGHT and waiting[0] < following + window:
                    number = waiting.popleft()
                    mine.append(number)
                    try:
                        conn.send((number, slices[number]))
                    except OSError:  # the replica has died (BrokenPipeError, ConnectionResetError)
                        raise FaceBenchError(self._death(replica, mine, slices)) from None
            check_stop()
            ready = set(multiprocessing.connection.wait([*self._conns, *(p.sentinel for p in self._processes)],
                                                        timeout=_POLL_S))
            for replica, (conn, process) in enumerate(zip(self._conns, self._processes)):
                if conn in ready or process.sentinel in ready:
                    self._receive(replica, owned[replica], done, slices)

    def _receive(self, replica: int, mine: deque[int], done: dict[int, list[Cropped]],
                 slices: Sequence[np.ndarray]) -> None:
        """Everything replica ``replica`` has sent; raise if it failed or has died."""
        conn, process = self._conns[replica], self._processes[replica]
        while True:
            try:
                if not conn.poll():
                    break
                message = conn.recv()
            except (EOFError, OSError):  # its end closed: ConnectionResetError where our slices were unread
                break
            if message[0] == "error":
                log.debug("detection replica %d: %s", replica + 1, message[2])
                raise FaceBenchError(f"detection replica {replica + 1} of {self.count} failed: {message[1]}")
            _, number, cropped = message
            mine.remove(number)
            done[number] = cropped
        if not process.is_alive():
            raise FaceBenchError(self._death(replica, mine, slices))

    def _death(self, replica: int, mine: deque[int], slices: Sequence[np.ndarray]) -> str:
        process = self._processes[replica]
        process.join(GRACE_SECONDS)
        code = process.exitcode
        how = f"crashed ({signal.Signals(-code).name})" if code is not None and code < 0 else \
            f"ended (exit status {code})"
        where = ""
        if mine:
            indices = slices[mine[0]]
            where = f" on {len(indices)} images from {self.images[int(indices[0])]}"
        return (f"detection replica {replica + 1} of {self.count} {how}{where}; the chunks before are cached: rerun "
                "to resume (--detect-workers 1 detects in the method's own process)")

    def _close(self, failed: bool) -> None:
        """Tell each replica to end and wait :data:`GRACE_SECONDS`; terminate those still running
        (at once where the block ``failed``: they may be in the middle of a slice)."""
        for conn in self._conns:
            try:
                if not failed:
                    conn.send(None)
            except OSError:  # that replica has gone already
                pass
            conn.close()
        deadline = time.monotonic() + (0.0 if failed else GRACE_SECONDS)
        for process in self._processes:
            process.join(max(0.0, deadline - time.monotonic()))
        for process in self._processes:
            stop_process(process, GRACE_SECONDS)
        self._processes, self._conns = [], []


class _ReplicaStage(CropStage):
    """The crop stage that slices the chunks and gathers the replicas' crops, in order."""

    def __init__(self, chunks: list[np.ndarray], out: queue.Queue, replicas: DetectionReplicas) -> None:
        super().__init__(chunks, out)
        self.replicas = replicas

    def produce(self) -> None:
        step = self.replicas.detect_batch
        slices = [chunk[start:start + step] for chunk in self.chunks for start in range(0, len(chunk), step)]
        for cropped in self.replicas.crop(slices, self.check_stop):
            self.put(cropped)


def _replica_main(conn, recipe: CropperRecipe, images: Sequence[str], root: Path, condition: ImageCondition,
                  detect_batch: int, threads: int) -> None:
    """A replica: build the cropper, then crop each slice it is sent until it is sent None or the
    pipe closes; an exception is sent back as ``("error", what, traceback)``."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches the whole process group: the parent stops us
    logging.getLogger().setLevel(logging.ERROR)  # the parent built the same detector and logged its warnings
    try:
        limit_threads(threads)  # before the detector is made (onnxruntime), and again after (torch is loaded then)
        cropper = recipe.build()
        limit_threads(threads)
        while (message := conn.recv()) is not None:
            number, indices = message
            conn.send(("crops", number, decode_and_crop(indices, images, root, condition, cropper, detect_batch)))
    except (EOFError, BrokenPipeError):  # the parent has gone
        pass
    except Exception as exc:
        try:
            conn.send(("error", f"{type(exc).__name__}: {exc}", traceback.format_exc()))
        except OSError:
            pass
    conn.close()
    os._exit(0)  # nothing is left to write: skip the interpreter's teardown, which takes seconds once torch is loaded
