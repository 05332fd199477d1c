"""What a Dask worker does for one fold: a clone at the driver's state, the fold's inputs from the
shared cache or the DVC remote, ``dvc repro -s train@k`` with the worker's thread share, and (with a
remote) ``dvc push --run-cache`` so the driver restores the fold instead of training it."""
from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

from ..launch.pool import log_tail
from ..launch.slots import slot_envs, usable_cores
from . import guard
from .state import RepoState

LOG_NAME = "foldwise-cluster.log"  # in the clone's .dvc/tmp/
REMOTE_NAME = "foldwise"
CHECKPOINTS = "data/checkpoints"  # train's --checkpoint parent, as in dvc.yaml
# dvc's last words when the stage command was killed (the OOM killer, a kill -9): worth another try
KILLED_STAGE = re.compile(r"exited with -(9|15)\b")

_running: dict[str, set[subprocess.Popen]] = {}  # run id -> this worker's guard processes
_running_lock = threading.Lock()


class FoldInterrupted(RuntimeError):
    """The fold's process was killed (by a signal, not by an error of its own): worth another try."""


def train_fold(stage: str, state: RepoState, threads: int | dict[str, int], workdir: str | None = None) -> dict:
    """Run ``stage`` (e.g. ``train@0``) on this worker with $FOLDWISE_THREADS ``threads`` (or, from a
    dict, this worker's host's entry; a host that joined later: its cores), in the clone
    ``<workdir or the worker's local directory>/foldwise/<stage>``.
    Returns ``{"name", "worker", "code", "clone", "seconds", "tail"}``; ``code`` 0 is success."""
    steps = [["checkout" if state.cache_dir else "pull", *state.inputs], ["repro", "-s", stage]]
    if not state.cache_dir:
        steps.append(["push", "--run-cache", stage])
    return run_in_clone(stage, steps, state, threads, workdir)


def run_experiment(name: str, overrides: list[str], state: RepoState, threads: int | dict[str, int],
                   workdir: str | None = None) -> dict:
    """``dvc exp run -n name -S override ...`` in a clone (unchanged stages restored from the
    run-cache), then ``dvc exp push`` of it to the driver's git repository (or remote) and DVC cache.
    Returns run_in_clone's dict with, on success, ``"metrics"``: the experiment's metrics, nested."""
    sets = [arg for override in overrides for arg in ("-S", override)]
    steps = [["exp", "run", "-n", name, *sets, *([] if state.cache_dir else ["--pull"])],
             ["exp", "push", *(["--no-cache"] if state.cache_dir else ["--run-cache"]), state.git_url, name]]
    result = run_in_clone(name, steps, state, threads, workdir)
    if result["code"] == 0:
        import dvc.api

        result["metrics"] = dvc.api.metrics_show(repo=result["clone"])  # e.g. {"cv": {"auc": 0.71, ...}}
    return result


def run_in_clone(name: str, steps: list[list[str]], state: RepoState, threads: int | dict[str, int],
                 workdir: str | None) -> dict:
    """Run the dvc commands ``steps`` one after another in this worker's clone for ``name``, at
    ``state``; raise FoldInterrupted when one was killed by a signal."""
    from distributed import get_worker
    from distributed.comm import get_address_host

    worker = get_worker()
    if isinstance(threads, dict):
        threads = threads.get(get_address_host(worker.address)) or usable_cores()
    base = Path(workdir or worker.local_directory) / "foldwise"
    clone = base / re.sub(r"[^A-Za-z0-9_.-]", "-", name)
    start = time.monotonic()
    _checkout(clone, state, cache=state.cache_dir or str(base / "cache"))
    if state.checkpoints:  # the stage's --checkpoint data/checkpoints/... lands on shared storage
        shared = Path(state.checkpoints) / clone.name
        shared.mkdir(parents=True, exist_ok=True)
        link = clone / CHECKPOINTS
        link.parent.mkdir(parents=True, exist_ok=True)
        if link.is_symlink():
            link.unlink()
        link.symlink_to(shared, target_is_directory=True)
    log = clone / ".dvc" / "tmp" / LOG_NAME
    log.parent.mkdir(parents=True, exist_ok=True)
    log.write_text(f"{name} on {worker.address}, {threads} thread(s), commit {state.commit[:12]}\n")
    env = fold_environ(threads)
    code = 0
    for step in steps:
        code = _guarded([sys.executable, "-m", "dvc", *step], clone, env, log, state.run_id)
        if code:
            break
    last_lines = log_tail(log)
    if code in (128 + signal.SIGKILL, 128 + signal.SIGTERM) or KILLED_STAGE.search(last_lines):
        raise FoldInterrupted(f"{name} on {worker.address}: killed by a signal\n{last_lines}")
    return {"name": name, "worker": worker.address, "code": code, "clone": str(clone),
            "seconds": round(time.monotonic() - start, 1), "tail": last_lines}


def fold_environ(threads: int) -> dict[str, str]:
    """The environment of a fold's dvc process: this worker's, with ``threads`` for torch, OpenMP and
    BLAS, and without what Dask's Nanny set for the worker itself (``distributed.nanny.pre-spawn-
    environ``). Its MALLOC_TRIM_THRESHOLD_ keeps the worker's Python heap small, but under it torch
    hands its large buffers back to the system and faults them in again every step: CPU training
    ran about 1.5x slower."""
    import dask
    import distributed  # noqa: F401  (its config defaults, the Nanny's among them)

    nanny = dask.config.get("distributed.nanny.pre-spawn-environ", default={}) or {}
    env = {key: value for key, value in os.environ.items() if key not in nanny or value != str(nanny[key])}
    return {**env, **slot_envs(1, threads, [])[0]}


def stop_run(run_id: str) -> int:
    """Stop this worker's folds of run ``run_id`` (their guards kill their process groups)."""
    with _running_lock:
        procs = list(_running.get(run_id, ()))
    for proc in procs:
        try:
            proc.send_signal(signal.SIGTERM)
        except ProcessLookupError:
            pass
    return len(procs)


def _checkout(clone: Path, state: RepoState, cache: str) -> None:
    """``clone`` at ``state``: the commit, then the shipped files; the cache dir and remote in its local
    DVC config. Anything else in the clone (a killed try's outputs, DVC's locks) is removed."""
    if not (clone / ".git").is_dir():
        clone.mkdir(parents=True, exist_ok=True)
        _git(clone, "init", "-q")
    _git(clone, "fetch", "-q", "--no-tags", state.git_url, state.ref)
    _git(clone, "checkout", "-q", "--force", "--detach", state.commit)
    _git(clone, "clean", "-q", "-ffdx")
    for name, text in state.files.items():
        path = clone / name
        if text is None:
            path.unlink(missing_ok=True)
        else:
            path.write_text(text)
    local = ["[cache]", f"    dir = {cache}"]
    if state.remote:
        local = ["[core]", f"    remote = {REMOTE_NAME}", *local, f"['remote \"{REMOTE_NAME}\"']",
                 *(f"    {key} = {value}" for key, value in state.remote.items())]
    (clone / ".dvc" / "config.local").write_text("\n".join(local) + "\n")


def _git(cwd: Path, *args: str) -> None:
    subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True)


def _guarded(argv: list[str], cwd: Path, env: dict, log: Path, run_id: str) -> int:
    """Run ``argv`` under the guard (its own session, killed with this worker), output to ``log``."""
    with open(log, "a") as out:
        out.write(f"$ dvc {' '.join(argv[3:])}\n")
        out.flush()
        proc = subprocess.Popen([sys.executable, guard.__file__, str(os.getpid()), *argv], cwd=cwd, env=env,
                                stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                start_new_session=True)
    with _running_lock:
        _running.setdefault(run_id, set()).add(proc)
    try:
        code = proc.wait()
    finally:
        with _running_lock:
            _running[run_id].discard(proc)
    return 128 - code if code < 0 else code

