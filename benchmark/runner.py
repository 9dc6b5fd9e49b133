"""The LFW benchmark runner: detect, align and embed each unique image once, score the pairs.

Per method, images are decoded by a thread pool in chunks (memory stays bounded by the chunk),
detected in small batches, the target face picked and aligned, the crops embedded in batches,
and the results saved to the method's cache after every chunk, so an interrupted run resumes
where it stopped. A face not found is aligned with :data:`FALLBACK_LANDMARKS` (the median
landmark positions of LFW faces, as fractions of the image size: a centre crop at LFW's framing)
and counted; an unreadable image is counted and its pairs scored as "different".
"""
from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import cv2
import numpy as np
from tqdm.auto import tqdm

from backbones import DEFAULT_EMBEDDER, Embedder
from face_alignment import CROP_SIZE, align_face, create_detector, load_image
from face_alignment.errors import FaceBenchError, ImageError
from face_alignment.selection import refine_targets
from face_alignment.weights import sha256_file

from .cache import FALLBACK, FOUND, PENDING, STATUS_NAMES, UNREADABLE, MethodResults, cache_key
from .evaluate import pair_scores, summarize
from .lfw import PairList, check_images, find_image_root, find_pairs_file, read_pairs, subset_pairs
from .report import write_image_log, write_report
from .sysinfo import PeakMemory, git_commit, library_versions

log = logging.getLogger(__name__)

REFERENCE = "reference"
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
            return [_fallback(images[0], f"detector error: {type(exc).__name__}: {exc}")]
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


def _safe_load(path: Path) -> tuple[np.ndarray | None, str]:
    try:
        return load_image(path), ""
    except ImageError as exc:
        return None, str(exc)


def process_images(images: Sequence[str], root: Path, cropper: Cropper, embedder: Embedder,
                   results: MethodResults, flip: bool = False, workers: int = 2, detect_batch: int = 8,
                   chunk: int = 256, save: Callable[[], None] | None = None, desc: str = "",
                   progress: bool = True) -> MethodResults:
    """Fill ``results`` for every image still pending; ``save`` is called after each chunk."""
    todo = np.flatnonzero(results.status == PENDING)
    started = time.perf_counter()
    bar = tqdm(total=len(images), initial=len(images) - len(todo), desc=desc, unit="img",
               disable=not progress, leave=False)
    with ThreadPoolExecutor(max(1, workers)) as pool:
        for start in range(0, len(todo), chunk):
            indices = todo[start:start + chunk]
            loaded = list(pool.map(_safe_load, [root / images[i] for i in indices]))
            readable = []
            for i, (image, error) in zip(indices, loaded):
                if image is None:
                    results.status[i], results.reasons[int(i)] = UNREADABLE, error
                else:
                    readable.append((i, image))
            done: list[tuple[int, Outcome]] = []
            for b in range(0, len(readable), detect_batch):
                batch = readable[b:b + detect_batch]
                t0 = time.perf_counter()
                outcomes = cropper([image for _, image in batch])
                per_image_ms = (time.perf_counter() - t0) * 1000.0 / len(batch)
                for (i, _), outcome in zip(batch, outcomes):
                    results.detect_ms[i] = per_image_ms
                    done.append((i, outcome))
            if done:
                t0 = time.perf_counter()
                embeddings = embedder.embed(np.stack([o.crop for _, o in done]), flip=flip)
                results.embed_seconds += time.perf_counter() - t0
                for (i, outcome), embedding in zip(done, embeddings):
                    results.embeddings[i] = embedding
                    results.landmarks[i], results.scores[i] = outcome.landmarks, outcome.score
                    results.status[i] = outcome.status
                    if outcome.reason:
                        results.reasons[int(i)] = outcome.reason
            results.wall_seconds += time.perf_counter() - started
            started = time.perf_counter()
            if save is not None:
                save()
            bar.update(len(indices))
    bar.close()
    return results


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
    embedder: str = DEFAULT_EMBEDDER
    embedder_weights: str | Path | None = None
    quantized: bool = False
    resume: bool = True
    max_pairs: int | None = None
    progress: bool = True


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
    missing = check_images(pairs, image_root)
    if missing:
        log.warning("%d of %d images are missing under %s (counted as unreadable), e.g. %s",
                    len(missing), len(pairs.images), image_root, missing[0])
    return pairs, image_root


def run_benchmark(config: RunConfig) -> list[dict]:
    """Run every method of ``config`` on the LFW pairs; returns the report rows (also written
    to ``<out>/report.csv`` after each method, so finished work is on disk)."""
    pairs, image_root = load_protocol(config)
    out = Path(config.out)
    embedder = Embedder.from_weights(config.embedder, config.embedder_weights, config.weights_dir, config.device,
                                     config.batch_size, config.quantized)
    meta = {
        "n_pairs": len(pairs), "n_images": len(pairs.images), "flip": config.flip, "device": embedder.device,
        "embedder": embedder.name, "embedder_sha256": embedder.weights_sha256, "versions": library_versions(),
        "git_commit": git_commit(), "started_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }
    rows = []
    methods = list(config.methods)
    if config.aligned_dir:
        methods.insert(0, REFERENCE)
    for method in methods:
        rows.append(_run_method(method, config, pairs, image_root, embedder, meta, out))
        write_report(rows, out / "report.csv")
    log.info("report written to %s", out / "report.csv")
    return rows


def _run_method(method: str, config: RunConfig, pairs: PairList, image_root: Path, embedder: Embedder,
                meta: dict, out: Path) -> dict:
    row = {"method": method, **meta}
    try:
        with PeakMemory(embedder.device) as memory:
            if method == REFERENCE:
                root, cropper, weight_paths = Path(config.aligned_dir), reference_cropper, []
            else:
                detector = create_detector(method, device=config.device, weights_dir=config.weights_dir)
                root, cropper, weight_paths = image_root, detector_cropper(detector), detector.weight_paths
                row["detector_model"] = detector.model_label
            weights_sha = _weights_sha256(weight_paths)
            key = cache_key(method=method, weights=weights_sha, embedder=meta["embedder_sha256"],
                            quantized=config.quantized, flip=config.flip, device=embedder.device,
                            root=str(root.resolve()), images=pairs.images)
            cache_path = out / "cache" / f"{method}-{key[:16]}.npz"
            results = (MethodResults.load(cache_path, len(pairs.images)) if config.resume else None) \
                or MethodResults.empty(len(pairs.images))
            if results.done:
                log.info("%s: resuming from %s (%d/%d images done)", method, cache_path, results.done,
                         len(pairs.images))
            process_images(pairs.images, root, cropper, embedder, results, config.flip, config.workers,
                           config.detect_batch, save=lambda: results.save(cache_path), desc=method,
                           progress=config.progress)
        scores = pair_scores(results, pairs)
        (out / "scores").mkdir(parents=True, exist_ok=True)
        scores.save(out / "scores" / f"{method}.npz")
        write_image_log(out / "images" / f"{method}.csv", pairs.images, results, STATUS_NAMES)
        row.update(summarize(scores))
        row.update(_timing(results, memory, weights_sha))
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
