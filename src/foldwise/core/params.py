"""The one typed loader for ``params.yaml``, shared by every stage.

Each group is a frozen dataclass; a field's type hint says how to read the YAML value and its
metadata holds the allowed values or bounds. Reading is strict: an unknown key, a wrong type or a
value out of range stops with one line that names the key and what it accepts. YAML 1.1 reads
``1e-4`` as a string (and ``dvc exp run -S lr=1e-4`` writes exactly that), so numbers given as
strings are parsed as numbers.
"""
from __future__ import annotations

import dataclasses
import difflib
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from .errors import FoldwiseError

PARAMS_FILE = "params.yaml"


def choice(*allowed: str, default: str) -> Any:
    return field(default=default, metadata={"choices": allowed})


def bounded(default: Any, lo: float | None = None, hi: float | None = None, lo_open: bool = False) -> Any:
    return field(default=default, metadata={"lo": lo, "hi": hi, "lo_open": lo_open})


@dataclass(frozen=True)
class DataParams:
    """Where ``download`` takes the competition data from."""

    source: str = choice("synthetic", "kaggle", "local", default="synthetic")
    path: str = ""  # for source=local: a Kaggle zip or its extracted folder


@dataclass(frozen=True)
class SyntheticParams:
    """Size and difficulty of the embedded synthetic dataset (``data.source: synthetic``)."""

    n_train: int = bounded(2000, lo=20)
    n_test: int = bounded(400, lo=1)
    strength: float = bounded(1.0, lo=0.0, lo_open=True)  # scales every planted signal


@dataclass(frozen=True)
class TrainParams:
    """Everything about fitting one fold beyond the top-level tunables."""

    optimizer: str = choice("adamw", "adam", "sgd", default="adamw")
    momentum: float = bounded(0.9, lo=0.0, hi=1.0)
    scheduler: str = choice("cosine", "onecycle", "none", default="cosine")
    warmup_epochs: float = bounded(0.5, lo=0.0)
    min_lr: float = bounded(1e-6, lo=0.0)
    pct_start: float = bounded(0.3, lo=0.0, hi=1.0, lo_open=True)
    div_factor: float = bounded(25.0, lo=1.0)
    final_div_factor: float = bounded(1e4, lo=1.0)
    early_stopping: bool = False
    patience: int = bounded(3, lo=1)
    sampler: str = choice("none", "balanced", default="none")
    pos_weight: float = bounded(1.0, lo=0.0, lo_open=True)
    label_smoothing: float = bounded(0.0, lo=0.0, hi=0.5)
    amp: str = choice("auto", "none", "fp16", "bf16", default="auto")  # not "off": YAML reads it as false
    channels_last: bool = True
    compile: bool = False
    grad_accum: int = bounded(1, lo=1)
    clip_grad: float = bounded(0.0, lo=0.0)
    num_workers: int = bounded(0, lo=0)
    deterministic: bool = True
    pretrained: bool = False
    weights: str = ""  # optional local weights file for the timm model (never downloaded)


@dataclass(frozen=True)
class AugmentParams:
    """Train-time augmentation. ``train`` is ``auto`` (the task's own ``train_augment``, flips that keep
    the label) or a list of albumentations transforms: ``{Name: {arg: value}}``. The loader resolves
    ``auto``, so a loaded ``Params`` always holds the list."""

    train: list[dict] | str = field(default="auto", metadata={"keywords": ("auto",)})
    cutmix_p: float = bounded(0.0, lo=0.0, hi=1.0)
    cutmix_alpha: float = bounded(1.0, lo=0.0, lo_open=True)
    mixup_p: float = bounded(0.0, lo=0.0, hi=1.0)
    mixup_alpha: float = bounded(0.4, lo=0.0, lo_open=True)
    mix_label: str = choice("blend", "max", default="blend")


TTA_FLIPS = ("none", "hflip", "vflip", "hvflip")


@dataclass(frozen=True)
class InferParams:
    tta: list[str] = field(default_factory=lambda: ["none", "hflip"])
    batch_size: int = bounded(64, lo=1)


@dataclass(frozen=True)
class ExplainParams:
    """Stage ``explain``: saliency overlays of the worst OOF errors and the most confident right rows."""

    n_worst: int = bounded(4, lo=0)
    n_confident: int = bounded(4, lo=0)
    method: str = choice("auto", "gradcam", "rollout", default="auto")  # auto: rollout for ViTs


@dataclass(frozen=True)
class Params:
    task: str = "seti"
    seed: int = 42
    folds: list[int] = field(default_factory=lambda: [0, 1, 2, 3, 4])
    model: str = "resnet10t"
    img_size: int = bounded(96, lo=16)
    epochs: int = bounded(3, lo=1)
    batch_size: int = bounded(32, lo=1)
    lr: float = bounded(1e-3, lo=0.0, lo_open=True)
    weight_decay: float = bounded(1e-2, lo=0.0)
    data: DataParams = field(default_factory=DataParams)
    synthetic: SyntheticParams = field(default_factory=SyntheticParams)
    train: TrainParams = field(default_factory=TrainParams)
    augment: AugmentParams = field(default_factory=AugmentParams)
    infer: InferParams = field(default_factory=InferParams)
    explain: ExplainParams = field(default_factory=ExplainParams)
    # One group per task (``seti:``, ``hms:``, ...), read with that task's own dataclass.
    tasks: dict = field(default_factory=dict)

    @property
    def task_params(self) -> Any:
        """The group of the active task, e.g. ``params.seti`` when ``task: seti``."""
        return self.tasks[self.task]


def load_params(path: str | Path = PARAMS_FILE, *, check_names: bool = True) -> Params:
    """Read and validate ``params.yaml``; raise FoldwiseError naming the first bad key.

    ``check_names=False`` skips looking ``model`` up in timm and ``augment.train`` in albumentations:
    importing timm (and the torchvision it pulls in) costs ~3 s per process, so stages whose output
    does not depend on those names (preprocess, split, submit) leave them to download and train.
    """
    path = Path(path)
    if not path.is_file():
        raise FoldwiseError(f"{path}: params file not found (run from the repository root)")
    try:
        raw = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        raise FoldwiseError(f"{path}: not valid YAML ({str(exc).splitlines()[0]})") from None
    if not isinstance(raw, dict):
        raise FoldwiseError(f"{path}: must be a mapping of keys to values")
    return parse_params(raw, source=str(path), check_names=check_names)


def parse_params(raw: dict, source: str = PARAMS_FILE, check_names: bool = True) -> Params:
    from ..tasks import TASKS, get_task

    task_groups = {name: raw.pop(name) for name in list(raw) if name in TASKS}
    params = _build(Params, raw, prefix="", source=source)
    if params.task not in TASKS:
        _bad(source, "task", params.task, f"one of {', '.join(TASKS)}")
    tasks = {}
    for name in TASKS:
        group = task_groups.get(name, {})
        if not isinstance(group, dict):
            raise FoldwiseError(f"{source}: '{name}' must be a mapping, got {group!r}")
        tasks[name] = _build(get_task(name).Params, group, prefix=f"{name}.", source=source)
    params = dataclasses.replace(params, tasks=tasks)
    if params.augment.train == "auto":
        auto = list(get_task(params.task).train_augment)
        params = dataclasses.replace(params, augment=dataclasses.replace(params.augment, train=auto))
    _check_cross_fields(params, source)
    if check_names:
        _check_names(params, source)
    return params


def _check_cross_fields(p: Params, source: str) -> None:
    if len(p.folds) < 2 or p.folds != list(range(len(p.folds))):
        _bad(source, "folds", p.folds, "a list 0..k-1 with k >= 2, e.g. [0, 1, 2, 3, 4]")
    for flip in p.infer.tta:
        if flip not in TTA_FLIPS:
            _bad(source, "infer.tta", flip, f"a list of {', '.join(TTA_FLIPS)}")
    if not p.infer.tta:
        _bad(source, "infer.tta", [], "at least one of " + ", ".join(TTA_FLIPS))
    if p.data.source == "local" and not p.data.path:
        _bad(source, "data.path", "", "a Kaggle zip or folder when data.source is local")


def _check_names(p: Params, source: str) -> None:
    """Names only other libraries know: the timm model and the albumentations transforms."""
    _check_model(p.model, source)
    from ..engine.transforms import check_augment_spec

    check_augment_spec(p.augment.train, f"{source}: augment.train")


def _check_model(name: str, source: str) -> None:
    import timm

    if not timm.is_model(name):
        close = difflib.get_close_matches(name, timm.list_models(), n=3, cutoff=0.6)
        hint = f"did you mean {', '.join(close)}?" if close else "see timm.list_models()"
        _bad(source, "model", name, f"a timm model name ({hint})")


def _build(cls: type, raw: dict, prefix: str, source: str) -> Any:
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls) if f.name != "tasks"}
    values = {}
    for key, value in raw.items():
        if key not in fields:
            close = difflib.get_close_matches(str(key), fields, n=1)
            hint = f"; did you mean '{prefix}{close[0]}'?" if close else ""
            raise FoldwiseError(
                f"{source}: unknown key '{prefix}{key}' (allowed: {', '.join(fields)}){hint}"
            )
        values[key] = _convert(hints[key], value, fields[key], prefix + key, source)
    return cls(**values)


def _convert(hint: Any, value: Any, f: dataclasses.Field, key: str, source: str) -> Any:
    if dataclasses.is_dataclass(hint):
        if not isinstance(value, dict):
            raise FoldwiseError(f"{source}: '{key}' must be a mapping, got {value!r}")
        return _build(hint, value, prefix=key + ".", source=source)
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):  # a keyword or a list, e.g. augment.train: auto
        if isinstance(value, str):
            if value not in f.metadata["keywords"]:
                _bad(source, key, value, f"{' or '.join(f.metadata['keywords'])} or a list")
            return value
        (hint,) = [a for a in typing.get_args(hint) if typing.get_origin(a) is list]
        origin = list
    if origin is list:
        if not isinstance(value, list):
            _bad(source, key, value, "a list")
        (item_hint,) = typing.get_args(hint)
        return [_scalar(item_hint, v, f"{key}[{i}]", source) for i, v in enumerate(value)]
    converted = _scalar(hint, value, key, source)
    _check_range(converted, f.metadata, key, source)
    return converted


def _scalar(hint: Any, value: Any, key: str, source: str) -> Any:
    if hint is bool:
        if isinstance(value, bool):
            return value
        _bad(source, key, value, "true or false")
    if hint is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if isinstance(value, str):
            try:
                return int(value)
            except ValueError:
                pass
        _bad(source, key, value, "an integer")
    if hint is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        if isinstance(value, str):
            try:
                return float(value)
            except ValueError:
                pass
        _bad(source, key, value, "a number")
    if hint is str:
        if isinstance(value, str):
            return value
        _bad(source, key, value, "a string")
    if hint is dict:
        if isinstance(value, dict):
            return value
        _bad(source, key, value, "a mapping")
    raise TypeError(f"unsupported param type {hint!r} for {key}")


def _check_range(value: Any, meta: Any, key: str, source: str) -> None:
    if "choices" in meta and value not in meta["choices"]:
        _bad(source, key, value, f"one of {', '.join(meta['choices'])}")
    lo, hi = meta.get("lo"), meta.get("hi")
    if lo is not None and (value < lo or (meta.get("lo_open") and value == lo)):
        _bad(source, key, value, f"{'>' if meta.get('lo_open') else '>='} {lo}" + (f" and <= {hi}" if hi is not None else ""))
    if hi is not None and value > hi:
        _bad(source, key, value, f"between {lo} and {hi}")


def _bad(source: str, key: str, value: Any, expected: str) -> typing.NoReturn:
    raise FoldwiseError(f"{source}: '{key}' must be {expected}, got {value!r}")
