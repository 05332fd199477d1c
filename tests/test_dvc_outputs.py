"""No output DVC caches is also tracked by git: a fresh clone's `dvc repro` would stop at that stage
with "output '...' is already tracked by SCM". The tests' temporary repositories copy no outputs,
so only this check on the repository itself sees it."""
from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def cached_outputs(root: Path) -> list[str]:
    """Every output of every stage of the repository's dvc.yaml that DVC caches (not `cache: false`),
    relative to ``root``, with foreach stages expanded as params.yaml resolves them."""
    from dvc.repo import Repo

    with Repo(str(root)) as repo:
        return sorted({str(Path(out.fs_path).relative_to(root)) for stage in repo.index.stages
                       for out in stage.outs if out.use_cache})


def git_tracked(root: Path, path: str) -> list[str]:
    listed = subprocess.run(["git", "ls-files", "--", path], cwd=root, capture_output=True, text=True, check=True)
    return listed.stdout.split()


def test_the_repository_declares_cached_outputs():
    outputs = cached_outputs(ROOT)
    assert {"data/raw", "data/prepared", "data/models/fold_0", "metrics/train/fold_0", "metrics/eda"} <= set(outputs)


@pytest.mark.parametrize("path", cached_outputs(ROOT))
def test_a_cached_output_is_not_tracked_by_git(path):
    assert git_tracked(ROOT, path) == [], f"{path} is a DVC-cached output: untrack it (git rm -r --cached {path})"
