"""``python -m foldwise.repro -j N [target ...]``: ``dvc repro`` with the folds trained N at a time.

DVC runs stages one after another. This runs the same graph in three steps, each through DVC itself
so that ``dvc.lock``, the run cache and ``dvc status`` stay exactly as after ``dvc repro``:

1. ``dvc repro <upstream>``: the stages the folds depend on (download, preprocess, split);
2. ``dvc repro -s train@k`` for each stale fold, N at a time, each with its share of the machine
   (one GPU each, round robin; on CPU ``cores // N`` threads each via $FOLDWISE_THREADS, which
   ``train.threads: auto`` follows); a start that meets DVC's lock is retried after a backoff;
3. ``dvc repro [target ...]``: everything after the folds (oof, infer, submit).

A failing fold stops the others and is named; Ctrl-C or SIGTERM stops every stage process.
Each fold's output goes to .dvc/tmp/foldwise-repro/<stage>.log.
"""
from __future__ import annotations

import argparse
import signal
import subprocess
import sys
import time
from pathlib import Path

from .core.errors import FoldwiseError
from .launch.graph import dvc_argv, make_plan, sort_lock_entries, stale
from .launch.pool import Job, JobFailed, run_jobs
from .launch.slots import slot_envs, usable_cores, visible_gpus

LOG_DIR = Path(".dvc/tmp/foldwise-repro")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m foldwise.repro", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("targets", nargs="*", help="stages as for dvc repro (default: the whole dvc.yaml)")
    parser.add_argument("-j", "--jobs", type=int, default=None,
                        help="folds at once (default: one per visible GPU, else one per core)")
    parser.add_argument("--group", default="train", help="the foreach stage whose items run in parallel")
    args = parser.parse_args(argv)
    if not Path("dvc.yaml").is_file():
        raise FoldwiseError("no dvc.yaml here: run from the repository root")
    gpus, cores = visible_gpus(), usable_cores()
    if args.jobs is not None and args.jobs < 1:
        raise FoldwiseError(f"-j must be >= 1, got {args.jobs}")
    jobs = args.jobs or len(gpus) or cores

    start = time.monotonic()
    plan = make_plan(args.targets, args.group)
    if plan.upstream:
        run_foreground(dvc_argv("repro", *plan.upstream))
    todo = stale(plan.group)
    if todo:
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
    run_foreground(dvc_argv("repro", *args.targets))
    print(f"foldwise repro: done in {time.monotonic() - start:.0f} s")


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


def _terminate(signum, frame):
    raise KeyboardInterrupt


def cli() -> None:
    signal.signal(signal.SIGTERM, _terminate)
    try:
        main()
    except JobFailed as exc:
        print(f"--- last lines of {exc.job.name} ---\n{exc.tail}\n---", file=sys.stderr)
        print(f"foldwise repro: error: {exc}", file=sys.stderr)
        sys.exit(1)
    except FoldwiseError as exc:
        print(f"foldwise repro: error: {exc}", file=sys.stderr)
        sys.exit(1)
    except KeyboardInterrupt:
        print("foldwise repro: interrupted; every stage process was stopped", file=sys.stderr)
        sys.exit(130)


if __name__ == "__main__":
    cli()
