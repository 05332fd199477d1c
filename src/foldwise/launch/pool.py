"""Run commands N at a time, each in its own process group, with a slot's environment.

A job that fails because DVC's repository lock (or a read/write lock on a shared dependency) was
taken is started again after a backoff; any other failure stops every running job and raises
``JobFailed`` naming the job. Leaving ``run_jobs`` by any path (failure, Ctrl-C, SIGTERM turned into
KeyboardInterrupt by the caller) terminates the process group of every job still running.
"""
from __future__ import annotations

import os
import signal
import subprocess
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from ..core.errors import FoldwiseError

# DVC's messages when another dvc process holds the repo lock (dvc/lock.py) or a stage's
# dependency/output read-write lock (dvc/rwlock.py): both mean "try again shortly".
LOCK_MESSAGES = ("Unable to acquire lock", "is busy, it is being blocked by")
TAIL_LINES = 15
SHOWN_ENV = ("FOLDWISE_THREADS", "CUDA_VISIBLE_DEVICES")


@dataclass(frozen=True)
class Job:
    name: str
    argv: list[str]


@dataclass(frozen=True)
class Retry:
    """Backoff for lock contention: ``first`` s, doubling up to ``longest`` s, at most ``attempts`` starts."""

    attempts: int = 8
    first: float = 0.5
    longest: float = 8.0

    def delay(self, attempt: int) -> float:
        return min(self.longest, self.first * 2 ** (attempt - 1))


class JobFailed(FoldwiseError):
    def __init__(self, job: Job, code: int, log: Path, tail: str):
        self.job, self.code, self.log, self.tail = job, code, log, tail
        self.source = job.name  # whose log ``tail`` is
        super().__init__(f"{job.name} failed (exit code {code}); the other jobs were stopped; full log: {log}")


@dataclass
class _Running:
    job: Job
    attempt: int
    proc: subprocess.Popen
    log: Path
    started: float = field(default_factory=time.monotonic)


def run_jobs(jobs: list[Job], slots: list[dict[str, str]], log_dir: Path, retry: Retry = Retry(),
             echo: Callable[[str], None] = print, poll_s: float = 0.05) -> None:
    """Run ``jobs`` at most ``len(slots)`` at a time; a job started in slot i gets ``slots[i]`` added to
    this process's environment. Its stdout and stderr go to ``log_dir/<name>.log``."""
    log_dir.mkdir(parents=True, exist_ok=True)
    pending: deque[tuple[Job, int, float]] = deque((job, 1, 0.0) for job in jobs)  # job, attempt, not before
    free = list(range(len(slots)))
    running: dict[int, _Running] = {}
    try:
        while pending or running:
            _start_ready(pending, free, running, slots, log_dir, echo)
            for slot, run in list(running.items()):
                code = run.proc.poll()
                if code is None:
                    continue
                del running[slot]
                free.insert(0, slot)
                tail = log_tail(run.log)
                if code == 0:
                    echo(f"{run.job.name}: done in {time.monotonic() - run.started:.0f} s")
                elif any(m in tail for m in LOCK_MESSAGES) and run.attempt < retry.attempts:
                    wait = retry.delay(run.attempt)
                    echo(f"{run.job.name}: DVC lock taken, starting again in {wait:.1f} s")
                    pending.appendleft((run.job, run.attempt + 1, time.monotonic() + wait))
                else:
                    raise JobFailed(run.job, code, run.log, tail)
            time.sleep(poll_s)
    finally:
        stop_all([run.proc for run in running.values()])


def _start_ready(pending, free, running, slots, log_dir, echo) -> None:
    now = time.monotonic()
    for item in list(pending):
        if not free:
            return
        job, attempt, not_before = item
        if not_before > now:
            continue
        pending.remove(item)
        slot = free.pop(0)
        log = log_dir / f"{job.name}.log"
        with open(log, "w") as out:  # the child keeps its own copy of the descriptor
            proc = subprocess.Popen(job.argv, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                    env={**os.environ, **slots[slot]}, start_new_session=True)
        running[slot] = _Running(job, attempt, proc, log)
        shown = "".join(f", {k}={v}" for k, v in slots[slot].items() if k in SHOWN_ENV)
        echo(f"{job.name}: started (pid {proc.pid}{shown})")


def stop_all(procs: list[subprocess.Popen], grace_s: float = 5.0) -> None:
    """SIGTERM each process's group, then SIGKILL the groups still alive after ``grace_s``."""
    for proc in procs:
        _signal_group(proc, signal.SIGTERM)
    deadline = time.monotonic() + grace_s
    for proc in procs:
        try:
            proc.wait(timeout=max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            pass
        _signal_group(proc, signal.SIGKILL)  # the group may outlive its leader (e.g. dvc's stage command)
        proc.wait()


def _signal_group(proc: subprocess.Popen, sig: int) -> None:
    try:
        os.killpg(proc.pid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def log_tail(log: Path, lines: int = TAIL_LINES) -> str:
    try:
        text = log.read_text(errors="replace")
    except OSError:
        return ""
    # progress bars redraw with carriage returns: keep the last state of each line
    return "\n".join(line.rsplit("\r", 1)[-1] for line in text.rstrip().splitlines()[-lines:])
