"""conf/ composes params.yaml as `dvc exp run -S` does with Hydra enabled: the generated config.yaml
matches the declarations, the default composition is the committed params.yaml, and every task's
defaults compose and validate. Composed in-process with Hydra's compose API, as dvc/utils/hydra.py does."""
from __future__ import annotations

import re
import subprocess
import sys

import pytest
from ruamel.yaml import YAML

from conftest import ROOT
from foldwise import conf
from foldwise.core.errors import FoldwiseError
from foldwise.core.params import read_params_file
from foldwise.stages.params import parse_params
from foldwise.tasks import TASKS


CONF = ROOT / "conf"


def compose(*overrides: str) -> dict:
    return conf.compose(list(overrides), CONF)


def test_dvc_composes_params_yaml_from_conf():
    dvc_config = (ROOT / ".dvc" / "config").read_text()
    assert "[hydra]" in dvc_config and "enabled = true" in dvc_config


def test_config_yaml_is_generated_from_the_declarations():
    assert (CONF / "config.yaml").read_text() == conf.config_text(), "run: python -m foldwise.conf --write"


def test_params_yaml_is_the_default_composition():
    """The committed params.yaml is what `dvc exp run -S task=seti` writes: `dvc repro` and a
    composed run agree on the default task."""
    assert compose() == read_params_file(ROOT / "params.yaml")
    assert compose("task=seti") == compose()


def test_one_override_changes_one_value():
    composed = compose("lr=1e-4")
    assert composed.pop("lr") == 1e-4
    default = compose()
    default.pop("lr")
    assert composed == default


def test_every_task_has_its_defaults_file():
    assert sorted(path.stem for path in (CONF / "task").glob("*.yaml")) == sorted(TASKS)


@pytest.mark.parametrize("task", list(TASKS))
def test_every_task_composes_and_validates(task):
    composed = compose(f"task={task}")
    assert composed["task"] == task
    p = parse_params(composed, source=f"conf task={task}")
    assert p.task == task


@pytest.mark.parametrize("task", ["mask", "images", "petfinder"])
def test_a_task_brings_its_own_defaults_and_a_key_override_still_wins(task):
    own = compose(f"task={task}")
    assert own["epochs"] > compose()["epochs"]  # these tasks learn from more steps than SETI's default
    assert compose(f"task={task}", "epochs=1")["epochs"] == 1


@pytest.mark.parametrize("task", list(TASKS))
def test_the_composed_file_reads_back_as_composed(task):
    """DVC writes the composition with OmegaConf.to_yaml; the stages read it as YAML 1.2."""
    composed = compose(f"task={task}")
    assert YAML(typ="safe").load(conf.to_yaml(composed)) == composed


def test_an_unknown_task_or_recipe_is_one_line_naming_the_choices():
    with pytest.raises(FoldwiseError, match=r"recipe=nope.*seti_swin") as info:
        compose("recipe=nope")
    assert "\n" not in str(info.value)
    with pytest.raises(FoldwiseError, match=r"task=nope.*mask"):
        compose("task=nope")


def test_the_command_prints_a_composition_and_fails_in_one_line(tmp_path):
    env_cmd = [sys.executable, "-m", "foldwise.conf"]
    shown = subprocess.run([*env_cmd, "task=mask", "epochs=2"], cwd=ROOT, capture_output=True, text=True)
    assert shown.returncode == 0, shown.stderr
    assert YAML(typ="safe").load(shown.stdout) == compose("task=mask", "epochs=2")
    out = tmp_path / "params.yaml"
    subprocess.run([*env_cmd, "recipe=seti_swin", "--out", str(out)], cwd=ROOT, check=True)
    assert read_params_file(out) == compose("recipe=seti_swin")
    bad = subprocess.run([*env_cmd, "recipe=nope"], cwd=ROOT, capture_output=True, text=True)
    assert bad.returncode == 1 and bad.stderr.count("\n") == 1 and "recipe=nope" in bad.stderr


# ---- docs/how-to/recipes.md -----------------------------------------------------------------------
DOC = ROOT / "docs" / "how-to" / "recipes.md"


def doc_blocks(lang: str) -> list[str]:
    return [block.split("```", 1)[0] for block in DOC.read_text().split(f"```{lang}\n")[1:]]


def test_the_docs_commands_compose_and_validate(capsys):
    """Each `dvc exp run` line of the how-to composes (with its -S values) and loads; each
    `python -m foldwise.conf` line runs and prints a composition."""
    import shlex

    lines = [line.split("  #", 1)[0].strip() for block in doc_blocks("bash") for line in block.splitlines()]
    runs = [shlex.split(line) for line in lines if line.startswith("dvc exp run")]
    assert len(runs) == 4
    for tokens in runs:
        assert tokens[:3] == ["dvc", "exp", "run"] and set(tokens[3::2]) == {"-S"}, tokens
        parse_params(compose(*tokens[4::2]), source=" ".join(tokens), check_names=False)
    shows = [shlex.split(line)[3:] for line in lines if line.startswith("python -m foldwise.conf")]
    assert shows
    for args in shows:
        conf.main(["--conf", str(CONF), *args])
        assert YAML(typ="safe").load(capsys.readouterr().out) == compose(*args)


def test_the_docs_list_every_recipe_and_its_example_composes(tmp_path):
    import shutil

    listed = re.findall(r"^\| `(\w+)` \|", DOC.read_text(), flags=re.M)
    assert sorted(listed) == conf.recipes(CONF)
    example = next(block for block in doc_blocks("yaml") if "override /task" in block)
    shutil.copytree(CONF, tmp_path / "conf")
    (tmp_path / "conf" / "recipe" / "example.yaml").write_text(example)
    composed = conf.compose(["recipe=example"], tmp_path / "conf")
    assert composed["task"] == "petfinder" and composed["train"]["pretrained"] is True
    parse_params(composed, source="the docs' example recipe", check_names=False)


@pytest.mark.slow
def test_dvc_exp_run_composes_a_recipe_and_exp_show_lists_its_values(tmp_path):
    """The real `dvc exp run -S recipe=... -S key=...` in a copy of the project (download stage only):
    params.yaml becomes the composition, and `dvc exp show` lists the recipe's resolved values."""
    import json

    from conftest import make_repo, run

    repo = make_repo(tmp_path / "repo", {"synthetic": {"n_train": 40, "n_test": 4}})
    run(["dvc", "exp", "run", "-n", "swin", "-S", "recipe=seti_swin", "-S", "epochs=1", "download"], repo)
    expected = compose("recipe=seti_swin", "epochs=1", "synthetic.n_train=40", "synthetic.n_test=4")
    assert read_params_file(repo / "params.yaml") == expected
    shown = json.loads(run(["dvc", "exp", "show", "--json"], repo).stdout)
    swin = next(rev["data"]["params"]["params.yaml"]["data"] for row in shown for exp in row.get("experiments") or []
                for rev in exp["revs"] if rev["name"] == "swin")
    assert swin == expected
