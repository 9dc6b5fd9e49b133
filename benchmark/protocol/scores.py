"""From per-image embeddings to per-pair scores (and their file, ``scores/<method>.npz``) and to
the report's metrics."""
from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np

from face_alignment.atomic import atomic_path

from .metrics import (
    best_threshold,
    equal_error_rate,
    kfold_accuracy,
    roc_auc,
    squared_l2,
    tar_at_far,
)
from .pairs import PairList

#: distance given to a pair with an image that could not be embedded at all (unreadable file), and
#: under strict accuracy to every pair with a face not found: the largest possible squared L2
#: distance of unit vectors, above every threshold of the protocol's grid (``arange(0, 4, 0.01)``),
#: so such a pair is always decided "different person"
UNSCORABLE_DISTANCE = 4.0


@dataclass(frozen=True)
class PairScores:
    """Per-pair results of one method, saved with each run for significance tests."""

    distances: np.ndarray  # squared L2 of the unit embeddings, in [0, 4]
    same: np.ndarray
    folds: np.ndarray
    found: np.ndarray  # both images' faces were found by the detector

    @property
    def strict_distances(self) -> np.ndarray:
        """The distances a real system would have: a pair with a face not found in either image
        (``found`` False: not detected, or unreadable) has no match, so its distance is
        :data:`UNSCORABLE_DISTANCE` ("different"), not that of the fallback crops."""
        return np.where(self.found, self.distances, UNSCORABLE_DISTANCE)

    def strict(self) -> PairScores:
        """These scores with :attr:`strict_distances`: what strict accuracy and the paired tests
        on it score."""
        return PairScores(self.strict_distances, self.same, self.folds, self.found)

    @property
    def similarities(self) -> np.ndarray:
        """Cosine similarity, ``1 - d / 2`` for unit vectors."""
        return 1.0 - self.distances / 2.0

    def save(self, path: str | os.PathLike) -> None:
        """Written atomically, like every output of a run."""
        with atomic_path(path) as tmp, open(tmp, "wb") as fh:
            np.savez(fh, distances=self.distances, same=self.same, folds=self.folds, found=self.found)

    @classmethod
    def load(cls, path: str | os.PathLike) -> PairScores:
        with np.load(path, allow_pickle=False) as data:
            return cls(data["distances"], data["same"].astype(bool), data["folds"], data["found"].astype(bool))


def pair_scores(embeddings: np.ndarray, found: np.ndarray, pairs: PairList,
                probes: tuple[np.ndarray, np.ndarray] | None = None) -> PairScores:
    """Each pair's distance from the per-image ``embeddings`` (``(n_images, D)``, NaN rows where
    an image could not be embedded) and whether both of its faces were ``found`` (``(n_images,)``).

    ``probes`` (embeddings, found), indexed like ``embeddings``, replace the second image of every
    pair: the cross-quality protocol of the robustness benchmark (a clean enrolment photo against
    a degraded probe)."""
    second_embeddings, second_found = probes if probes is not None else (embeddings, found)
    distances = squared_l2(embeddings[pairs.first], second_embeddings[pairs.second]).astype(np.float64)
    distances[np.isnan(distances)] = UNSCORABLE_DISTANCE
    return PairScores(distances, pairs.same, pairs.folds, found[pairs.first] & second_found[pairs.second])


def summarize(scores: PairScores) -> dict[str, float]:
    """The accuracy columns of the report (fractions, not percent). ``accuracy`` scores every pair,
    a face not found at its fallback crop; ``strict_accuracy`` the same protocol with such a pair
    decided "different" (:attr:`PairScores.strict_distances`); ``accuracy_found`` only the pairs
    with both faces found."""
    overall = kfold_accuracy(scores.distances, scores.same, scores.folds)
    strict = kfold_accuracy(scores.strict_distances, scores.same, scores.folds)
    f = scores.found
    found = kfold_accuracy(scores.distances[f], scores.same[f], scores.folds[f]) if f.any() else None
    sims = scores.similarities
    return {
        "accuracy": overall.mean,
        "accuracy_std": overall.std,
        "strict_accuracy": strict.mean,
        "strict_accuracy_std": strict.std,
        "accuracy_found": found.mean if found is not None else float("nan"),
        "n_pairs_found": int(f.sum()),
        "roc_auc": roc_auc(sims, scores.same),
        "eer": equal_error_rate(sims, scores.same),
        "tar_far_1e-3": tar_at_far(sims, scores.same, 1e-3),
        "tar_far_1e-2": tar_at_far(sims, scores.same, 1e-2),
        "threshold": best_threshold(scores.distances, scores.same),
    }
