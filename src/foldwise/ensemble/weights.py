"""Blend weights on the simplex (non-negative, summing to 1), fitted on out-of-fold predictions.

Members are stacked as ``members`` (M, N, P): M runs, N rows, P prediction columns. A blend is the
weighted mean over M. Weights come from greedy forward selection with replacement (Caruana et al.,
"Ensemble selection from libraries of models", ICML 2004): start from the best single member and,
``steps`` times, add one more share of the member that most improves the metric; the weights are
the shares' counts over their total, so their resolution is 1 / steps; it stops early once
``patience`` steps in a row bring no gain. It needs only metric values,
so it works for a piecewise-constant metric such as ROC-AUC where gradient methods stall, and as
the best step is kept (the first being the best member alone), the fitted score is never worse
than the best member's.
"""
from __future__ import annotations

from typing import Callable

import numpy as np
from scipy.stats import rankdata

STEPS = 100  # weight resolution 1 %
PATIENCE = 10  # steps without a gain before stopping

Score = Callable[[np.ndarray, np.ndarray], float]  # (y_true (N, T), y_pred (N, P)) -> metric


def rank_transform(preds: np.ndarray) -> np.ndarray:
    """(N, P) predictions -> their average ranks per column, scaled to (0, 1]."""
    return rankdata(preds, axis=0) / len(preds)


def blend(members: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """members (M, N, P), weights (M,) -> weighted mean (N, P)."""
    return np.tensordot(np.asarray(weights, dtype=np.float64), members, axes=1)


def fit_weights(members: np.ndarray, y_true: np.ndarray, score: Score, greater_is_better: bool,
                steps: int = STEPS, patience: int = PATIENCE) -> np.ndarray:
    """Weights (M,) >= 0 summing to 1 that optimise ``score(y_true, blend(members, w))``."""
    sign = 1.0 if greater_is_better else -1.0
    singles = np.array([score(y_true, m) for m in members])
    first = int(np.argmax(sign * singles))
    counts = np.zeros(len(members))
    counts[first] = 1
    total = members[first].copy()
    best_counts, best, stale = counts.copy(), singles[first], 0
    for n in range(2, steps + 1):
        if len(members) == 1 or stale >= patience:
            break
        trials = np.array([score(y_true, (total + m) / n) for m in members])
        pick = int(np.argmax(sign * trials))
        counts[pick] += 1
        total += members[pick]
        stale += 1
        if sign * trials[pick] > sign * best:
            best_counts, best, stale = counts.copy(), trials[pick], 0
    return best_counts / best_counts.sum()


def held_out_blend(members: np.ndarray, y_true: np.ndarray, folds: np.ndarray, score: Score,
                   greater_is_better: bool, steps: int = STEPS) -> tuple[np.ndarray, dict[int, np.ndarray]]:
    """Each fold's rows blended with weights fitted on the other folds' rows.

    Returns the held-out blend (N, P), an honest out-of-fold prediction of the blend, and the
    weights fitted for each fold.
    """
    out = np.zeros(members.shape[1:])
    fold_weights = {}
    for k in np.unique(folds):
        held = folds == k
        w = fit_weights(members[:, ~held], y_true[~held], score, greater_is_better, steps)
        out[held] = blend(members[:, held], w)
        fold_weights[int(k)] = w
    return out, fold_weights
