"""Where params are declared and who reads them: layers, task groups, each stage's PARAMS, dvc.yaml."""
from __future__ import annotations

import ast
import importlib
import shutil
import typing
from pathlib import Path

import pytest
from ruamel.yaml import YAML

from conftest import ROOT
from foldwise.core.errors import FoldwiseError
from foldwise.core.params import leaf_fields, read_params_file
from foldwise.params import TASK_GROUPS, Params, parse
from foldwise.stages import graph
from foldwise.stages.params import CHECKS, TASK_GROUP, StageParams, declared_keys, load_stage
from foldwise.tasks import TASKS

SRC = ROOT / "src" / "foldwise"
STAGE_NAMES = list(YAML(typ="safe").load((ROOT / "dvc.yaml").read_text())["stages"])


def foldwise_imports(path: Path) -> set[str]:
    """The foldwise subpackages ``path`` imports (module or function level), as ``tasks``, ``engine``, ..."""
    package = path.relative_to(SRC).parts[:-1]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - node.level + 1]
                parts = [*base, *(node.module.split(".") if node.module else [])]
            else:
                parts = node.module.split(".")[1:] if node.module.startswith("foldwise.") else []
            names = parts or [alias.name for alias in node.names]
            found.update(names[:1])
        elif isinstance(node, ast.Import):
            found.update(a.name.split(".")[1] for a in node.names if a.name.startswith("foldwise."))
    return found


@pytest.mark.parametrize("layer, forbidden", [("core", {"tasks", "engine", "params", "stages"}),
                                              ("params", {"tasks", "engine", "stages"}),
                                              ("tasks", {"engine", "stages"}),
                                              ("engine", {"stages"})])
def test_lower_layers_import_nothing_above_them(layer, forbidden):
    files = sorted((SRC / layer).rglob("*.py"))
    assert files
    for path in files:
        assert not foldwise_imports(path) & forbidden, f"{path.relative_to(ROOT)} imports {foldwise_imports(path) & forbidden}"


def test_the_import_scan_sees_function_level_imports(tmp_path):
    module = SRC / "core" / "_probe_for_test.py"
    module.write_text("def f():\n    from ..tasks import get_task\n    from foldwise.engine import models\n")
    try:
        assert foldwise_imports(module) == {"tasks", "engine"}
    finally:
        module.unlink()


def test_every_registered_task_has_its_group():
    assert list(TASK_GROUPS) == list(TASKS)
    assert typing.get_args(Params.model_fields["task"].annotation) == tuple(TASKS)
    assert all(Params.model_fields[name].annotation is group for name, group in TASK_GROUPS.items())


def test_task_constants_agree_with_the_declarations():
    from foldwise.params.task_groups import KINDS, ImagesParams, Resize
    from foldwise.tasks.common.imagefolder import RESIZES
    from foldwise.tasks.common.scorers import KINDS as SCORER_KINDS
    from foldwise.tasks.images import SHAPES

    assert typing.get_args(Resize) == RESIZES and KINDS == SCORER_KINDS
    assert ImagesParams().classes == list(SHAPES)


# ---- each stage's view --------------------------------------------------------------------------------
def test_stage_view_refuses_an_undeclared_key():
    p = parse(read_params_file(ROOT / "params.yaml"))
    view = StageParams(p, "demo", declared_keys(("task", "img_size", "train.weights", TASK_GROUP), p.task))
    assert (view.task, view.img_size, view.train.weights) == ("seti", 64, "")
    assert view.task_params.frames == "all" and view.seti.stack == "vertical"
    assert view.unchecked.lr == p.lr
    for read in (lambda: view.lr, lambda: view.train.optimizer, lambda: view.hms.layout, lambda: view.augment):
        with pytest.raises(FoldwiseError, match=r"^stage demo reads param '(lr|train.optimizer|hms|augment)' but does not declare it"):
            read()
    with pytest.raises(AttributeError):
        view.lr_typo_that_is_no_param  # noqa: B018


def test_load_stage_resolves_augment_only_for_stages_that_read_it(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    shutil.copy(ROOT / "params.yaml", "params.yaml")
    assert load_stage("train", ("augment",)).augment.train == [{"HorizontalFlip": {"p": 0.5}}, {"VerticalFlip": {"p": 0.5}}]
    assert load_stage("split", ("seed",)).unchecked.augment.train == "auto"


@pytest.mark.parametrize("stage", STAGE_NAMES)
def test_each_stage_declares_existing_keys_and_known_checks(stage):
    module = importlib.import_module(f"foldwise.stages.{stage}")
    keys = {key for key, _ in leaf_fields(Params)}
    for declared in module.PARAMS:
        if declared == TASK_GROUP:
            continue
        assert declared in Params.model_fields or declared in keys, f"{stage}: PARAMS names unknown key {declared!r}"
    assert set(module.CHECKS) <= set(CHECKS)
    assert graph.declared_params(stage) == [k for k in module.PARAMS]


# ---- dvc.yaml from the declarations --------------------------------------------------------------------
def test_dvc_yaml_params_are_generated_from_the_stage_declarations():
    assert graph.stale_stages(ROOT / "dvc.yaml") == [], "run `python -m foldwise.stages.graph --write`"


def test_a_stale_params_list_is_found_and_rewritten(tmp_path):
    path = tmp_path / "dvc.yaml"
    text = (ROOT / "dvc.yaml").read_text()
    path.write_text(text.replace("      - seed\n      - n_splits\n      - eda\n", "      - seed\n      - eda\n", 1))
    assert [name for name, _, _ in graph.stale_stages(path)] == ["eda"]
    assert graph.write(path) == ["eda"]
    assert path.read_text() == text  # comments and layout elsewhere kept
    with pytest.raises(SystemExit) as done:
        graph.main(["--check", "--dvc-yaml", str(path)])
    assert done.value.code == 0


# ---- the schema and the reference are the declarations' ---------------------------------------------
def test_committed_schema_and_reference_are_generated_from_the_declarations():
    from foldwise.params import reference

    assert (ROOT / reference.SCHEMA_FILE).read_text() == reference.schema_text(), \
        "run `python -m foldwise.params.reference --write`"
    assert (ROOT / reference.REFERENCE_FILE).read_text() == reference.markdown(), \
        "run `python -m foldwise.params.reference --write`"


def test_editors_validate_params_yaml_with_the_schema():
    import json

    from foldwise.params import reference

    settings = json.loads((ROOT / ".vscode" / "settings.json").read_text())
    assert settings["yaml.schemas"] == {f"./{reference.SCHEMA_FILE}": ["params.yaml"]}


def test_schema_and_reference_name_every_key_with_its_default():
    from foldwise.params import default_params, reference

    schema, text = reference.schema(), reference.markdown()
    defaults = default_params()
    for key, info in leaf_fields(Params):
        group, _, name = key.rpartition(".")
        props = schema["$defs"][Params.model_fields[group].annotation.__name__]["properties"] if group else schema["properties"]
        assert props[name]["default"] == (defaults[group][name] if group else defaults[name]), key
        assert props[name].get("description"), f"{key} has no description"
        assert f"| `{key}` |" in text, key
    assert schema["properties"]["task"]["enum"] == list(TASKS)
    assert schema["$defs"]["TrainParams"]["additionalProperties"] is False


def test_the_schema_accepts_params_yaml_and_refuses_what_the_loader_refuses():
    jsonschema = pytest.importorskip("jsonschema")  # what editors run; a dependency of the installed tools
    from foldwise.params import reference

    validator = jsonschema.Draft202012Validator(reference.schema())
    raw = read_params_file(ROOT / "params.yaml")
    assert list(validator.iter_errors(raw)) == []
    for key, value in [("seed", "2"), ("lrr", 1), ("task", "mnist"), ("lr", 0)]:
        assert list(validator.iter_errors({**raw, key: value})), key
    assert list(validator.iter_errors({**raw, "train": {**raw["train"], "threads": 0}}))
