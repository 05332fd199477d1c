"""The shared params groups (``data:``, ``train:``, ...): their keys, types, bounds and defaults.

Each attribute's docstring is its description in the JSON Schema and the docs' params reference.
The defaults are the committed params.yaml's values (tests/test_params.py compares them).
"""
from __future__ import annotations

from typing import Annotated, Literal

from annotated_types import Ge
from pydantic import Field

from ..core.params import FreeMapping, Group

TTA_FLIPS = ("none", "hflip", "vflip", "hvflip")


class DataParams(Group):
    """Where ``download`` takes the competition data from."""

    source: Literal["synthetic", "kaggle", "local"] = "synthetic"
    """synthetic: the embedded generator; kaggle: the Kaggle API; local: a zip or folder (data.path)."""
    path: str = ""
    """data.source=local: a Kaggle zip or its extracted folder."""


class SyntheticParams(Group):
    """Size and difficulty of the embedded synthetic dataset (``data.source: synthetic``)."""

    n_train: int = Field(1500, ge=20)
    """Training samples generated."""
    n_test: int = Field(300, ge=1)
    """Test samples generated."""
    strength: float = Field(1.0, gt=0.0)
    """Scales every planted signal (smaller: harder)."""


class TrainParams(Group):
    """Everything about fitting one fold beyond the top-level tunables."""

    optimizer: Literal["adamw", "adam", "sgd"] = "adamw"
    """The optimizer (weight_decay applies to each)."""
    momentum: float = Field(0.9, ge=0.0, le=1.0)
    """SGD momentum."""
    scheduler: Literal["cosine", "onecycle", "none"] = "cosine"
    """Learning-rate schedule: cosine (linear warmup, then cosine to min_lr), onecycle or none."""
    warmup_epochs: float = Field(0.5, ge=0.0)
    """cosine: epochs of linear warmup from 0 to lr (< epochs)."""
    min_lr: float = Field(1e-6, ge=0.0)
    """cosine: the learning rate at the end (<= lr)."""
    pct_start: float = Field(0.3, ge=0.0, le=1.0)
    """onecycle: the share of steps rising to lr (0: no rise)."""
    div_factor: float = Field(25.0, ge=1.0)
    """onecycle: starts at lr / div_factor."""
    final_div_factor: float = Field(1e4, gt=0.0)
    """onecycle: ends at the start lr / final_div_factor (< 1 ends above the start lr)."""
    early_stopping: bool = False
    """Stop a fold when the validation metric has not improved for patience epochs."""
    patience: int = Field(3, ge=1)
    """Epochs without improvement before early stopping."""
    sampler: Literal["none", "balanced"] = "none"
    """balanced: sample the train rows with equal weight per stratify class."""
    pos_weight: float = Field(1.0, gt=0.0)
    """Binary losses: the weight of positive targets."""
    label_smoothing: float = Field(0.0, ge=0.0, le=0.5)
    """Label smoothing of the classification losses."""
    amp: Literal["auto", "none", "fp16", "bf16"] = "auto"
    """Mixed precision (CUDA only); auto: bf16 where the GPU has it, else fp16."""
    channels_last: bool = True
    """Channels-last memory format on CUDA."""
    compile: bool = False
    """torch.compile the model."""
    grad_accum: int = Field(1, ge=1)
    """Batches whose gradients add up before one optimizer step."""
    clip_grad: float = Field(0.0, ge=0.0)
    """Gradient norm clipping; 0: none."""
    num_workers: Annotated[int, Ge(0)] | Literal["auto"] = "auto"
    """DataLoader workers; auto: 0 on CPU, cores per process - 1 (<= 8) on CUDA."""
    nproc: int = Field(1, ge=1)
    """DDP processes per fold (torchrun on this machine); batch_size stays the global batch."""
    sync_bn: bool = False
    """SyncBatchNorm across the DDP processes (CUDA only)."""
    deterministic: bool = True
    """Deterministic kernels (same result on the same machine and threads)."""
    threads: Annotated[int, Ge(1)] | Literal["auto"] = "auto"
    """CPU threads; auto: $FOLDWISE_THREADS (set by `python -m foldwise.repro -j N`), else every core
    this process may use."""
    pretrained: bool = False
    """timm's weights for model (arch or arch.tag) from the HF hub cache, offline (stage pretrained)."""
    weights: str = ""
    """Or a local weights file (safetensors or torch checkpoint); wins over pretrained."""
    weights_partial: bool = False
    """true: start from the weights' tensors that match when some backbone tensor does not."""


class AugmentParams(Group):
    """Train-time augmentation and sample mixing."""

    train: list[FreeMapping] | Literal["auto"] = "auto"
    """auto: the task's own label-keeping flips; or a list of albumentations transforms,
    e.g. [{HorizontalFlip: {p: 0.5}}, {RandomBrightnessContrast: {p: 0.2}}]."""
    cutmix_p: float = Field(0.0, ge=0.0, le=1.0)
    """Probability of CutMix per batch."""
    cutmix_alpha: float = Field(1.0, gt=0.0)
    """CutMix's Beta(alpha, alpha) for the pasted area."""
    mixup_p: float = Field(0.0, ge=0.0, le=1.0)
    """Probability of MixUp per batch."""
    mixup_alpha: float = Field(0.4, gt=0.0)
    """MixUp's Beta(alpha, alpha) for the mixing weight."""
    mix_label: Literal["blend", "max"] = "blend"
    """How mixed targets combine: blend (weighted by area or weight) or max."""


class InferParams(Group):
    """Test-time augmentation and batch size of oof, infer and the Kaggle export."""

    tta: list[Literal[TTA_FLIPS]] = Field(default_factory=lambda: ["none", "hflip"], min_length=1)
    """The flipped views averaged per sample."""
    batch_size: int = Field(64, ge=1)
    """Inference batch size."""


class MetricsParams(Group):
    """Scores logged beside the task's own metric."""

    extra: list[str] = Field(default_factory=list)
    """scikit-learn scorer names logged by oof per fold and CV, e.g. [f1_macro, accuracy]."""


class EdaParams(Group):
    """What the ``eda`` stage looks at."""

    max_images: int = Field(200, ge=1)
    """Raw samples per split whose size is read."""
    grid: int = Field(16, ge=1)
    """Images per class in each sample grid."""
    bins: int = Field(10, ge=2)
    """Regression targets: histogram bins (one sample grid per bin)."""


class BlendParams(Group):
    """Which finished runs the ``blend`` stage combines, and how."""

    runs: list[str] = Field(default_factory=list)
    """Experiment names or git revisions to blend, e.g. [lr-1e-4, main]; [] skips the stage."""
    method: Literal["auto", "rank", "mean"] = "auto"
    """auto: rank averaging where the metric is rank-based (AUC), else mean."""


class ExplainParams(Group):
    """Stage ``explain``: saliency overlays of the worst OOF errors and the most confident right rows."""

    n_worst: int = Field(4, ge=0)
    """Overlays of the largest OOF errors (metrics/explain/worst/)."""
    n_confident: int = Field(4, ge=0)
    """Overlays of the most confident right answers (metrics/explain/confident/)."""
    method: Literal["auto", "gradcam", "rollout"] = "auto"
    """auto: attention rollout for ViT-style models, Grad-CAM otherwise."""
