"""The one typed loader for ``params.yaml``, shared by every stage.

Each group is a frozen dataclass; a field's type hint says how to read the YAML value and its
metadata holds the allowed values or bounds. Reading is strict: an unknown key, a wrong type, a
non-finite number or a value out of range stops with one line that names the key and what it accepts.

The file is read as YAML 1.2 with ruamel.yaml, the parser DVC writes it with (``dvc exp run -S``):
``1e-4`` is a number and ``no``/``yes``/``on``/``off`` are strings, as DVC leaves them unquoted.
"""
from __future__ import annotations

import dataclasses
import difflib
import math
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

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

    n_train: int = bounded(1500, lo=20)
    n_test: int = bounded(300, lo=1)
    strength: float = bounded(1.0, lo=0.0, lo_open=True)  # scales every planted signal


@dataclass(frozen=True)
class TrainParams:
    """Everything about fitting one fold beyond the top-level tunables."""

    optimizer: str = choice("adamw", "adam", "sgd", default="adamw")
    momentum: float = bounded(0.9, lo=0.0, hi=1.0)
    scheduler: str = choice("cosine", "onecycle", "none", default="cosine")
    warmup_epochs: float = bounded(0.5, lo=0.0)
    min_lr: float = bounded(1e-6, lo=0.0)
    pct_start: float = bounded(0.3, lo=0.0, hi=1.0)  # 0: no rise, as in seed 002
    div_factor: float = bounded(25.0, lo=1.0)
    final_div_factor: float = bounded(1e4, lo=0.0, lo_open=True)  # < 1 ends above the start lr (seed 002: 0.4)
    early_stopping: bool = False
    patience: int = bounded(3, lo=1)
    sampler: str = choice("none", "balanced", default="none")
    pos_weight: float = bounded(1.0, lo=0.0, lo_open=True)
    label_smoothing: float = bounded(0.0, lo=0.0, hi=0.5)
    amp: str = choice("auto", "none", "fp16", "bf16", default="auto")
    channels_last: bool = True
    compile: bool = False
    grad_accum: int = bounded(1, lo=1)
    clip_grad: float = bounded(0.0, lo=0.0)
    num_workers: int | str = field(default="auto", metadata={"keywords": ("auto",), "lo": 0})  # auto: cores per process
    nproc: int = bounded(1, lo=1)  # DDP processes for one fold (torchrun on this machine)
    sync_bn: bool = False  # SyncBatchNorm across DDP processes (CUDA only)
    deterministic: bool = True
    # auto: $FOLDWISE_THREADS (set by `python -m foldwise.repro -j N`), else every core this process may use
    threads: int | str = field(default="auto", metadata={"keywords": ("auto",), "lo": 1})
    pretrained: bool = False  # timm's weights for ``model`` from the HF hub cache (stage ``pretrained``)
    weights: str = ""  # or a local weights file (safetensors or torch checkpoint); wins over pretrained
    weights_partial: bool = False  # start from the weights' tensors that match when some backbone tensor does not


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
class MetricsParams:
    """Extra scikit-learn scorers (``get_scorer_names()``) logged beside the task's own metric by
    ``oof``, per fold and CV; see tasks/common/scorers.py for how they are fed and named."""

    extra: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class EdaParams:
    """What the ``eda`` stage looks at."""

    max_images: int = bounded(200, lo=1)  # raw samples per split whose size is read
    grid: int = bounded(16, lo=1)  # images per class in each sample grid
    bins: int = bounded(10, lo=2)  # regression targets: histogram bins (and one sample grid per bin)


@dataclass(frozen=True)
class BlendParams:
    """Which finished runs the ``blend`` stage combines, and how (see stages/blend.py)."""

    runs: list[str] = field(default_factory=list)  # experiment names or git revisions; [] skips the stage
    method: str = choice("auto", "rank", "mean", default="auto")  # auto: rank for rank-based metrics (AUC)


@dataclass(frozen=True)
class ExplainParams:
    """Stage ``explain``: saliency overlays of the worst OOF errors and the most confident right rows."""

    n_worst: int = bounded(4, lo=0)
    n_confident: int = bounded(4, lo=0)
    method: str = choice("auto", "gradcam", "rollout", default="auto")  # auto: rollout for ViTs


@dataclass(frozen=True)
class Params:
    task: str = "seti"
    seed: int = bounded(42, lo=0, hi=2**32 - 1)  # numpy and scikit-learn take seeds in [0, 2**32)
    folds: list[int] = field(default_factory=lambda: [0, 1, 2, 3, 4])  # the folds to train, each < n_splits
    n_splits: int = bounded(5, lo=2)  # k of the k-fold split
    model: str = "resnet10t"
    img_size: int = bounded(64, lo=16)
    epochs: int = bounded(3, lo=1)
    batch_size: int = bounded(32, lo=1)
    lr: float = bounded(1e-3, lo=0.0, lo_open=True)
    weight_decay: float = bounded(1e-2, lo=0.0)
    data: DataParams = field(default_factory=DataParams)
    synthetic: SyntheticParams = field(default_factory=SyntheticParams)
    train: TrainParams = field(default_factory=TrainParams)
    augment: AugmentParams = field(default_factory=AugmentParams)
    infer: InferParams = field(default_factory=InferParams)
    metrics: MetricsParams = field(default_factory=MetricsParams)
    eda: EdaParams = field(default_factory=EdaParams)
    blend: BlendParams = field(default_factory=BlendParams)
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
    return parse_params(read_params_file(path), source=str(path), check_names=check_names)


def read_params_file(path: str | Path = PARAMS_FILE) -> dict:
    """The mapping in ``path``, read as YAML 1.2 as DVC reads and writes it; one line if it is missing,
    not YAML, empty (nothing but comments or null: the dataclass defaults are no run's params) or not a
    mapping. ruamel.yaml is imported here only: the Kaggle export parses its params.json without it."""
    from ruamel.yaml import YAML
    from ruamel.yaml.error import YAMLError

    path = Path(path)
    if not path.is_file():
        raise FoldwiseError(f"{path}: params file not found (run from the repository root)")
    try:
        raw = YAML(typ="safe").load(path.read_text())  # as dvc.utils.serialize.parse_yaml
    except YAMLError as exc:
        raise FoldwiseError(f"{path}: not valid YAML ({_yaml_problem(exc)})") from None
    if raw is None or raw == {}:
        raise FoldwiseError(f"{path}: is empty; it must hold the run's params (see the repository's params.yaml)")
    if not isinstance(raw, dict):
        raise FoldwiseError(f"{path}: must be a mapping of keys to values, got {type(raw).__name__}")
    return raw


def _yaml_problem(exc: Exception) -> str:
    """ruamel's multi-line parse error as ``<problem> at line L, column C``."""
    problem, mark = getattr(exc, "problem", None), getattr(exc, "problem_mark", None)
    if problem and mark is not None:
        return f"{problem} at line {mark.line + 1}, column {mark.column + 1}"
    return " ".join(str(exc).split())


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
    get_task(params.task).configure(params)
    if params.augment.train == "auto":
        auto = list(get_task(params.task).train_augment)
        params = dataclasses.replace(params, augment=dataclasses.replace(params.augment, train=auto))
    _check_cross_fields(params, source)
    _check_files(params, source)
    if check_names:
        _check_names(params, source)
    return params


def _check_cross_fields(p: Params, source: str) -> None:
    _check_folds(p.folds, p.n_splits, source)
    for flip in p.infer.tta:
        if flip not in TTA_FLIPS:
            _bad(source, "infer.tta", flip, f"a list of {', '.join(TTA_FLIPS)}")
    if not p.infer.tta:
        _bad(source, "infer.tta", [], "at least one of " + ", ".join(TTA_FLIPS))
    if p.batch_size < p.train.nproc:
        _bad(source, "batch_size", p.batch_size, f">= train.nproc ({p.train.nproc}): it is the global batch, split over the processes")
    if p.data.source == "local" and not p.data.path:
        _bad(source, "data.path", "", "a Kaggle zip or folder when data.source is local")
    if p.train.scheduler == "cosine":
        if p.train.min_lr > p.lr:
            _bad(source, "train.min_lr", p.train.min_lr, f"<= lr ({p.lr:g}): the cosine decays from lr to min_lr")
        if p.train.warmup_epochs >= p.epochs:
            _bad(source, "train.warmup_epochs", p.train.warmup_epochs,
                 f"< epochs ({p.epochs}), or the warmup never reaches lr")


def _check_folds(folds: list[int], n_splits: int, source: str) -> None:
    """``folds`` picks which of the ``n_splits`` folds train: any non-empty subset, each once."""
    expected = f"a non-empty list of distinct folds in 0..{n_splits - 1} (n_splits is {n_splits})"
    if not folds or len(set(folds)) != len(folds) or not all(0 <= k < n_splits for k in folds):
        _bad(source, "folds", folds, expected)


def _check_files(p: Params, source: str) -> None:
    """Local files params point to, checked at load so the first stage that runs refuses them."""
    if p.train.weights and not Path(p.train.weights).is_file():
        _bad(source, "train.weights", p.train.weights, "a local weights file that exists (or \"\")")


def _check_names(p: Params, source: str) -> None:
    """Names only other libraries know: the timm model (and whether it runs at img_size) and the
    albumentations transforms."""
    _check_model(p, source)
    from ..engine.transforms import check_augment_spec

    check_augment_spec(p.augment.train, f"{source}: augment.train")
    check_scorers(p, source)


def check_scorers(p: Params, source: str = PARAMS_FILE) -> None:
    """``metrics.extra``, and a task group's own ``metric`` key (``images.metric``), name scikit-learn
    scorers that fit the task's targets (imports sklearn.metrics)."""
    own = getattr(p.task_params, "metric", None)
    if p.metrics.extra or own:
        from ..tasks import get_task
        from ..tasks.common.scorers import check_scorer, extra_scorers

        task = get_task(p.task)
        if own:
            check_scorer(own, task.target_kind(p), f"{p.task}.metric", task.name, source)
        extra_scorers(p.metrics.extra, task.target_kind(p), task.name, source=source)


def _check_model(p: Params, source: str) -> None:
    """``model`` is a timm name (``arch`` or ``arch.tag``) that builds and runs one forward on a
    batch of 2 at ``img_size`` with the task's channels; ~0.1-3 s, once per stage that checks names."""
    import timm

    name = p.model
    if not timm.is_model(name):
        close = difflib.get_close_matches(name, timm.list_models(), n=3, cutoff=0.6)
        hint = f"did you mean {', '.join(close)}?" if close else "see timm.list_models()"
        _bad(source, "model", name, f"a timm model name ({hint})")
    if "." in name:
        tags = [t.split(".", 1)[1] for t in timm.list_pretrained(name.split(".", 1)[0] + ".*")]
        if name.split(".", 1)[1] not in tags:
            _bad(source, "model", name, f"a timm model with a known pretrained tag ({', '.join(tags) or 'none'})")
    from ..engine.models import probe_model
    from ..tasks import get_task

    task = get_task(p.task)
    try:  # a 1-wide head: the width does not decide whether the model runs, and images.classes: [] is
        # known only once preprocess has read the train CSV
        probe_model(name, task.in_chans(p), p.img_size, len(task.meta_columns(p)))
    except ValueError as exc:
        raise FoldwiseError(f"{source}: 'model' {name} cannot run at 'img_size' {p.img_size} "
                            f"({task.in_chans(p)} channels): {exc}") from None


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
    if origin in (typing.Union, types.UnionType):  # a keyword or a value: augment.train, train.num_workers
        keywords = f.metadata["keywords"]
        if isinstance(value, str) and value in keywords:
            return value
        (hint,) = [a for a in typing.get_args(hint) if a is not str]
        origin = typing.get_origin(hint)
        if origin is not list:
            try:
                converted = _scalar(hint, value, key, source)
            except FoldwiseError:
                _bad(source, key, value, f"{' or '.join(keywords)} or {'an integer' if hint is int else 'a number'}")
            _check_range(converted, f.metadata, key, source)
            return converted
        if isinstance(value, str):
            _bad(source, key, value, f"{' or '.join(keywords)} or a list")
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
        _bad(source, key, value, "an integer")
    if hint is float:
        if not isinstance(value, (int, float)) or isinstance(value, bool):
            _bad(source, key, value, "a number")
        try:
            number = float(value)
        except OverflowError:  # an integer beyond float range
            number = math.inf
        if not math.isfinite(number):  # .nan, .inf, and 1e999 (read as inf)
            _bad(source, key, value, "a finite number")
        return number
    if hint is str:
        if isinstance(value, str):
            return value
        _bad(source, key, value, "a string")
    if hint is dict:
        if isinstance(value, dict):
            _check_finite_inside(value, key, source)
            return value
        _bad(source, key, value, "a mapping")
    raise TypeError(f"unsupported param type {hint!r} for {key}")


def _check_finite_inside(value: Any, key: str, source: str) -> None:
    """Free-form mappings (an augment.train transform's arguments) hold no NaN or infinity either."""
    if isinstance(value, float) and not math.isfinite(value):
        _bad(source, key, value, "a finite number")
    items = value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, list) else ()
    for name, item in items:
        _check_finite_inside(item, f"{key}.{name}" if isinstance(value, dict) else f"{key}[{name}]", source)


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
