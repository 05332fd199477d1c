"""dvc.yaml declares every source file a stage runs, so editing code reruns the stages that use it.

For each stage and each task, a subprocess imports the stage's module (and, where the stage looks a
task up, that task's package) and lists the foldwise files Python loaded; each must lie under one of
the stage's declared deps. A new import that dvc.yaml misses fails here, not as a silently stale
`dvc repro`.

Not probed: the checks a stage runs on its params (``CHECKS``: the timm model, the transforms, the
scorers) import engine/ and the task where they run; they only refuse a run, they never shape an output.
split never looks its task up and does not depend on tasks/ (folds.csv depends on seed, n_splits and
the prepared index only).
"""
from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from foldwise.tasks import TASKS

ROOT = Path(__file__).resolve().parents[1]

# Package markers outside any dep folder; allowed only while they hold no code (checked below).
PACKAGE_MARKERS = {"src/foldwise/__init__.py", "src/foldwise/stages/__init__.py", "src/foldwise/tasks/__init__.py"}

LOADED_FILES = r"""
import importlib, json, sys
stages, tasks = json.loads(sys.argv[1]), json.loads(sys.argv[2])
def foldwise_files():
    return {m.__file__ for name, m in sys.modules.items() if name.startswith("foldwise") and getattr(m, "__file__", None)}
def forget_foldwise():
    for name in [n for n in sys.modules if n.startswith("foldwise")]:
        del sys.modules[name]
result = {}
for stage in stages:
    for task in tasks:
        forget_foldwise()
        module = importlib.import_module(f"foldwise.stages.{stage}")
        if hasattr(module, "task_for"):  # the stage looks its task up by name at run time
            importlib.import_module("foldwise.tasks").get_task(task)
        result[f"{stage}/{task}"] = sorted(foldwise_files())
print(json.dumps(result))
"""


def stage_code_deps(task: str) -> dict[str, list[str]]:
    """stage name -> its deps under src/, with ${task} filled in (the train template stands for train@k)."""
    stages = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]
    deps = {}
    for name, stage in stages.items():
        body = stage.get("do", stage)
        deps[name] = [d.replace("${task}", task) for d in body["deps"] if d.startswith("src/")]
    return deps


@pytest.fixture(scope="module")
def loaded_files() -> dict[str, list[str]]:
    stages = list(stage_code_deps("seti"))
    proc = subprocess.run(
        [sys.executable, "-c", LOADED_FILES, json.dumps(stages), json.dumps(list(TASKS))],
        cwd=ROOT, capture_output=True, text=True, check=True,
        env={**os.environ, "PYTHONPATH": str(ROOT / "src")},
    )
    return json.loads(proc.stdout)


def covered(path: str, deps: list[str]) -> bool:
    return any(path == dep or path.startswith(dep.rstrip("/") + "/") for dep in deps)


@pytest.mark.parametrize("task", list(TASKS))
def test_every_loaded_source_file_is_a_declared_dep(loaded_files, task):
    declared = stage_code_deps(task)
    for stage, deps in declared.items():
        files = {str(Path(f).resolve().relative_to(ROOT)) for f in loaded_files[f"{stage}/{task}"]}
        assert f"src/foldwise/stages/{stage}.py" in files  # the probe really imported the stage
        missing = sorted(f for f in files - PACKAGE_MARKERS if not covered(f, deps))
        assert not missing, f"dvc.yaml stage {stage!r} (task {task}) runs code it does not depend on: {missing}"


@pytest.mark.parametrize("task", list(TASKS))
def test_declared_code_deps_exist(task):
    for stage, deps in stage_code_deps(task).items():
        for dep in deps:
            assert (ROOT / dep).exists(), f"dvc.yaml stage {stage!r}: dep {dep} does not exist"


def test_other_tasks_are_not_deps_of_a_task_pipeline():
    """Editing hms/ must not rerun a SETI pipeline: a task's package is a dep only of its own runs."""
    for stage, deps in stage_code_deps("seti").items():
        assert "src/foldwise/tasks" not in deps, stage
        assert not any(dep.endswith(("/hms", "/petfinder")) for dep in deps), stage


@pytest.mark.parametrize("marker", sorted(PACKAGE_MARKERS))
def test_package_markers_hold_no_code(marker):
    tree = ast.parse((ROOT / marker).read_text())
    defined = [n for n in ast.walk(tree) if isinstance(n, (ast.FunctionDef, ast.ClassDef, ast.AsyncFunctionDef))]
    assert not defined, f"{marker} defines code but no stage depends on it; move it into a dep folder"


def test_bytecode_caches_are_dvcignored():
    """Code deps are folders; without this a run's __pycache__ would mark every stage changed."""
    patterns = (ROOT / ".dvcignore").read_text().split()
    assert "__pycache__/" in patterns and "*.pyc" in patterns
