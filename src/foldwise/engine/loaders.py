"""DataLoader settings per device, shared by training and prediction: worker count, pinned memory,
and each worker's seeds and thread limits."""
from __future__ import annotations

import random

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from .runtime import resolve_num_workers


def seed_worker(worker_id: int) -> None:
    """A DataLoader worker's start: NumPy and ``random`` seeded from its torch seed (base seed +
    ``worker_id``), and one intra-op thread for torch and OpenCV. A forked worker inherits the
    parent's ``cv2.setNumThreads(cores)``: N workers would then run N x cores OpenCV threads."""
    seed = torch.initial_seed() % 2**32
    np.random.seed(seed)
    random.seed(seed)
    torch.set_num_threads(1)
    try:
        import cv2
    except ImportError:  # only albumentations (training) needs OpenCV
        return
    cv2.setNumThreads(1)


def loader_options(num_workers: int | str, device: torch.device | None, processes_per_machine: int = 1,
                   threads: int | str = "auto") -> dict:
    """DataLoader keywords for the device: pinned memory (so ``.to(non_blocking=True)`` overlaps the
    copy) on CUDA, ``train.num_workers`` resolved (``auto``: from this process's share of the cores),
    and with workers: ``seed_worker`` and workers kept alive from one pass over the loader to the next."""
    device = device or torch.device("cpu")
    workers = resolve_num_workers(num_workers, device, processes_per_machine, threads)
    options = {"num_workers": workers, "pin_memory": device.type == "cuda"}
    if workers:
        options.update(worker_init_fn=seed_worker, persistent_workers=True)
    return options


def make_eval_loader(dataset: Dataset, batch_size: int, num_workers: int | str,
                     device: torch.device | None = None, processes_per_machine: int = 1,
                     threads: int | str = "auto") -> DataLoader:
    """In-order batches of ``dataset`` for validation and prediction."""
    return DataLoader(dataset, batch_size=batch_size, shuffle=False,
                      **loader_options(num_workers, device, processes_per_machine, threads))
