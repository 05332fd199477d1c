import os
import subprocess
import sys
import typing

import pandas as pd
import pytest
from ruamel.yaml import YAML

from foldwise.core.errors import FoldwiseError
from foldwise.core.params import leaf_fields, read_params_file
from foldwise.params import Params, default_params
from foldwise.stages.params import load_params, parse_params, task_for
from foldwise.tasks import get_task
from conftest import ROOT, edit_params


def base() -> dict:
    return read_params_file(ROOT / "params.yaml")


def yaml_value(text: str):
    """``text`` as DVC's YAML 1.2 parser reads it (``-S key=text`` and params.yaml both)."""
    return YAML(typ="safe").load(f"v: {text}")["v"]


def param_fields():
    """(dotted key, declared type) of every leaf param, the task groups included."""
    for key, info in leaf_fields(Params):
        yield key, info.annotation


def set_key(raw: dict, key: str, value) -> dict:
    *groups, name = key.split(".")
    for group in groups:
        raw = raw.setdefault(group, {})
    raw[name] = value


def test_repo_params_load_with_every_group():
    p = load_params(ROOT / "params.yaml")
    assert p.task == "seti"
    assert p.folds == [0, 1, 2, 3, 4] and p.n_splits == 5
    assert isinstance(p.lr, float) and isinstance(p.weight_decay, float)
    assert p.task_params.frames in ("all", "on_only")


def test_exp_run_style_scientific_notation_is_a_float(tmp_path):
    # `dvc exp run -S lr=1e-4` writes `lr: 1e-4`: a float in YAML 1.2 (PyYAML's 1.1 made it a string)
    path = tmp_path / "params.yaml"
    path.write_text((ROOT / "params.yaml").read_text().replace("lr: 1.0e-3", "lr: 1e-4"))
    p = load_params(path)
    assert p.lr == pytest.approx(1e-4) and type(p.lr) is float


def test_yes_no_on_off_written_by_dvc_stay_strings(tmp_path):
    """DVC rewrites params.yaml through ruamel.yaml (YAML 1.2), which leaves these strings unquoted;
    a YAML 1.1 reader turned them into booleans and refused the run."""
    from dvc.utils.serialize import modify_yaml

    path = tmp_path / "params.yaml"
    path.write_text((ROOT / "params.yaml").read_text())
    with modify_yaml(path) as raw:
        raw.update(task="images", lr=3e-3)
        raw["images"].update(kind="binary", targets=["filled"], classes=["no", "yes"], group="on")
    assert "- no\n" in path.read_text() or "[no, yes]" in path.read_text()  # unquoted, as DVC writes them
    p = load_params(path, check_names=False)
    assert p.task_params.classes == ["no", "yes"] and p.task_params.group == "on"
    assert task_for(p).prob_columns == ["p_yes"]
    assert get_task("images").prob_columns == ["p_circle", "p_square", "p_triangle"]  # parsing changed no task


@pytest.mark.e2e
@pytest.mark.slow
def test_exp_run_keeps_no_yes_classes_strings(tiny_repo):
    """`classes: [no, yes]` through `dvc exp run -S`: Hydra reads conf/ as YAML 1.1, where a bare no/yes
    is a boolean, and DVC writes the composition back; the next stage must still read the labels."""
    from conftest import run

    repo = tiny_repo({"task": "images", "synthetic": {"n_train": 40, "n_test": 4}, "images": {
        "kind": "binary", "targets": ["filled"], "classes": ["no", "yes"], "metric": "roc_auc"}})
    path = repo / "params.yaml"
    assert load_params(path, check_names=False).task_params.classes == ["no", "yes"]

    run(["dvc", "exp", "run", "-S", "lr=3e-3", "download"], repo)
    p = load_params(path, check_names=False)
    assert p.task_params.classes == ["no", "yes"] and p.lr == 3e-3
    assert len(pd.read_csv(repo / "data/raw/train.csv")) == 40


def test_declared_defaults_are_the_committed_params():
    """A key left out of params.yaml takes the declared default: it must be the value params.yaml holds,
    every group in params.yaml's order."""
    committed = read_params_file(ROOT / "params.yaml")
    assert default_params() == committed
    assert list(default_params()) == list(committed)
    assert all(list(default_params()[k]) == list(v) for k, v in committed.items() if isinstance(v, dict))
    assert parse_params({}, check_names=False) == load_params(ROOT / "params.yaml", check_names=False)


@pytest.mark.parametrize("text", ["", "\n", "# nothing but a comment\n", "null\n", "~\n", "{}\n"])
def test_empty_params_file_is_refused_in_one_line(tmp_path, text):
    path = tmp_path / "params.yaml"
    path.write_text(text)
    with pytest.raises(FoldwiseError) as err:
        load_params(path, check_names=False)
    assert str(err.value).startswith(f"{path}: is empty") and "\n" not in str(err.value)


@pytest.mark.parametrize("text, message", [
    ("[1, 2]\n", "must be a mapping of keys to values, got list"),
    ("lr: [1\n", "not valid YAML ("),
    ("lr: 1\nlr: 2\n", "not valid YAML (found duplicate key"),
])
def test_malformed_params_file_is_one_line(tmp_path, text, message):
    path = tmp_path / "params.yaml"
    path.write_text(text)
    with pytest.raises(FoldwiseError) as err:
        load_params(path, check_names=False)
    assert str(err.value).startswith(f"{path}: ") and message in str(err.value)
    assert "\n" not in str(err.value)


FLOAT_KEYS = [key for key, hint in param_fields() if hint is float]


def test_every_float_param_is_covered():
    assert {"lr", "weight_decay", "synthetic.strength", "train.min_lr", "augment.mixup_alpha"} <= set(FLOAT_KEYS)


@pytest.mark.parametrize("text, expected", [
    (".nan", "a finite number, got nan"), (".NaN", "a finite number, got nan"),
    (".inf", "a finite number, got inf"), ("-.inf", "a finite number, got -inf"),
    ("1e999", "a finite number, got inf"), ("-1e999", "a finite number, got -inf"),
    ("nan", "a number, got 'nan'"), ("inf", "a number, got 'inf'"), ("'1e-3'", "a number, got '1e-3'"),
    (str(10**400), "a finite number, got 1000"),
])
def test_non_finite_numbers_are_refused_in_every_float_param(text, expected):
    value = yaml_value(text)
    for key in FLOAT_KEYS:
        raw = base()
        set_key(raw, key, value)
        with pytest.raises(FoldwiseError) as err:
            parse_params(raw, check_names=False)
        assert f"'{key}' must be {expected}" in str(err.value) and "\n" not in str(err.value)


def test_non_finite_transform_argument_is_refused():
    raw = base()
    raw["augment"]["train"] = [{"RandomBrightnessContrast": {"brightness_limit": yaml_value(".nan")}}]
    with pytest.raises(FoldwiseError, match=r"'augment.train\[0\].RandomBrightnessContrast.brightness_limit' must be a finite number, got nan"):
        parse_params(raw, check_names=False)


def test_non_finite_in_the_file_names_file_and_key(tmp_path):
    path = tmp_path / "params.yaml"
    path.write_text((ROOT / "params.yaml").read_text())
    edit_params(path, {"synthetic": {"strength": float("nan")}})
    with pytest.raises(FoldwiseError, match=rf"^{path}: 'synthetic.strength' must be a finite number, got nan$"):
        load_params(path, check_names=False)


@pytest.mark.parametrize("mutate, message", [
    (lambda d: d.update(lrr=1e-3), "unknown key 'lrr'"),
    (lambda d: d["data"].update(sorce="kaggle"), "unknown key 'data.sorce'"),
    (lambda d: d.update(lr="abc"), "'lr' must be a number, got 'abc'"),
    (lambda d: d.update(task="mnist"), "'task' must be one of seti"),
    (lambda d: d.update(model="resnet1000"), "'model' must be a timm model name"),
    (lambda d: d.update(folds=[]), "'folds' must be a non-empty list of distinct folds in 0..4 (n_splits is 5), got []"),
    (lambda d: d.update(folds=[0, 5]), "'folds' must be a non-empty list of distinct folds in 0..4 (n_splits is 5), got [0, 5]"),
    (lambda d: d.update(folds=[1, 1]), "'folds' must be a non-empty list of distinct folds in 0..4 (n_splits is 5), got [1, 1]"),
    (lambda d: d.update(folds=[-1]), "'folds' must be a non-empty list of distinct folds"),
    (lambda d: d.update(folds=[0, 1, 2], n_splits=2), "'folds' must be a non-empty list of distinct folds in 0..1 (n_splits is 2)"),
    (lambda d: d.update(n_splits=1), "'n_splits' must be >= 2, got 1"),
    (lambda d: d.update(n_splits="five"), "'n_splits' must be an integer, got 'five'"),
    (lambda d: d.update(seed=-5), "'seed' must be >= 0 and <= 4294967295, got -5"),
    (lambda d: d.update(seed=2**32), "'seed' must be between 0 and 4294967295, got 4294967296"),
    (lambda d: d.update(seed=1.5), "'seed' must be an integer, got 1.5"),
    (lambda d: d.update(seed="7"), "'seed' must be an integer, got '7'"),  # quoted: a string, as DVC reads it
    (lambda d: d["train"].update(weights="/missing/file.pth"), "'train.weights' must be a local weights file that exists (or \"\"), got '/missing/file.pth'"),
    (lambda d: d.update(lr=0), "'lr' must be > 0.0, got 0.0"),
    (lambda d: d.update(batch_size=0), "'batch_size' must be >= 1, got 0"),
    (lambda d: d["infer"].update(batch_size=0), "'infer.batch_size' must be >= 1, got 0"),
    (lambda d: d["infer"].update(tta=[]), "'infer.tta' must be at least one of none, hflip"),
    (lambda d: d["train"].update(min_lr=1e-2), "'train.min_lr' must be <= lr (0.001): the cosine decays from lr to min_lr, got 0.01"),
    (lambda d: d["train"].update(warmup_epochs=3), "'train.warmup_epochs' must be < epochs (3), or the warmup never reaches lr, got 3.0"),
    (lambda d: d["train"].update(grad_accum=0), "'train.grad_accum' must be >= 1, got 0"),
    (lambda d: d["synthetic"].update(n_train=5), "'synthetic.n_train' must be >= 20, got 5"),
    (lambda d: d["hms"].update(min_votes=0), "'hms.min_votes' must be >= 1, got 0"),
    (lambda d: d.update(epochs=0), "'epochs' must be >= 1"),
    (lambda d: d["data"].update(source="s3"), "'data.source' must be one of synthetic, kaggle, local"),
    (lambda d: d["train"].update(patience=0), "'train.patience' must be >= 1"),
    (lambda d: d["augment"].update(cutmix_p=1.5), "'augment.cutmix_p' must be between 0.0 and 1.0"),
    (lambda d: d["train"].update(scheduler="step"), "'train.scheduler' must be one of cosine, onecycle, none"),
    (lambda d: d["augment"].update(train=[{"HorizontalFlipp": {"p": 0.5}}]), "unknown albumentations transform 'HorizontalFlipp'"),
    (lambda d: d["augment"].update(train=[{"HorizontalFlip": {"p": 2}}]), "HorizontalFlip.p must be a probability"),
    (lambda d: d["augment"].update(train="flips"), "'augment.train' must be auto or a list, got 'flips'"),
    (lambda d: d["augment"].update(train=3), "'augment.train' must be a list, got 3"),
    (lambda d: d["infer"].update(tta=["rot90"]), "'infer.tta' must be a list of none, hflip, vflip, hvflip"),
    (lambda d: d["seti"].update(frames="odd"), "'seti.frames' must be one of all, on_only"),
    (lambda d: d["data"].update(source="local"), "'data.path' must be a Kaggle zip or folder"),
])
def test_bad_params_name_the_key(mutate, message):
    raw = base()
    mutate(raw)
    with pytest.raises(FoldwiseError) as err:
        parse_params(raw)
    assert message in str(err.value)
    assert "\n" not in str(err.value)


@pytest.mark.parametrize("folds, n_splits", [([0], 2), ([0], 5), ([4, 2], 5), ([0, 1, 2], 3), ([9], 10)])
def test_any_subset_of_the_split_may_train(folds, n_splits):
    p = parse_params({**base(), "folds": folds, "n_splits": n_splits})
    assert (p.folds, p.n_splits) == (folds, n_splits)


@pytest.mark.parametrize("key, value", [("seed", 0), ("seed", 2**32 - 1),
                                        ("train.min_lr", 1e-3), ("train.warmup_epochs", 2.9)])
def test_edge_values_pass(key, value):
    raw = base()
    group, _, name = key.rpartition(".")
    (raw[group] if group else raw)[name] = value
    p = parse_params(raw)
    got = getattr(p.train, name) if group else getattr(p, name)
    assert got == value


def test_schedule_cross_checks_only_for_cosine():
    raw = base()
    raw["train"].update(scheduler="onecycle", min_lr=1.0, warmup_epochs=10)
    assert parse_params(raw).train.min_lr == 1.0


def test_weights_file_that_exists_passes(tmp_path):
    weights = tmp_path / "w.pth"
    weights.write_bytes(b"x")
    raw = base()
    raw["train"]["weights"] = str(weights)
    assert parse_params(raw, check_names=False).train.weights == str(weights)


@pytest.mark.parametrize("task, flips", [
    ("seti", ["HorizontalFlip", "VerticalFlip"]),
    ("petfinder", ["HorizontalFlip", "VerticalFlip"]),
    ("hms", ["HorizontalFlip"]),  # (frequency, time) images: never mirror frequency
])
def test_augment_auto_is_the_tasks_own_list(task, flips):
    from foldwise.tasks import get_task
    from foldwise.engine.transforms import build_train_transform

    raw = base()
    assert raw["augment"]["train"] == "auto"
    p = parse_params({**raw, "task": task})
    assert p.augment.train == get_task(task).train_augment
    assert [next(iter(item)) for item in p.augment.train] == flips
    assert [type(t).__name__ for t in build_train_transform(p.augment.train, 0).transforms] == flips


def test_augment_list_overrides_auto():
    raw = base()
    raw["augment"]["train"] = [{"Transpose": {"p": 0.5}}]
    p = parse_params({**raw, "task": "hms"})
    assert p.augment.train == [{"Transpose": {"p": 0.5}}]


def test_misspelt_key_suggests_the_right_one():
    raw = base()
    raw["train"]["schedular"] = raw["train"].pop("scheduler")
    with pytest.raises(FoldwiseError, match="did you mean 'train.scheduler'"):
        parse_params(raw)


def test_bool_is_not_a_number():
    raw = base()
    raw["lr"] = True
    with pytest.raises(FoldwiseError, match="'lr' must be a number"):
        parse_params(raw)


def literal_choices(annotation) -> list:
    """The Literal values anywhere in ``annotation`` (unions and lists included)."""
    if typing.get_origin(annotation) is typing.Literal:
        return list(typing.get_args(annotation))
    return [v for arg in typing.get_args(annotation) for v in literal_choices(arg)]


def test_every_choice_survives_exp_run_set_as_typed():
    """`dvc exp run -S key=value` writes the value bare; read back it must be that string."""
    checked = 0
    for key, annotation in param_fields():
        for value in literal_choices(annotation):
            assert yaml_value(value) == value, f"{key}: {value}"
            checked += 1
    assert checked > 20


def test_light_load_skips_timm_and_albumentations_but_still_checks_the_rest():
    """preprocess/split/submit load params without importing timm (~3 s per process)."""
    code = ("import sys; from foldwise.params import load; p = load(); "
            "print(p.lr, *(m in sys.modules for m in ('torch', 'timm', 'albumentations', 'foldwise.tasks', "
            "'foldwise.engine')))")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True,
                         env={**os.environ, "PYTHONPATH": str(ROOT / "src")}, check=True)
    assert out.stdout.split() == ["0.001", "False", "False", "False", "False", "False"]
    raw = base()
    raw.update(model="resnet_nope", lr="abc")
    with pytest.raises(FoldwiseError, match="'lr' must be a number"):
        parse_params(raw, check_names=False)
    raw["lr"] = 1e-3
    assert parse_params(raw, check_names=False).model == "resnet_nope"
    with pytest.raises(FoldwiseError, match="'model' must be a timm model name"):
        parse_params(raw)
