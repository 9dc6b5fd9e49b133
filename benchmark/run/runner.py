"""The LFW benchmark runner: detect, align and embed each unique image once, score the pairs.

Per method, images are decoded, detected in small batches, the target face picked and aligned,
and the crops embedded in batches, these stages overlapping (:mod:`benchmark.pipeline`); the
results are saved to the method's cache after every chunk, so an interrupted run resumes
where it stopped. A face not found is aligned with :data:`FALLBACK_LANDMARKS` (the median
landmark positions of LFW faces, as fractions of the image size: a centre crop at LFW's framing)
and counted; an unreadable image is counted and its pairs scored as "different".
"""
from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timezone
from pathlib import Path

import cv2
import numpy as np
from tqdm.auto import tqdm

from backbones import DEFAULT_EMBEDDER, BaseEmbedder, create_embedder
from face_alignment import CROP_SIZE, align_face, create_detector
from face_alignment.errors import FaceBenchError
from face_alignment.runtime import resolve_device
from face_alignment.selection import refine_targets
from face_alignment.weights import sha256_file, unverified_weights

from .cache import FALLBACK, FOUND, PENDING, STATUS_NAMES, UNREADABLE, MethodResults, cache_key
from .evaluate import pair_scores, summarize
from .isolation import Progress, run_in_child
from .lfw import PairList, check_images, find_image_root, find_pairs_file, read_pairs, subset_pairs
from .pipeline import process_images
from .report import write_image_log, write_report
from .sysinfo import PeakMemory, git_commit, library_versions

log = logging.getLogger(__name__)

REFERENCE = "reference"
#: how the reason of an image starts when the detector raised on it
DETECTOR_ERROR = "detector error"
#: median YuNet landmarks over LFW deep-funneled images (every 8th image of pairs.txt, 963
#: faces), as fractions of (width, height); the fallback alignment for a face not found
FALLBACK_LANDMARKS = np.array(
    [[0.4152, 0.4495], [0.5902, 0.4486], [0.5053, 0.5465], [0.4319, 0.6229], [0.5811, 0.6202]], np.float32
)


@dataclass(frozen=True)
class Outcome:
    """What aligning one image produced."""

    crop: np.ndarray
    status: int
    landmarks: np.ndarray
    score: float = float("nan")
    reason: str = ""


Cropper = Callable[[Sequence[np.ndarray]], list[Outcome]]


def fallback_landmarks(shape: tuple[int, ...]) -> np.ndarray:
    return FALLBACK_LANDMARKS * np.array([shape[1], shape[0]], np.float32)


def _fallback(image: np.ndarray, reason: str) -> Outcome:
    landmarks = fallback_landmarks(image.shape)
    return Outcome(align_face(image, landmarks), FALLBACK, landmarks, reason=reason)


def detector_cropper(detector) -> Cropper:
    """Detect a batch, pick and align each image's target face; a detector error on the batch
    is retried image by image so that it costs only the image that causes it."""

    def crop(images: Sequence[np.ndarray]) -> list[Outcome]:
        try:
            targets = refine_targets(detector, images, detector.detect(images))
        except Exception as exc:  # any backend failure; isolate the image(s) behind it
            if len(images) > 1:
                return [o for image in images for o in crop([image])]
            return [_fallback(images[0], f"{DETECTOR_ERROR}: {type(exc).__name__}: {exc}")]
        return [
            _fallback(image, "no face found") if face is None
            else Outcome(align_face(image, face.landmarks), FOUND, face.landmarks, face.score)
            for image, face in zip(images, targets)
        ]

    return crop


def reference_cropper(images: Sequence[np.ndarray]) -> list[Outcome]:
    """Reference crops are already aligned: used as they are (resized if not 112x112)."""
    nan = np.full((5, 2), np.nan, np.float32)
    return [Outcome(im if im.shape[:2] == (CROP_SIZE, CROP_SIZE) else cv2.resize(im, (CROP_SIZE, CROP_SIZE),
                                                                                 interpolation=cv2.INTER_AREA),
                    FOUND, nan, 1.0) for im in images]


def default_lfw_dir() -> Path | None:
    """``$FACEBENCH_LFW``, else ``data/lfw``, else ``../shared/data/lfw``, whichever exists."""
    import os

    for candidate in (os.environ.get("FACEBENCH_LFW"), "data/lfw", "../shared/data/lfw"):
        if candidate and Path(candidate).is_dir():
            return Path(candidate)
    return None


@dataclass
class RunConfig:
    """Options of one benchmark run (the CLI's flags)."""

    methods: Sequence[str]
    lfw_dir: str | Path | None = None
    pairs: str | Path | None = None
    weights_dir: str | Path | None = None
    aligned_dir: str | Path | None = None
    out: str | Path = "results/lfw"
    device: str = "auto"
    batch_size: int = 64
    workers: int = 2
    detect_batch: int = 8
    flip: bool = False
    embedder_model: str = DEFAULT_EMBEDDER
    embedder_weights: str | Path | None = None
    embedder_backend: str = "torch"  # torch | onnx | openvino (backbones.embedder.BACKENDS)
    precision: str = "fp32"  # fp32 | fp16 | int8
    quantized: bool = False
    resume: bool = True
    max_pairs: int | None = None
    progress: bool = True
    allow_unverified_weights: bool = False
    isolate: bool = True  # each method in its own process (benchmark.isolation)


def load_protocol(config: RunConfig) -> tuple[PairList, Path]:
    """The pairs and the image root, validated before any work starts."""
    from face_alignment.errors import DatasetError

    from .lfw import DATA_HINT

    lfw_dir = config.lfw_dir or default_lfw_dir()
    if lfw_dir is None:
        raise DatasetError("no LFW folder given or found (looked in $FACEBENCH_LFW, data/lfw, "
                           f"../shared/data/lfw). {DATA_HINT}")
    image_root = find_image_root(lfw_dir)
    pairs = read_pairs(config.pairs or find_pairs_file(lfw_dir, image_root))
    if config.max_pairs:
        pairs = subset_pairs(pairs, max(1, config.max_pairs // 20))
    for root in (image_root, *([Path(config.aligned_dir)] if config.aligned_dir else [])):
        missing = check_images(pairs, root)
        if missing:
            log.warning("%d of %d images are missing under %s (counted as unreadable), e.g. %s",
                        len(missing), len(pairs.images), root, missing[0])
    return pairs, image_root


def _output_folder(path: str | Path) -> Path:
    """``path``, created, after checking that files can be written there (before any work)."""
    import tempfile

    out = Path(path)
    try:
        out.mkdir(parents=True, exist_ok=True)
        tempfile.TemporaryFile(dir=out).close()
    except OSError as exc:
        raise FaceBenchError(f"cannot write to the output folder {out} ({exc.strerror or exc}); "
                             "choose another with --out") from None
    return out


def _load_embedder(config: RunConfig, device: str) -> BaseEmbedder:
    from .calibration import run_calibration

    calibration = run_calibration(config) if config.precision == "int8" else None
    return create_embedder(config.embedder_backend, config.precision, config.embedder_model, config.embedder_weights,
                           config.weights_dir, device, config.batch_size, config.quantized, calibration)


def run_benchmark(config: RunConfig) -> list[dict]:
    """Run every method of ``config`` on the LFW pairs; returns the report rows (also written
    to ``<out>/report.csv`` after each method, so finished work is on disk).

    Configuration errors (data, pairs, embedder weights, output folder) raise before any method
    starts. With ``config.isolate`` each method runs in its own process, which loads its own
    embedder: a crash there becomes that method's error row (:mod:`benchmark.isolation`); the
    embedder loaded here on the CPU only checks the weights and describes them.
    """
    pairs, image_root = load_protocol(config)
    out = _output_folder(config.out)
    with unverified_weights(config.allow_unverified_weights) as unverified:
        # fp16 cannot run on the CPU, where the parent only checks and describes the weights
        described = replace(config, precision="fp32") if config.isolate and config.precision == "fp16" else config
        embedder = _load_embedder(described, "cpu" if config.isolate else config.device)
    meta = {
        "n_pairs": len(pairs), "n_images": len(pairs.images), "flip": config.flip,
        "device": resolve_device("cpu" if config.quantized else config.device),
        "embedder": embedder.name, "embedder_sha256": embedder.weights_sha256, "versions": library_versions(),
        "embedder_backend": config.embedder_backend, "precision": config.precision,
        "git_commit": git_commit(), "started_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "unverified_weights": ";".join(map(str, unverified)),
    }
    rows = []
    methods = list(config.methods)
    if config.aligned_dir:
        methods.insert(0, REFERENCE)
    for method in methods:
        if config.isolate:
            row = _run_isolated(method, config, pairs, image_root, meta, out)
        else:
            row = _run_method(method, config, pairs, image_root, meta, out, embedder)
        rows.append(row)
        write_report(rows, out / "report.csv")
    log.info("report written to %s", out / "report.csv")
    from .summary import write_run_outputs  # here: summary -> plots -> runner would be an import cycle

    write_run_outputs(config, pairs, image_root)
    return rows


def _run_isolated(method: str, config: RunConfig, pairs: PairList, image_root: Path, meta: dict, out: Path) -> dict:
    """:func:`_run_method` in a child process; its progress bar is drawn here, where a notebook
    shows it (the bar moves a chunk at a time, as the pipeline's does)."""
    with tqdm(desc=method, unit="img", disable=not config.progress, leave=False) as bar:
        def advance(done: int, total: int) -> None:
            bar.total, bar.n = total, done
            bar.refresh()

        child = run_in_child(_run_method, (method, replace(config, progress=False), pairs, image_root, meta, out),
                             method, advance)
    if child.error:
        log.error("%s: %s", method, child.error)
    return child.result or {"method": method, **meta, "error": child.error}


def _run_method(method: str, config: RunConfig, pairs: PairList, image_root: Path, meta: dict, out: Path,
                embedder: BaseEmbedder | None = None, progress: Progress = lambda done, total: None) -> dict:
    """One method's report row (``error`` says why where it failed). Without ``embedder`` (in a
    child process) the embedder is loaded here; ``progress(done, total)`` follows the cache."""
    row = {"method": method, **meta}
    try:
        with unverified_weights(config.allow_unverified_weights) as unverified:
            if embedder is None:
                embedder = _load_embedder(config, config.device)
                unverified.clear()  # the parent has reported the embedder's file (meta)
            with PeakMemory(embedder.device) as memory:
                source = _image_source(method, config, image_root)
                row.update(device=embedder.device, detector_model=source.model, unverified_weights=";".join(
                    filter(None, [meta["unverified_weights"], *map(str, unverified)])))
                results = _process(method, source, config, pairs, embedder, meta, out, progress)
        scores = pair_scores(results, pairs)
        (out / "scores").mkdir(parents=True, exist_ok=True)
        scores.save(out / "scores" / f"{method}.npz")
        write_image_log(out / "images" / f"{method}.csv", pairs.images, results, STATUS_NAMES)
        row.update(summarize(scores))
        row.update(_timing(results, memory, source.weights_sha256))
        row["success_rate"] = float(np.mean(results.status == FOUND))
        row["n_failed_images"] = int(np.count_nonzero(results.status != FOUND))
        log.info("%s: accuracy %.4f, success rate %.4f", method, row["accuracy"], row["success_rate"])
    except FaceBenchError as exc:
        log.error("%s: %s", method, exc)
        row["error"] = str(exc)
    except Exception as exc:  # one broken method must not end the run
        log.exception("%s failed", method)
        row["error"] = f"{type(exc).__name__}: {exc}"
    return row


@dataclass(frozen=True)
class _ImageSource:
    """Where a method's images are and what turns them into crops."""

    root: Path
    cropper: Cropper
    producer: str  # the code that makes the crops: part of the cache key
    model: str = ""
    weights_sha256: str = ""


def _image_source(method: str, config: RunConfig, image_root: Path) -> _ImageSource:
    if method == REFERENCE:
        return _ImageSource(Path(config.aligned_dir), reference_cropper, REFERENCE)
    detector = create_detector(method, device=config.device, weights_dir=config.weights_dir)
    producer = f"{type(detector).__module__}.{type(detector).__qualname__}"
    return _ImageSource(image_root, detector_cropper(detector), producer, detector.model_label,
                        _weights_sha256(detector.weight_paths))


def _process(method: str, source: _ImageSource, config: RunConfig, pairs: PairList, embedder: BaseEmbedder,
             meta: dict, out: Path, progress: Progress) -> MethodResults:
    """Every image's result, resumed from the method's cache, which is saved after each chunk.
    The cache file is named by a key over everything that produced its contents."""
    n = len(pairs.images)
    key = cache_key(method=method, detector=source.producer, weights=source.weights_sha256,
                    embedder=meta["embedder_sha256"], quantized=config.quantized, flip=config.flip,
                    backend=config.embedder_backend, precision=config.precision,
                    device=embedder.device, versions=meta["versions"], root=str(source.root.resolve()),
                    images=pairs.images)
    cache_path = out / "cache" / f"{method}-{key[:16]}.npz"
    results = (MethodResults.load(cache_path, n) if config.resume else None) or MethodResults.empty(n)
    if results.done:
        log.info("%s: resuming from %s (%d/%d images done)", method, cache_path, results.done, n)
    progress(results.done, n)

    def checkpoint() -> None:
        _check_detector_works(results)
        results.save(cache_path)
        progress(results.done, n)

    return process_images(pairs.images, source.root, source.cropper, embedder, results, config.flip, config.workers,
                          config.detect_batch, save=checkpoint, desc=method, progress=config.progress)


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


def _weights_sha256(paths: Sequence[Path]) -> str:
    """The sha256 of the one weights file, or for several, of their sha256s joined by newlines."""
    digests = [sha256_file(p) for p in paths]
    if len(digests) <= 1:
        return digests[0] if digests else ""
    import hashlib

    return hashlib.sha256("\n".join(digests).encode()).hexdigest()


def _timing(results: MethodResults, memory: PeakMemory, weights_sha: str) -> dict:
    ms = results.detect_ms[~np.isnan(results.detect_ms)]
    embedded = int(np.count_nonzero(results.status != UNREADABLE))
    return {
        "detect_ms_median": float(np.median(ms)) if ms.size else float("nan"),
        "detect_ms_p95": float(np.percentile(ms, 95)) if ms.size else float("nan"),
        "embed_img_per_s": embedded / results.embed_seconds if results.embed_seconds else float("nan"),
        "wall_s": results.wall_seconds,
        "peak_rss_mb": memory.peak_rss_mb,
        "peak_gpu_mb": memory.peak_gpu_mb,
        "detector_weights_sha256": weights_sha,
    }
