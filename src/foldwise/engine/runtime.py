"""Device, precision, threads and seeding: the knobs that decide speed and reproducibility."""
from __future__ import annotations

import hashlib
import os
import random

import numpy as np
import torch

from ..core.threads import THREADS_ENV, cpu_cores, resolve_threads  # noqa: F401 (re-exported)

# The autocast dtype on CPU only when set (tests and benchmarks/gpu_check.py run the AMP branch on CPU).
CPU_AMP_ENV = "FOLDWISE_CPU_AMP"


def select_device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def resolve_num_workers(setting: int | str, device: torch.device, processes_per_machine: int = 1,
                        threads: int | str = "auto") -> int:
    """DataLoader workers for ``train.num_workers``. ``auto``: on CUDA this process's share of the
    cores (``resolve_threads(threads)``: $FOLDWISE_THREADS under ``repro -j N``) split over the
    processes of one DDP launch, less one for the process itself, at most 8; on CPU 0, since the
    model's intra-op threads already use every core and a worker process only takes cores from them."""
    if setting != "auto":
        return int(setting)
    if device.type != "cuda":
        return 0
    return max(0, min(8, resolve_threads(threads) // max(1, processes_per_machine) - 1))


def autocast_dtype(amp: str, device: torch.device) -> torch.dtype | None:
    """The autocast dtype for ``train.amp``. None on CPU (bf16 autocast is ~20x slower there) unless
    $FOLDWISE_CPU_AMP=1, which runs the CUDA path's autocast (bf16 for ``auto``) on the CPU."""
    if amp == "none" or (device.type != "cuda" and os.environ.get(CPU_AMP_ENV) != "1"):
        return None
    if amp == "bf16" or (amp == "auto" and (device.type != "cuda" or torch.cuda.is_bf16_supported())):
        return torch.bfloat16
    return torch.float16


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
