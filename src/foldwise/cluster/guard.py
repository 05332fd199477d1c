"""``python guard.py PARENT_PID CMD...``: run CMD in this process group, and take the group down with us.

A Dask worker starts a fold's dvc commands through this guard, in a new session. The guard asks Linux
to send it SIGTERM when the worker thread that started it dies (PR_SET_PDEATHSIG), and on SIGTERM or
SIGHUP kills its whole group: ``dvc`` and the stage command it started. So a worker killed mid-fold,
or a cluster closed by its driver, leaves no training process behind. Standard library only: it runs
by file path, whatever the worker's import path.
"""
from __future__ import annotations

import ctypes
import os
import signal
import subprocess
import sys

PR_SET_PDEATHSIG = 1


def _die_with_parent(parent_pid: int) -> None:
    if sys.platform.startswith("linux"):
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    if os.getppid() != parent_pid:  # the parent died before prctl took effect
        os.killpg(0, signal.SIGKILL)


def _kill_group(signum, frame) -> None:
    os.killpg(0, signal.SIGKILL)  # the guard included: nothing of the fold is left


def main() -> int:
    parent_pid, argv = int(sys.argv[1]), sys.argv[2:]
    signal.signal(signal.SIGTERM, _kill_group)
    signal.signal(signal.SIGHUP, _kill_group)
    _die_with_parent(parent_pid)
    proc = subprocess.Popen(argv)
    code = proc.wait()
    return 128 - code if code < 0 else code  # killed by signal N: exit 128 + N, as a shell reports it


if __name__ == "__main__":
    sys.exit(main())
