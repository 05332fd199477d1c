"""Epoch time of one fold under DDP (``train.nproc``) against one process, on CPU (gloo).

    python benchmarks/ddp_epoch_time.py [--n-train 600] [--nproc 2] [--rounds 2] [--model M] [--img-size N]

Builds synthetic SETI shards (``--n-train`` cadences, a 4:1 train/val split as one of 5 folds), then
alternates for ``--rounds`` rounds: (1) one process with every core as intra-op threads, (2) ``--nproc``
gloo processes with cores // nproc threads each, as ``train.nproc`` runs them. Each side trains one
warm-up epoch, then times one epoch (``Trainer.train_epoch`` + ``validate``: the sharded loader, the
gradient all-reduce, the BN sync and the gathered validation). Process start-up (imports, the
rendezvous) is not in the figure; it costs a few seconds per fold. Prints seconds per epoch and the
DDP / single ratio per round, and the median ratio. ``--one-thread`` adds a third side, one process
with one thread: on a machine whose cores other jobs also use, a multi-threaded process loses more
to waiting threads than single-threaded ones, which this column shows.
"""
from __future__ import annotations

import argparse
import os
import socket
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from foldwise.stages.params import parse_params  # noqa: E402
from foldwise.engine.datasets import ShardDataset  # noqa: E402
from foldwise.engine.distributed import Dist  # noqa: E402
from foldwise.engine.runtime import cpu_cores  # noqa: E402
from foldwise.engine.training import Trainer  # noqa: E402
from foldwise.engine.transforms import build_train_transform  # noqa: E402
from foldwise.prepared.shards import ShardReader, write_shards  # noqa: E402
from foldwise.tasks import get_task  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def make_data(tmp: Path, n: int, raw: dict) -> None:
    task = get_task("seti")
    p = parse_params(dict(raw))
    task.generate(tmp / "raw", n_train=n, n_test=1, seed=0, strength=1.0)
    table = task.read_table(tmp / "raw", "train", p)
    (tmp / "prepared").mkdir()
    write_shards(tmp / "prepared", "train", task.iter_images(tmp / "raw", table, "train", p), n)
    np.save(tmp / "targets.npy", table[task.target_columns].to_numpy(np.float32))
    np.save(tmp / "labels.npy", table["stratify"].to_numpy())


def timed_epochs(tmp: Path, raw: dict, ctx: Dist) -> float:
    """Seconds of the second epoch (train + validate) of a Trainer on fold 0 of 5."""
    p = parse_params(dict(raw))
    reader = ShardReader(tmp / "prepared", "train")
    targets, labels = np.load(tmp / "targets.npy"), np.load(tmp / "labels.npy")
    rows = np.arange(len(targets))
    val, train = rows[rows % 5 == 0], rows[rows % 5 != 0]
    train_ds = ShardDataset(reader, train, targets[train], None, build_train_transform(p.augment.train, 0))
    val_ds = ShardDataset(reader, val, targets[val])
    trainer = Trainer(get_task("seti"), p, 0, train_ds, labels[train], val_ds, reader.image_shape[-1], 0, ctx,
                      torch.device("cpu"))
    trainer.train_epoch(0)
    trainer.validate()
    if ctx.enabled:
        torch.distributed.barrier()
    start = time.perf_counter()
    trainer.train_epoch(1)
    trainer.validate()
    return time.perf_counter() - start


def ddp_worker(rank: int, world: int, port: int, tmp: str, raw: dict) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.set_num_threads(max(1, cpu_cores() // world))  # as distributed.setup gives each CPU rank
    torch.distributed.init_process_group("gloo", rank=rank, world_size=world)
    seconds = timed_epochs(Path(tmp), raw, Dist(rank, world, rank, world))
    if rank == 0:
        (Path(tmp) / "ddp_seconds").write_text(str(seconds))
    torch.distributed.destroy_process_group()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    raw = yaml.safe_load((ROOT / "params.yaml").read_text())
    parser.add_argument("--n-train", type=int, default=600)
    parser.add_argument("--nproc", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--model", default=raw["model"])
    parser.add_argument("--img-size", type=int, default=raw["img_size"])
    parser.add_argument("--batch-size", type=int, default=raw["batch_size"])
    parser.add_argument("--one-thread", action="store_true")
    args = parser.parse_args()
    raw.update(model=args.model, img_size=args.img_size, batch_size=args.batch_size, task="seti")
    raw["train"] = {**raw["train"], "nproc": args.nproc}

    print(f"{args.model} @ {args.img_size}px, global batch {args.batch_size}, {args.n_train} cadences "
          f"({args.n_train - len(range(0, args.n_train, 5))} train / {len(range(0, args.n_train, 5))} val), "
          f"{cpu_cores()} cores: 1 process x {cpu_cores()} threads vs {args.nproc} processes x "
          f"{max(1, cpu_cores() // args.nproc)} threads")
    print("round  single s/epoch  ddp s/epoch  ddp/single" + ("  1-thread s/epoch" if args.one_thread else ""))
    ratios = []
    with tempfile.TemporaryDirectory() as tmp:
        make_data(Path(tmp), args.n_train, raw)
        for r in range(args.rounds):
            torch.set_num_threads(cpu_cores())
            single = timed_epochs(Path(tmp), raw, Dist())
            torch.multiprocessing.spawn(ddp_worker, args=(args.nproc, free_port(), tmp, raw), nprocs=args.nproc)
            ddp = float((Path(tmp) / "ddp_seconds").read_text())
            ratios.append(ddp / single)
            one = ""
            if args.one_thread:
                torch.set_num_threads(1)
                one = f"  {timed_epochs(Path(tmp), raw, Dist()):16.2f}"
            print(f"{r:5d}  {single:14.2f}  {ddp:11.2f}  {ratios[-1]:10.3f}{one}")
    print(f"median ratio ddp/single epoch time: {float(np.median(ratios)):.3f}")


if __name__ == "__main__":
    main()
