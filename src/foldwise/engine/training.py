"""Fitting one fold: the epoch loop, validation, early stopping, best-epoch selection and resume."""
from __future__ import annotations

import copy
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, WeightedRandomSampler
from tqdm import tqdm

from . import checkpoint
from .datasets import ShardDataset, to_model_layout
from .inference import autocast
from .mixing import mix_batch
from .models import create_model
from .runtime import autocast_dtype, configure_determinism, derive_seed, seed_everything, select_device
from .schedules import LrSchedule, build_optimizer, optimizer_steps_per_epoch


@dataclass
class FoldResult:
    best_epoch: int  # 0-based
    best_score: float
    val_preds: np.ndarray  # (N_val, P) of the best epoch
    best_state: dict
    history: list[dict] = field(default_factory=list)
    stopped_early: bool = False


def balanced_sampler(labels: np.ndarray, generator: torch.Generator) -> WeightedRandomSampler:
    """Draws each class equally often over an epoch (weights 1 / class count, with replacement)."""
    _, inverse, counts = np.unique(labels, return_inverse=True, return_counts=True)
    weights = torch.as_tensor(1.0 / counts[inverse], dtype=torch.double)
    return WeightedRandomSampler(weights, num_samples=len(labels), replacement=True, generator=generator)


def _seed_worker(worker_id: int) -> None:
    seed = torch.initial_seed() % 2**32
    np.random.seed(seed)
    import random

    random.seed(seed)


def make_train_loader(dataset: ShardDataset, labels: np.ndarray, p: Any, seed: int) -> DataLoader:
    generator = torch.Generator().manual_seed(seed)
    sampler = balanced_sampler(labels, generator) if p.train.sampler == "balanced" else None
    return DataLoader(
        dataset, batch_size=p.batch_size, shuffle=sampler is None, sampler=sampler,
        generator=generator, drop_last=len(dataset) > p.batch_size, num_workers=p.train.num_workers,
        worker_init_fn=_seed_worker,
    )


def make_eval_loader(dataset: ShardDataset, batch_size: int, num_workers: int) -> DataLoader:
    return DataLoader(dataset, batch_size=batch_size, shuffle=False, num_workers=num_workers)


class Trainer:
    """Trains ``task``'s model on one fold, logging per epoch to a dvclive ``Live``."""

    def __init__(self, task, p, fold: int, train_ds: ShardDataset, train_labels: np.ndarray,
                 val_ds: ShardDataset, in_chans: int, n_meta: int):
        self.task, self.p, self.fold = task, p, fold
        self.train_ds, self.train_labels, self.val_ds = train_ds, train_labels, val_ds
        self.device = select_device()
        self.amp_dtype = autocast_dtype(p.train.amp, self.device)
        configure_determinism(p.train.deterministic)
        seed_everything(derive_seed(p.seed, fold, "init"))
        num_logits = task.num_logits(p)
        self.model_config = {"model": p.model, "in_chans": in_chans, "num_outputs": num_logits, "n_meta": n_meta}
        self.model = create_model(p.model, in_chans, num_logits, n_meta, p.train.pretrained, p.train.weights)
        self.model.to(self.device)
        if p.train.channels_last:
            self.model.to(memory_format=torch.channels_last)
        self.forward = torch.compile(self.model) if p.train.compile else self.model
        self.optimizer = build_optimizer(self.model, p)
        self.batches_per_epoch = len(make_train_loader(train_ds, train_labels, p, 0))
        self.schedule = LrSchedule(self.optimizer, p, optimizer_steps_per_epoch(self.batches_per_epoch, p.train.grad_accum))
        self.scaler = torch.amp.GradScaler(self.device.type, enabled=self.amp_dtype == torch.float16)
        self.loss_fn = task.loss(p).to(self.device)
        self.val_loader = make_eval_loader(val_ds, p.infer.batch_size, p.train.num_workers)
        self.val_targets = val_ds.targets

    # ---- one epoch ------------------------------------------------------------------------------
    def train_epoch(self, epoch: int, bar: tqdm | None = None) -> float:
        """One pass over the training rows; returns the mean training loss. ``bar`` advances per batch."""
        p = self.p
        seed = derive_seed(p.seed, self.fold, epoch)
        seed_everything(seed)  # every epoch starts from its own seed, so a resumed run matches exactly
        if self.train_ds.transform is not None:
            self.train_ds.transform.set_random_seed(seed)
        mix_rng = np.random.default_rng(seed)
        loader = make_train_loader(self.train_ds, self.train_labels, p, seed)
        self.model.train()
        total, count = 0.0, 0
        self.optimizer.zero_grad(set_to_none=True)
        for i, batch in enumerate(loader):
            images = to_model_layout(batch["image"], p.train.channels_last).to(self.device)
            targets = batch["target"].to(self.device)
            meta = batch["meta"].to(self.device) if "meta" in batch else None
            if p.augment.cutmix_p or p.augment.mixup_p:
                images, targets = mix_batch(images, targets, p.augment, mix_rng)
            with autocast(self.device, self.amp_dtype):
                loss = self.loss_fn(self.forward(images, meta), targets)
            self.scaler.scale(loss / p.train.grad_accum).backward()
            if (i + 1) % p.train.grad_accum == 0 or i + 1 == len(loader):
                self._optimizer_step()
            total += loss.item() * len(images)
            count += len(images)
            if bar is not None:
                bar.set_postfix(loss=f"{total / count:.4f}", lr=f"{self.schedule.lr:.2e}", refresh=False)
                bar.update(1)
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
        """(mean validation loss, predictions (N_val, P)) without TTA."""
        self.model.eval()
        losses, preds = [], []
        for batch in self.val_loader:
            images = to_model_layout(batch["image"], self.p.train.channels_last).to(self.device)
            meta = batch["meta"].to(self.device) if "meta" in batch else None
            with autocast(self.device, self.amp_dtype):
                logits = self.forward(images, meta).float()
            losses.append(self.loss_fn(logits, batch["target"].to(self.device)).item() * len(images))
            preds.append(self.task.predict(logits, self.p).cpu().numpy())
        return sum(losses) / len(self.val_ds), np.concatenate(preds).astype(np.float64)

    # ---- the fold -------------------------------------------------------------------------------
    def fit(self, live: Any, ckpt_dir: Path, fingerprint: str, log=print) -> FoldResult:
        p, task = self.p, self.task
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
                _log_epoch(live, row)

        stopped_early = False
        for epoch in range(start, p.epochs):
            # the bar stays open through validation so its last line shows the epoch's metric
            bar = tqdm(total=self.batches_per_epoch, desc=f"fold {self.fold} epoch {epoch + 1}/{p.epochs}",
                       file=sys.stderr, mininterval=1.0, dynamic_ncols=True)
            train_loss = self.train_epoch(epoch, bar)
            lr = self.schedule.lr
            val_loss, val_preds = self.validate()
            score = task.metric(self.val_targets, val_preds)
            row = {"train/loss": train_loss, "val/loss": val_loss, metric_key: score, "lr": lr}
            history.append(row)
            _log_epoch(live, row)
            improved = task.is_better(score, best["score"])
            if improved:
                best = {"score": score, "epoch": epoch, "preds": val_preds,
                        "state": copy.deepcopy({k: v.detach().cpu() for k, v in self.model.state_dict().items()})}
            bar.set_postfix(loss=f"{train_loss:.4f}", val_loss=f"{val_loss:.4f}",
                            **{metric_key.replace("/", "_"): f"{score:.4f}"}, best="*" if improved else "")
            bar.close()
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
        live.summary["best"] = {task.metric_name: best["score"], "epoch": best["epoch"] + 1}
        self.model.load_state_dict(best["state"])  # restore the best weights
        return FoldResult(best["epoch"], best["score"], best["preds"], best["state"], history, stopped_early)


def _log_epoch(live: Any, row: dict) -> None:
    for key, value in row.items():
        live.log_metric(key, value)
    live.next_step()
