"""Per-method results, saved atomically as work progresses so that an interrupted run resumes.

A cache file is named by a key over everything that produced it (method, options, weights
sha256, embedder, flip, the image list), so a stale cache is never reused: a changed input
simply has another file.
"""
from __future__ import annotations

import hashlib
import json
import logging
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


def cache_key(**parts) -> str:
    """A sha256 over the JSON of ``parts`` (sorted keys)."""
    blob = json.dumps({"version": CACHE_VERSION, **parts}, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()


@dataclass
class MethodResults:
    """Everything one method produced for ``n`` images, indexed like the image list."""

    embeddings: np.ndarray  # (n, 512) float32, NaN rows where nothing could be embedded
    status: np.ndarray  # (n,) int8, see STATUS_NAMES
    landmarks: np.ndarray  # (n, 5, 2) float32, NaN where none
    scores: np.ndarray  # (n,) float32 detector confidence, NaN where none
    detect_ms: np.ndarray  # (n,) float32 detect + select + align time, NaN where not run
    reasons: dict[int, str] = field(default_factory=dict)
    embed_seconds: float = 0.0
    wall_seconds: float = 0.0  # summed over the runs (and resumes) that filled this cache
    peak_rss_mb: float = 0.0  # the highest over the runs that processed images (a resume that only
    peak_gpu_mb: float = 0.0  # reads the cache does not lower or replace them)

    @classmethod
    def empty(cls, n: int, dim: int = 512) -> MethodResults:
        nan = np.float32("nan")
        return cls(np.full((n, dim), nan, np.float32), np.zeros(n, np.int8), np.full((n, 5, 2), nan, np.float32),
                   np.full(n, nan, np.float32), np.full(n, nan, np.float32))

    def save(self, path: Path) -> None:
        """Write through a temporary file and ``os.replace``: a kill never leaves half a file."""
        with atomic_path(path) as tmp, open(tmp, "wb") as fh:
            np.savez(fh, embeddings=self.embeddings, status=self.status, landmarks=self.landmarks,
                     scores=self.scores, detect_ms=self.detect_ms,
                     reasons=np.array(json.dumps({str(k): v for k, v in self.reasons.items()})),
                     embed_seconds=np.array(self.embed_seconds), wall_seconds=np.array(self.wall_seconds),
                     peak_rss_mb=np.array(self.peak_rss_mb), peak_gpu_mb=np.array(self.peak_gpu_mb))

    @classmethod
    def load(cls, path: Path, n: int) -> MethodResults | None:
        """The cached results at ``path``, or None when absent, unreadable or not results for
        ``n`` images (then they are recomputed: a cache is never needed, only reused)."""
        if not path.is_file():
            return None
        try:
            with np.load(path, allow_pickle=False) as data:
                peaks = [float(data[k]) if k in data.files else 0.0 for k in ("peak_rss_mb", "peak_gpu_mb")]
                results = cls(data["embeddings"], data["status"], data["landmarks"], data["scores"],
                              data["detect_ms"], {int(k): v for k, v in json.loads(str(data["reasons"])).items()},
                              float(data["embed_seconds"]), float(data["wall_seconds"]), *peaks)
        except Exception as exc:  # a truncated zip, EOF, not an npz, a missing array, bad JSON ...
            log.warning("ignoring unreadable cache %s (%s: %s); recomputing", path, type(exc).__name__, exc)
            return None
        problem = results._mismatch(n)
        if problem:
            log.warning("ignoring cache %s: %s; recomputing", path, problem)
            return None
        return results

    def _mismatch(self, n: int) -> str:
        """Why these arrays are not results for ``n`` images, or ``""``."""
        shapes = {"status": (n,), "landmarks": (n, 5, 2), "scores": (n,), "detect_ms": (n,)}
        for name, shape in shapes.items():
            if getattr(self, name).shape != shape:
                return f"{name} has shape {getattr(self, name).shape}, expected {shape} ({n} images)"
        if self.embeddings.ndim != 2 or len(self.embeddings) != n:
            return f"embeddings have shape {self.embeddings.shape}, expected ({n}, dim)"
        if not np.isin(self.status, list(STATUS_NAMES)).all():
            return "unknown status codes"
        return ""

    def record_peaks(self, rss_mb: float, gpu_mb: float) -> None:
        """Take the peak memory of a run that processed images into the highest so far."""
        self.peak_rss_mb = max(self.peak_rss_mb, rss_mb)
        self.peak_gpu_mb = max(self.peak_gpu_mb, gpu_mb)

    @property
    def done(self) -> int:
        return int(np.count_nonzero(self.status != PENDING))

    def score(self, pairs: PairList) -> PairScores:
        """The per-pair scores of ``pairs`` (whose image list these results are indexed by)."""
        return pair_scores(self.embeddings, self.status == FOUND, pairs)
