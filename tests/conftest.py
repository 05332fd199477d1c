"""Shared fixtures: a tiny copy of the repository to run the real DVC pipeline in.

The project composes params.yaml with Hydra (``hydra.enabled`` in .dvc/config): every ``dvc exp run
-S ...`` rewrites params.yaml from ``conf/``, so a value written into params.yaml alone would be lost
at a test's first ``dvc exp run``. A test repository therefore keeps its params in its own ``conf/``
(``set_params``): its ``task`` selects ``conf/task/<task>.yaml`` as ``-S task=...`` would, and every
other override goes to ``conf/repo_overrides.yaml``, appended last to the defaults list, so it wins
over the task's and a recipe's defaults while ``-S key=value`` still wins over it. params.yaml is
then written as the composition, i.e. what ``dvc exp run`` would write, so ``dvc repro`` and
``dvc exp run`` run the same params. ``edit_params`` is a hand edit of params.yaml, for tests of
``dvc repro`` and of the stages themselves (a later ``dvc exp run -S`` drops it, as it would a user's).
"""
from __future__ import annotations

import copy
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from ruamel.yaml import YAML

ROOT = Path(__file__).resolve().parents[1]
REPO_FILES = ["src", "conf", "dvc.yaml", "params.yaml", ".gitignore", ".dvcignore", ".dvc/config", ".dvc/.gitignore",
              ".dvc/plots"]  # the plot templates dvc.yaml names

# Few hundred samples, 2 folds, 1 epoch, small images and model: the whole graph in about a minute.
TINY = {
    "folds": [0, 1], "n_splits": 2, "epochs": 1, "img_size": 48, "model": "resnet10t", "batch_size": 32,
    "synthetic": {"n_train": 240, "n_test": 40},
}


def deep_update(base: dict, overrides: dict) -> dict:
    for key, value in overrides.items():
        if isinstance(value, dict) and isinstance(base.get(key), dict):
            deep_update(base[key], value)
        else:
            base[key] = value
    return base


def pipeline_env() -> dict:
    env = dict(os.environ)
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env["DVC_NO_ANALYTICS"] = "1"
    env["NO_ALBUMENTATIONS_UPDATE"] = "1"
    env.pop("FOLDWISE_DEBUG", None)
    # Stages write __pycache__ into the code deps' folders, as for a user; .dvcignore must hide it.
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    return env


def run(cmd: list[str], cwd: Path, check: bool = True, timeout: int = 900) -> subprocess.CompletedProcess:
    result = subprocess.run(cmd, cwd=cwd, env=pipeline_env(), capture_output=True, text=True, timeout=timeout)
    if check and result.returncode != 0:
        raise AssertionError(f"{' '.join(cmd)} failed ({result.returncode}):\n{result.stdout[-4000:]}\n{result.stderr[-4000:]}")
    return result


def make_repo(dest: Path, overrides: dict | None = None) -> Path:
    """Copy the project into ``dest`` with params overridden, as a committed git + DVC repo."""
    dest.mkdir(parents=True, exist_ok=True)
    for rel in REPO_FILES:
        src = ROOT / rel
        target = dest / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        if src.is_dir():
            shutil.copytree(src, target, ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
        else:
            shutil.copy2(src, target)
    set_params(dest, overrides or {})
    run(["git", "init", "-q"], dest)
    run(["git", "-c", "user.name=t", "-c", "user.email=t@t", "add", "-A"], dest)
    run(["git", "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "init"], dest)
    return dest


REPO_OVERRIDES = "repo_overrides"  # conf/<this>.yaml: a test repository's own params


def set_params(repo: Path, overrides: dict) -> None:
    """Merge ``overrides`` into ``repo``'s conf/ (see the module docstring) and write its params.yaml
    as their composition, as `dvc exp run` would."""
    from omegaconf import OmegaConf

    from foldwise import conf

    conf_dir = repo / "conf"
    overrides = copy.deepcopy(overrides)
    config = OmegaConf.load(conf_dir / "config.yaml")
    defaults = [d for d in OmegaConf.to_container(config.defaults) if d != REPO_OVERRIDES]
    if "task" in overrides:
        defaults = [{"task": overrides.pop("task")} if isinstance(d, dict) and "task" in d else d for d in defaults]
    config.defaults = [*defaults, REPO_OVERRIDES]
    OmegaConf.save(config, conf_dir / "config.yaml")
    path = conf_dir / f"{REPO_OVERRIDES}.yaml"
    kept = OmegaConf.to_container(OmegaConf.load(path)) if path.is_file() else {}
    path.write_text("# @package _global_\n" + OmegaConf.to_yaml(deep_update(kept or {}, overrides)))
    (repo / "params.yaml").write_text(conf.to_yaml(conf.compose([], conf_dir)))


def write_composed(dest: Path, sets: list[str], extra: dict | None = None) -> Path:
    """``dest``/params.yaml as `dvc exp run -S <sets>` composes it from this project's conf/, with
    ``extra`` (e.g. tiny sizes) merged over it: for tests that run the stages in-process."""
    from foldwise import conf

    path = dest / "params.yaml"
    path.write_text(conf.to_yaml(deep_update(conf.compose(sets, ROOT / "conf"), copy.deepcopy(extra or {}))))
    return path


def edit_params(path: Path, overrides: dict) -> None:
    """Merge ``overrides`` into the params file at ``path`` by hand, through ruamel.yaml's round trip
    (YAML 1.2, comments kept). `dvc repro` runs the edit; `dvc exp run -S` recomposes params.yaml
    from conf/ and drops it (use ``set_params`` for that)."""
    yaml = YAML()
    params = yaml.load(path)
    deep_update(params, copy.deepcopy(overrides))
    yaml.dump(params, path)


def copy_raw(data: Path, tmp_path: Path) -> Path:
    """A writable copy of a generated dataset ``data`` at ``tmp_path/raw``, for tests that damage it."""
    root = tmp_path / "raw"
    shutil.copytree(data, root)
    return root


@pytest.fixture
def tiny_repo(tmp_path):
    """Factory: ``tiny_repo(**overrides)`` -> path of a committed tiny copy of the project."""
    def factory(overrides: dict | None = None, name: str = "repo") -> Path:
        return make_repo(tmp_path / name, deep_update(copy.deepcopy(TINY), copy.deepcopy(overrides or {})))
    return factory


@pytest.fixture(autouse=True)
def _git_identity(monkeypatch):
    for var, value in {"GIT_AUTHOR_NAME": "foldwise-test", "GIT_AUTHOR_EMAIL": "test@foldwise",
                       "GIT_COMMITTER_NAME": "foldwise-test", "GIT_COMMITTER_EMAIL": "test@foldwise"}.items():
        monkeypatch.setenv(var, value)
