"""The first thing to run on a GPU machine: every CUDA path of the engine once, then throughput figures.

    python benchmarks/gpu_check.py [--skip-table]

Needs torch, timm, numpy, pandas, scikit-learn, PyYAML and pydantic (the params declarations; on a
bare GPU image install it from wheels carried with the tree, see WHEELS below), no DVC, dvclive,
albumentations or grad-cam: it builds the engine's objects directly on random shards in a temporary folder,
downloads nothing (random weights) and finishes in a few minutes. Checks, each printed PASS or FAIL:

  trainer      Trainer epochs with train.amp bf16 and fp16 (GradScaler) and channels_last
  collectives  a 1-rank process group (NCCL on CUDA, gloo on CPU) through sum_over_ranks, gather_rows
               and average_bn_stats, then a DDP Trainer epoch with grad_accum 2 in that group
  data path    the training loader with workers (one thread each) and, on CUDA, pinned memory
  prediction   predict_folds over two saved fold models equals the mean of each model's predictions

then a table of the train loop's images/s (Trainer.train_epoch on shards) against the raw model's
(forward, backward and step on random device tensors, same batch, autocast and layout) and peak memory,
for the write-ups' models at their sizes. Exits 1 if any check fails. Without CUDA the checks run on
the CPU (autocast forced on with $FOLDWISE_CPU_AMP, gloo), the table runs the two CNNs at 64 px, and
"GPU figures: not measured" is printed.
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
import traceback
from pathlib import Path

# pydantic for a bare GPU image, downloaded here, carried with the tree, installed there
WHEELS = ("pip download --only-binary=:all: --python-version 3.12 --platform manylinux2014_x86_64 "
          "-d wheels pydantic==2.14.4", "pip install --no-index --find-links wheels pydantic")
try:
    import pydantic  # noqa: F401
except ImportError:
    sys.exit(f"gpu_check: error: pydantic is not installed; where the index is reachable run `{WHEELS[0]}`, "
             f"carry wheels/ with the tree and run `{WHEELS[1]}` here")

import numpy as np
import timm
import torch
import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from foldwise.params import Params  # noqa: E402
from foldwise.stages.params import parse_params  # noqa: E402
from foldwise.engine import distributed  # noqa: E402
from foldwise.engine.datasets import ShardDataset, to_model_layout  # noqa: E402
from foldwise.engine.distributed import Dist  # noqa: E402
from foldwise.engine.inference import MODEL_FILE, autocast, predict_folds, save_fold_model  # noqa: E402
from foldwise.engine.runtime import CPU_AMP_ENV  # noqa: E402
from foldwise.engine.training import Trainer, make_train_loader  # noqa: E402
from foldwise.prepared.shards import ShardReader, write_shards  # noqa: E402
from foldwise.tasks import get_task  # noqa: E402

CUDA = torch.cuda.is_available()
DEVICE = torch.device("cuda", 0) if CUDA else torch.device("cpu")
# (timm model, image size, batch size) as the write-ups trained them; on the CPU the CNNs only, small
TABLE_GPU = [("swin_small_patch4_window7_224", 224, 64), ("vit_base_patch16_224", 224, 64),
             ("resnet34d", 512, 32), ("efficientnet_b0", 256, 64)]
TABLE_CPU = [("resnet34d", 32, 4), ("efficientnet_b0", 32, 4)]
# the checks' model: on the CPU timm's smallest ResNet (0.4 M parameters) where this timm has it
CHECK_MODEL = "resnet18d" if CUDA else ("test_resnet" if "test_resnet" in timm.list_models("test_*") else "resnet10t")
CHECK_SIZE, CHECK_BATCH = (64, 32) if CUDA else (32, 8)
CPU_SKIPPED = "swin_small_patch4_window7_224, vit_base_patch16_224: skipped on the CPU (minutes per step)"


class NoLive:
    """What Trainer.fit logs to (dvclive's Live in the train stage)."""

    def __init__(self):
        self.summary: dict = {}

    def log_metric(self, key, value):
        pass

    def next_step(self):
        pass


class OneRankGroup(Dist):
    """A 1-process launch that still takes the DDP code path (DistributedDataParallel, collectives)."""

    @property
    def enabled(self) -> bool:
        return True


def make_params(**overrides) -> Params:
    raw = yaml.safe_load((ROOT / "params.yaml").read_text())
    for key, value in overrides.items():
        if isinstance(value, dict):
            raw[key] = {**raw.get(key, {}), **value}
        else:
            raw[key] = value
    return parse_params(raw, source="gpu_check", check_names=False)


def write_random_shards(folder: Path, n: int, size: int, chans: int) -> ShardReader:
    rng = np.random.default_rng(0)
    folder.mkdir(parents=True, exist_ok=True)
    write_shards(folder, "train", (rng.standard_normal((size, size, chans), dtype=np.float32) for _ in range(n)), n)
    return ShardReader(folder, "train")


def datasets(reader: ShardReader, n_val: int):
    """(train, labels, val) over the shards: SETI-style binary targets, no augmentation."""
    n = len(reader)
    labels = (np.arange(n) % 4 == 0).astype(int)
    targets = labels[:, None].astype(np.float32)
    return (ShardDataset(reader, np.arange(n), targets), labels,
            ShardDataset(reader, np.arange(n_val), targets[:n_val]))


def small_params(**train) -> Params:
    return make_params(model=CHECK_MODEL, img_size=CHECK_SIZE, batch_size=CHECK_BATCH, epochs=2 if CUDA else 1, seed=0,
                       train={"scheduler": "none", **train}, infer={"batch_size": CHECK_BATCH, "tta": ["none"]})


# ---- checks -------------------------------------------------------------------------------------
def check_trainer(tmp: Path) -> str:
    task, lines = get_task("seti"), []
    reader = write_random_shards(tmp / "shards", 4 * CHECK_BATCH, CHECK_SIZE, 1)
    train_ds, labels, val_ds = datasets(reader, 16)
    for amp, dtype in (("bf16", torch.bfloat16), ("fp16", torch.float16)):
        p = small_params(amp=amp, channels_last=True)
        trainer = Trainer(task, p, 0, train_ds, labels, val_ds, 1, 0, device=DEVICE)
        assert trainer.amp_dtype is dtype, f"{amp}: autocast dtype {trainer.amp_dtype}"
        assert trainer.scaler.is_enabled() == (dtype is torch.float16), f"{amp}: GradScaler enabled is wrong"
        conv = next(m for m in trainer.model.modules() if isinstance(m, torch.nn.Conv2d))
        assert conv.weight.is_contiguous(memory_format=torch.channels_last), "weights not channels_last"
        seen = []
        conv.register_forward_hook(lambda m, i, out: seen.append(out.dtype))
        result = trainer.fit(NoLive(), tmp / f"ckpt_{amp}", "gpu_check", log=lambda m: None)
        assert set(seen) == {dtype}, f"{amp}: convolutions ran in {set(seen)}"
        assert all(np.isfinite(row["train/loss"]) for row in result.history), f"{amp}: non-finite loss"
        assert np.isfinite(result.val_preds).all() and result.val_preds.shape == (16, 1)
        lines.append(f"{amp}: losses {[round(r['train/loss'], 4) for r in result.history]}, "
                     f"scale {trainer.scaler.get_scale() if trainer.scaler.is_enabled() else '-'}")
    return "; ".join(lines)


def check_collectives(tmp: Path) -> str:
    import torch.distributed as dist

    backend = "nccl" if CUDA else "gloo"
    dist.init_process_group(backend, store=dist.HashStore(), rank=0, world_size=1,
                            device_id=DEVICE if CUDA else None)
    try:
        assert distributed.group_device() == torch.device(DEVICE.type), distributed.group_device()
        assert distributed.sum_over_ranks(1.5, 2.0) == [1.5, 2.0]
        rows = np.arange(10, dtype=np.float64).reshape(5, 2)
        assert np.array_equal(distributed.gather_rows(rows), rows)
        bn = torch.nn.BatchNorm2d(3).to(DEVICE)
        bn.running_mean.fill_(0.5)
        distributed.average_bn_stats(bn)
        assert torch.equal(bn.running_mean.cpu(), torch.full((3,), 0.5))
        # the train stage's DDP path in this group: loss sums, BN averaging, gather of predictions
        reader = write_random_shards(tmp / "ddp_shards", 4 * CHECK_BATCH, CHECK_SIZE, 1)
        train_ds, labels, val_ds = datasets(reader, 16)
        p = small_params(grad_accum=2, sync_bn=CUDA)
        trainer = Trainer(get_task("seti"), p, 0, train_ds, labels, val_ds, 1, 0, OneRankGroup(0, 1, 0, 1), DEVICE)
        assert trainer.ddp is not None
        loss = trainer.train_epoch(0)
        val_loss, preds = trainer.validate()
        assert np.isfinite([loss, val_loss]).all() and preds.shape == (16, 1)
    finally:
        dist.destroy_process_group()
    return f"{backend}: sum_over_ranks, gather_rows, average_bn_stats, DDP epoch (grad_accum 2) loss {loss:.4f}"


def _worker_threads(_):
    import cv2

    return torch.tensor([torch.get_num_threads(), cv2.getNumThreads()])


def check_data_path(tmp: Path) -> str:
    reader = write_random_shards(tmp / "loader_shards", 8 * CHECK_BATCH, CHECK_SIZE, 3)
    train_ds, labels, _ = datasets(reader, 8)
    p = small_params(num_workers=2)
    loader = make_train_loader(train_ds, labels, p, seed=0, device=DEVICE)
    assert loader.num_workers == 2 and loader.pin_memory == CUDA and loader.persistent_workers
    start, n = time.perf_counter(), 0
    for epoch in range(2):
        loader.batch_sampler.set_epoch(epoch)
        for batch in loader:
            if CUDA:
                assert batch["image"].is_pinned(), "batch not in pinned memory"
            images = to_model_layout(batch["image"], True).to(DEVICE, non_blocking=True)
            n += len(images)
    if CUDA:
        torch.cuda.synchronize()
    rate = n / (time.perf_counter() - start)
    probe = torch.utils.data.DataLoader(list(range(4)), batch_size=1, num_workers=2, collate_fn=_worker_threads,
                                        worker_init_fn=loader.worker_init_fn)
    threads = {tuple(t.tolist()) for t in probe}
    assert threads == {(1, 1)}, f"worker (torch, cv2) threads {threads}"
    return f"2 workers, pinned {loader.pin_memory}, one thread each, {rate:.0f} img/s over 2 epochs (incl. start)"


def check_prediction(tmp: Path) -> str:
    task = get_task("seti")
    reader = write_random_shards(tmp / "pred_shards", 2 * CHECK_BATCH, CHECK_SIZE, 1)
    train_ds, labels, val_ds = datasets(reader, 2 * CHECK_BATCH)
    p = small_params(num_workers=2, amp="bf16")
    dirs, singles = [], []
    for k in range(2):
        trainer = Trainer(task, p, k, train_ds, labels, val_ds, 1, 0, device=DEVICE)  # initialised per fold
        (tmp / f"fold_{k}").mkdir()
        save_fold_model(tmp / f"fold_{k}" / MODEL_FILE, trainer.model, trainer.model_config)
        dirs.append(tmp / f"fold_{k}")
        singles.append(trainer.validate()[1])  # no TTA, this loader: what predict_folds must reproduce
    mean = predict_folds(dirs, val_ds, task, p, DEVICE)
    assert mean.shape == (2 * CHECK_BATCH, 1) and np.isfinite(mean).all()
    gap = float(np.abs(mean - (singles[0] + singles[1]) / 2).max())
    assert gap < 2e-3, f"predict_folds differs from the models' mean by {gap}"
    return f"2 fold models, 2 workers, max gap to the per-model mean {gap:.1e}"


# ---- the throughput table -----------------------------------------------------------------------
def timed(fn, repeats: int) -> float:
    if CUDA:
        torch.cuda.synchronize()
    start = time.perf_counter()
    for _ in range(repeats):
        fn()
    if CUDA:
        torch.cuda.synchronize()
    return time.perf_counter() - start


def peak_gib() -> float:
    return torch.cuda.max_memory_allocated() / 2**30 if CUDA else float("nan")


def throughput_row(tmp: Path, model: str, size: int, batch: int) -> dict:
    """img/s of the raw model on random device tensors and of Trainer.train_epoch on shards."""
    n = batch * (4 if CUDA else 1)
    reader = write_random_shards(tmp / f"table_{model}_{size}", n, size, 3)
    train_ds, labels, val_ds = datasets(reader, batch)
    p = make_params(model=model, img_size=size, batch_size=batch, epochs=2, seed=0,
                    train={"scheduler": "none", "num_workers": "auto"})
    trainer = Trainer(get_task("seti"), p, 0, train_ds, labels, val_ds, 3, 0, device=DEVICE)
    x = to_model_layout(torch.randn(batch, size, size, 3), p.train.channels_last).to(DEVICE)
    y = torch.randint(0, 2, (batch, 1)).float().to(DEVICE)

    def raw_step():
        with autocast(DEVICE, trainer.amp_dtype):
            loss = trainer.loss_fn(trainer.model(x), y)
        trainer.scaler.scale(loss).backward()
        trainer.scaler.step(trainer.optimizer)
        trainer.scaler.update()
        trainer.optimizer.zero_grad(set_to_none=True)

    trainer.model.train()
    raw_step()  # warm-up: kernel selection, allocator
    if CUDA:
        torch.cuda.reset_peak_memory_stats()
    steps = 10 if CUDA else 1
    raw_rate = steps * batch / timed(raw_step, steps)
    raw_peak = peak_gib()
    trainer.train_epoch(0)  # warm-up: starts the loader's workers, pages the shards in
    if CUDA:
        torch.cuda.reset_peak_memory_stats()
    loop_rate = trainer.batches_per_epoch * batch / timed(lambda: trainer.train_epoch(1), 1)
    return {"model": model, "size": size, "batch": batch, "amp": str(trainer.amp_dtype or "fp32").replace("torch.", ""),
            "raw": raw_rate, "loop": loop_rate, "raw_peak": raw_peak, "loop_peak": peak_gib(),
            "workers": trainer.train_loader.num_workers}


def print_table(rows: list[dict]) -> None:
    print(f"{'model':32} {'size':>4} {'batch':>5} {'amp':>8} {'workers':>7} {'raw img/s':>10} {'loop img/s':>10} "
          f"{'loop/raw':>8} {'raw GiB':>8} {'loop GiB':>8}")
    for r in rows:
        print(f"{r['model']:32} {r['size']:>4} {r['batch']:>5} {r['amp']:>8} {r['workers']:>7} {r['raw']:>10.1f} "
              f"{r['loop']:>10.1f} {r['loop'] / r['raw']:>8.2f} {r['raw_peak']:>8.2f} {r['loop_peak']:>8.2f}")


# ---- main ---------------------------------------------------------------------------------------
def run_check(name: str, fn, tmp: Path, failures: list[str]) -> None:
    start = time.perf_counter()
    try:
        detail = fn(tmp)
    except Exception as exc:  # every check runs; the exit code reports the failures
        traceback.print_exc()
        failures.append(name)
        print(f"FAIL {name}: {type(exc).__name__}: {exc}", flush=True)
        return
    print(f"PASS {name} ({time.perf_counter() - start:.1f} s): {detail}", flush=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--skip-table", action="store_true", help="only the PASS/FAIL checks")
    args = parser.parse_args()
    if not CUDA:
        os.environ[CPU_AMP_ENV] = "1"  # run the autocast/GradScaler branch on the CPU
        torch.set_num_threads(min(4, torch.get_num_threads()))
    where = f"CUDA {torch.cuda.get_device_name(0)} (bf16 {torch.cuda.is_bf16_supported()})" if CUDA else "CPU only"
    print(f"gpu_check: torch {torch.__version__}, timm {timm.__version__}, {where}, {os.cpu_count()} cores, "
          f"checks on {CHECK_MODEL} at {CHECK_SIZE} px", flush=True)
    started, failures = time.perf_counter(), []
    with tempfile.TemporaryDirectory() as tmp:
        for name, fn in (("trainer", check_trainer), ("collectives", check_collectives),
                         ("data path", check_data_path), ("prediction", check_prediction)):
            folder = Path(tmp) / name.replace(" ", "_")
            folder.mkdir()
            run_check(name, fn, folder, failures)
        if not args.skip_table:
            os.environ.pop(CPU_AMP_ENV, None)  # the table measures what a run gets: fp32 on the CPU
            rows = []
            for model, size, batch in TABLE_GPU if CUDA else TABLE_CPU:
                try:
                    rows.append(throughput_row(Path(tmp), model, size, batch))
                except Exception as exc:
                    traceback.print_exc()
                    failures.append(f"table {model}")
                    print(f"FAIL table {model} {size}: {type(exc).__name__}: {exc}", flush=True)
                finally:
                    if CUDA:
                        torch.cuda.empty_cache()
            print_table(rows)
            if not CUDA:
                print(CPU_SKIPPED)
    print("GPU figures: measured above" if CUDA else "GPU figures: not measured (no CUDA device)")
    print(f"gpu_check: {'FAILED ' + ', '.join(failures) if failures else 'all checks passed'} "
          f"in {time.perf_counter() - started:.0f} s")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
