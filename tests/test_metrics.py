"""Metrics against hand-made cases, scikit-learn, and insightface's fold computation."""
import numpy as np
import pytest
from sklearn.metrics import roc_auc_score
from sklearn.metrics import roc_curve as sk_roc_curve

from benchmark.protocol.metrics import (
    best_threshold,
    equal_error_rate,
    kfold_accuracy,
    roc_auc,
    roc_curve,
    squared_l2,
    tar_at_far,
)


def test_hand_made_perfect_and_reversed():
    same = np.array([1, 1, 0, 0], bool)
    assert roc_auc(np.array([0.9, 0.8, 0.2, 0.1]), same) == 1.0
    assert roc_auc(np.array([0.1, 0.2, 0.8, 0.9]), same) == 0.0
    assert roc_auc(np.array([0.5, 0.5, 0.5, 0.5]), same) == 0.5  # ties count half
    assert equal_error_rate(np.array([0.9, 0.8, 0.2, 0.1]), same) == 0.0


def test_eer_hand_made():
    # genuine 0.9 0.6 0.3, impostor 0.7 0.2 0.1: at threshold 0.6, FAR 1/3 and FRR 1/3
    scores = np.array([0.9, 0.6, 0.3, 0.7, 0.2, 0.1])
    same = np.array([1, 1, 1, 0, 0, 0], bool)
    assert equal_error_rate(scores, same) == pytest.approx(1 / 3)
    assert tar_at_far(scores, same, 0.0) == pytest.approx(1 / 3)  # only 0.9 beats every impostor
    assert tar_at_far(scores, same, 0.34) == 1.0  # threshold 0.3 admits one impostor of three


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_roc_agrees_with_scikit_learn(seed):
    rng = np.random.default_rng(seed)
    same = rng.random(2000) < 0.5
    scores = np.round(rng.normal(same * 1.5, 1.0), 2)  # rounded: many ties
    assert roc_auc(scores, same) == pytest.approx(roc_auc_score(same, scores), abs=1e-12)
    fpr, tpr, _ = roc_curve(scores, same)
    sk_fpr, sk_tpr, _ = sk_roc_curve(same, scores, drop_intermediate=False)
    np.testing.assert_allclose(fpr, sk_fpr)
    np.testing.assert_allclose(tpr, sk_tpr)


def test_degenerate_input_warns_and_gives_nan():
    with pytest.warns(RuntimeWarning):
        assert np.isnan(roc_auc(np.array([0.1, 0.2]), np.array([True, True])))


def _insightface_folds(dist, same, thresholds):
    """insightface eval/verification.py calculate_roc accuracy part, written out plainly:
    KFold(10, shuffle=False) over pairs in order, first argmax of train accuracy."""
    n = len(dist)
    idx = np.arange(n)
    accs = []
    for k in range(10):
        test = idx[k * n // 10:(k + 1) * n // 10]
        train = np.setdiff1d(idx, test)
        train_acc = [np.mean((dist[train] < t) == same[train]) for t in thresholds]
        t = thresholds[int(np.argmax(train_acc))]
        accs.append(np.mean((dist[test] < t) == same[test]))
    return np.array(accs)


def test_kfold_matches_insightface_computation():
    rng = np.random.default_rng(7)
    same = np.tile(np.r_[np.ones(30, bool), np.zeros(30, bool)], 10)
    dist = np.clip(rng.normal(np.where(same, 0.9, 1.7), 0.35), 0, 4)
    folds = np.repeat(np.arange(10), 60)
    thresholds = np.arange(0, 4, 0.01)
    ours = kfold_accuracy(dist, same, folds, thresholds)
    np.testing.assert_array_equal(ours.accuracies, _insightface_folds(dist, same, thresholds))
    assert 0.8 < ours.mean < 1.0


def test_first_best_threshold_and_distance():
    dist = np.array([0.5, 0.6, 1.5, 1.6])
    same = np.array([1, 1, 0, 0], bool)
    assert best_threshold(dist, same) == pytest.approx(0.61)  # first threshold above 0.6
    e = np.eye(3, dtype=np.float32)
    np.testing.assert_allclose(squared_l2(e, e[[1, 2, 0]]), [2, 2, 2])
