"""What ``foldwise.repro`` runs, read from DVC's own stage graph: the parallel group (``train@k``),
the stages it depends on (run first, in order, by ``dvc repro``) and which group members are stale."""
from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from ..core.errors import FoldwiseError


@dataclass(frozen=True)
class Plan:
    upstream: list[str]  # stages the group depends on, e.g. download, preprocess, split
    group: list[str]     # the group's stages in the targets' closure, in dvc.yaml order: train@0, train@1, ...


def dvc_argv(*args: str) -> list[str]:
    return [sys.executable, "-m", "dvc", *args]


def make_plan(targets: list[str], group: str) -> Plan:
    """Stages named ``<group>@<item>`` among ``targets`` and everything they depend on (the whole
    dvc.yaml when no target is given), and the stages upstream of those."""
    import networkx as nx
    from dvc.exceptions import DvcException
    from dvc.repo import Repo

    try:
        with Repo() as repo:
            order = {stage.addressing: i for i, stage in enumerate(repo.index.stages)}
            if targets:
                closure = {s for t in targets for s in repo.stage.collect(t, with_deps=True)}
            else:
                closure = set(repo.index.stages)
            members = [s for s in closure if s.addressing.startswith(group + "@")]
            graph = repo.index.graph  # edges point from a stage to the stages it depends on
            upstream = {dep for s in members for dep in nx.descendants(graph, s)} - set(members)
    except DvcException as exc:
        raise FoldwiseError(f"dvc: {exc}") from None
    by_order = lambda names: sorted(names, key=order.__getitem__)  # noqa: E731
    return Plan(upstream=by_order(s.addressing for s in upstream), group=by_order(s.addressing for s in members))


def stale(stages: list[str]) -> list[str]:
    """Those of ``stages`` that ``dvc status`` reports as changed (their upstream is up to date)."""
    if not stages:
        return []
    result = subprocess.run(dvc_argv("status", "--json", *stages), capture_output=True, text=True)
    if result.returncode != 0:
        raise FoldwiseError(f"dvc status failed: {(result.stderr or result.stdout).strip().splitlines()[-1:]}")
    changed = json.loads(result.stdout.strip().splitlines()[-1] or "{}")
    return [s for s in stages if s in changed]


def sort_lock_entries(stages: list[str], lockfile: str = "dvc.lock") -> None:
    """Put ``stages``' entries back in dvc.yaml order inside dvc.lock. DVC appends a new stage's entry
    when it finishes, so folds finishing out of order would give a lock file that lists the same
    entries as a sequential run's in another order."""
    from dvc.utils.serialize import load_yaml, modify_yaml

    if not Path(lockfile).is_file():
        return
    keys = list((load_yaml(lockfile) or {}).get("stages", {}))
    slots = [i for i, k in enumerate(keys) if k in stages]
    wanted = [k for k in stages if k in keys]
    if [keys[i] for i in slots] == wanted:
        return
    with modify_yaml(lockfile) as data:
        entries = data["stages"]
        for i, k in zip(slots, wanted):
            keys[i] = k
        items = {k: entries[k] for k in keys}
        entries.clear()
        entries.update(items)
