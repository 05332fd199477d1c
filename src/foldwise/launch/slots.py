"""Each parallel job's share of the machine, as environment variables: a GPU each on CUDA machines
(round robin over the visible ones), else ``cores // N`` threads each for torch, OpenMP and BLAS."""
from __future__ import annotations

import os
import shutil
import subprocess

from ..core.threads import THREADS_ENV, cpu_cores

THREAD_VARS = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")
usable_cores = cpu_cores  # the cores `repro -j N` divides (one definition, in core.threads)


def visible_gpus(env: dict[str, str] | None = None) -> list[str]:
    """CUDA device ids the stages may use, without initialising CUDA here: the ids in
    CUDA_VISIBLE_DEVICES when set (empty: none), else one per GPU ``nvidia-smi -L`` lists."""
    env = os.environ if env is None else env
    if "CUDA_VISIBLE_DEVICES" in env:
        return [d.strip() for d in env["CUDA_VISIBLE_DEVICES"].split(",") if d.strip() and d.strip() != "-1"]
    smi = shutil.which("nvidia-smi")
    if smi is None:
        return []
    try:
        out = subprocess.run([smi, "-L"], capture_output=True, text=True, timeout=20).stdout
    except (OSError, subprocess.SubprocessError):
        return []
    return [str(i) for i, line in enumerate(l for l in out.splitlines() if l.startswith("GPU "))]


def slot_envs(jobs: int, cores: int, gpus: list[str]) -> list[dict[str, str]]:
    """The environment of each of ``jobs`` parallel slots. Threads per job are ``cores // jobs`` (at
    least 1) whatever the number of folds left to run, so a fold's result does not depend on it."""
    threads = str(max(1, cores // jobs))
    envs = []
    for slot in range(jobs):
        env = {THREADS_ENV: threads, **{var: threads for var in THREAD_VARS}}
        if gpus:
            env["CUDA_VISIBLE_DEVICES"] = gpus[slot % len(gpus)]
        envs.append(env)
    return envs
