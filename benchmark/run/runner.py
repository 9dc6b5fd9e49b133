"""The benchmark runner: detect, align and embed each unique image of a protocol once, score its
pairs, write the run folder.

Per method (in its own process, :mod:`benchmark.run.isolation`), the engine
(:mod:`benchmark.run.engine`) fills the method's results, each chunk of which is written to its
cache as a shard (:mod:`benchmark.run.cache`), so an interrupted run resumes where it stopped;
then the pairs are scored and the report row, per-pair scores and per-image log written. A face
not found is aligned with the fallback landmarks (:mod:`benchmark.run.cropping`) and counted; an
unreadable image is counted and its pairs scored as "different".
"""
from __future__ import annotations

import logging
import multiprocessing
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm
from tqdm.contrib.logging import logging_redirect_tqdm

from backbones import (
    AUTO,
    DEFAULT_EMBEDDER,
    BaseEmbedder,
    check_embedder,
    create_embedder,
    embedder_spec,
    resolve_backend,
)
from face_alignment import ALIGN_MODES, align
from face_alignment.errors import FaceBenchError
from face_alignment.runtime import check_device, set_tf32, tf32_enabled
from face_alignment.weights import unverified_weights

from ..protocol.base import REFERENCE, VerificationProtocol
from ..protocol.cfp import SPLITS as CFP_PROTOCOLS
from ..protocol.cfp import cfp_protocol
from ..protocol.conditions import CLEAN, ImageCondition
from ..protocol.lfw import lfw_protocol
from ..protocol.scores import summarize
from ..report.files import (
    output_folder,
    read_report_rows,
    read_run_info,
    run_info,
    write_image_log,
    write_report,
    write_run_info,
)
from ..report.summary import write_run_outputs
from .cache import (
    FOUND,
    PENDING,
    STATUS_NAMES,
    UNREADABLE,
    MethodResults,
    ShardCache,
    cache_key,
    memory_peaks,
)
from .cellindex import CellIndex, declared_identity
from .cropping import (
    DETECTOR_ERROR,
    CropperRecipe,
    ImageSource,
    code_version,
    detector_cropper,
    image_source,
    takes_reference_crops,
)
from .detections import DetectionCache
from .engine import Engine, LocalEngine, MethodWork
from .facts import EmbedderFacts
from .failures import method_failure
from .holdpoint import hold_point
from .isolation import ChildOutcome, Progress, run_in_child
from .stagetimes import StageTimes
from .sysinfo import PeakMemory, git_commit, library_versions, run_provenance

log = logging.getLogger(__name__)

#: a sha256 over the alignment's and the croppers' code: part of every cell's cache key
ALIGNMENT_CODE = code_version(align, detector_cropper)
#: the values of ``--engine``: this machine's pipeline, or a Ray cluster's (benchmark.run.ray_engine)
ENGINES = ("local", "ray")


@dataclass
class RunConfig:
    """Options of one benchmark run (the CLI's flags)."""

    methods: Sequence[str]
    dataset: str = "lfw"  # lfw, cfp-fp, cfp-ff, or the path of a pairs file over the images of lfw_dir
    lfw_dir: str | Path | None = None
    cfp_dir: str | Path | None = None
    pairs: str | Path | None = None
    weights_dir: str | Path | None = None
    aligned_dir: str | Path | None = None
    out: str | Path | None = None  # default: results/<dataset> (a pairs file: results/<its name>)
    device: str = "auto"
    batch_size: int | None = None  # None: the embedder's default for its device (256 on CUDA, 64 on the CPU)
    workers: int = 2
    detect_batch: int = 8
    flip: bool = False
    embedder_model: str = DEFAULT_EMBEDDER  # a registered embedder (backbones.embedder_names) or onnx:PATH
    embedder_weights: str | Path | None = None
    # auto (the fastest installed for the device, embedder_backend()), torch | onnx | openvino | dlib
    # (backbones.BACKENDS), or None: the model's own default
    embedder_backend: str | None = AUTO
    align: str = "similarity"  # how a face is cropped onto the embedder's template (face_alignment.ALIGN_MODES)
    precision: str = "fp32"  # fp32 | fp16 | int8
    quantized: bool = False
    resume: bool = True
    # with resume off, still align from the detections cached beside this run's own earlier cell (a
    # matrix's later cells, a robustness run's later embedders: detect once, also under --no-resume)
    keep_detections: bool = False
    cache_dir: str | Path | None = None  # None: <out>/cache; one folder for several runs shares their detections
    max_pairs: int | None = None
    progress: bool = True
    allow_unverified_weights: bool = False
    isolate: bool = True  # each method in its own process (benchmark.run.isolation)
    engine: str = "local"  # local | ray (benchmark.run.engine)
    ray_address: str | None = None  # the Ray cluster to join; None: a local Ray is started
    detect_workers: int | str = 1  # detection replica processes of the local engine, or "auto"


def load_protocol(config: RunConfig) -> VerificationProtocol:
    """The run's protocol (``config.dataset``), its images checked before any work starts."""
    if config.dataset in CFP_PROTOCOLS:
        if config.aligned_dir or config.pairs:
            raise FaceBenchError(f"{config.dataset} has its own pairs and no reference crops: --pairs and "
                                 "--aligned-dir go with LFW")
        protocol = cfp_protocol(config.dataset, config.cfp_dir, config.max_pairs)
    elif config.dataset == "lfw":
        protocol = lfw_protocol(config.lfw_dir, config.pairs, config.aligned_dir, config.max_pairs)
    elif config.pairs:
        raise FaceBenchError(f"--dataset {config.dataset} is a pairs file already: leave out --pairs")
    else:  # a pairs file over the images of the LFW folder (or of --lfw-dir: any image folder)
        protocol = replace(lfw_protocol(config.lfw_dir, config.dataset, config.aligned_dir, config.max_pairs),
                           name=str(config.dataset))
    protocol.check_images()
    return protocol


def default_out(dataset: str) -> Path:
    """``results/<dataset>``; for a pairs file, ``results/<its name without suffix>``."""
    return Path("results") / (dataset if dataset == "lfw" or dataset in CFP_PROTOCOLS else Path(dataset).stem)


def embedder_backend(config: RunConfig) -> str:
    """The backend ``config.embedder_backend`` means for its model and device (``auto``:
    :func:`~backbones.factory.resolve_backend`); the same in every process of a run on one machine."""
    return resolve_backend(embedder_spec(config.embedder_model), config.embedder_backend, config.precision,
                           config.device, config.quantized)


def load_embedder(config: RunConfig, device: str) -> BaseEmbedder:
    """The embedder ``config`` asks for on ``device`` (INT8: calibrated first)."""
    from .calibration import run_calibration

    calibration = run_calibration(config) if config.precision == "int8" else None
    return create_embedder(embedder_backend(config), config.precision, config.embedder_model, config.embedder_weights,
                           config.weights_dir, device, config.batch_size, config.quantized, calibration)


@dataclass(frozen=True)
class PreparedRun:
    """A run checked and ready: its protocol, output folder, the row fields every method shares
    (``meta``) and the embedder loaded in this process."""

    protocol: VerificationProtocol
    out: Path
    meta: dict
    embedder: BaseEmbedder


def prepare_run(config: RunConfig, out: str | Path | None = None) -> PreparedRun:
    """Check ``config`` before any work (device, embedder backend and precision, data, pairs,
    embedder weights, output folder: ``out``, else ``config.out``, else :func:`default_out`) and
    describe the run. With ``config.isolate`` the embedder is loaded here on the CPU only to check
    the weights and describe them (each method's process loads its own)."""
    # the embedder's combination first: only fp16 needs to know whether there is a GPU (torch)
    spec = embedder_spec(config.embedder_model)
    backend = embedder_backend(config)
    check_embedder(backend, config.precision, "cpu" if config.quantized else config.device, config.quantized, spec)
    if config.align not in ALIGN_MODES:
        raise FaceBenchError(f"unknown alignment {config.align!r}; choose one of {', '.join(ALIGN_MODES)}")
    if config.flip and not spec.model_input.flip:
        raise FaceBenchError(f"embedder {spec.name!r} declares that flip test-time augmentation does not apply to "
                             "it: leave out --flip")
    device = check_device(config.device)
    check_engine(config.engine)
    protocol = load_protocol(config)
    out = output_folder(out or config.out or default_out(config.dataset))
    with unverified_weights(config.allow_unverified_weights) as unverified:
        # fp16 cannot run on the CPU, where the parent only checks and describes the weights
        described = replace(config, precision="fp32") if config.isolate and config.precision == "fp16" else config
        embedder = load_embedder(described, "cpu" if config.isolate else config.device)
    meta = {
        "dataset": protocol.name, "n_pairs": len(protocol.pairs), "n_images": len(protocol.pairs.images),
        "flip": config.flip, "device": "cpu" if config.quantized else device,
        "embedder": embedder.name, "embedder_sha256": embedder.weights_sha256, "versions": library_versions(),
        "embedder_backend": backend, "precision": config.precision, "align": config.align,
        "git_commit": git_commit(), "started_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "unverified_weights": ";".join(map(str, unverified)),
    }
    return PreparedRun(protocol, out, meta, embedder)


def run_benchmark(config: RunConfig) -> list[dict]:
    """Run every method of ``config`` on its protocol's pairs; returns the report rows (also
    written to ``<out>/report.csv`` after each method, so finished work is on disk).

    Configuration errors raise before any method starts (:func:`prepare_run`). With
    ``config.isolate`` each method runs in its own process: a crash there becomes that method's
    error row (:mod:`benchmark.run.isolation`).
    """
    times = StageTimes("run")
    times.since_process_start("start-up")
    with times.stage("prepare"):
        run = prepare_run(config)
    protocol, out, meta = run.protocol, run.out, run.meta
    methods = list(config.methods)
    if protocol.reference_dir and takes_reference_crops(run.embedder.model_input.template):
        methods.insert(0, REFERENCE)
    info = {**run_info(protocol, config.max_pairs), **run_provenance()}
    report = ReportFile(out, info, methods)
    write_run_info(out, info)
    rows = []
    for method in methods:
        with times.stage(method):
            row = cached_row(method, config, protocol, meta, out) or _computed_row(method, config, run)
            rows.append(row)
            report.add([row])
    log.info("report written to %s", out / "report.csv")
    with times.stage("charts and summary"):
        write_run_outputs(out)
    times.log()
    return rows


def _computed_row(method: str, config: RunConfig, run: PreparedRun) -> dict:
    """``method``'s row, its images processed (those not in its cache) in its own process (with
    ``config.isolate``) or in this one."""
    args = (method, config, run.protocol, run.meta, run.out)
    if not config.isolate:
        return method_row(*args, run.embedder)
    child = run_isolated(method_row, args, method, len(run.protocol.pairs.images), config.progress)
    return child.result or {"method": method, **run.meta, "error": child.error}


def earlier_rows(out: Path, info: dict, methods: Sequence[str]) -> list[dict]:
    """The rows ``out/report.csv`` already holds, when an earlier run there scored the same pairs:
    a rerun with fewer methods keeps the others' rows (their scores and logs are still there). Over
    other pairs they cannot stand beside this run's rows, and are dropped with a warning."""
    rows = read_report_rows(out / "report.csv")
    if not rows:
        return []
    earlier = read_run_info(out)
    others = sorted({row["method"] for row in rows} - set(methods))
    if (earlier.get("dataset", "lfw"), earlier.get("pairs_sha256")) != (info["dataset"], info["pairs_sha256"]):
        if others:
            log.warning("%s held the rows of %s over other pairs than this run's: they are dropped from "
                        "report.csv (their score files stay in scores/)", out, ", ".join(others))
        return []
    if others:
        log.info("keeping the rows of %s from an earlier run over the same pairs in %s", ", ".join(others), out)
    return rows


class ReportFile:
    """``out/report.csv`` as a run adds its rows: each write reads the file again and replaces only
    this run's methods' rows (where they stood), so the rows that another run into the same folder
    has written meanwhile are kept; rows over other pairs than this run's are dropped at its first
    write (:func:`earlier_rows`)."""

    def __init__(self, out: Path, info: dict, methods: Sequence[str]) -> None:
        self.path = out / "report.csv"
        self.drop_file_rows = bool(read_report_rows(self.path)) and not earlier_rows(out, info, methods)
        self.mine: dict[str, dict] = {}

    def add(self, rows: Sequence[dict]) -> None:
        """Write ``rows`` (this run's) into the file, over what it holds now."""
        self.mine.update((row["method"], row) for row in rows)
        report = {} if self.drop_file_rows else {row["method"]: row for row in read_report_rows(self.path)}
        self.drop_file_rows = False
        report.update(self.mine)
        write_report(list(report.values()), self.path)


def run_isolated(target: Callable[..., object], args: tuple, name: str, total: int, progress: bool) -> ChildOutcome:
    """``target(*args, progress=...)`` (with ``config.progress`` off in its ``args``) in a child
    process (:func:`~.isolation.run_in_child`); its progress bar, over ``total`` images, is drawn
    here, where a notebook shows it (the bar moves a chunk at a time, as the pipeline's does). A
    child that died is logged; its outcome says why."""
    args = tuple(replace(a, progress=False) if isinstance(a, RunConfig) else a for a in args)
    with (logging_redirect_tqdm(),  # log lines above the bar, not glued to it
          tqdm(desc=name, total=total, unit="img", disable=not progress, leave=False) as bar):
        def advance(done: int, of: int) -> None:
            bar.total, bar.n = of, done
            bar.refresh()

        child = run_in_child(target, args, name, advance)
    if child.error:
        log.error("%s: %s", name, child.error)
    return child


def method_row(method: str, config: RunConfig, protocol: VerificationProtocol, meta: dict, out: Path,
               embedder: BaseEmbedder | None = None, progress: Progress = lambda done, total: None,
               name: str | None = None) -> dict:
    """One method's report row (``error`` says why where it failed), named ``name`` (default: the
    method; its score and image-log files are named so too). Without ``embedder`` (in a child
    process) the embedder is loaded here; ``progress(done, total)`` follows the cache.

    The row says where each stage really ran (``detector_device``, ``embedder_device``) and whether
    TF32 was on (``tf32``; :func:`exact_fp32_on_cuda`)."""
    name = name or method
    row = {"method": name, "detector": method, **meta}
    times = StageTimes(name)
    if multiprocessing.parent_process() is not None:
        times.since_process_start("process start")
    with method_failure(row, name, out):
        with unverified_weights(config.allow_unverified_weights) as unverified:
            if embedder is None and config.engine != "ray":
                with times.stage("embedder"):
                    embedder = load_embedder(config, config.device)
                unverified.clear()  # the parent has reported the embedder's file (meta)
            with PeakMemory() as memory, engine_for(config).session():
                with times.stage("detector"):
                    source, embedder = method_models(method, protocol, config, embedder)
                row["tf32"] = exact_fp32_on_cuda(source, embedder)
                row.update(device=embedder.device, detector_model=source.model, unverified_weights=";".join(
                    filter(None, [meta["unverified_weights"], *map(str, unverified)])),
                    detector_device=source.device, embedder_device=embedder.real_device)
                with times.stage("images"):
                    results, cache, processed = process_method(method, source, config, protocol.pairs.images,
                                                               embedder, meta, out, progress)
            if processed:  # a rerun that only read the cache keeps the peaks of the runs that did the work
                results.record_peaks(*memory_peaks(memory))
                cache.write_totals(results)
        row["detector_weights_sha256"] = source.weights_sha256
        with times.stage("scores"):
            score_row(row, results, protocol, out, memory.gpu.nvml_mb)
        if results.done == len(protocol.pairs.images):
            identity = declared_identity(method, config, protocol, meta, protocol.pairs.images)
            CellIndex(cache_root(config, out)).record(identity, cache, row)
    times.log()
    return row


def method_models(method: str, protocol: VerificationProtocol, config: RunConfig,
                  embedder: BaseEmbedder | None = None) -> tuple[ImageSource, BaseEmbedder | EmbedderFacts]:
    """``method``'s image source and the run's embedder (``embedder``, else loaded) as this process
    needs them: built for the local engine; for the Ray engine, whose actors build their own, only
    described (:func:`~.ray_engine.describe_on_cluster`: built once by a task on the cluster), so that
    the driver holds no model."""
    if config.engine == "ray":
        from .ray_engine import describe_on_cluster

        asked = CropperRecipe(None if method == REFERENCE else method, protocol.pick_face, config.device,
                              config.weights_dir, align=config.align)
        return describe_on_cluster(asked, protocol.reference_dir if method == REFERENCE else protocol.image_root,
                                   config, load_embedder)
    embedder = embedder or load_embedder(config, config.device)
    return image_source(method, protocol, config.device, config.weights_dir, embedder.model_input.template,
                        config.align), embedder


def cached_row(method: str, config: RunConfig, protocol: VerificationProtocol, meta: dict, out: Path,
               name: str | None = None) -> dict | None:
    """``method``'s row read from its complete cache without building a model or starting a
    process (:mod:`~.cellindex`), or None where the slow path must run (no complete cache under
    the cell's declared identity, or a rerun asked not to resume)."""
    if not config.resume:
        return None
    try:
        identity = declared_identity(method, config, protocol, meta, protocol.pairs.images)
    except FaceBenchError:  # an unknown method, say: the slow path puts the error in its row
        return None
    index = CellIndex(cache_root(config, out))
    found = index.lookup(identity, len(protocol.pairs.images), embedder_spec(config.embedder_model).model_input.dim)
    if found is None:
        return None
    results, facts = found
    name = name or method
    log.info("%s: all %d images read from the complete cache in %s (no model built)", name, results.done,
             index.folder.parent)
    nvml = facts.pop("peak_gpu_nvml_mb", None)
    row = {"method": name, "detector": method, **meta, "unverified_weights": "", **facts}
    with method_failure(row, name, out):
        score_row(row, results, protocol, out, nvml)
    return row


def score_row(row: dict, results: MethodResults, protocol: VerificationProtocol, out: Path,
              nvml_now: float | str | None = None) -> None:
    """Score ``results`` into the row named ``row["method"]`` (metrics, times, memory, success), and
    write its per-pair scores and per-image log."""
    name = row["method"]
    scores = results.score(protocol.pairs)
    scores.save(out / "scores" / f"{name}.npz")
    write_image_log(out / "images" / f"{name}.csv", protocol.pairs.images, results, STATUS_NAMES)
    row.update(summarize(scores))
    row.update(timing(results, row["detector_weights_sha256"], nvml_now))
    row["success_rate"] = float(np.mean(results.status == FOUND))
    row["n_failed_images"] = int(np.count_nonzero(results.status != FOUND))
    log.info("%s: accuracy %.4f, strict %.4f, success rate %.4f", name, row["accuracy"], row["strict_accuracy"],
             row["success_rate"])


def exact_fp32_on_cuda(source: ImageSource, embedder: BaseEmbedder | EmbedderFacts) -> bool:
    """Turn TF32 off where a stage runs on CUDA (PyTorch's default lets cuDNN convolutions use it,
    so fp32 would not mean fp32) and say whether it is on: the row's and the cache key's ``tf32``."""
    on_cuda = "cuda" in source.device or "cuda" in embedder.real_device
    if on_cuda:
        set_tf32(False)
    return on_cuda and tf32_enabled()


def process_method(method: str, source: ImageSource, config: RunConfig, images: Sequence[str],
                   embedder: BaseEmbedder, meta: dict, out: Path, progress: Progress = lambda done, total: None,
                   condition: ImageCondition = CLEAN, **key_parts) -> tuple[MethodResults, ShardCache, bool]:
    """Every result of ``images`` under ``condition``, resumed from the method's cache, to which
    each chunk is added as a shard; the cache (a folder named by a key over everything that
    produced its contents, ``key_parts`` too) and whether any image was processed (not all read
    from the cache).

    Detect once, embed many: a detector's detections (box, points, score, status) of these images
    under ``condition`` are cached on their own (:class:`DetectionCache`), keyed by the detector
    (weights, code) and the condition, not by the embedder or the alignment; the images they cover
    are aligned from them and embedded, not detected again."""
    n = len(images)
    root = cache_root(config, out)
    detections = detection_cache(method, source, meta, condition, root, key_parts) if source.detects else None
    known = detections.known(images) if detections and (config.resume or config.keep_detections) else None
    source = source.reusing(known)
    work = MethodWork(method, images, source.root, source.cropper, embedder, config.flip, condition, source.recipe)
    facts = EmbedderFacts.of(embedder)
    key = cache_key(method=method, detections=detections.key if detections else REFERENCE,
                    embedder=meta["embedder_sha256"], embedder_code=facts.code,
                    quantized=config.quantized, flip=config.flip, backend=meta["embedder_backend"],
                    precision=config.precision, device=facts.device, versions=meta["versions"],
                    root=str(source.root.resolve()), images=list(images), condition=condition.name,
                    detector_device=source.device, embedder_device=facts.real_device,
                    tf32=_tf32(source.device, facts.real_device), embedder_input=facts.model_input.key(),
                    align=config.align if source.detects else "similarity", alignment_code=ALIGNMENT_CODE,
                    **key_parts)
    cache = ShardCache(root / f"{method}-{key[:16]}")
    if not config.resume:
        cache.clear()
        if detections and not config.keep_detections:
            detections.clear()
    dim = embedder.model_input.dim
    results = (cache.load(n, dim) if config.resume else None) or MethodResults.empty(n, dim)
    if results.done:
        log.info("%s: resuming from %s (%d/%d images done)", method, cache.folder, results.done, n)
    progress(results.done, n)
    saved = 0
    hold_point(saved)

    def checkpoint(indices: np.ndarray) -> None:
        nonlocal saved
        _check_detector_works(results)
        cache.write_chunk(results, indices)
        if detections:
            detections.add(results, images, indices, known)
        progress(results.done, n)
        saved += 1
        hold_point(saved)

    processed = results.done < n
    return engine_for(config).run(work, results, checkpoint), cache, processed


def detection_cache(method: str, source: ImageSource, meta: dict, condition: ImageCondition, root: Path,
                    key_parts: dict) -> DetectionCache:
    """The cache of ``method``'s detections under ``condition`` of any images of ``source``'s folder
    (``key_parts``: what else shaped those images, e.g. the oracle whose landmarks place an occlusion).
    The face choice is named in the key: two protocols over one folder may pick another face, and
    the code's hash alone does not tell two pickers of one module apart."""
    pick = source.recipe.pick_face
    key = cache_key(kind="detections", method=method, detector=source.producer, weights=source.weights_sha256,
                    code=source.code_version, pick=f"{pick.__module__}.{pick.__qualname__}",
                    versions=meta["versions"], root=str(source.root.resolve()), condition=condition.name,
                    detector_device=source.device, tf32=_tf32(source.device), **key_parts)
    return DetectionCache(root / "detections" / f"{method}-{key[:16]}", key)


def cache_root(config: RunConfig, out: Path) -> Path:
    """Where the run's caches go: ``--cache-dir``, else ``<out>/cache``."""
    return Path(config.cache_dir) if config.cache_dir else out / "cache"


def check_engine(engine: str) -> None:
    """Refuse an unknown engine, or Ray where it is not installed, before any work."""
    if engine not in ENGINES:
        raise FaceBenchError(f"unknown engine {engine!r}; choose from {', '.join(ENGINES)}")
    if engine == "ray":
        from .ray_engine import check_ray

        check_ray()


def engine_for(config: RunConfig) -> Engine:
    """The engine ``config.engine`` names, set up from ``config``."""
    if config.engine == "ray":
        from .ray_engine import RayEngine

        return RayEngine(config, load_embedder)
    return LocalEngine(config.workers, config.detect_batch, config.progress, config.detect_workers)


def _tf32(*devices: str) -> bool:
    """Whether TF32 is on where a stage runs on CUDA (a cache key's part; torch is imported only then)."""
    if not any("cuda" in device for device in devices):
        return False
    from face_alignment.runtime import tf32_enabled

    return tf32_enabled()


def _check_detector_works(results: MethodResults) -> None:
    """Stop a method whose detector has raised on every image it was given so far (checked
    after each chunk, so before a broken detector costs a whole run): its numbers would be the
    fallback crops', not the detector's."""
    done = results.status != PENDING
    if np.any(results.status[done] == FOUND):
        return
    reasons = [results.reasons.get(int(i), "") for i in np.flatnonzero(done & (results.status != UNREADABLE))]
    if reasons and all(r.startswith(DETECTOR_ERROR) for r in reasons):
        raise FaceBenchError(f"the detector raised on all {len(reasons)} images it was given, e.g. {reasons[0]}")


def timing(results: MethodResults, weights_sha: str, nvml_now: float | str | None = None) -> dict:
    """Times and memory peaks, the highest of the runs that filled the cache. NVML's peak is
    ``"n/a: <reason>"`` where no run measured it: ``nvml_now``'s reason where NVML is missing now
    too (so that a rerun from the cache says what the first run said)."""
    ms = results.detect_ms[~np.isnan(results.detect_ms)]
    embedded = int(np.count_nonzero(results.status != UNREADABLE))
    nvml = results.peak_gpu_nvml_mb
    if np.isnan(nvml):
        nvml = nvml_now if isinstance(nvml_now, str) else "n/a: not measured when these images were processed"
    return {
        "detect_ms_median": float(np.median(ms)) if ms.size else float("nan"),
        "detect_ms_p95": float(np.percentile(ms, 95)) if ms.size else float("nan"),
        "embed_img_per_s": embedded / results.embed_seconds if results.embed_seconds else float("nan"),
        "wall_s": results.wall_seconds,
        "peak_rss_mb": results.peak_rss_mb,
        "peak_gpu_mb": results.peak_gpu_mb,
        "peak_gpu_nvml_mb": nvml,
        "peak_gpu_torch_allocated_mb": results.peak_gpu_mb,
        "peak_gpu_torch_reserved_mb": results.peak_gpu_reserved_mb,
        "detector_weights_sha256": weights_sha,
        "detections_reused": int(results.detections_reused),
    }
