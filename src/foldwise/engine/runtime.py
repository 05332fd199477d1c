"""Device, precision, threads and seeding: the knobs that decide speed and reproducibility."""
from __future__ import annotations

import hashlib
import os
import random

import numpy as np
import torch

from ..core.errors import FoldwiseError

# Set by `python -m foldwise.repro -j N` for each stage process it starts: that process's share of cores.
THREADS_ENV = "FOLDWISE_THREADS"


def select_device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def cpu_cores() -> int:
    """Cores this process may run on (its affinity mask, not the machine's count)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def resolve_num_workers(setting: int | str, device: torch.device, processes_per_machine: int = 1) -> int:
    """DataLoader workers for ``train.num_workers``. ``auto``: on CUDA the cores each process has,
    less one for the process itself, at most 8; on CPU 0, since the model's intra-op threads already
    use every core and a worker process only takes cores from them."""
    if setting != "auto":
        return int(setting)
    if device.type != "cuda":
        return 0
    return max(0, min(8, cpu_cores() // max(1, processes_per_machine) - 1))


def autocast_dtype(amp: str, device: torch.device) -> torch.dtype | None:
    """The autocast dtype for ``train.amp``; always None on CPU (bf16 autocast is ~20x slower there)."""
    if device.type != "cuda" or amp == "none":
        return None
    if amp == "bf16" or (amp == "auto" and torch.cuda.is_bf16_supported()):
        return torch.bfloat16
    return torch.float16


def resolve_threads(setting: int | str) -> int:
    """Threads for one stage process from ``train.threads``: an integer as given; ``auto``:
    $FOLDWISE_THREADS when set, else every core in this process's CPU affinity."""
    if setting != "auto":
        return int(setting)
    value = os.environ.get(THREADS_ENV, "").strip()
    if not value:
        return cpu_cores()
    if not value.isdigit() or int(value) < 1:
        raise FoldwiseError(f"environment {THREADS_ENV}={value!r}: must be a whole number >= 1")
    return int(value)


def configure_threads(threads: int) -> None:
    """Intra-op threads of torch and OpenCV (albumentations). On CPU the float results of a
    training run depend on this count (reductions are split per thread), not only its speed."""
    torch.set_num_threads(threads)
    import cv2

    cv2.setNumThreads(threads)


def derive_seed(*parts: int | str) -> int:
    """A stable 31-bit seed from parts (same on every machine and Python run)."""
    digest = hashlib.sha256("/".join(map(str, parts)).encode()).digest()
    return int.from_bytes(digest[:4], "little") & 0x7FFFFFFF


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def configure_determinism(deterministic: bool) -> None:
    """Deterministic kernels where torch has them. CPU runs are bitwise reproducible for the same
    thread count; on CUDA this also needs a fixed cuBLAS workspace and disables cudnn autotuning."""
    if deterministic:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    torch.use_deterministic_algorithms(deterministic, warn_only=True)
    torch.backends.cudnn.benchmark = not deterministic
    torch.backends.cudnn.deterministic = deterministic
