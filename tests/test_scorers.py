"""scikit-learn scorers by name: each agrees with scikit-learn's own scorer on a fitted estimator."""
from __future__ import annotations

import numpy as np
import pytest
from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin
from sklearn.metrics import get_scorer as sk_get_scorer

from foldwise.core.errors import FoldwiseError
from foldwise.tasks import get_task
from foldwise.tasks.common.scorers import check_scorer, extra_scorers, get_scorer, score_all, scorer_inputs

N = 60


class FixedClassifier(ClassifierMixin, BaseEstimator):
    """Returns fixed probabilities (N, K); what scikit-learn's scorers see from a real model."""

    def __init__(self, proba=None):
        self.proba = proba

    def fit(self, X, y):
        self.classes_ = np.unique(y)
        return self

    def predict_proba(self, X):
        return self.proba

    def predict(self, X):
        return self.classes_[self.proba.argmax(axis=1)]


class FixedRegressor(RegressorMixin, BaseEstimator):
    def __init__(self, values=None):
        self.values = values

    def fit(self, X, y):
        return self

    def predict(self, X):
        return self.values


def sklearn_score(name: str, estimator, y) -> float:
    """scikit-learn's scorer on ``estimator``, sign undone (our logged value)."""
    scorer = sk_get_scorer(name)
    return scorer(estimator.fit(np.zeros((len(y), 1)), y), np.zeros((len(y), 1)), y) * scorer._sign


@pytest.fixture
def binary():
    rng = np.random.default_rng(1)
    y = rng.integers(0, 2, N)
    p = np.clip(0.3 * y + rng.uniform(0, 0.7, N), 0, 1)
    return y, p


@pytest.fixture
def multiclass():
    rng = np.random.default_rng(2)
    y = np.arange(N) % 4
    proba = rng.dirichlet(np.ones(4), N) + 0.5 * np.eye(4)[y]
    return y, proba / proba.sum(axis=1, keepdims=True)


@pytest.mark.parametrize("name", ["accuracy", "f1_macro", "f1", "roc_auc", "neg_log_loss", "balanced_accuracy"])
def test_binary_matches_sklearn(binary, name):
    y, p = binary
    ours = get_scorer(name)("binary", y[:, None].astype(float), p[:, None])
    theirs = sklearn_score(name, FixedClassifier(np.stack([1 - p, p], axis=1)), y)
    assert ours == pytest.approx(theirs, abs=1e-12)


@pytest.mark.parametrize("name", ["accuracy", "f1_macro", "roc_auc_ovr", "roc_auc_ovo", "neg_log_loss", "top_k_accuracy"])
def test_multiclass_matches_sklearn(multiclass, name):
    y, proba = multiclass
    ours = get_scorer(name)("multiclass", y[:, None].astype(float), proba)
    theirs = sklearn_score(name, FixedClassifier(proba), y)
    assert ours == pytest.approx(theirs, abs=1e-12)


def test_multiclass_from_vote_fractions_uses_argmax(multiclass):
    """HMS: the six vote fractions are targets; scorers compare against their argmax."""
    y, proba = multiclass
    votes = np.eye(4)[y] * 0.7 + 0.3 / 4
    scorer = get_scorer("accuracy")
    assert scorer("multiclass", votes, proba) == pytest.approx(np.mean(proba.argmax(1) == y))


@pytest.mark.parametrize("name", ["neg_root_mean_squared_error", "r2", "neg_mean_absolute_error"])
def test_regression_matches_sklearn(name):
    rng = np.random.default_rng(3)
    y = rng.uniform(1, 100, N)
    pred = y + rng.normal(0, 10, N)
    ours = get_scorer(name)("regression", y[:, None], pred[:, None])
    assert ours == pytest.approx(sklearn_score(name, FixedRegressor(pred), y), abs=1e-9)
    assert ours > 0 or name == "r2"  # logged without the scorer's minus sign


def test_multilabel_thresholds_at_half():
    y = np.array([[1, 0], [0, 1], [1, 1], [0, 0]], dtype=float)
    p = np.array([[0.6, 0.4], [0.2, 0.5], [0.9, 0.1], [0.49, 0.51]])
    y_true, y_pred = scorer_inputs("multilabel", y, p, wants_proba=False)
    assert y_pred.tolist() == [[1, 0], [0, 1], [1, 0], [0, 1]]
    assert get_scorer("f1_micro")("multilabel", y, p) == pytest.approx(2 * 3 / (2 * 3 + 1 + 1))  # TP 3, FP 1, FN 1


def test_names_signs_and_inputs():
    rmse = get_scorer("neg_root_mean_squared_error")
    assert (rmse.label, rmse.greater_is_better, rmse.wants_proba) == ("root_mean_squared_error", False, False)
    log_loss = get_scorer("neg_log_loss")
    assert (log_loss.label, log_loss.greater_is_better, log_loss.wants_proba) == ("log_loss", False, True)
    auc = get_scorer("roc_auc")
    assert (auc.label, auc.greater_is_better, auc.wants_proba) == ("roc_auc", True, True)
    assert get_scorer("f1_macro").kwargs["average"] == "macro"


def test_unknown_name_suggests_close_matches():
    with pytest.raises(FoldwiseError) as err:
        get_scorer("f1_macr", "metrics.extra[0]")
    message = str(err.value)
    assert "\n" not in message and "'metrics.extra[0]'" in message and "f1_macro" in message


@pytest.mark.parametrize("task, name, hint", [
    ("hms", "roc_auc", "multi_class"),          # binary AUC on six classes
    ("hms", "f1", "average"),                   # average='binary' on six classes
    ("petfinder", "accuracy", "regression"),    # classes on a 1-100 score
    ("seti", "r2", "classification"),           # a regression metric on 0/1 labels
])
def test_scorer_that_does_not_fit_the_task_is_refused(task, name, hint):
    t = get_task(task)
    with pytest.raises(FoldwiseError) as err:
        valid = "r2" if task == "petfinder" else "accuracy"
        extra_scorers([valid, name], t.target_kind(None), t.name)
    message = str(err.value)
    assert "\n" not in message and "'metrics.extra[1]'" in message and name in message and hint in message


def test_extra_scorers_drop_the_tasks_own_metric_and_duplicates():
    scorers = extra_scorers(["f1_macro", "neg_log_loss", "f1_macro", "accuracy"], "multiclass", "hms",
                            skip=("accuracy",))
    assert [s.label for s in scorers] == ["f1_macro", "log_loss"]


def test_score_all_names_the_fold_that_fails():
    scorers = extra_scorers(["roc_auc"], "binary", "seti")
    one_class = np.zeros((5, 1))
    with pytest.raises(FoldwiseError, match=r"^metrics.extra: roc_auc is undefined on fold 3"):
        score_all(scorers, "binary", one_class, np.full((5, 1), 0.3), "fold 3")


def test_task_kinds():
    assert [get_task(n).target_kind(None) for n in ("seti", "hms", "petfinder")] == ["binary", "multiclass", "regression"]
    assert check_scorer("roc_auc", "binary", "metrics.extra[0]", "seti").name == "roc_auc"


def test_params_loader_refuses_a_scorer_for_the_task():
    import yaml

    from foldwise.stages.params import check_scorers, parse_params

    raw = yaml.safe_load(open("params.yaml"))
    ok = parse_params({**raw, "metrics": {"extra": ["f1_macro", "neg_log_loss"]}, "task": "hms"}, check_names=False)
    assert ok.metrics.extra == ["f1_macro", "neg_log_loss"]
    check_scorers(ok)  # part of load_params' name checks (skipped here: they import timm)
    bad = parse_params({**raw, "metrics": {"extra": ["roc_auc"]}, "task": "hms"}, check_names=False)
    with pytest.raises(FoldwiseError, match=r"^params.yaml: 'metrics.extra\[0\]': 'roc_auc' does not apply to task hms"):
        check_scorers(bad)
