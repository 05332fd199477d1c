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
    """synthetic (the embedded generator), kaggle (Kaggle API) or local (data.path)."""
    path: str = ""
    """For data.source local: a Kaggle zip or its extracted folder."""


class SyntheticParams(Group):
    """Size and difficulty of the embedded synthetic dataset (``data.source: synthetic``)."""

    n_train: int = Field(1500, ge=20)
    """Size of the synthetic train set (SETI cadences, HMS label rows, PetFinder photos, mask photos in whole
    people of 7)."""
    n_test: int = Field(300, ge=1)
    """Size of the synthetic test set."""
    strength: float = Field(1.0, gt=0.0)
    """Scales every planted signal (lower is harder)."""


class TrainParams(Group):
    """Everything about fitting one fold beyond the top-level tunables."""

    optimizer: Literal["adamw", "adam", "sgd"] = "adamw"
    """adamw, adam or sgd (timm's SGD, with Nesterov momentum), through timm's optimizer factory."""
    momentum: float = Field(0.9, ge=0.0, le=1.0)
    """SGD momentum."""
    scheduler: Literal["cosine", "onecycle", "none"] = "cosine"
    """cosine (timm, per step, to min_lr), onecycle (torch OneCycleLR, per step) or none."""
    warmup_epochs: float = Field(0.5, ge=0.0)
    """cosine: linear warmup from min_lr to lr over this many epochs (< epochs)."""
    min_lr: float = Field(1e-6, ge=0.0)
    """cosine: the final learning rate (<= lr)."""
    pct_start: float = Field(0.3, ge=0.0, le=1.0)
    """onecycle: share of steps rising to lr (0: start at the peak)."""
    div_factor: float = Field(25.0, ge=1.0)
    """onecycle: the start lr is lr / div_factor."""
    final_div_factor: float = Field(1e4, gt=0.0)
    """onecycle: the end lr is the start lr / final_div_factor (below 1 ends above the start)."""
    early_stopping: bool = False
    """Stop a fold after patience epochs without improvement of val/<metric>; the best weights are kept."""
    patience: int = Field(3, ge=1)
    """Epochs without improvement before early stopping."""
    sampler: Literal["none", "balanced"] = "none"
    """balanced: a WeightedRandomSampler drawing every class equally often; none: every row once per epoch."""
    pos_weight: float = Field(1.0, gt=0.0)
    """BCE weight of the positive class (binary targets)."""
    label_smoothing: float = Field(0.0, ge=0.0, le=0.5)
    """BCE targets pulled toward 0.5 by this much (class targets: cross-entropy label smoothing)."""
    amp: Literal["auto", "none", "fp16", "bf16"] = "auto"
    """Mixed precision on CUDA only (auto: bf16 where supported, else fp16 with a grad scaler); always off on
    CPU, where bf16 autocast is ~20x slower."""
    channels_last: bool = True
    """channels_last memory format (10-35% faster CNN training on CPU)."""
    compile: bool = False
    """torch.compile the model (no gain for training on CPU)."""
    grad_accum: int = Field(1, ge=1)
    """Batches per optimizer step."""
    clip_grad: float = Field(0.0, ge=0.0)
    """Clip the gradient norm to this value (0: off)."""
    num_workers: Annotated[int, Ge(0)] | Literal["auto"] = "auto"
    """DataLoader worker processes (training and prediction), one thread each; auto: 0 on CPU (the model's
    threads already use every core), on CUDA the process's share of the cores (train.threads) - 1, at most
    8."""
    nproc: int = Field(1, ge=1)
    """Processes (DDP) training each fold; > 1 relaunches the train stage under torchrun, gloo on CPU, NCCL on
    CUDA (one GPU each)."""
    sync_bn: bool = False
    """DDP: SyncBatchNorm, batch statistics over the global batch (CUDA only)."""
    deterministic: bool = True
    """Deterministic torch kernels (CPU runs are bitwise reproducible on the same machine and threads)."""
    threads: Annotated[int, Ge(1)] | Literal["auto"] = "auto"
    """torch and OpenCV threads of a train@k process: auto takes $FOLDWISE_THREADS (set by `python -m
    foldwise.repro -j N` to cores // N) or else every core the process may use; on CPU the float results
    depend on it."""
    pretrained: bool = False
    """Start from timm's pretrained weights for model (default tag, or arch.tag), read offline from the
    Hugging Face hub cache by stage pretrained."""
    weights: str = ""
    """Or from this local file (safetensors or torch checkpoint, any layout); wins over train.pretrained; a
    path that does not exist stops download, pretrained and train."""
    weights_partial: bool = False
    """true: start from the tensors of the weights that match by name when some backbone tensor of model is
    not in them (else stage pretrained stops naming it)."""


class AugmentParams(Group):
    """Train-time augmentation and sample mixing."""

    train: list[FreeMapping] | Literal["auto"] = "auto"
    """auto: the task's label-keeping flips (SETI and PetFinder: horizontal + vertical; HMS: horizontal = time
    only, since mirroring frequency changes the class); or a list of albumentations transforms as `- Name:
    {arg: value}`. Validation and test get none."""
    cutmix_p: float = Field(0.0, ge=0.0, le=1.0)
    """CutMix probability per batch; targets mixed by pasted area."""
    cutmix_alpha: float = Field(1.0, gt=0.0)
    """CutMix's Beta(alpha, alpha)."""
    mixup_p: float = Field(0.0, ge=0.0, le=1.0)
    """MixUp probability per batch (when CutMix was not applied)."""
    mixup_alpha: float = Field(0.4, gt=0.0)
    """MixUp's Beta(alpha, alpha)."""
    mix_label: Literal["blend", "max"] = "blend"
    """blend: targets mixed in proportion; max: the larger target wins (SETI: a needle stays a needle)."""


class InferParams(Group):
    """Test-time augmentation and batch size of oof, infer and the Kaggle export."""

    tta: list[Literal[TTA_FLIPS]] = Field(default_factory=lambda: ["none", "hflip"], min_length=1)
    """Views averaged in probability space at oof and infer (and the Kaggle export)."""
    batch_size: int = Field(64, ge=1)
    """Batch size for prediction (and train's validation)."""


class MetricsParams(Group):
    """Scores logged beside the task's own metric."""

    extra: list[str] = Field(default_factory=list)
    """scikit-learn scorer names logged by oof beside the task's metric, per fold and CV, e.g. [f1_macro,
    accuracy]."""


class EdaParams(Group):
    """What the ``eda`` stage looks at."""

    max_images: int = Field(200, ge=1)
    """Raw samples per split whose size eda reads."""
    grid: int = Field(16, ge=1)
    """Images per class in each sample grid."""
    bins: int = Field(10, ge=2)
    """Regression targets: bins of the balance histogram (one sample grid per bin)."""


class BlendParams(Group):
    """Which finished runs the ``blend`` stage combines, and how."""

    runs: list[str] = Field(default_factory=list)
    """Experiment names or git revisions whose predictions the blend stage combines, e.g. [lr-1e-4, main]; []
    skips it."""
    method: Literal["auto", "rank", "mean"] = "auto"
    """auto (rank averaging where the metric only sees order, i.e. SETI's AUC; else mean), rank or mean."""


class ExplainParams(Group):
    """Stage ``explain``: saliency overlays of the worst OOF errors and the most confident right rows."""

    n_worst: int = Field(4, ge=0)
    """Overlays of the rows with the largest OOF error (metrics/explain/worst/)."""
    n_confident: int = Field(4, ge=0)
    """Overlays of the rows with the smallest OOF error, the most confident right answers
    (metrics/explain/confident/)."""
    method: Literal["auto", "gradcam", "rollout"] = "auto"
    """auto (attention rollout for ViT-style models, Grad-CAM otherwise), gradcam or rollout."""
