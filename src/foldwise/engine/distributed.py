"""Data-parallel training of one fold over processes (torch DDP): launch, process group, sharding, syncs.

One process per rank, started by ``torch.distributed.run`` (torchrun). ``train.nproc: N`` makes the
train stage start that launch itself on one machine; under an outer torchrun (several machines,
``--nnodes``/``--rdzv-endpoint``) the stage finds RANK/WORLD_SIZE set and only joins the group.

``batch_size`` is global: each optimizer step sees one batch of the single-process epoch order,
split into ``nproc`` contiguous parts, one per rank. Validation rows are split into contiguous
shards without padding and gathered back in their original order.
"""
from __future__ import annotations

import logging
import os
import sys
import uuid
from dataclasses import dataclass

import numpy as np
import torch
import torch.distributed as dist

from ..core.errors import FoldwiseError
from .runtime import configure_threads, cpu_cores, derive_seed

# Set by torchrun in every worker it starts; their presence means "already launched".
LAUNCH_ENV = ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT")


@dataclass(frozen=True)
class Dist:
    """Where this process sits in the launch (all zeros / ones for a plain single process)."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    local_world_size: int = 1

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def launched() -> bool:
    """True inside a torchrun worker (any world size)."""
    return all(name in os.environ for name in LAUNCH_ENV)


def from_env() -> Dist:
    if not launched():
        return Dist()
    env = os.environ
    return Dist(int(env["RANK"]), int(env["WORLD_SIZE"]), int(env["LOCAL_RANK"]),
                int(env.get("LOCAL_WORLD_SIZE", env["WORLD_SIZE"])))


def setup(use_cuda: bool, threads: int | None = None) -> tuple[Dist, torch.device]:
    """Join the launch's process group (NCCL on CUDA, gloo on CPU) and pick this rank's device.

    CPU ranks on one machine share its ``threads`` (default: its cores): each gets threads // local ranks.
    """
    ctx = from_env()
    if use_cuda and ctx.local_rank >= torch.cuda.device_count():
        raise FoldwiseError(f"{ctx.local_world_size} processes per machine need as many GPUs, "
                            f"found {torch.cuda.device_count()}; lower train.nproc (or --nproc-per-node)")
    if use_cuda:
        device = torch.device("cuda", ctx.local_rank)
        torch.cuda.set_device(device)
    else:
        device = torch.device("cpu")
    if ctx.enabled:
        if not use_cuda:
            configure_threads(max(1, (threads or cpu_cores()) // ctx.local_world_size))
        if not dist.is_initialized():
            dist.init_process_group("nccl" if use_cuda else "gloo",
                                    device_id=device if use_cuda else None)
    return ctx, device


def teardown() -> None:
    if dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()


def launch(nproc: int, module: str, argv: list[str]) -> None:
    """Run ``python -m module *argv`` as ``nproc`` workers on this machine (torchrun --standalone).

    Workers print their own errors (one line, from local rank 0) and exit with 1: then this raises
    SystemExit(1) quietly. A worker killed or ending with another code raises FoldwiseError naming it.
    """
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
    from torch.distributed.launcher.api import LaunchConfig, elastic_launch

    logging.getLogger("torch.distributed.elastic").setLevel(logging.CRITICAL)  # no agent chatter
    config = LaunchConfig(min_nodes=1, max_nodes=1, nproc_per_node=nproc, run_id=str(uuid.uuid4()),
                          rdzv_backend="c10d", rdzv_endpoint="localhost:0", max_restarts=0,
                          monitor_interval=0.1, start_method="spawn")
    try:
        elastic_launch(config, sys.executable)("-u", "-m", module, *argv)
    except ChildFailedError as exc:
        rank, failure = exc.get_first_failure()
        if failure.exitcode != 1:  # 1: the worker already printed `foldwise <stage>: error: ...`
            raise FoldwiseError(f"train.nproc={nproc}: worker rank {rank} exited with code {failure.exitcode}")
        raise SystemExit(1) from None


# ---- sharding -------------------------------------------------------------------------------------
def epoch_order(n: int, weights: np.ndarray | None, generator: torch.Generator) -> torch.Tensor:
    """The epoch's global sample order, (n,) int64: a permutation, or with ``weights`` (n,) a
    weighted draw with replacement (the balanced sampler), both from ``generator``."""
    if weights is None:
        return torch.randperm(n, generator=generator)
    return torch.multinomial(torch.as_tensor(weights, dtype=torch.double), n, replacement=True,
                             generator=generator)


class ShardedBatchSampler:
    """This rank's part of every global batch of the epoch order, re-drawn by ``set_epoch(seed)``
    (one sampler, and so one set of DataLoader workers, serves every epoch).

    The order is ``epoch_order(n, weights, Generator(seed))``; global batch j is
    ``order[j * batch_size:(j + 1) * batch_size]`` (the last partial batch dropped unless it is the
    only one), split into ``world_size`` contiguous parts as ``np.array_split`` does. Every rank
    yields the same number of batches, and the ranks' parts of one step are disjoint. With
    ``sample_seeds`` each item is ``(row, seed)``, the seed derived from the epoch seed and the row's
    position in the global order, so a sample's augmentation does not depend on the rank, the worker
    that loads it or the number of workers."""

    def __init__(self, n: int, batch_size: int, rank: int = 0, world_size: int = 1,
                 weights: np.ndarray | None = None, seed: int = 0, sample_seeds: bool = False):
        self.n, self.batch_size, self.rank, self.world_size = n, batch_size, rank, world_size
        self.weights, self.sample_seeds = weights, sample_seeds
        self.num_batches = n // batch_size if n > batch_size else 1
        if min(n, batch_size) < world_size:
            raise FoldwiseError(f"a batch of {min(n, batch_size)} samples cannot be split over "
                                f"train.nproc={world_size} processes")
        self.set_epoch(seed)

    def set_epoch(self, seed: int) -> None:
        """Draw the order of the next pass from ``seed`` (call before iterating the loader)."""
        self.seed = seed
        self.order = epoch_order(self.n, self.weights, torch.Generator().manual_seed(seed)).tolist()

    def __len__(self) -> int:
        return self.num_batches

    def __iter__(self):
        for j in range(self.num_batches):
            positions = np.arange(j * self.batch_size, min((j + 1) * self.batch_size, self.n))
            mine = np.array_split(positions, self.world_size)[self.rank].tolist()
            if self.sample_seeds:
                yield [(self.order[k], derive_seed(self.seed, "sample", k)) for k in mine]
            else:
                yield [self.order[k] for k in mine]


def shard_rows(n: int, rank: int, world_size: int) -> np.ndarray:
    """Rank's contiguous block of positions 0..n-1; concatenated in rank order they give 0..n-1."""
    return np.array_split(np.arange(n), world_size)[rank]


# ---- collectives ----------------------------------------------------------------------------------
def group_device(backend: str | None = None) -> torch.device:
    """The device a collective's tensors must live on for ``backend`` (default: the current process
    group's): this rank's current CUDA device for NCCL, which has no CPU path, else the CPU (gloo)."""
    backend = str(backend if backend is not None else dist.get_backend())
    return torch.device("cuda") if "nccl" in backend.lower() else torch.device("cpu")


def gather_rows(local: np.ndarray) -> np.ndarray:
    """Concatenate every rank's rows (any length, same trailing shape and dtype) in rank order.
    The rows travel as one tensor on the group's device, padded to the longest rank's length."""
    device, world = group_device(), dist.get_world_size()
    rows = torch.from_numpy(np.ascontiguousarray(local)).to(device)
    length = torch.tensor([len(local)], dtype=torch.int64, device=device)
    lengths = [torch.empty_like(length) for _ in range(world)]
    dist.all_gather(lengths, length)
    counts = [int(n) for n in torch.cat(lengths).cpu()]
    padded = rows.new_zeros((max(max(counts), 1), *rows.shape[1:]))
    padded[:len(local)] = rows
    parts = [torch.empty_like(padded) for _ in range(world)]
    dist.all_gather(parts, padded)
    return torch.cat([part[:n] for part, n in zip(parts, counts)]).cpu().numpy()


def sum_over_ranks(*values: float) -> list[float]:
    """Each value summed over the ranks (float64, reduced on the group's device)."""
    tensor = torch.tensor(values, dtype=torch.float64, device=group_device())
    dist.all_reduce(tensor)
    return tensor.cpu().tolist()


@torch.no_grad()
def average_bn_stats(model: torch.nn.Module) -> None:
    """Make BatchNorm running statistics the mean over ranks, then rank 0's bits on every rank
    (as timm's ``distribute_bn(reduce=True)``), so each rank scores what rank 0 will save."""
    device, world = group_device(), dist.get_world_size()
    for name, buf in model.named_buffers():
        if name.endswith(("running_mean", "running_var")):
            stats = buf.to(device)  # the buffer itself when the model is already there
            dist.all_reduce(stats)
            stats /= world
            dist.broadcast(stats, src=0)
            buf.copy_(stats)
