"""What params.yaml holds: every key, its type, bounds and default, declared once.

``load``/``parse`` read and validate a params file with no side effect and nothing but pydantic
(no torch, no timm, no task module). Checks that need another library or the task (the timm model,
the albumentations transforms, scikit-learn scorers, the weights file, the images group's columns)
run in the stages that read those keys (``foldwise.stages.params``).
"""
from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, model_validator

from ..core.params import PARAMS_FILE, Group, defaults, param_error, read_params_file, validate
from .groups import (
    TTA_FLIPS, AugmentParams, BlendParams, DataParams, EdaParams, ExplainParams, InferParams, MetricsParams,
    SyntheticParams, TrainParams,
)
from .task_groups import TASK_GROUPS, HmsParams, ImagesParams, MaskParams, PetfinderParams, SetiParams

__all__ = ["PARAMS_FILE", "TASK_GROUPS", "TTA_FLIPS", "Params", "default_params", "load", "parse"]


class Params(Group):
    """Every tunable of the pipeline; change one with ``dvc exp run -S key=value``."""

    task: Literal[tuple(TASK_GROUPS)] = "seti"
    """The competition: seti, hms, petfinder, mask or images (any image folder); its own group below holds its
    settings."""
    seed: int = Field(42, ge=0, le=2**32 - 1)
    """Seeds the synthetic data, the fold split and training (per fold and epoch); numpy and scikit-learn take
    [0, 2**32)."""
    folds: list[int] = Field(default_factory=lambda: [0, 1, 2, 3, 4])
    """The folds to train, one train@k stage each: any non-empty list of distinct folds < n_splits; oof scores
    and infer averages only these."""
    n_splits: int = Field(5, ge=2)
    """k of the k-fold split; split reruns only when this or seed changes."""
    model: str = "resnet10t"
    """Any timm model name (arch, or arch.tag to pick pretrained weights), built with in_chans from the data
    and, where its constructor takes it (ViT, DeiT, Swin, ...), img_size; stages download, pretrained and
    train build it once at img_size and refuse it in one line if it cannot run."""
    img_size: int = Field(64, ge=16)
    """Side of the square images preprocess writes, in pixels."""
    epochs: int = Field(3, ge=1)
    """Epochs per fold."""
    batch_size: int = Field(32, ge=1)
    """Training batch size; global under DDP: split over the train.nproc processes."""
    lr: float = Field(1e-3, gt=0.0)
    """Peak learning rate."""
    weight_decay: float = Field(1e-2, ge=0.0)
    """Weight decay (not applied to norm layers and biases)."""
    data: DataParams = Field(default_factory=DataParams)
    synthetic: SyntheticParams = Field(default_factory=SyntheticParams)
    train: TrainParams = Field(default_factory=TrainParams)
    augment: AugmentParams = Field(default_factory=AugmentParams)
    infer: InferParams = Field(default_factory=InferParams)
    metrics: MetricsParams = Field(default_factory=MetricsParams)
    eda: EdaParams = Field(default_factory=EdaParams)
    blend: BlendParams = Field(default_factory=BlendParams)
    explain: ExplainParams = Field(default_factory=ExplainParams)
    seti: SetiParams = Field(default_factory=SetiParams)
    hms: HmsParams = Field(default_factory=HmsParams)
    petfinder: PetfinderParams = Field(default_factory=PetfinderParams)
    mask: MaskParams = Field(default_factory=MaskParams)
    images: ImagesParams = Field(default_factory=ImagesParams)

    @property
    def task_params(self) -> Group:
        """The group of the active task, e.g. ``params.seti`` when ``task: seti``."""
        return getattr(self, self.task)

    @model_validator(mode="after")
    def _cross_checks(self) -> Params:
        """Keys that bound each other."""
        n = self.n_splits
        if not self.folds or len(set(self.folds)) != len(self.folds) or not all(0 <= k < n for k in self.folds):
            raise param_error("folds", f"a non-empty list of distinct folds in 0..{n - 1} (n_splits is {n})", self.folds)
        if self.batch_size < self.train.nproc:
            raise param_error("batch_size", f">= train.nproc ({self.train.nproc}): it is the global batch, "
                              "split over the processes", self.batch_size)
        if self.data.source == "local" and not self.data.path:
            raise param_error("data.path", "a Kaggle zip or folder when data.source is local", "")
        if self.train.scheduler == "cosine":
            if self.train.min_lr > self.lr:
                raise param_error("train.min_lr", f"<= lr ({self.lr:g}): the cosine decays from lr to min_lr",
                                  self.train.min_lr)
            if self.train.warmup_epochs >= self.epochs:
                raise param_error("train.warmup_epochs", f"< epochs ({self.epochs}), or the warmup never reaches lr",
                                  self.train.warmup_epochs)
        return self


def parse(raw: dict, source: str = PARAMS_FILE) -> Params:
    """``raw`` (params.yaml's mapping) validated; keys left out take their declared default."""
    return validate(Params, raw, source)


def load(path: str | Path = PARAMS_FILE) -> Params:
    """Read and validate ``path``; FoldwiseError naming the first bad key."""
    return parse(read_params_file(path), source=str(path))


def default_params() -> dict:
    """The full params.yaml-shaped nested dict of declared defaults, every group (task groups included)
    in params.yaml's order."""
    return defaults(Params)
