"""benchmarks/baselines.py's pieces that decide a row: the per-fold linear and constant predictions,
the margin the goal asks for, and its --set parsing. The pipeline runs themselves are the script's."""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
import baselines  # noqa: E402


def two_blobs(n: int = 200, seed: int = 0):
    """Features (n, 4) whose first column tells the class of y (n, 1), five folds of 40 rows."""
    rng = np.random.default_rng(seed)
    y = (np.arange(n) % 2).astype(float)[:, None]
    x = rng.standard_normal((n, 4)) + 3.0 * y
    return x, y, np.arange(n) % 5


def test_constant_predicts_the_training_folds_class_shares():
    x, y, fold_of = two_blobs()
    y[:10] = 1.0  # fold shares differ from 0.5
    preds = baselines.fold_predictions(x, y, fold_of, [0, 1, 2, 3, 4], "multiclass", 2, "constant")
    for k in range(5):
        held = fold_of == k
        share = np.bincount(y[~held, 0].astype(int), minlength=2) / (~held).sum()
        np.testing.assert_allclose(preds[held], np.tile(share, (held.sum(), 1)))


@pytest.mark.parametrize("kind, n_out", [("binary", 1), ("multiclass", 2), ("regression", 1)])
def test_linear_fits_each_fold_on_the_others_and_separates_blobs(kind, n_out):
    x, y, fold_of = two_blobs()
    preds = baselines.fold_predictions(x, y, fold_of, [0, 2], kind, n_out, "linear")
    scored = np.isin(fold_of, [0, 2])
    assert (preds[~scored] == 0).all()  # folds not asked for stay unpredicted
    score = preds[scored, -1] if n_out == 2 else preds[scored, 0]
    assert np.mean((score > 0.5) == (y[scored, 0] == 1)) > 0.95


def test_vote_shares_are_fitted_as_soft_targets_not_as_their_consensus_class():
    """HMS-like targets: 3 classes whose vote shares follow the features smoothly; the linear fit
    must predict the shares (low KL), the constant the training folds' mean share."""
    rng = np.random.default_rng(0)
    x = rng.standard_normal((300, 3))
    logits = np.stack([x[:, 0], -x[:, 0], 0.5 * x[:, 1]], axis=1)
    shares = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    fold_of = np.arange(300) % 5
    linear = baselines.fold_predictions(x, shares, fold_of, [0, 1, 2, 3, 4], "multiclass", 3, "linear")
    constant = baselines.fold_predictions(x, shares, fold_of, [0, 1, 2, 3, 4], "multiclass", 3, "constant")
    np.testing.assert_allclose(constant[fold_of == 0], np.tile(shares[fold_of != 0].mean(axis=0), (60, 1)))
    kl = lambda p: float(np.mean(np.sum(shares * np.log(shares / np.clip(p, 1e-9, None)), axis=1)))
    assert kl(linear) < 0.02 < 0.1 < kl(constant)


def test_regularisation_is_chosen_on_an_inner_fold_so_noise_does_not_overfit():
    """Labels independent of 60 noise features: at a fixed C=0.1 the logistic regression fits the
    noise; the chosen C must leave predictions near the class share (log loss near the constant's)."""
    from sklearn.metrics import log_loss

    rng = np.random.default_rng(1)
    x = rng.standard_normal((200, 60))
    y = (np.arange(200) % 2).astype(float)[:, None]
    fold_of = np.arange(200) % 5
    linear = baselines.fold_predictions(x, y, fold_of, [0, 1, 2, 3, 4], "binary", 1, "linear")[:, 0]
    fixed = np.concatenate([baselines.logistic_probs(0.1, x[fold_of != k], np.eye(2)[y[fold_of != k, 0].astype(int)],
                                                     x[fold_of == k])[:, 1] for k in range(5)])
    order = np.concatenate([np.flatnonzero(fold_of == k) for k in range(5)])
    assert log_loss(y[:, 0], linear) < 0.70 < 0.75 < log_loss(y[order, 0], fixed)


@pytest.mark.parametrize("row, expected", [
    ({"metric": "f1", "greater": True, "linear": 0.33, "default": 0.40}, (0.07, 0.02)),
    ({"metric": "accuracy", "greater": True, "linear": 0.97, "default": 0.98}, (0.01, 0.003)),  # 10% of 0.03
    ({"metric": "rmse", "greater": False, "linear": 20.0, "default": 17.0}, (3.0, 2.0)),
    ({"metric": "neg_root_mean_squared_error", "greater": True, "linear": -0.1, "default": -0.08}, (0.02, 0.01)),
    ({"metric": "kl", "greater": False, "linear": 1.0}, (None, 0.1)),
])
def test_margin_is_the_lead_and_the_goal_is_002_or_a_tenth_of_the_error(row, expected):
    lead, needed = baselines.margin(row)
    assert (lead is None) == (expected[0] is None)
    if lead is not None:
        assert lead == pytest.approx(expected[0])
    assert needed == pytest.approx(expected[1])


def test_set_reads_dotted_keys_and_yaml_12_values():
    assert baselines.dotted("train.lr=1e-3") == {"train": {"lr": 0.001}}
    assert baselines.dotted("folds=[0]") == {"folds": [0]}
    with pytest.raises(SystemExit, match="expected key=value"):
        baselines.dotted("epochs")
