"""Optimizers by name (timm's factory) and learning-rate schedules stepped once per optimizer step."""
from __future__ import annotations

import math

import torch
from timm.optim import create_optimizer_v2
from timm.scheduler import CosineLRScheduler


def build_optimizer(model: torch.nn.Module, p) -> torch.optim.Optimizer:
    """``train.optimizer`` via timm; weight decay is not applied to norm layers and biases."""
    kwargs = {"momentum": p.train.momentum} if p.train.optimizer == "sgd" else {}
    return create_optimizer_v2(
        model, opt=p.train.optimizer, lr=p.lr, weight_decay=p.weight_decay, filter_bias_and_bn=True, **kwargs
    )


def optimizer_steps_per_epoch(batches_per_epoch: int, grad_accum: int) -> int:
    return max(1, math.ceil(batches_per_epoch / grad_accum))


class LrSchedule:
    """Sets the optimizer's lr after each optimizer step (``step``); ``state_dict`` for resumes.

    - ``cosine``: timm CosineLRScheduler over all steps, linear warmup from ``min_lr`` over
      ``warmup_epochs``, decaying to ``min_lr``.
    - ``onecycle``: torch OneCycleLR (starts at lr/div_factor, peaks at lr after pct_start of the
      steps, ends at lr/(div_factor*final_div_factor)).
    - ``none``: constant lr.
    """

    def __init__(self, optimizer: torch.optim.Optimizer, p, steps_per_epoch: int):
        t = p.train
        self.total_steps = steps_per_epoch * p.epochs
        self.kind = t.scheduler
        self.updates = 0
        self.optimizer = optimizer
        if self.kind == "cosine":
            warmup = int(round(t.warmup_epochs * steps_per_epoch))
            self.impl = CosineLRScheduler(
                # warmup_prefix: the cosine starts after warmup, so it spans the remaining steps
                optimizer, t_initial=max(1, self.total_steps - warmup), lr_min=t.min_lr, warmup_t=warmup,
                warmup_lr_init=t.min_lr, warmup_prefix=True, t_in_epochs=False,
            )
        elif self.kind == "onecycle":
            self.impl = torch.optim.lr_scheduler.OneCycleLR(
                optimizer, max_lr=p.lr, total_steps=self.total_steps, pct_start=t.pct_start,
                div_factor=t.div_factor, final_div_factor=t.final_div_factor,
            )
        else:
            self.impl = None

    def step(self) -> None:
        self.updates += 1
        if self.kind == "cosine":
            self.impl.step_update(self.updates)
        elif self.kind == "onecycle" and self.updates < self.total_steps:
            self.impl.step()

    @property
    def lr(self) -> float:
        return float(self.optimizer.param_groups[0]["lr"])

    def state_dict(self) -> dict:
        return {"updates": self.updates, "impl": self.impl.state_dict() if self.impl else None}

    def load_state_dict(self, state: dict) -> None:
        self.updates = state["updates"]
        if self.impl is not None:
            self.impl.load_state_dict(state["impl"])
