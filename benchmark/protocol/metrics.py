"""Verification metrics as pure functions of arrays.

The 10-fold accuracy follows insightface ``eval/verification.py``: squared L2 distance of
L2-normalised embeddings, thresholds ``arange(0, 4, 0.01)``, a pair predicted "same" when its
distance is below the threshold, each fold scored with the first best threshold of the other
nine folds. ROC AUC, EER and TAR@FAR use the cosine similarity (higher = more alike), which for
unit vectors is ``1 - distance / 2``.
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np

DEFAULT_THRESHOLDS = np.arange(0, 4, 0.01)


@dataclass(frozen=True)
class FoldAccuracy:
    """Per-fold test accuracy and the threshold each fold used (chosen on the other folds)."""

    accuracies: np.ndarray
    thresholds: np.ndarray

    @property
    def mean(self) -> float:
        return float(np.mean(self.accuracies))

    @property
    def std(self) -> float:
        return float(np.std(self.accuracies))


def squared_l2(emb1: np.ndarray, emb2: np.ndarray) -> np.ndarray:
    """Squared L2 distance of paired rows, ``(N, D), (N, D) -> (N,)``."""
    return np.sum(np.square(np.subtract(emb1, emb2)), axis=1)


def _accuracy(distances: np.ndarray, same: np.ndarray, threshold: float) -> float:
    predicted = distances < threshold
    return float(np.count_nonzero(predicted == same)) / max(1, len(same))


def kfold_accuracy(distances: np.ndarray, same: np.ndarray, folds: np.ndarray,
                   thresholds: np.ndarray = DEFAULT_THRESHOLDS) -> FoldAccuracy:
    """10-fold (or ``len(unique(folds))``-fold) verification accuracy, insightface rule.

    Parameters
    ----------
    distances : (N,) squared L2 distances
    same : (N,) bool, True for same-identity pairs
    folds : (N,) int fold index of each pair
    """
    distances, same, folds = np.asarray(distances), np.asarray(same, bool), np.asarray(folds)
    accs, chosen = [], []
    for fold in np.unique(folds):
        test, train = folds == fold, folds != fold
        train_acc = [_accuracy(distances[train], same[train], t) for t in thresholds]
        best = thresholds[int(np.argmax(train_acc))]
        chosen.append(best)
        accs.append(_accuracy(distances[test], same[test], best))
    return FoldAccuracy(np.array(accs), np.array(chosen))


def kfold_decisions(distances: np.ndarray, same: np.ndarray, folds: np.ndarray,
                    thresholds: np.ndarray = DEFAULT_THRESHOLDS) -> np.ndarray:
    """Each pair's "same" decision under :func:`kfold_accuracy`'s rule: the pair is judged by
    its fold's threshold (chosen on the other folds). For paired tests between two methods.

    Returns
    -------
    (N,) bool; ``mean(decisions == same)`` within fold ``k`` is ``kfold_accuracy(...).accuracies[k]``
    """
    distances, folds = np.asarray(distances), np.asarray(folds)
    fold_thresholds = kfold_accuracy(distances, same, folds, thresholds).thresholds
    pair_thresholds = fold_thresholds[np.searchsorted(np.unique(folds), folds)]
    return distances < pair_thresholds


def best_threshold(distances: np.ndarray, same: np.ndarray, thresholds: np.ndarray = DEFAULT_THRESHOLDS) -> float:
    """The first threshold with the best accuracy on all pairs."""
    accs = [_accuracy(np.asarray(distances), np.asarray(same, bool), t) for t in thresholds]
    return float(thresholds[int(np.argmax(accs))])


def _check_binary(scores, same) -> tuple[np.ndarray, np.ndarray] | None:
    scores, same = np.asarray(scores, dtype=np.float64), np.asarray(same, dtype=bool)
    if same.all() or not same.any():
        warnings.warn("only one class of pairs: ROC metrics are undefined", RuntimeWarning, stacklevel=3)
        return None
    return scores, same


def roc_curve(scores: np.ndarray, same: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """False-accept rate, true-accept rate and thresholds at each distinct score (descending),
    starting at (0, 0). A pair is accepted when its score is >= the threshold."""
    checked = _check_binary(scores, same)
    if checked is None:
        return np.array([np.nan]), np.array([np.nan]), np.array([np.nan])
    scores, same = checked
    order = np.argsort(-scores, kind="mergesort")
    scores, same = scores[order], same[order]
    last_of_run = np.r_[np.flatnonzero(np.diff(scores)), len(scores) - 1]
    tp = np.cumsum(same)[last_of_run]
    fp = np.cumsum(~same)[last_of_run]
    fpr = np.r_[0.0, fp / fp[-1]]
    tpr = np.r_[0.0, tp / tp[-1]]
    return fpr, tpr, np.r_[np.inf, scores[last_of_run]]


def roc_auc(scores: np.ndarray, same: np.ndarray) -> float:
    """Area under the ROC curve (ties counted half), NaN when only one class is present."""
    fpr, tpr, _ = roc_curve(scores, same)
    return float(np.trapezoid(tpr, fpr)) if not np.isnan(fpr[0]) else float("nan")


def equal_error_rate(scores: np.ndarray, same: np.ndarray) -> float:
    """The rate at which false accepts equal false rejects, interpolated on the ROC curve."""
    fpr, tpr, _ = roc_curve(scores, same)
    if np.isnan(fpr[0]):
        return float("nan")
    fnr = 1.0 - tpr
    i = int(np.flatnonzero(fnr <= fpr)[0])  # first point where the curves have crossed
    if i == 0:
        return float(fpr[0])
    # linear interpolation between points i-1 and i of (fpr - fnr), which changes sign there
    d0, d1 = fpr[i - 1] - fnr[i - 1], fpr[i] - fnr[i]
    w = d0 / (d0 - d1) if d0 != d1 else 0.0
    return float(fpr[i - 1] + w * (fpr[i] - fpr[i - 1]))


def tar_at_far(scores: np.ndarray, same: np.ndarray, far: float) -> float:
    """True-accept rate at the strictest threshold whose false-accept rate is at most ``far``."""
    fpr, tpr, _ = roc_curve(scores, same)
    if np.isnan(fpr[0]):
        return float("nan")
    return float(tpr[np.flatnonzero(fpr <= far)[-1]])
