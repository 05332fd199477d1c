"""Train loader samples/s per process, for each task at the resolution its reference write-up trained at.

    python benchmarks/loader_throughput.py [--samples 256] [--rounds 3] [--batch-size 32]

For each task layout (SETI one channel and one channel per frame, HMS 4 chains as channels or one
stacked plane, PetFinder RGB) the image shape comes from the task's own preprocessing at its write-up's
size: SETI 224 px (the SETI Swin write-up), HMS 512 px (the HMS ResNet34d write-up), PetFinder 384 px.
Shards of that shape are filled with noise (the loader's cost does not depend on the values) and read
by foldwise's ShardDataset with the task's default augmentations (``augment.train: auto``) through a
DataLoader with no worker processes, on one thread (torch and OpenCV): the figure is samples per
CPU second of the process, i.e. per core. ``old`` is the same dataset with the float16 -> float32 cast NumPy's ``astype`` did before;
``now`` is the current code. Rounds alternate the two; the median is printed.
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np
import torch
import yaml
from torch.utils.data import DataLoader

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from foldwise.stages.params import parse_params  # noqa: E402
from foldwise.engine.datasets import ShardDataset  # noqa: E402
from foldwise.engine.transforms import build_train_transform  # noqa: E402
from foldwise.prepared.shards import ShardReader, write_shards  # noqa: E402
from foldwise.tasks import get_task  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]

# (label, task, img_size, task group overrides)
LAYOUTS = [
    ("seti vertical (1 ch)", "seti", 224, {"stack": "vertical"}),
    ("seti channels on_only (3 ch)", "seti", 224, {"stack": "channels", "frames": "on_only"}),
    ("seti channels all (6 ch)", "seti", 224, {"stack": "channels", "frames": "all"}),
    ("hms channels (4 ch)", "hms", 512, {"layout": "channels"}),
    ("hms stacked (1 ch)", "hms", 512, {"layout": "stacked"}),
    ("petfinder rgb (3 ch)", "petfinder", 384, {}),
]


class NumpyCastDataset(ShardDataset):
    """The loader before the cast moved to torch: ``np.asarray(row, dtype=float32)``."""

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        image = np.asarray(self.reader[int(self.rows[i])], dtype=np.float32)
        if self.transform is not None:
            image = self.transform(image=image)["image"].reshape(image.shape)
        return {"image": torch.from_numpy(np.ascontiguousarray(image)), "target": torch.from_numpy(self.targets[i])}


def image_shape(task_name: str, img_size: int, group: dict, tmp: Path) -> tuple[int, ...]:
    """The (H, W, C) the task's preprocessing gives at ``img_size`` (from one synthetic sample)."""
    raw = yaml.safe_load((ROOT / "params.yaml").read_text())
    raw.update(task=task_name, img_size=img_size)
    raw[task_name] = {**raw.get(task_name, {}), **group}
    p = parse_params(raw, check_names=False)
    task = get_task(task_name).for_params(p)
    root = tmp / f"raw_{task_name}"
    if not root.exists():
        task.generate(root, n_train=40, n_test=1, seed=0, strength=1.0)
    table = task.read_table(root, "train", p)
    return tuple(next(iter(task.iter_images(root, table.iloc[:1], "train", p))).shape), p


def rate(dataset, batch_size: int) -> float:
    """Samples per CPU second of this process (one thread): per core, and robust to other
    processes taking turns on the cores, unlike wall time."""
    loader = DataLoader(dataset, batch_size=batch_size, shuffle=True, num_workers=0,
                        generator=torch.Generator().manual_seed(0))
    start = time.process_time()
    n = sum(len(batch["image"]) for batch in loader)
    return n / (time.process_time() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--samples", type=int, default=256)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=32)
    args = parser.parse_args()
    torch.set_num_threads(1)
    cv2.setNumThreads(1)
    print(f"one process, 1 thread, {args.samples} samples per pass, batch {args.batch_size}, median of {args.rounds}")
    print(f"{'layout':30s} {'shape (H, W, C)':>16s} {'old samples/s':>14s} {'now samples/s':>14s} {'speed-up':>9s}")
    rng = np.random.default_rng(0)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        for k, (label, task_name, img_size, group) in enumerate(LAYOUTS):
            shape, p = image_shape(task_name, img_size, group, tmp)
            out = tmp / f"shards_{k}"
            out.mkdir()
            noise = (rng.standard_normal(shape).astype(np.float16) for _ in range(args.samples))
            write_shards(out, "train", noise, args.samples)
            reader = ShardReader(out, "train")
            rows, targets = np.arange(args.samples), np.zeros((args.samples, 1), np.float32)
            transform = build_train_transform(p.augment.train, 0)  # the task's auto flips
            old = NumpyCastDataset(reader, rows, targets, None, transform)
            now = ShardDataset(reader, rows, targets, None, transform)
            rate(now, args.batch_size)  # pages the shard in
            olds, nows = [], []
            for _ in range(args.rounds):
                olds.append(rate(old, args.batch_size))
                nows.append(rate(now, args.batch_size))
            o, n = float(np.median(olds)), float(np.median(nows))
            print(f"{label:30s} {str(shape):>16s} {o:14.0f} {n:14.0f} {n / o:8.2f}x", flush=True)
            del reader, old, now


if __name__ == "__main__":
    main()
