"""The driver's exact state, made reachable by workers: its commit (under a temporary git ref), the
dvc.yaml, dvc.lock and params.yaml of its workspace, and where the fold stages' inputs are found
(a cache directory every worker sees, or a DVC remote they pull from and push to)."""
from __future__ import annotations

import subprocess
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from ..core.errors import FoldwiseError

SHIPPED_FILES = ("dvc.yaml", "dvc.lock", "params.yaml")  # text the workers' clones get as they are here
REF_PREFIX = "refs/foldwise/repro-"


@dataclass(frozen=True)
class RepoState:
    run_id: str
    git_url: str                  # where workers fetch ``ref`` from
    ref: str                      # a temporary ref to ``commit``
    commit: str
    files: dict[str, str | None]  # SHIPPED_FILES' text (None: absent here)
    inputs: list[str]             # the fold stages' dependencies made by upstream stages (pulled, not run)
    cache_dir: str | None = None  # a cache directory shared by every worker, or
    remote: dict[str, str] = field(default_factory=dict)  # the DVC remote's config section (url, ...)
    checkpoints: str | None = None  # shared storage for data/checkpoints: a retried task resumes there


def git(*args: str, cwd: Path | str = ".") -> str:
    result = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True)
    if result.returncode != 0:
        raise FoldwiseError(f"git {' '.join(args)}: {(result.stderr or result.stdout).strip().splitlines()[-1:]}")
    return result.stdout.strip()


def stage_sources(stages: list[str]) -> tuple[dict[str, str], list[str]]:
    """For ``stages`` (names as dvc.yaml addresses them): their dependencies no stage produces (code and
    data in git) -> the first stage naming each, and the dependencies of the ``@`` group members that
    other stages produce (e.g. data/prepared, data/folds.csv)."""
    from dvc.dependency.param import ParamsDependency
    from dvc.exceptions import DvcException
    from dvc.repo import Repo

    sources: dict[str, str] = {}
    inputs: list[str] = []
    try:
        with Repo() as repo:
            produced = [out.def_path for stage in repo.index.stages for out in stage.outs]
            by_name = {stage.addressing: stage for stage in repo.index.stages}
    except DvcException as exc:
        raise FoldwiseError(f"dvc: {exc}") from None
    for name in stages:
        for dep in by_name[name].deps:
            if isinstance(dep, ParamsDependency):
                continue
            path = dep.def_path
            made = any(path == p or path.startswith(p.rstrip("/") + "/") for p in produced)
            if not made:
                sources.setdefault(path, name)
            elif "@" in name and path not in inputs:
                inputs.append(path)
    return sources, inputs


def refuse_uncommitted(sources: dict[str, str]) -> None:
    """One line naming the first uncommitted change to a stage's code: workers run the commit."""
    if not sources:
        return
    changed = git("status", "--porcelain", "--untracked-files=all", "--", *sources)
    if changed:
        path = changed.splitlines()[0].split(None, 1)[-1]  # after the status letters
        owner = next((stage for src, stage in sources.items() if path == src or path.startswith(src.rstrip("/") + "/")),
                     next(iter(sources.values())))
        raise FoldwiseError(f"uncommitted change to {path} (a dependency of {owner}): cluster workers run the "
                            "last commit; commit it first")


def default_remote() -> dict[str, str]:
    """The config section of the default DVC remote (core.remote), paths made absolute: the remote
    the driver's own ``dvc push`` and ``dvc repro --pull`` use, so the workers must use it too."""
    from dvc.repo import Repo

    with Repo() as repo:
        config = repo.config
        name = config["core"].get("remote")
        if not name or name not in config["remote"]:
            raise FoldwiseError("--cluster needs a default DVC remote the workers can reach "
                                "(dvc remote add -d NAME URL) or --shared-cache")
        return {key: str(value) for key, value in config["remote"][name].items()}


def cache_dir() -> str:
    from dvc.repo import Repo

    with Repo() as repo:
        return str(Path(repo.cache.local_cache_dir).resolve())


def publish(inputs: list[str], shared_cache: bool, git_remote: str | None,
            checkpoints: str | None = None) -> RepoState:
    """Put HEAD under a temporary ref (in ``git_remote`` when given, else here, for workers that reach
    this directory) and describe the workspace for the workers."""
    run_id = uuid.uuid4().hex[:12]
    ref, commit = REF_PREFIX + run_id, git("rev-parse", "HEAD")
    if git_remote:
        git_url = git("remote", "get-url", git_remote)
        git("push", "-q", git_remote, f"{commit}:{ref}")
    else:
        git_url = str(Path(git("rev-parse", "--show-toplevel")).resolve())
        git("update-ref", ref, commit)
    files = {name: Path(name).read_text() if Path(name).is_file() else None for name in SHIPPED_FILES}
    return RepoState(run_id, git_url, ref, commit, files, inputs,
                     cache_dir=cache_dir() if shared_cache else None,
                     remote={} if shared_cache else default_remote(),
                     checkpoints=str(Path(checkpoints).resolve()) if checkpoints else None)


def withdraw(state: RepoState, git_remote: str | None) -> None:
    """Delete the temporary ref (best effort: a leftover ref only keeps a commit alive)."""
    argv = ["push", "-q", git_remote, f":{state.ref}"] if git_remote else ["update-ref", "-d", state.ref]
    subprocess.run(["git", *argv], capture_output=True)
