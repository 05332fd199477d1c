"""How a stage reads params: the keys it declares, the checks it runs, and what the task resolves.

Each stage module declares ``PARAMS``: the dotted keys or groups it reads, ``TASK_GROUP`` standing for
the active task's group (``${task}`` in dvc.yaml, ``params.task_params`` in code). dvc.yaml's
``params:`` lists are generated from them (``python -m foldwise.stages.graph --write``), and the stage
gets a view of the params that refuses any other key, so a read that DVC would not rerun the stage
for fails at once instead of leaving a stale output.

Checks that need another library or the task run only in the stages that name them in ``CHECKS``:
``model`` (timm name and one forward at img_size), ``augment`` (albumentations transforms),
``scorers`` (scikit-learn scorers that fit the task's targets), ``weights`` (train.weights exists).
They see every key: a check only refuses, it never shapes an output.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Iterable

from ..core.errors import FoldwiseError
from ..core.params import PARAMS_FILE, Group, read_params_file
from ..params import Params, parse

TASK_GROUP = "${task}"
CHECKS = ("model", "augment", "scorers", "weights")


# ---- what the task decides -----------------------------------------------------------------------
def task_for(p: Params) -> Any:
    """The active task as ``p`` configures it (the registry's object is never changed)."""
    from ..tasks import get_task

    return get_task(p.task).for_params(p)


def resolve_augment(p: Params) -> Params:
    """``p`` with ``augment.train: auto`` replaced by the task's own list of label-keeping transforms."""
    if p.augment.train != "auto":
        return p
    from ..tasks import get_task

    auto = [dict(item) for item in get_task(p.task).train_augment]
    return p.model_copy(update={"augment": p.augment.model_copy(update={"train": auto})})


# ---- checks ----------------------------------------------------------------------------------------
def check(p: Params, checks: Iterable[str], source: str = PARAMS_FILE) -> None:
    """Run the named ``checks`` (see the module docstring) on the full, augment-resolved ``p``."""
    for name in checks:
        if name not in CHECKS:
            raise ValueError(f"unknown params check {name!r} (known: {', '.join(CHECKS)})")
        task = task_for(p) if name in ("model", "scorers") else None
        if name == "model":
            from ..engine.models import check_model

            check_model(p.model, task.in_chans(p), p.img_size, len(task.meta_columns(p)), source)
        elif name == "augment":
            from ..engine.transforms import check_augment_spec

            check_augment_spec(resolve_augment(p).augment.train, f"{source}: augment.train")
        elif name == "scorers":
            check_scorers(p, task, source)
        elif name == "weights":
            from ..engine.pretrained import check_weights_file

            check_weights_file(p.train.weights, source)


def check_scorers(p: Params, task: Any = None, source: str = PARAMS_FILE) -> None:
    """``metrics.extra``, and a task group's own ``metric`` key (``images.metric``), name scikit-learn
    scorers that fit the targets of ``task`` (default: ``task_for(p)``); imports sklearn.metrics."""
    own = getattr(p.task_params, "metric", None)
    if p.metrics.extra or own:
        task = task or task_for(p)
        from ..tasks.common.scorers import check_scorer, extra_scorers

        if own:
            check_scorer(own, task.target_kind(p), f"{p.task}.metric", task.name, source)
        extra_scorers(p.metrics.extra, task.target_kind(p), task.name, source=source)


# ---- the stage's view ------------------------------------------------------------------------------
def declared_keys(declared: Iterable[str], task: str) -> tuple[str, ...]:
    """``declared`` with ``TASK_GROUP`` as the active task's group name."""
    return tuple(task if key == TASK_GROUP else key for key in declared)


class StageParams:
    """Read-only params of one stage: attribute access like ``Params``, but a key the stage did not
    declare raises. ``unchecked`` is the full ``Params``, for guards that can only refuse a run."""

    def __init__(self, params: Group, stage: str, declared: tuple[str, ...], prefix: str = ""):
        object.__setattr__(self, "_params", params)
        object.__setattr__(self, "_stage", stage)
        object.__setattr__(self, "_declared", declared)
        object.__setattr__(self, "_prefix", prefix)

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):
            raise AttributeError(name)
        params, prefix = self._params, self._prefix
        if name == "task_params" and not prefix:
            name = params.task
        value = getattr(params, name)
        if name not in type(params).model_fields:
            return value  # a method or property of the model (model_dump, ...)
        key = prefix + name
        if any(key == d or key.startswith(d + ".") for d in self._declared):
            return value
        if isinstance(value, Group) and any(d.startswith(key + ".") for d in self._declared):
            return StageParams(value, self._stage, self._declared, key + ".")
        raise FoldwiseError(f"stage {self._stage} reads param '{key}' but does not declare it (its PARAMS: "
                            f"{', '.join(self._declared)}); add it there and run `python -m foldwise.stages.graph "
                            "--write`, or DVC will not rerun the stage when it changes")

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError("params are read-only")

    @property
    def unchecked(self) -> Params:
        return self._params

    def __repr__(self) -> str:
        return f"StageParams({self._stage}: {', '.join(self._declared)})"


def load_stage(stage: str, declared: Iterable[str], checks: Iterable[str] = (),
               path: str | Path = PARAMS_FILE) -> StageParams:
    """params.yaml validated, ``augment.train: auto`` resolved, the stage's ``checks`` run, as the view
    of the ``declared`` keys that ``stage`` reads."""
    p = parse(read_params_file(path), source=str(path))
    declared = declared_keys(declared, p.task)
    if any(key == "augment" or key.startswith("augment.") for key in declared):
        p = resolve_augment(p)
    check(p, checks, str(path))
    return StageParams(p, stage, declared)


# ---- everything at once, for tools and tests ---------------------------------------------------------
def parse_params(raw: dict, source: str = PARAMS_FILE, check_names: bool = True) -> Params:
    """``raw`` validated and resolved, with every check of every stage: the task's own (images columns),
    the weights file, and with ``check_names`` the timm model, the transforms and the scorers."""
    p = resolve_augment(parse(raw, source))
    task_for(p)
    check(p, ("weights", "model", "augment", "scorers") if check_names else ("weights",), source)
    return p


def load_params(path: str | Path = PARAMS_FILE, *, check_names: bool = True) -> Params:
    """``parse_params`` of the file at ``path``."""
    return parse_params(read_params_file(path), source=str(path), check_names=check_names)
