"""Train-stage throughput vs the raw timm model on random tensors (same batch, threads, layout).

    python benchmarks/train_throughput.py [--model M] [--img-size N] [--batches 30] [--rounds 3]

Prints images/s of (1) the raw model: random (N, C, H, W) tensors, forward + BCE + backward + AdamW
step, no data loading; (2) foldwise's train loop (``Trainer.train_epoch``) on memory-mapped shards
of synthetic SETI cadences (float16 shards -> float32, albumentations flips, channels_last view);
and their ratio. Both run in this process after a warm-up, alternating for ``--rounds`` rounds so
that a slow spell of the machine hits both; the median ratio is the figure to report. Model, image
size and batch default to params.yaml.
"""
from __future__ import annotations

import argparse
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
from foldwise.engine.training import Trainer  # noqa: E402
from foldwise.engine.transforms import build_train_transform  # noqa: E402
from foldwise.prepared.shards import ShardReader, write_shards  # noqa: E402
from foldwise.tasks import get_task  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def raw_model_rate(trainer: Trainer, batches: int, batch_size: int, in_chans: int, img: int) -> float:
    model, opt = trainer.model, trainer.optimizer
    model.train()
    x = torch.randn(batch_size, in_chans, img, img).to(memory_format=torch.channels_last)
    y = torch.randint(0, 2, (batch_size, 1)).float()
    loss_fn = torch.nn.BCEWithLogitsLoss()

    def step():
        loss = loss_fn(model(x), y)
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)

    for _ in range(3):
        step()
    start = time.perf_counter()
    for _ in range(batches):
        step()
    return batches * batch_size / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    raw = yaml.safe_load((ROOT / "params.yaml").read_text())
    parser.add_argument("--model", default=raw["model"])
    parser.add_argument("--img-size", type=int, default=raw["img_size"])
    parser.add_argument("--batch-size", type=int, default=raw["batch_size"])
    parser.add_argument("--batches", type=int, default=30)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()

    raw.update(model=args.model, img_size=args.img_size, batch_size=args.batch_size, task="seti")
    p = parse_params(raw)
    task = get_task("seti")
    n = args.batch_size * (args.batches + 3)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        task.generate(tmp / "raw", n_train=n, n_test=1, seed=0, strength=1.0)
        table = task.read_table(tmp / "raw", "train", p)
        (tmp / "prepared").mkdir()
        shape = write_shards(tmp / "prepared", "train", task.iter_images(tmp / "raw", table, "train", p), n)
        reader = ShardReader(tmp / "prepared", "train")
        targets = table[task.target_columns].to_numpy(np.float32)
        rows = np.arange(n)
        train_ds = ShardDataset(reader, rows, targets, None, build_train_transform(p.augment.train, 0))
        trainer = Trainer(task, p, 0, train_ds, table["stratify"].to_numpy(), train_ds, shape[-1], 0)

        trainer.train_epoch(0)  # first pass pages the shards in, like epoch 1 of a fold
        print(f"model {args.model} @ {args.img_size}px, batch {args.batch_size}, "
              f"{torch.get_num_threads()} threads, channels_last={p.train.channels_last}")
        print("round  raw model img/s  train stage img/s  ratio")
        ratios = []
        for r in range(args.rounds):
            raw_rate = raw_model_rate(trainer, args.batches, args.batch_size, shape[-1], args.img_size)
            start = time.perf_counter()
            trainer.train_epoch(1 + r)
            stage_rate = n / (time.perf_counter() - start)
            ratios.append(stage_rate / raw_rate)
            print(f"{r:5d}  {raw_rate:15.1f}  {stage_rate:17.1f}  {ratios[-1]:.3f}")

    print(f"median ratio train/raw: {float(np.median(ratios)):.3f}")


if __name__ == "__main__":
    main()
