"""Fitting one fold: the epoch loop, validation, early stopping, best-epoch selection and resume."""
from __future__ import annotations

import contextlib
import copy
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader, Dataset, Subset
from tqdm import tqdm

from ..core.errors import FoldwiseError
from . import checkpoint, distributed
from .datasets import ShardDataset, to_model_layout
from .distributed import Dist, ShardedBatchSampler, shard_rows
from .inference import autocast
from .loaders import loader_options, make_eval_loader
from .mixing import mix_batch
from .models import create_model
from .pretrained import WEIGHTS_FILE, input_affine
from .runtime import autocast_dtype, configure_determinism, derive_seed, seed_everything, select_device
from .schedules import LrSchedule, build_optimizer, optimizer_steps_per_epoch


POSTFIX_EVERY = 20  # batches between progress-bar loss updates (each one syncs with the GPU)


@dataclass
class FoldResult:
    best_epoch: int  # 0-based
    best_score: float
    val_preds: np.ndarray  # (N_val, P) of the best epoch
    best_state: dict
    history: list[dict] = field(default_factory=list)
    stopped_early: bool = False


def balanced_weights(labels: np.ndarray) -> np.ndarray:
    """(N,) sampling weights 1 / class count: every class is drawn equally often."""
    _, inverse, counts = np.unique(labels, return_inverse=True, return_counts=True)
    return 1.0 / counts[inverse]


def make_train_loader(dataset: Dataset, labels: np.ndarray, p: Any, seed: int, ctx: Dist = Dist(),
                      device: torch.device | None = None) -> DataLoader:
    """The training loader, built once per fold: ``loader.batch_sampler.set_epoch(seed)`` draws an
    epoch's order, which depends only on that seed (workers, if any, persist from epoch to epoch).
    Under DDP (``ctx.enabled``) each rank gets its part of every global batch of ``p.batch_size``.
    A dataset with a random ``transform`` gets a seed with every row (distributed.ShardedBatchSampler)."""
    weights = balanced_weights(labels) if p.train.sampler == "balanced" else None
    batches = ShardedBatchSampler(len(dataset), p.batch_size, ctx.rank, ctx.world_size, weights, seed,
                                  sample_seeds=getattr(dataset, "transform", None) is not None)
    options = loader_options(p.train.num_workers, device, ctx.local_world_size, p.train.threads)
    return DataLoader(dataset, batch_sampler=batches, generator=torch.Generator().manual_seed(seed), **options)


def check_mixing(loss_fn: torch.nn.Module, augment: Any, task_name: str) -> None:
    """Refuse ``augment.mix_label: max`` for a loss whose targets are class indices
    (``loss_fn.class_targets``): the maximum of two one-hot rows holds two 1s, no class distribution.
    Checked once here, not per batch in the loss, where it would cost a device-to-host sync every step."""
    if getattr(loss_fn, "class_targets", False) and (augment.cutmix_p or augment.mixup_p) \
            and augment.mix_label == "max":
        raise FoldwiseError(f"task {task_name} trains on class labels; augment.mix_label must be blend "
                            "when augment.cutmix_p or augment.mixup_p is set (max gives two classes a 1 each)")


def mixed_classes(loss_fn: torch.nn.Module, task) -> int | None:
    """The one-hot width that CutMix/MixUp expand class-index targets to, or None for targets they
    mix as they are. A class-index task predicts one probability per class: ``task.num_outputs``."""
    return task.num_outputs if getattr(loss_fn, "class_targets", False) else None


class Trainer:
    """Trains ``task``'s model on one fold, logging per epoch to a dvclive ``Live``."""

    def __init__(self, task, p, fold: int, train_ds: ShardDataset, train_labels: np.ndarray,
                 val_ds: ShardDataset, in_chans: int, n_meta: int, ctx: Dist = Dist(),
                 device: torch.device | None = None,
                 pretrained: dict | None = None, pretrained_dir: Path | None = None):
        self.task, self.p, self.fold, self.ctx = task, p, fold, ctx
        self.train_ds, self.train_labels, self.val_ds = train_ds, train_labels, val_ds
        self.device = device or select_device()
        self.amp_dtype = autocast_dtype(p.train.amp, self.device)
        configure_determinism(p.train.deterministic)
        seed_everything(derive_seed(p.seed, fold, "init"))
        # ``pretrained``: the pretrained stage's source.json (see engine/pretrained.py)
        info = pretrained or {"pretrained": False}
        if (p.train.pretrained or p.train.weights) and not info["pretrained"]:
            raise FoldwiseError("train.pretrained/train.weights are set but the pretrained stage's output says "
                                "none; run `dvc repro pretrained` first")
        if info["pretrained"] and info.get("model") != p.model:
            raise FoldwiseError(f"model: {p.model}, but the pretrained weights are for {info.get('model')}; "
                                "run `dvc repro pretrained` first")
        weights = str(pretrained_dir / WEIGHTS_FILE) if info["pretrained"] else ""
        affine = input_affine(info, task.image_scale, in_chans)
        num_logits = task.num_logits(p)
        self.model_config = {"model": p.model, "in_chans": in_chans, "num_outputs": num_logits, "n_meta": n_meta,
                             "img_size": p.img_size, "input_affine": affine}
        self.model = create_model(p.model, in_chans, num_logits, n_meta, img_size=p.img_size,
                                  weights=weights, input_affine=affine)
        if ctx.enabled and p.train.sync_bn:
            from timm.layers import convert_sync_batchnorm  # also converts timm's BatchNormAct2d

            self.model = convert_sync_batchnorm(self.model)
        self.model.to(self.device)
        if p.train.channels_last:
            self.model.to(memory_format=torch.channels_last)
        self.forward = torch.compile(self.model) if p.train.compile else self.model  # eval: this rank's rows
        self.train_forward, self.ddp = self.forward, None
        if ctx.enabled:  # gradients averaged over ranks; BN buffers are synced per epoch instead of per step
            self.ddp = DistributedDataParallel(self.model, forward_sync_buffers=False,
                                               device_ids=[self.device] if self.device.type == "cuda" else None)
            self.train_forward = torch.compile(self.ddp) if p.train.compile else self.ddp
        self.optimizer = build_optimizer(self.model, p)
        self.train_loader = make_train_loader(train_ds, train_labels, p, derive_seed(p.seed, fold), ctx, self.device)
        self.batches_per_epoch = len(self.train_loader)
        self.schedule = LrSchedule(self.optimizer, p, optimizer_steps_per_epoch(self.batches_per_epoch, p.train.grad_accum))
        self.scaler = torch.amp.GradScaler(self.device.type, enabled=self.amp_dtype == torch.float16)
        self.loss_fn = task.loss(p).to(self.device)
        check_mixing(self.loss_fn, p.augment, task.name)
        self.mix_classes = mixed_classes(self.loss_fn, task)
        val_part = Subset(val_ds, shard_rows(len(val_ds), ctx.rank, ctx.world_size).tolist()) if ctx.enabled else val_ds
        self.val_loader = make_eval_loader(val_part, p.infer.batch_size, p.train.num_workers, self.device,
                                           ctx.local_world_size, p.train.threads)
        self.val_targets = val_ds.targets

    # ---- one epoch ------------------------------------------------------------------------------
    def train_epoch(self, epoch: int, bar: tqdm | None = None) -> float:
        """One pass over the training rows; returns the mean training loss. ``bar`` advances per batch."""
        p = self.p
        seed = derive_seed(p.seed, self.fold, epoch)
        # every epoch starts from its own seed, so a resumed run matches exactly; the sample order
        # and each sample's augmentation (seed) are shared by all ranks, the model's own random draws
        # (dropout, drop path) and the batch mixing (rank_seed) differ per rank
        rank_seed = derive_seed(seed, "rank", self.ctx.rank) if self.ctx.rank else seed
        seed_everything(rank_seed)
        mix_rng = np.random.default_rng(rank_seed)
        loader = self.train_loader
        loader.batch_sampler.set_epoch(seed)
        self.model.train()
        # the loss is summed on the device: a .item() per batch would make the CPU wait for the GPU
        total, count = torch.zeros((), dtype=torch.float64, device=self.device), 0
        self.optimizer.zero_grad(set_to_none=True)
        for i, batch in enumerate(loader):
            images = to_model_layout(batch["image"], p.train.channels_last).to(self.device, non_blocking=True)
            targets = batch["target"].to(self.device, non_blocking=True)
            meta = batch["meta"].to(self.device, non_blocking=True) if "meta" in batch else None
            if p.augment.cutmix_p or p.augment.mixup_p:
                images, targets = mix_batch(images, targets, p.augment, mix_rng, self.mix_classes)
            steps = (i + 1) % p.train.grad_accum == 0 or i + 1 == len(loader)
            # DDP all-reduces gradients in backward: only on the micro-batch that ends an optimizer step
            with contextlib.nullcontext() if steps or self.ddp is None else self.ddp.no_sync():
                with autocast(self.device, self.amp_dtype):
                    loss = self.loss_fn(self.train_forward(images, meta), targets)
                self.scaler.scale(loss / p.train.grad_accum).backward()
            if steps:
                self._optimizer_step()
            total += loss.detach().double() * len(images)
            count += len(images)
            if bar is not None:
                if i % POSTFIX_EVERY == 0 or i + 1 == len(loader):
                    bar.set_postfix(loss=f"{total.item() / count:.4f}", lr=f"{self.schedule.lr:.2e}", refresh=False)
                bar.update(1)
        total = total.item()
        if self.ctx.enabled:
            total, count = distributed.sum_over_ranks(total, count)  # the loss over the global epoch
            distributed.average_bn_stats(self.model)
        return total / max(count, 1)

    def _optimizer_step(self) -> None:
        if self.p.train.clip_grad:
            self.scaler.unscale_(self.optimizer)
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.p.train.clip_grad)
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self.optimizer.zero_grad(set_to_none=True)
        self.schedule.step()

    @torch.inference_mode()
    def validate(self) -> tuple[float, np.ndarray]:
        """(mean validation loss, predictions (N_val, P)) without TTA. Under DDP each rank predicts
        its shard of the rows and every rank gets all of them back, in the original order."""
        self.model.eval()
        losses, preds = [], []
        for batch in self.val_loader:
            images = to_model_layout(batch["image"], self.p.train.channels_last).to(self.device, non_blocking=True)
            meta = batch["meta"].to(self.device, non_blocking=True) if "meta" in batch else None
            with autocast(self.device, self.amp_dtype):
                logits = self.forward(images, meta).float()
            losses.append(self.loss_fn(logits, batch["target"].to(self.device)).item() * len(images))
            preds.append(self.task.logits_to_probs(logits, self.p).cpu().numpy())
        loss_sum, preds = sum(losses), np.concatenate(preds).astype(np.float64)
        if self.ctx.enabled:
            (loss_sum,) = distributed.sum_over_ranks(loss_sum)
            preds = distributed.gather_rows(preds)
        return loss_sum / len(self.val_ds), preds

    # ---- the fold -------------------------------------------------------------------------------
    def fit(self, live: Any, ckpt_dir: Path, fingerprint: str, log=print) -> FoldResult:
        """Train every epoch (or resume). Under DDP every rank runs this; only rank 0 logs to
        ``live`` (the others may pass None), prints and writes the checkpoint."""
        p, task, main = self.p, self.task, self.ctx.is_main
        if not main:
            log = _silent
        metric_key = f"val/{task.metric_name}"
        state, message = checkpoint.load(ckpt_dir, fingerprint)
        if message:
            log(message)
        history: list[dict] = []
        best: dict[str, Any] = {"score": None, "epoch": -1, "state": None, "preds": None}
        start = 0
        if state is not None:
            self.model.load_state_dict(state["model"])
            self.optimizer.load_state_dict(state["optimizer"])
            self.schedule.load_state_dict(state["schedule"])
            self.scaler.load_state_dict(state["scaler"])
            history, best, start = state["history"], state["best"], state["epoch"] + 1
            for row in history:  # the live dir was wiped by DVC: replay the finished epochs
                if main:
                    _log_epoch(live, row)

        stopped_early = False
        for epoch in range(start, p.epochs):
            # the bar stays open through validation so its last line shows the epoch's metric
            bar = tqdm(total=self.batches_per_epoch, desc=f"fold {self.fold} epoch {epoch + 1}/{p.epochs}",
                       file=sys.stderr, mininterval=1.0, dynamic_ncols=True, disable=not main)
            train_loss = self.train_epoch(epoch, bar)
            lr = self.schedule.lr
            val_loss, val_preds = self.validate()
            score = task.metric(self.val_targets, val_preds)
            row = {"train/loss": train_loss, "val/loss": val_loss, metric_key: score, "lr": lr}
            history.append(row)
            if main:
                _log_epoch(live, row)
            improved = task.is_better(score, best["score"])
            if improved:
                best = {"score": score, "epoch": epoch, "preds": val_preds,
                        "state": copy.deepcopy({k: v.detach().cpu() for k, v in self.model.state_dict().items()})}
            bar.set_postfix(loss=f"{train_loss:.4f}", val_loss=f"{val_loss:.4f}",
                            **{metric_key.replace("/", "_"): f"{score:.4f}"}, best="*" if improved else "")
            bar.close()
            if main:
                checkpoint.save(ckpt_dir, {
                    "fingerprint": fingerprint, "epoch": epoch, "history": history, "best": best,
                    "model": self.model.state_dict(), "optimizer": self.optimizer.state_dict(),
                    "schedule": self.schedule.state_dict(), "scaler": self.scaler.state_dict(),
                })
            if p.train.early_stopping and epoch - best["epoch"] >= p.train.patience:
                log(f"fold {self.fold}: early stopping after epoch {epoch + 1}; "
                    f"no improvement on {metric_key} for {p.train.patience} epochs, best was epoch {best['epoch'] + 1}")
                stopped_early = True
                break
        if main:
            live.summary["best"] = {task.metric_name: best["score"], "epoch": best["epoch"] + 1}
        self.model.load_state_dict(best["state"])  # restore the best weights
        return FoldResult(best["epoch"], best["score"], best["preds"], best["state"], history, stopped_early)


def _silent(message: str) -> None:
    pass


def _log_epoch(live: Any, row: dict) -> None:
    for key, value in row.items():
        live.log_metric(key, value)
    live.next_step()
