"""Per-method results, cached chunk by chunk as work progresses so that an interrupted run resumes.

A method's cache is a folder named by a key over everything that produced it (method, options,
weights sha256, embedder, flip, the image list), so a stale cache is never reused: a changed input
simply has another folder. In it, each committed chunk is one shard file
(``shard-<first index>-<count>.npz``: the chunk's image indices and their rows), written once,
atomically, and never rewritten, so a run's cache I/O is linear in its images; ``totals.json``
holds the run totals (times, peak memory), a few bytes rewritten after each chunk. Loading reads
the shards in order into one :class:`MethodResults` of in-memory arrays, so that scoring never
sees the shards. A damaged shard is removed and its images are pending again (a cache is never
needed, only reused).

Earlier versions kept one ``<folder name>.npz`` beside the folder, rewritten whole after every
chunk (I/O growing with the square of the images). :meth:`ShardCache.load` reads such a file once
and moves its finished images into a shard: they are exactly what the same key would compute
again, and on a large set recomputing them would cost hours.
"""
from __future__ import annotations

import hashlib
import json
import logging
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from face_alignment.atomic import atomic_path

from ..protocol.pairs import PairList
from ..protocol.scores import PairScores, pair_scores

log = logging.getLogger(__name__)

CACHE_VERSION = 1

#: per-image status codes
PENDING, FOUND, FALLBACK, UNREADABLE = 0, 1, 2, 3
STATUS_NAMES = {PENDING: "pending", FOUND: "found", FALLBACK: "no_face_fallback", UNREADABLE: "unreadable"}

#: the per-image arrays of :class:`MethodResults`, as a shard stores them
ROW_ARRAYS = ("embeddings", "status", "landmarks", "scores", "detect_ms", "boxes", "points")
#: the run totals of :class:`MethodResults`, as ``totals.json`` stores them
TOTALS = ("embed_seconds", "wall_seconds", "peak_rss_mb", "peak_gpu_mb", "peak_gpu_reserved_mb", "peak_gpu_nvml_mb",
          "detections_reused")
TOTALS_FILE = "totals.json"
_SHARD_NAME = re.compile(r"shard-(\d+)-(\d+)\.npz")


def cache_key(**parts) -> str:
    """A sha256 over the JSON of ``parts`` (sorted keys)."""
    blob = json.dumps({"version": CACHE_VERSION, **parts}, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()


def memory_peaks(memory) -> tuple[float, float, float, float]:
    """A :class:`~.sysinfo.PeakMemory`'s peaks in MiB, in :meth:`MethodResults.record_peaks`'s
    order: RSS, torch's allocated and reserved GPU memory, NVML's (NaN where not measured)."""
    nvml = memory.gpu.nvml_mb
    return (memory.peak_rss_mb, memory.gpu.torch_allocated_mb, memory.gpu.torch_reserved_mb,
            float(nvml) if isinstance(nvml, float | int) else float("nan"))


@dataclass
class MethodResults:
    """Everything one method produced for ``n`` images, indexed like the image list."""

    embeddings: np.ndarray  # (n, 512) float32, NaN rows where nothing could be embedded
    status: np.ndarray  # (n,) int8, see STATUS_NAMES
    landmarks: np.ndarray  # (n, 5, 2) float32, NaN where none
    scores: np.ndarray  # (n,) float32 detector confidence, NaN where none
    detect_ms: np.ndarray  # (n,) float32 detect + select + align time, NaN where not run
    boxes: np.ndarray  # (n, 4) float32 the box the crop was aligned from, in the detector's image's pixels
    points: np.ndarray  # (n, 5, 2) float32 the points the crop was aligned from, in the same pixels
    reasons: dict[int, str] = field(default_factory=dict)
    embed_seconds: float = 0.0
    wall_seconds: float = 0.0  # summed over the runs (and resumes) that filled this cache
    peak_rss_mb: float = 0.0  # the highest over the runs that processed images (a resume that only
    peak_gpu_mb: float = 0.0  # reads the cache does not lower or replace them); GPU: torch's allocated,
    peak_gpu_reserved_mb: float = 0.0  # torch's reserved,
    peak_gpu_nvml_mb: float = float("nan")  # NVML's for the process (NaN: never measured)
    detections_reused: float = 0.0  # images aligned from cached detections, not detected (detect once, embed many)

    @classmethod
    def empty(cls, n: int, dim: int = 512) -> MethodResults:
        nan = np.float32("nan")
        return cls(np.full((n, dim), nan, np.float32), np.zeros(n, np.int8), np.full((n, 5, 2), nan, np.float32),
                   np.full(n, nan, np.float32), np.full(n, nan, np.float32), np.full((n, 4), nan, np.float32),
                   np.full((n, 5, 2), nan, np.float32))

    def record_peaks(self, rss_mb: float, gpu_mb: float, gpu_reserved_mb: float, gpu_nvml_mb: float) -> None:
        """Take the peaks of a run that processed images (:func:`memory_peaks`; NaN: not
        measured) into the highest so far."""
        self.peak_rss_mb = float(np.fmax(self.peak_rss_mb, rss_mb))
        self.peak_gpu_mb = float(np.fmax(self.peak_gpu_mb, gpu_mb))
        self.peak_gpu_reserved_mb = float(np.fmax(self.peak_gpu_reserved_mb, gpu_reserved_mb))
        self.peak_gpu_nvml_mb = float(np.fmax(self.peak_gpu_nvml_mb, gpu_nvml_mb))

    @property
    def done(self) -> int:
        return int(np.count_nonzero(self.status != PENDING))

    def score(self, pairs: PairList) -> PairScores:
        """The per-pair scores of ``pairs`` (whose image list these results are indexed by)."""
        return pair_scores(self.embeddings, self.status == FOUND, pairs)


@dataclass(frozen=True)
class Shard:
    """One committed chunk of a method's results: the rows of the images ``indices``. It holds
    only the chunk, so another process (a worker of another engine) can build it and write it."""

    indices: np.ndarray  # (k,) int64, positions in the image list
    embeddings: np.ndarray  # (k, dim) and so on: the rows of ROW_ARRAYS for those images
    status: np.ndarray
    landmarks: np.ndarray
    scores: np.ndarray
    detect_ms: np.ndarray
    boxes: np.ndarray
    points: np.ndarray
    reasons: dict[int, str]  # by image index

    @classmethod
    def of(cls, results: MethodResults, indices: np.ndarray) -> Shard:
        """The rows of ``indices`` (a committed chunk) in ``results``, copied."""
        indices = np.asarray(indices, np.int64)
        reasons = {int(i): results.reasons[int(i)] for i in indices if int(i) in results.reasons}
        return cls(indices, *(getattr(results, name)[indices] for name in ROW_ARRAYS), reasons)

    @classmethod
    def read(cls, path: Path) -> Shard:
        """The shard at ``path``; raises on a damaged file (truncated, not an npz, a missing array)."""
        with np.load(path, allow_pickle=False) as data:
            return cls(data["indices"], *(data[name] for name in ROW_ARRAYS),
                       {int(k): v for k, v in json.loads(str(data["reasons"])).items()})

    def write(self, folder: Path) -> Path:
        """Write this shard into ``folder`` through a temporary file: a kill never leaves half of it."""
        path = Path(folder) / f"shard-{int(self.indices[0]):09d}-{len(self.indices)}.npz"
        with atomic_path(path) as tmp, open(tmp, "wb") as fh:
            np.savez(fh, indices=self.indices, **{name: getattr(self, name) for name in ROW_ARRAYS},
                     reasons=np.array(json.dumps({str(k): v for k, v in self.reasons.items()})))
        return path

    def misfit(self, status: np.ndarray, dim: int) -> str:
        """Why this shard cannot go into results of ``dim``-wide embeddings whose images have
        ``status`` (its images absent there or already filled), or ``""``."""
        k = len(self.indices)
        if self.indices.ndim != 1 or not np.issubdtype(self.indices.dtype, np.integer):
            return "its indices are not a list of image positions"
        shapes = {"embeddings": (k, dim), "status": (k,), "landmarks": (k, 5, 2), "scores": (k,), "detect_ms": (k,),
                  "boxes": (k, 4), "points": (k, 5, 2)}
        for name, shape in shapes.items():
            if getattr(self, name).shape != shape:
                return f"{name} has shape {getattr(self, name).shape}, expected {shape}"
        if k and (self.indices.min() < 0 or self.indices.max() >= len(status)):
            return f"its images are not all among the {len(status)} of the list"
        if len(np.unique(self.indices)) != k or np.any(status[self.indices] != PENDING):
            return "its images are repeated, in it or in an earlier shard"
        if not np.isin(self.status, list(STATUS_NAMES)).all():
            return "unknown status codes"
        return ""

    def put_into(self, results: MethodResults) -> None:
        for name in ROW_ARRAYS:
            getattr(results, name)[self.indices] = getattr(self, name)
        results.reasons.update(self.reasons)


class ShardCache:
    """A method's cache folder: a shard per committed chunk and the run totals (module docstring)."""

    def __init__(self, folder: str | Path) -> None:
        self.folder = Path(folder)

    @property
    def legacy(self) -> Path:
        """The single-file cache that earlier versions kept for the same key."""
        return self.folder.parent / f"{self.folder.name}.npz"

    def shard_paths(self) -> list[Path]:
        """The shard files, by first index (temporary files of a killed writer are not shards)."""
        names = {p: _SHARD_NAME.fullmatch(p.name) for p in self.folder.glob("shard-*.npz")}
        return sorted((p for p, m in names.items() if m), key=lambda p: tuple(map(int, names[p].groups())))

    def write_chunk(self, results: MethodResults, indices: np.ndarray) -> Path:
        """Cache the chunk ``indices`` just committed into ``results``: its shard, then the totals."""
        path = Shard.of(results, indices).write(self.folder)
        self.write_totals(results)
        return path

    def write_totals(self, results: MethodResults) -> None:
        """Replace ``totals.json`` with the run totals of ``results`` (a few bytes, atomically)."""
        with atomic_path(self.folder / TOTALS_FILE) as tmp:
            tmp.write_text(json.dumps({name: float(getattr(results, name)) for name in TOTALS}))

    def clear(self) -> None:
        """Remove this cache's files (a run that does not resume starts from nothing)."""
        for path in [*self.shard_paths(), self.folder / TOTALS_FILE, self.legacy]:
            path.unlink(missing_ok=True)

    def load(self, n: int, dim: int = 512) -> MethodResults | None:
        """The cached results for ``n`` images, or None when there are none. A damaged shard is
        removed, one that does not fit ``n`` images ignored, each with a warning: their images
        are pending again."""
        self._adopt_legacy(n, dim)
        paths = self.shard_paths()
        if not paths:
            return None
        results = MethodResults.empty(n, dim)
        for path in paths:
            try:
                shard = Shard.read(path)
            except Exception as exc:  # a truncated zip, EOF, not an npz, a missing array, bad JSON ...
                log.warning("removing unreadable cache shard %s (%s: %s); its images are redone", path,
                            type(exc).__name__, exc)
                path.unlink(missing_ok=True)
                continue
            problem = shard.misfit(results.status, dim)
            if problem:
                log.warning("ignoring cache shard %s: %s; its images are redone", path, problem)
                continue
            shard.put_into(results)
        self._read_totals(results)
        return results

    def _read_totals(self, results: MethodResults) -> None:
        try:
            totals = json.loads((self.folder / TOTALS_FILE).read_text())
            for name in TOTALS:  # a name an earlier version did not write keeps its default
                setattr(results, name, float(totals.get(name, getattr(results, name))))
        except (OSError, ValueError, KeyError, TypeError) as exc:
            log.warning("cache %s has no readable run totals (%s: %s): its times and peak memory start from "
                        "zero", self.folder, type(exc).__name__, exc)

    def _adopt_legacy(self, n: int, dim: int) -> None:
        """Move the single-file cache of an earlier version into a shard, once, then remove it."""
        if not self.legacy.is_file():
            return
        if self.shard_paths():  # moved already, the removal interrupted
            log.info("removing %s, already moved into %s", self.legacy, self.folder)
        else:
            results, problem = _read_legacy(self.legacy, n, dim)
            if problem:
                log.warning("ignoring the old single-file cache %s (%s): its images are recomputed", self.legacy,
                            problem)
            else:
                self.write_totals(results)  # first: a kill before the shard leaves the old file to move again
                done = np.flatnonzero(results.status != PENDING)
                if done.size:
                    Shard.of(results, done).write(self.folder)
                log.warning("read the old single-file cache %s (%d/%d images done) and moved it into %s; the "
                            "rest is cached there chunk by chunk", self.legacy, done.size, n, self.folder)
        self.legacy.unlink(missing_ok=True)


def _read_legacy(path: Path, n: int, dim: int) -> tuple[MethodResults, str]:
    """The results in an earlier version's single file, and why they are unusable (or ``""``)."""
    try:
        with np.load(path, allow_pickle=False) as data:
            peaks = [float(data[k]) if k in data.files else 0.0 for k in ("peak_rss_mb", "peak_gpu_mb")]
            rows = [data[name] for name in ROW_ARRAYS[:5]]  # the single file predates the boxes and points
            k = len(rows[1])
            rows += [np.full((k, 4), np.nan, np.float32), np.full((k, 5, 2), np.nan, np.float32)]
            results = MethodResults(*rows, {int(k): v for k, v in json.loads(str(data["reasons"])).items()},
                                    float(data["embed_seconds"]), float(data["wall_seconds"]), *peaks)
    except Exception as exc:  # a truncated zip, EOF, not an npz, a missing array, bad JSON ...
        return MethodResults.empty(0), f"unreadable: {type(exc).__name__}: {exc}"
    if results.status.shape != (n,):
        return results, f"status has shape {results.status.shape}, expected ({n},)"
    whole = Shard(np.arange(n), *(getattr(results, name) for name in ROW_ARRAYS), {})
    return results, whole.misfit(np.zeros(n, np.int8), dim)
