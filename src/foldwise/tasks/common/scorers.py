"""scikit-learn scorers by name, applied to a task's targets and predictions.

A name is any of ``sklearn.metrics.get_scorer_names()`` (``accuracy``, ``f1_macro``, ``roc_auc``,
``roc_auc_ovr``, ``neg_log_loss``, ``neg_root_mean_squared_error``, ...). The scorer registry gives
the metric function, its keyword arguments, its sign and whether it wants classes (``predict``) or
probabilities (``predict_proba`` / ``decision_function``); this module feeds it exactly that:

========== =============================== ============================== ===========================
kind       targets (N, T) become           ``predict`` gets                probabilities get
========== =============================== ============================== ===========================
binary     column 0 as 0/1 (N,)            p >= 0.5 as 0/1 (N,)            positive-class p (N,)
multiclass class index (N,): column 0 if   argmax (N,)                     (N, K) class probabilities
           T == 1, else argmax over T
           (e.g. HMS vote fractions)
multilabel 0/1 (N, L)                      p >= 0.5 as 0/1 (N, L)          (N, L) probabilities
regression (N,) or (N, T) values           the predictions                 (refused)
========== =============================== ============================== ===========================

Reported value and name: the metric function's own value (the sign that ``get_scorer`` applies so
that greater is better is dropped) under the scorer's name without ``neg_``: ``neg_log_loss`` is
logged as ``log_loss`` (lower is better), ``neg_root_mean_squared_error`` as
``root_mean_squared_error``, ``accuracy`` as ``accuracy``.
"""
from __future__ import annotations

import difflib
import inspect
from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from ...core.errors import FoldwiseError

KINDS = ("binary", "multiclass", "multilabel", "regression")
_PROBE_N = 12  # rows of the made-up data a scorer is tried on before a run


@dataclass(frozen=True)
class Scorer:
    """One scikit-learn scorer, unwrapped: ``func(y_true, y_pred, **kwargs)``."""

    name: str  # the scikit-learn scorer name, e.g. neg_log_loss
    func: Callable = field(repr=False)
    kwargs: dict
    greater_is_better: bool
    wants_proba: bool  # predict_proba / decision_function rather than predict

    @property
    def label(self) -> str:
        """The name metrics are logged under: ``cv/<label>``, ``fold_k/<label>``."""
        return self.name.removeprefix("neg_")

    @property
    def is_regression(self) -> bool:
        return self.func.__module__.endswith("_regression")

    def __call__(self, kind: str, targets: np.ndarray, preds: np.ndarray) -> float:
        """Score predictions (N, P) against targets (N, T) of a task whose targets are ``kind``."""
        y_true, y_pred = scorer_inputs(kind, targets, preds, self.wants_proba)
        kwargs = dict(self.kwargs)
        if self.wants_proba and kind == "multiclass" and "labels" in inspect.signature(self.func).parameters:
            kwargs.setdefault("labels", np.arange(y_pred.shape[1]))  # a fold may lack a class
        return float(self.func(y_true, y_pred, **kwargs))


def get_scorer(name: str, key: str = "metric", source: str = "params.yaml") -> Scorer:
    """The scorer called ``name``; ``source: key`` (e.g. ``params.yaml: metrics.extra[0]``) is what an error names."""
    from sklearn.metrics import get_scorer as sk_get_scorer
    from sklearn.metrics import get_scorer_names

    names = get_scorer_names()
    if name not in names:
        close = difflib.get_close_matches(name, names, n=3, cutoff=0.6)
        hint = f"did you mean {', '.join(close)}?" if close else "see sklearn.metrics.get_scorer_names()"
        raise FoldwiseError(f"{source}: '{key}' must be a scikit-learn scorer name ({hint}), got {name!r}")
    sk = sk_get_scorer(name)
    response = sk._response_method
    responses = (response,) if isinstance(response, str) else tuple(response)
    return Scorer(name=name, func=sk._score_func, kwargs=dict(sk._kwargs), greater_is_better=sk._sign > 0,
                  wants_proba="predict" not in responses)


def check_scorer(name: str, kind: str | None, key: str, task_name: str, source: str = "params.yaml") -> Scorer:
    """The scorer ``name`` if it applies to targets of ``kind``; else one line naming ``key``.

    Applies means: a regression metric for regression targets, a classification one otherwise, and
    the metric runs on a small made-up sample of that kind (e.g. ``roc_auc`` without ``multi_class``
    fails on multiclass targets, ``f1`` with ``average='binary'`` on multiclass ones).
    """
    scorer = get_scorer(name, key, source)
    if kind is None:
        raise FoldwiseError(f"{source}: '{key}': task {task_name} does not expose targets to scikit-learn "
                            f"scorers, got {name!r}")
    if kind not in KINDS:
        raise ValueError(f"unknown target kind {kind!r}")
    refusal = None
    if (kind == "regression") != scorer.is_regression:
        refusal = "a regression metric" if kind == "regression" else "a classification metric"
    elif kind == "regression" and scorer.wants_proba:
        refusal = "a metric on predicted values"
    else:
        try:
            import warnings

            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                value = scorer(kind, *probe_data(kind))
            if not np.isfinite(value):
                refusal = "a metric defined on these targets"
        except (ValueError, TypeError) as exc:
            refusal = f"a metric that accepts them ({str(exc).splitlines()[0]})"
    if refusal:
        raise FoldwiseError(f"{source}: '{key}': {name!r} does not apply to task {task_name}, whose targets "
                            f"are {kind}; use {refusal}")
    return scorer


def scorer_inputs(kind: str, targets: np.ndarray, preds: np.ndarray, wants_proba: bool) -> tuple[np.ndarray, np.ndarray]:
    """(y_true, y_pred) in the form a scorer wants; see the module docstring's table."""
    targets = np.asarray(targets, dtype=np.float64)
    preds = np.asarray(preds, dtype=np.float64)
    if targets.ndim == 1:
        targets = targets[:, None]
    if preds.ndim == 1:
        preds = preds[:, None]
    if kind == "regression":
        y, p = targets, preds
        return (y[:, 0], p[:, 0]) if y.shape[1] == 1 and p.shape[1] == 1 else (y, p)
    if kind == "binary":
        y = targets[:, 0].astype(int)
        p = preds[:, -1]  # one column: P(positive); two: (P(0), P(1))
        return y, (p if wants_proba else (p >= 0.5).astype(int))
    if kind == "multiclass":
        y = targets[:, 0].astype(int) if targets.shape[1] == 1 else targets.argmax(axis=1)
        return y, (preds if wants_proba else preds.argmax(axis=1))
    if kind == "multilabel":
        return targets.astype(int), (preds if wants_proba else (preds >= 0.5).astype(int))
    raise ValueError(f"unknown target kind {kind!r}")


def probe_data(kind: str) -> tuple[np.ndarray, np.ndarray]:
    """Made-up targets (N, T) and predictions (N, P) of ``kind`` with every class present."""
    rng = np.random.default_rng(0)
    n = _PROBE_N
    if kind == "binary":
        y = np.arange(n) % 2
        return y[:, None].astype(float), np.clip(0.25 + 0.5 * y + rng.uniform(-0.2, 0.2, n), 0, 1)[:, None]
    if kind in ("multiclass", "multilabel"):
        k = 3
        if kind == "multiclass":
            y = (np.arange(n) % k)[:, None].astype(float)
        else:  # every label both present and absent
            y = np.tile(np.concatenate([np.eye(k), 1 - np.eye(k)]), (n // (2 * k), 1))
        return y, rng.dirichlet(np.ones(k), size=n)
    return rng.uniform(1, 10, (n, 1)), rng.uniform(1, 10, (n, 1))


def extra_scorers(names: list[str], kind: str | None, task_name: str, skip: tuple[str, ...] = (),
                  source: str = "params.yaml") -> list[Scorer]:
    """The scorers of ``metrics.extra`` for a task, checked; names in ``skip`` (the task's own) dropped."""
    scorers, labels = [], set(skip)
    for i, name in enumerate(names):
        scorer = check_scorer(name, kind, f"metrics.extra[{i}]", task_name, source)
        if scorer.label not in labels:
            labels.add(scorer.label)
            scorers.append(scorer)
    return scorers



def score_all(scorers: list[Scorer], kind: str | None, targets: np.ndarray, preds: np.ndarray,
              where: str) -> dict[str, float]:
    """Every scorer's value on (targets, preds), by logged name; one line naming ``where`` (e.g.
    ``fold 3``) if one fails or is undefined (NaN), e.g. ``roc_auc`` on a fold with one class."""
    import warnings

    scores = {}
    for scorer in scorers:
        try:
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                value = scorer(kind, targets, preds)
        except ValueError as exc:
            raise FoldwiseError(f"metrics.extra: {scorer.name} failed on {where} ({str(exc).splitlines()[0]})") from None
        if not np.isfinite(value):
            why = str(caught[-1].message).splitlines()[0] if caught else f"got {value}"
            raise FoldwiseError(f"metrics.extra: {scorer.name} is undefined on {where} ({why})")
        scores[scorer.label] = value
    return scores
