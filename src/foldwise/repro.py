"""``foldwise repro -j N [target ...]`` (or ``python -m foldwise.repro``): ``dvc repro`` with the folds trained N at a time.

DVC runs stages one after another. This runs the same graph in three steps, each through DVC itself
so that ``dvc.lock``, the run cache and ``dvc status`` stay exactly as after ``dvc repro``:

1. ``dvc repro <upstream>``: the stages the folds depend on (download, preprocess, split);
2. ``dvc repro -s train@k`` for each stale fold, N at a time, each with its share of the machine
   (one GPU each, round robin; on CPU ``cores // N`` threads each via $FOLDWISE_THREADS, which
   ``train.threads: auto`` follows); a start that meets DVC's lock is retried after a backoff;
3. ``dvc repro [target ...]``: everything after the folds (oof, infer, submit).

A failing fold stops the others and is named; Ctrl-C or SIGTERM stops every stage process.
Each fold's output goes to .dvc/tmp/foldwise-repro/<stage>.log.

With ``--cluster ADDRESS`` (a Dask scheduler, or ``local:N`` for N worker processes here) step 2 runs
on Dask workers instead, each fold in a clone of this commit with this workspace's dvc.yaml, dvc.lock
and params.yaml (uncommitted code is refused), its inputs from the default DVC remote (or ``--shared-cache``),
and its result back through DVC's run-cache: step 3 then restores every fold instead of training it.
"""
from __future__ import annotations

import argparse
import subprocess
import time
from pathlib import Path

from .cli import run_cli
from .cluster.driver import local_workers
from .cluster.state import refuse_uncommitted, stage_sources
from .core.errors import FoldwiseError
from .launch.graph import dvc_argv, make_plan, sort_lock_entries, stale
from .launch.pool import Job, run_jobs
from .launch.slots import slot_envs, usable_cores, visible_gpus

LOG_DIR = Path(".dvc/tmp/foldwise-repro")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="foldwise repro", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("targets", nargs="*", help="stages as for dvc repro (default: the whole dvc.yaml)")
    parser.add_argument("-j", "--jobs", type=int, default=None,
                        help="folds at once (default: one per visible GPU, else one per core)")
    parser.add_argument("--group", default="train", help="the foreach stage whose items run in parallel")
    cluster = parser.add_argument_group("on a Dask cluster")
    cluster.add_argument("--cluster", metavar="ADDRESS",
                         help="train the folds on the Dask scheduler at ADDRESS (tcp://host:8786), or on "
                              "local:N worker processes started here")
    cluster.add_argument("--shared-cache", action="store_true",
                         help="this repository's DVC cache directory is on storage every worker sees: the "
                              "workers use it, nothing is pushed or pulled")
    cluster.add_argument("--git-remote", help="a git remote the workers fetch this commit from, pushed under a "
                                              "temporary ref (default: this directory, for workers that see it)")
    cluster.add_argument("--threads", type=int, help="FOLDWISE_THREADS per fold (default: the worker host's "
                                                     "cores over the worker threads on it)")
    cluster.add_argument("--retries", type=int, default=2,
                         help="tries again of a fold whose process was killed (default: 2)")
    cluster.add_argument("--checkpoints", metavar="DIR",
                         help="storage every worker sees, linked as data/checkpoints in their clones: a fold "
                              "tried again after its worker died resumes from its last epoch")
    args = parser.parse_args(argv)
    if not Path("dvc.yaml").is_file():
        raise FoldwiseError("no dvc.yaml here: run from the repository root")
    gpus, cores = visible_gpus(), usable_cores()
    if args.jobs is not None and args.jobs < 1:
        raise FoldwiseError(f"-j must be >= 1, got {args.jobs}")
    jobs = args.jobs or len(gpus) or cores
    if args.threads is not None and args.threads < 1:
        raise FoldwiseError(f"--threads must be >= 1, got {args.threads}")

    if args.cluster:
        local_workers(args.cluster)
    start = time.monotonic()
    plan = make_plan(args.targets, args.group)
    if args.cluster:
        sources, inputs = stage_sources(plan.upstream + plan.group)
        refuse_uncommitted(sources)
    if plan.upstream:
        run_foreground(dvc_argv("repro", *plan.upstream))
        sort_lock_entries(plan.upstream)  # independent ones (download, pretrained) finish in any order
    todo = stale(plan.group)
    if todo and args.cluster:
        train_on_cluster(args, todo, len(plan.group), inputs)
    elif todo:
        # threads per fold follow -j only, not how many folds are stale: a fold's float results
        # depend on its thread count, and should not on what else needed running
        slots = slot_envs(jobs, cores, gpus)[:len(todo)]
        print(f"foldwise repro: {len(todo)} of {len(plan.group)} {args.group} stages to run, "
              f"{len(slots)} at a time; logs in {LOG_DIR}/", flush=True)
        fold_jobs = [Job(name, dvc_argv("--wait-for-lock", "repro", "-s", name)) for name in todo]
        try:
            run_jobs(fold_jobs, slots, LOG_DIR, echo=lambda m: print(f"  {m}", flush=True))
        finally:
            sort_lock_entries(plan.group)
    through_remote = args.cluster and not args.shared_cache
    # --pull: the workers' run-cache entries, and each restored fold's objects, from the remote
    pull = ["--pull"] if through_remote else []
    if todo and args.cluster:
        restore_start = time.monotonic()
        run_foreground(dvc_argv("repro", *pull, "-s", *todo))
        print(f"foldwise repro: {len(todo)} folds restored from the run-cache in "
              f"{time.monotonic() - restore_start:.1f} s", flush=True)
    run_foreground(dvc_argv("repro", *pull, *args.targets))
    if through_remote:  # what only this machine made (oof, submit, ...): the remote holds every output
        run_foreground(dvc_argv("push", "--run-cache", *(["--with-deps", *args.targets] if args.targets else [])))
    print(f"foldwise repro: done in {time.monotonic() - start:.0f} s")


def train_on_cluster(args, todo: list[str], total: int, inputs: list[str]) -> None:
    """Step 2 on Dask workers: the inputs where they can reach them, then one task per fold."""
    from .cluster.driver import connect, run_folds
    from .cluster.state import publish, withdraw

    if not args.shared_cache:
        run_foreground(dvc_argv("push", *inputs))
    state = publish(inputs, args.shared_cache, args.git_remote, args.checkpoints)
    try:
        with connect(args.cluster) as client:
            print(f"foldwise repro: {len(todo)} of {total} {args.group} stages to run on {args.cluster}",
                  flush=True)
            run_folds(client, todo, state, args.jobs, args.threads, args.retries,
                      echo=lambda m: print(f"  {m}", flush=True))
    finally:
        withdraw(state, args.git_remote)


def run_foreground(argv: list[str]) -> None:
    """Run a dvc command in this terminal's process group (Ctrl-C reaches it too)."""
    proc = subprocess.Popen(argv)
    try:
        code = proc.wait()
    finally:
        if proc.poll() is None:  # interrupted: SIGINT reached it with us, SIGTERM only us
            proc.terminate()
            proc.wait()
    if code != 0:
        raise FoldwiseError(f"{' '.join(argv[2:])} failed (exit code {code})")


def cli(argv: list[str] | None = None) -> None:
    run_cli("repro", main, argv, stopped="stage")


if __name__ == "__main__":
    cli()
