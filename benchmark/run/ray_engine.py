"""The Ray engine (``--engine ray``): a method's pending images as a Ray Data pipeline on a Ray
cluster, with the same per-image results as the local engine.

The pipeline's unit is the local engine's chunk, :data:`CHUNK` pending images (``ray.data.from_items``,
a row per chunk): detector actors (:class:`DetectActor`: each builds the method's cropper from its
:class:`~.cropping.CropperRecipe` and runs :func:`~.pipeline.decode_and_crop` on a chunk: decode,
condition, detect, align; a row per image out), then embedder actors (:class:`EmbedActor`: the
run's embedder, built by the runner's ``load_embedder``, on the chunk's 112x112 crops only, in the
embedder's batches from the chunk's first crop, so its batches are the local engine's and the
embeddings equal to the bit: an image's embedding can differ in the last float bits with the
size of its batch). Every row comes back to this process (the driver) as plain columns: the
image's index, status, landmarks, score, reason, detection time and embedding, chunks in
whatever order the actors finish them; the driver commits each whole chunk
(:func:`~.pipeline.commit`) and calls ``checkpoint`` with it, so the cache is written here, one
shard per chunk, and an interrupted run resumes from it. A chunk is one detector call: a data set
of N images keeps at most N / 256 detector actors busy.

The driver builds no model: its cache keys and its row need the facts of the detector and the
embedder (the weights' sha256, the devices they really get, their code's version), which a task on
the cluster finds by building both once where the actors will (:func:`describe_on_cluster`).

Actors (:func:`plan_actors`): one CPU each; the detector pool grows up to the cluster's CPUs less
one, as does the embedder pool on a CPU-only cluster. Where the cluster has GPUs, the embedder
actors take one each (half of one where the detector runs on a GPU too, the detectors sharing the
other half). Their arguments (recipe, condition, root, image list, run options) go through Ray's
own argument passing; ``runtime_env`` puts this process's import path (the repository, plugin
folders) on theirs, so they import ``benchmark``, ``backbones``, ``face_alignment`` and plugins
as this process does.

Failures: restarts are off (``max_restarts=0``, ``max_task_retries=0``, no errored blocks allowed,
no retried map errors), so a backend that crashes an actor (a segfault in native code) ends the
method with a :class:`~face_alignment.errors.FaceBenchError` in about 3 s, instead of a restart
loop that never ends; with process isolation (:mod:`.isolation`) that is the method's error row,
and the run goes on. An exception in an actor is raised here as it was raised there.

Ray: the Ray this process already holds, else ``ray.init(address=config.ray_address)``: the
cluster at that address; without one, ``$RAY_ADDRESS`` or a cluster that ``ray start`` started on
this machine, else a local Ray started here (no dashboard, the workers' output not forwarded,
Ray Data's progress only in Ray's session folder, ``/tmp/ray/session_latest/logs``). What this
engine joined it leaves (a local Ray it started: stopped) when the method's images are done.
"""
from __future__ import annotations

import logging
import os
import re
import sys
import time
import warnings
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from backbones import BaseEmbedder
from face_alignment import Face
from face_alignment.errors import FaceBenchError, MissingDependencyError
from face_alignment.weights import note_unverified, unverified_weights

from ..protocol.conditions import ImageCondition
from .cache import PENDING, MethodResults, memory_peaks
from .cropping import CropperRecipe, ImageSource, Outcome, built_source
from .engine import Engine, MethodWork
from .facts import EmbedderFacts
from .pipeline import Cropped, commit, decode_and_crop
from .sysinfo import PeakMemory

log = logging.getLogger(__name__)

#: images per committed chunk (cache shard), as the local engine's
CHUNK = 256
#: seconds the pipeline waits for its first actors (loading models included) before giving up
ACTOR_START_S = 600
#: the per-row memory columns, each the highest of the actors that handled the row (MiB; NaN: not measured)
PEAKS = ("peak_rss_mb", "peak_gpu_mb", "peak_gpu_reserved_mb", "peak_gpu_nvml_mb")
_REPO = Path(__file__).resolve().parents[2]

#: builds the embedder a run's options ask for on a device: the runner's ``load_embedder``, handed
#: to the engine (this module cannot import the runner, which imports it)
EmbedderLoader = Callable[[Any, str], BaseEmbedder]


def check_ray() -> None:
    """Raise a :class:`MissingDependencyError` that says what to install where Ray Data is missing."""
    try:
        import ray.data  # noqa: F401
    except ImportError as exc:
        raise MissingDependencyError(f"--engine ray needs Ray Data ({exc}): pip install '.[ray]' (the lock pins "
                                     "it: requirements/lock.txt)") from None


@dataclass(frozen=True)
class ActorPlan:
    """The two actor pools: each pool's largest size and the GPUs each of its actors asks for."""

    detectors: int
    detector_gpus: float
    embedders: int
    embedder_gpus: float


def plan_actors(cpus: float, gpus: float, detector_on_gpu: bool, embedder_on_gpu: bool) -> ActorPlan:
    """Actor pools for a cluster of ``cpus`` CPUs and ``gpus`` GPUs, one CPU an actor: detectors
    up to the CPUs less one (the embedder's); embedders up to the CPUs less one on the CPU, else one
    per GPU, half a GPU each where the detectors use the other half, shared out between them."""
    spare = max(1, int(cpus) - 1)
    if not embedder_on_gpu:
        embedders, embedder_gpus, detector_share = spare, 0.0, float(gpus)
    else:
        embedders = max(1, int(gpus))
        embedder_gpus = 0.5 if detector_on_gpu else 1.0
        detector_share = gpus - embedders * embedder_gpus
    detectors = spare
    return ActorPlan(detectors, detector_share / detectors if detector_on_gpu else 0.0, embedders, embedder_gpus)


class DetectActor:
    """Ray Data's detector actor: decodes, conditions, detects and aligns a chunk of images (a row of
    their indices; :func:`~.pipeline.decode_and_crop`) with the cropper of ``recipe``, a row per image out."""

    def __init__(self, recipe: CropperRecipe, condition: ImageCondition, root: Path, images: Sequence[str],
                 detect_batch: int) -> None:
        from .replicas import limit_threads

        with PeakMemory() as memory:
            self.cropper = recipe.build()
        self.size = recipe.template.size
        limit_threads(1)  # the actor's one CPU
        _exact_fp32()
        self.condition, self.root, self.images, self.detect_batch = condition, Path(root), images, detect_batch
        self.peaks = _peaks(memory)

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        (indices,) = batch["indices"]  # one chunk a call
        with PeakMemory() as memory:
            cropped = decode_and_crop(indices, self.images, self.root, self.condition, self.cropper, self.detect_batch)
        self.peaks = np.fmax(self.peaks, _peaks(memory))
        return {**crop_columns(cropped, self.size), "chunk": np.full(len(cropped), int(indices[0]), np.int64),
                **_peak_columns(self.peaks, len(cropped))}


class EmbedActor:
    """Ray Data's embedder actor: embeds the crops of a chunk (``flip``: with the mirror) with the
    run's embedder (``load_embedder(config, config.device)``) on the device Ray gave the actor, in the
    embedder's batches from the chunk's first crop, as the local engine does; the rows leave
    without their crops."""

    def __init__(self, load_embedder: EmbedderLoader, config: Any, flip: bool, dim: int) -> None:
        with PeakMemory() as memory:
            self.embedder = load_embedder(config, config.device)
        _exact_fp32()
        self.flip, self.dim = flip, dim
        self.peaks = _peaks(memory)

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        readable = batch["readable"]
        embeddings = np.full((len(readable), self.dim), np.nan, np.float32)
        with PeakMemory() as memory:
            started = time.perf_counter()
            for chunk in dict.fromkeys(batch["chunk"].tolist()):  # Ray hands over a chunk a batch; were it more,
                rows = readable & (batch["chunk"] == chunk)  # each chunk alone: the local engine's batches
                if rows.any():
                    embeddings[rows] = self.embedder.embed(batch["crop"][rows], flip=self.flip)
            seconds = time.perf_counter() - started
        self.peaks = np.fmax(self.peaks, _peaks(memory))
        rows = {name: column for name, column in batch.items() if name != "crop" and name not in PEAKS}
        mine = _peak_columns(self.peaks, len(readable))
        return {**rows, "embedding": embeddings, "embed_s": np.full(len(readable), seconds / len(readable)),
                **{name: np.fmax(batch[name], mine[name]) for name in PEAKS}}


def crop_columns(cropped: list[Cropped], size: int) -> dict[str, np.ndarray]:
    """The crop stage's output as columns (an unreadable image: a blank ``size`` crop, ``readable``
    False, its reason in ``reason``; ``box`` and ``points``: the face the crop was aligned from,
    ``reused``: whether its detection was read from the detection cache)."""
    nan = np.full((5, 2), np.nan, np.float32)
    blank = np.zeros((size, size, 3), np.uint8)
    outcomes = [c.outcome for c in cropped]
    faces = [None if o is None else o.face for o in outcomes]
    return {
        "index": np.array([c.index for c in cropped], np.int64),
        "readable": np.array([o is not None for o in outcomes]),
        "crop": np.stack([blank if o is None else o.crop for o in outcomes]),
        "status": np.array([0 if o is None else o.status for o in outcomes], np.int8),
        "landmarks": np.stack([nan if o is None else np.asarray(o.landmarks, np.float32) for o in outcomes]),
        "box": np.stack([np.full(4, np.nan, np.float32) if f is None else f.bbox for f in faces]),
        "points": np.stack([nan if f is None else f.landmarks for f in faces]),
        "score": np.array([np.nan if o is None else o.score for o in outcomes], np.float64),
        "reason": np.array([c.error if o is None else o.reason for c, o in zip(cropped, outcomes)], object),
        "detect_ms": np.array([c.detect_ms for c in cropped], np.float64),
        "reused": np.array([o is not None and o.detect_ms is not None for o in outcomes]),
    }


def rows_to_cropped(rows: dict[str, np.ndarray]) -> list[Cropped]:
    """The driver's :class:`~.pipeline.Cropped` of a batch of rows (without crops: they are embedded)."""
    def outcome(i: int) -> Outcome:
        face = None if np.isnan(rows["box"][i]).all() else Face(rows["box"][i], rows["score"][i], rows["points"][i])
        return Outcome(None, int(rows["status"][i]), rows["landmarks"][i], float(rows["score"][i]),
                       str(rows["reason"][i]), face, float(rows["detect_ms"][i]) if rows["reused"][i] else None)

    return [Cropped(int(rows["index"][i]), outcome(i) if rows["readable"][i] else None,
                    "" if rows["readable"][i] else str(rows["reason"][i]), float(rows["detect_ms"][i]))
            for i in range(len(rows["index"]))]


def _peaks(memory: PeakMemory) -> np.ndarray:
    return np.array(memory_peaks(memory), np.float64)


def _peak_columns(peaks: np.ndarray, n: int) -> dict[str, np.ndarray]:
    return {name: np.full(n, value) for name, value in zip(PEAKS, peaks)}


def _exact_fp32() -> None:
    """TF32 off where torch is loaded, as the runner turns it off where a stage runs on CUDA."""
    if "torch" in sys.modules:
        from face_alignment.runtime import set_tf32

        set_tf32(False)


class _Chunks:
    """The pending images' chunks, filled by rows that come in any order; a chunk is handed out
    (:meth:`add`) once all its images are in."""

    def __init__(self, todo: np.ndarray, n: int, size: int = CHUNK) -> None:
        self.indices = [todo[start:start + size] for start in range(0, len(todo), size)]
        self.chunk_of = np.full(n, -1, np.int64)
        self.chunk_of[todo] = np.arange(len(todo)) // size
        self.missing = [len(chunk) for chunk in self.indices]
        self.rows: list[dict[int, dict]] = [{} for _ in self.indices]

    def add(self, batch: dict[str, np.ndarray]) -> Iterator[tuple[np.ndarray, dict[str, np.ndarray]]]:
        """The chunks ``batch`` completes: their indices and rows (as columns, in the chunk's order)."""
        names = list(batch)
        for position, index in enumerate(batch["index"]):
            number = int(self.chunk_of[int(index)])
            if number < 0 or int(index) in self.rows[number]:
                raise FaceBenchError(f"the Ray pipeline returned image {int(index)} twice or unasked")
            self.rows[number][int(index)] = {name: batch[name][position] for name in names}
            self.missing[number] -= 1
            if self.missing[number] == 0:
                rows, self.rows[number] = self.rows[number], {}
                ordered = [rows[int(i)] for i in self.indices[number]]
                yield self.indices[number], {name: np.array([row[name] for row in ordered]) for name in names}

    @property
    def complete(self) -> bool:
        return not any(self.missing)


@dataclass(frozen=True)
class RayEngine(Engine):
    """A method's pending images through a Ray Data pipeline (module docstring).

    Times as the local engine's: ``detect_ms`` per image (its share of its detection batch),
    ``embed_seconds`` summed over the embedder actors' batches (so ``embed_img_per_s`` is one
    actor's throughput), ``wall_seconds`` from the start of :meth:`run` (Ray's start included) to
    the last chunk. Memory: ``peak_rss_mb`` and the GPU peaks are the highest of any one actor and
    of the driver (the runner measures the driver), not their sum.
    """

    config: Any  # the run's RunConfig
    load_embedder: EmbedderLoader

    def session(self) -> AbstractContextManager:
        return _ray(self.config.ray_address)

    def run(self, work: MethodWork, results: MethodResults,
            checkpoint: Callable[[np.ndarray], None]) -> MethodResults:
        todo = np.flatnonzero(results.status == PENDING)
        if not todo.size:
            return results
        check_ray()
        started = time.perf_counter()
        chunks = _Chunks(todo, len(results.status))
        with _ray(self.config.ray_address), _actor_failures(results, len(results.status)):
            pipeline = _pipeline(work, chunks.indices, self.config, self.load_embedder, results.embeddings.shape[1])
            for batch in pipeline.iter_batches(batch_size=None, batch_format="numpy"):
                for indices, rows in chunks.add(batch):
                    _commit(results, rows)
                    results.wall_seconds += time.perf_counter() - started
                    started = time.perf_counter()
                    checkpoint(indices)
        if not chunks.complete:
            raise FaceBenchError(f"the Ray pipeline ended with {sum(chunks.missing)} images missing")
        return results


def describe_on_cluster(asked: CropperRecipe, root: Path, config: Any,
                        load_embedder: EmbedderLoader) -> tuple[ImageSource, EmbedderFacts]:
    """The facts of the image source ``asked`` (its template: the embedder's) and of the run's
    embedder, as a task on the cluster finds them when it builds both where the actors will (one
    CPU, and a GPU where the cluster has one and the run may use it): the weights' sha256, the
    devices they really got, their code's version. The driver keys its caches and fills its row
    with them, and builds neither model."""
    import ray

    with _ray(config.ray_address):
        on_gpu = _embedder_on_gpu(config, ray.cluster_resources().get("GPU", 0.0))
        task = ray.remote(_describe).options(num_cpus=1, num_gpus=1 if on_gpu else 0, max_retries=0,
                                             runtime_env=_runtime_env())
        with _raised_as_itself():
            source, facts, unverified = ray.get(task.remote(asked, root, config, load_embedder))
    note_unverified(unverified)
    return source, facts


def _describe(asked: CropperRecipe, root: Path, config: Any,
              load_embedder: EmbedderLoader) -> tuple[ImageSource, EmbedderFacts, list[Path]]:
    """:func:`describe_on_cluster`'s task: both built, described (with the files they loaded
    unverified), dropped."""
    with unverified_weights(config.allow_unverified_weights) as unverified:
        embedder = load_embedder(config, config.device)
        source = built_source(replace(asked, template=embedder.model_input.template), root)
    return source.described(), EmbedderFacts.of(embedder), unverified


def _commit(results: MethodResults, rows: dict[str, np.ndarray]) -> None:
    """Write a chunk's rows into ``results``, with their embedding time and memory peaks."""
    commit(results, rows_to_cropped(rows), rows["embedding"][rows["readable"]])
    results.embed_seconds += float(rows["embed_s"].sum())
    results.record_peaks(*(float(np.fmax.reduce(rows[name])) for name in PEAKS))


def _pipeline(work: MethodWork, chunks: list[np.ndarray], config: Any, load_embedder: EmbedderLoader, dim: int):
    """The Ray Data pipeline over ``chunks`` (of image indices): a row per chunk into the detector
    actors, a row per image out of them into the embedder actors."""
    import ray
    import ray.data

    _strict_data_context()
    _quiet_ray_data()
    resources = ray.cluster_resources()
    cpus, gpus = resources.get("CPU", 1.0), resources.get("GPU", 0.0)
    if config.device.startswith("cuda") and not gpus:
        raise FaceBenchError(f"--device {config.device}: the Ray cluster has no GPU ({resources}); use --device cpu "
                             "or auto")
    plan = plan_actors(cpus, gpus, gpus > 0 and work.recipe.method is not None and work.recipe.device != "cpu",
                       _embedder_on_gpu(config, gpus))
    log.info("%s: Ray cluster of %g CPUs, %g GPUs: up to %d detector actors (%g GPU each), up to %d embedder "
             "actors (%g GPU each)", work.name, cpus, gpus, plan.detectors, plan.detector_gpus, plan.embedders,
             plan.embedder_gpus)
    items = ray.data.from_items([{"indices": chunk.tolist()} for chunk in chunks], override_num_blocks=len(chunks))
    with warnings.catch_warnings():  # max_restarts and max_task_retries have no named parameter in Ray 2.60
        warnings.simplefilter("ignore", DeprecationWarning)
        detected = items.map_batches(
            DetectActor, fn_constructor_args=(work.recipe, work.condition, Path(work.root), list(work.images),
                                              config.detect_batch),
            batch_size=1, compute=ray.data.ActorPoolStrategy(min_size=1, max_size=plan.detectors),
            num_gpus=plan.detector_gpus, **_actor_options())
        return detected.map_batches(
            EmbedActor, fn_constructor_args=(load_embedder, config, work.flip, dim), batch_size=None,
            compute=ray.data.ActorPoolStrategy(min_size=1, max_size=plan.embedders), num_gpus=plan.embedder_gpus,
            **_actor_options())


def _embedder_on_gpu(config: Any, gpus: float) -> bool:
    """Whether the run's embedder runs on a GPU of a cluster with ``gpus`` GPUs."""
    return gpus > 0 and config.device != "cpu" and not config.quantized


def _actor_options() -> dict:
    """What every actor of the pipeline asks: one CPU, no restart, no retry, this process's import path."""
    return {"batch_format": "numpy", "num_cpus": 1, "runtime_env": _runtime_env(), "max_restarts": 0,
            "max_task_retries": 0}


def _strict_data_context() -> None:
    """No block dropped, no task or actor retried, no progress bars (the runner draws its own):
    this process's Ray Data settings."""
    from ray.data import DataContext

    context = DataContext.get_current()
    context.max_errored_blocks = 0
    context.max_consecutive_actor_init_deaths = 0
    context.actor_task_retry_on_errors = False
    context.retried_map_errors = False
    context.raise_original_map_exception = True
    context.wait_for_min_actors_s = ACTOR_START_S
    context.enable_progress_bars = False
    context.print_on_execution_start = False
    context.verbose_stats_logs = False


def _runtime_env() -> dict:
    """The actors' ``PYTHONPATH``: the repository, then this process's import path outside the
    interpreter's own folders (plugin folders, the working directory)."""
    own = tuple(str(Path(p).resolve()) for p in {sys.prefix, sys.base_prefix, sys.exec_prefix})
    paths = [str(_REPO)]
    for entry in sys.path:
        path = str(Path(entry or os.getcwd()).resolve())
        if path not in paths and not path.startswith(own) and Path(path).is_dir():
            paths.append(path)
    return {"env_vars": {"PYTHONPATH": os.pathsep.join(paths)}}


@contextmanager
def _ray(address: str | None) -> Iterator[None]:
    """Ray for the block: the Ray this process holds (which must be the cluster at ``address``,
    where one is given), else ``ray.init(address=address)``, left again after the block (a local
    Ray it started: stopped)."""
    import ray

    if ray.is_initialized():
        held = ray.get_runtime_context().gcs_address
        if address not in (None, held):
            raise FaceBenchError(f"--ray-address {address}: this process holds another Ray already, at {held}")
        yield
        return
    try:
        ray.init(address=address, include_dashboard=False, log_to_driver=False, logging_level=logging.ERROR)
    except (ConnectionError, RuntimeError, ValueError) as exc:
        raise FaceBenchError(f"cannot start or join Ray at {address or 'a new local cluster'}: {exc}") from None
    try:
        yield
    finally:
        ray.shutdown()


def _quiet_ray_data() -> None:
    """Ray Data logs its progress to the console: keep that to its session log file."""
    from ray.data._internal.logging import SessionFileHandler

    for handler in logging.getLogger("ray.data").handlers:
        if not isinstance(handler, SessionFileHandler):
            handler.setLevel(logging.CRITICAL)


@contextmanager
def _actor_failures(results: MethodResults, n: int) -> Iterator[None]:
    """An actor that died (a crash in native code, a kill) or failed to start as a
    :class:`FaceBenchError` that says so; an exception raised in an actor's task as itself."""
    import ray.exceptions

    try:
        with _raised_as_itself():
            yield
    except ray.exceptions.RayActorError as exc:
        if exc.actor_init_failed:
            raise FaceBenchError(actor_failure(str(exc))) from None
        raise FaceBenchError(f"{actor_death(str(exc))} after {results.done}/{n} images (a crash in native code, such "
                             "as a segfault or an abort, or a kill); the chunks before are cached: rerun to "
                             "resume") from None


@contextmanager
def _raised_as_itself() -> Iterator[None]:
    """An exception raised in a Ray task or actor call, raised here as itself (a missing weights
    file as its :class:`~face_alignment.errors.WeightsError`, say)."""
    import ray.exceptions

    try:
        yield
    except ray.exceptions.RayTaskError as exc:
        raise (exc.cause if isinstance(exc.cause, Exception) else exc.as_instanceof_cause()) from None


def _stage(message: str) -> str:
    """``detector `` or ``embedder `` after the actor class a Ray error message names, or ``""``."""
    name = re.search(r"MapBatches\((DetectActor|EmbedActor)\)", message)
    return {"DetectActor": "detector ", "EmbedActor": "embedder "}[name.group(1)] if name else ""


def actor_death(message: str) -> str:
    """What Ray's account of an actor's death (:class:`ray.exceptions.ActorDiedError`) says:
    which stage's actor, where, and how its process ended."""
    pid, ip = re.search(r"pid: (\d+)", message), re.search(r"ip: (\S+)", message)
    where = f" (pid {pid.group(1)}{f' on {ip.group(1)}' if ip else ''})" if pid else ""
    detail = re.search(r"Worker exit detail: (.*?)\.? Some common causes", message)
    how = detail.group(1) if detail else message.strip().splitlines()[0] if message.strip() else "no reason given"
    return f"the Ray {_stage(message)}actor{where} died: {how}"


def actor_failure(message: str) -> str:
    """What Ray's account of an actor whose constructor raised says: the stage and the exception
    (the last line of the traceback it carries, without the exception's module)."""
    lines = [line for line in message.strip().splitlines() if line.strip()]
    error = re.sub(r"^[\w.]+\.(\w+): ", r"\1: ", lines[-1].strip()) if lines else "no reason given"
    return f"a Ray {_stage(message)}actor failed to start: {error}"
