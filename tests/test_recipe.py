"""Each training technique does what it says: CutMix/MixUp, the balanced sampler, lr schedules,
optimizers and weight decay, early stopping and resume, flip TTA, augmentations, AMP on CPU,
gradient accumulation and clipping.

Everything runs in-process on tiny tensors; Trainer tests use 64 random 32 px shard rows and a
one-conv backbone under the real FoldModel head: no dvc, no data download.
"""
from __future__ import annotations

import copy
import math

import numpy as np
import pytest
import torch
from torch import nn

from conftest import deep_update
from foldwise.params import Params
from foldwise.stages.params import parse_params
from foldwise.engine import mixing, training
from foldwise.engine.datasets import ShardDataset
from foldwise.engine.inference import flip, predict_batches
from foldwise.engine.mixing import cutmix, mix_batch, mixup
from foldwise.engine.models import FoldModel
from foldwise.engine.runtime import autocast_dtype
from foldwise.engine.schedules import LrSchedule, build_optimizer, optimizer_steps_per_epoch
from foldwise.engine.distributed import epoch_order
from foldwise.engine.training import Trainer, balanced_weights, make_train_loader
from foldwise.engine.transforms import build_train_transform
from foldwise.prepared.shards import ShardReader, write_shards
from foldwise.tasks import TASKS, get_task
from foldwise.tasks.seti import TASK
from test_params import base

MODEL = "resnet10t"  # validated by params; the Trainer gets TinyBackbone instead (see make_trainer)
IMG = 32


# ---- helpers ------------------------------------------------------------------------------------
@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    """One intra-op thread: on a small shared CPU, tiny ops run several times faster than with more."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def make_params(overrides: dict | None = None) -> Params:
    """The repository params.yaml with ``overrides`` deep-merged, parsed and validated."""
    raw = base()
    fields = set(Params.model_fields)
    raw = {k: v for k, v in raw.items() if k in fields or k in TASKS}  # groups of tasks not registered here
    return parse_params(deep_update(raw, copy.deepcopy(overrides or {})))


# Every task and every images.kind, as params overrides.
CASES = {
    "seti": {"task": "seti"},
    "hms": {"task": "hms"},
    "petfinder": {"task": "petfinder"},
    "mask-single": {"task": "mask"},
    "mask-multi": {"task": "mask", "mask": {"head": "multi"}},
    "images-binary": {"task": "images", "images": {"kind": "binary", "targets": ["filled"],
                                                   "classes": ["no", "yes"], "metric": "roc_auc"}},
    "images-multiclass": {"task": "images"},
    "images-multilabel": {"task": "images", "images": {"kind": "multilabel", "targets": ["red", "blue"],
                                                       "classes": [], "metric": "roc_auc"}},
    "images-regression": {"task": "images", "images": {"kind": "regression", "targets": ["size"], "classes": [],
                                                       "metric": "neg_root_mean_squared_error"}},
}
CLASS_INDEX_CASES = {"mask-single", "mask-multi", "images-multiclass"}


@pytest.fixture
def task_params():
    """Factory: ``task_params(case, overrides)`` -> (task as the params configure it, params)."""
    def factory(case: str, overrides: dict | None = None):
        p = make_params(deep_update(dict(CASES[case]), overrides or {}))
        return get_task(p.task).for_params(p), p
    return factory


def constant_images(n: int, h: int = 32, w: int = 32, c: int = 2) -> torch.Tensor:
    """(n, c, h, w) where sample i is the constant i + 1 (so every pixel tells its source)."""
    return (torch.arange(n, dtype=torch.float32) + 1).view(n, 1, 1, 1).expand(n, c, h, w).clone()


class LiveStub:
    """What Trainer.fit needs of a dvclive Live."""

    def __init__(self):
        self.rows: list[dict] = []
        self.current: dict = {}
        self.summary: dict = {}

    def log_metric(self, key, value):
        self.current[key] = value

    def next_step(self):
        self.rows.append(self.current)
        self.current = {}


@pytest.fixture
def shards(tmp_path):
    """Factory: ``shards(n)`` -> (ShardReader over n random (32, 32, 1) images, labels (n,) int)."""
    def factory(n: int = 64):
        prepared = tmp_path / f"prepared_{n}"
        if not prepared.is_dir():
            prepared.mkdir()
            images = np.random.default_rng(0).standard_normal((n, IMG, IMG, 1)).astype(np.float32)
            write_shards(prepared, "train", iter(images), n)
        labels = (np.arange(n) % 4 == 0).astype(int)  # 25% positives, in every slice of 4 rows
        return ShardReader(prepared, "train"), labels
    return factory


class TinyBackbone(nn.Module):
    """A timm-like backbone (pooled features, ``num_features``) small enough for a busy 2-core CPU:
    conv + BatchNorm + ReLU + global pool. Even timm's test models take seconds per batch there."""

    def __init__(self, in_chans: int):
        super().__init__()
        self.num_features = 8
        self.conv = nn.Conv2d(in_chans, 8, 3, stride=2, padding=1)
        self.bn = nn.BatchNorm2d(8)

    def forward(self, x):
        return torch.relu(self.bn(self.conv(x))).mean(dim=(2, 3))


def tiny_create_model(name, in_chans, num_outputs, n_meta=0, **kwargs):
    return FoldModel(TinyBackbone(in_chans), num_outputs, n_meta)


@pytest.fixture
def make_trainer(shards, monkeypatch):
    """Factory: ``make_trainer(n=64, overrides)`` -> a Trainer (SETI task) on 32 px single-channel shards,
    64 rows, batch 32, with the model swapped for TinyBackbone + the real FoldModel head."""
    monkeypatch.setattr(training, "create_model", tiny_create_model)

    def factory(n: int = 64, overrides: dict | None = None, task=TASK, targets: np.ndarray | None = None) -> Trainer:
        """``task`` and its ``targets`` (n, T) replace SETI and the 25% positives (the sampler's labels)."""
        p = make_params(deep_update({
            "model": MODEL, "img_size": IMG, "batch_size": 32, "epochs": 6, "seed": 0,
            "train": {"scheduler": "none", "num_workers": 0, "compile": False},
            "infer": {"batch_size": 64},
        }, overrides or {}))
        reader, labels = shards(n)
        targets = labels[:, None].astype(np.float32) if targets is None else targets.astype(np.float32)
        rows = np.arange(n)
        train_ds = ShardDataset(reader, rows, targets, None, build_train_transform(p.augment.train, 0))
        val_ds = ShardDataset(reader, rows[:16], targets[:16])
        return Trainer(task, p, 0, train_ds, labels, val_ds, 1, 0)
    return factory


def state_of(model: nn.Module) -> dict:
    return {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}


def same_state(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


# ---- 1. CutMix ----------------------------------------------------------------------------------
def _cutmix_perm_and_mask(images: torch.Tensor, mixed: torch.Tensor):
    """Read the permutation and the changed-pixel mask back from constant-valued images."""
    n = images.shape[0]
    changed = (mixed != images).any(dim=1)  # (n, h, w)
    perm = []
    for i in range(n):
        values = torch.unique(mixed[i][:, changed[i]])
        assert len(values) <= 1, "pasted region must come from one other sample"
        perm.append(int(values[0]) - 1 if len(values) else i)
    return torch.tensor(perm), changed


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_cutmix_lambda_is_one_minus_pasted_area_and_targets_blend(seed):
    n, h, w = 8, 32, 40
    images = constant_images(n, h, w)
    targets = torch.rand(n, 3, generator=torch.Generator().manual_seed(seed))
    np.random.seed(seed)  # timm draws the box centre from numpy's global generator
    mixed, mixed_t, lam = cutmix(images, targets, 1.0, "blend", np.random.default_rng(seed))

    perm, changed = _cutmix_perm_and_mask(images, mixed)
    assert sorted(perm.tolist()) == list(range(n)), "sources must form a permutation of the batch"
    moved = perm != torch.arange(n)
    assert moved.any() and changed[moved].any(), "pick seeds where something was pasted"
    # same box for every sample whose source differs; lam = 1 - that box's area / image area
    box = changed[moved][0]
    assert all(torch.equal(changed[i], box) for i in torch.nonzero(moved).flatten().tolist())
    assert not changed[~moved].any()
    ys, xs = torch.nonzero(box, as_tuple=True)
    rect = torch.zeros_like(box)
    rect[ys.min():ys.max() + 1, xs.min():xs.max() + 1] = True
    assert torch.equal(rect, box), "the pasted region is one rectangle"
    pasted = int(box.sum())
    assert lam == pytest.approx(1.0 - pasted / (h * w), abs=1e-12)
    assert 0.0 <= lam < 1.0
    # pixels outside the box untouched, inside from the source sample
    for i in range(n):
        assert torch.all(mixed[i][:, ~box] == i + 1)
        assert torch.all(mixed[i][:, box] == int(perm[i]) + 1)
    torch.testing.assert_close(mixed_t, lam * targets + (1 - lam) * targets[perm], rtol=0, atol=1e-6)


def test_cutmix_max_label_keeps_positives_positive():
    n = 8
    images = constant_images(n)
    targets = torch.tensor([[1.0], [0.0], [0.0], [1.0], [0.0], [0.0], [0.0], [0.0]])
    np.random.seed(0)
    mixed, mixed_t, lam = cutmix(images, targets, 1.0, "max", np.random.default_rng(0))
    perm, _ = _cutmix_perm_and_mask(images, mixed)
    assert (perm != torch.arange(n)).any()
    assert torch.equal(mixed_t, torch.maximum(targets, targets[perm]))
    assert torch.all(mixed_t >= targets), "a positive stays positive"
    # a negative that received a positive's patch becomes positive (the needle was pasted in)
    received = (targets[perm] == 1) & (targets == 0)
    assert received.any() and torch.all(mixed_t[received] == 1)
    assert 0 < lam < 1  # with 'max', lam is not used for the targets


def test_cutmix_is_reproducible_for_a_fixed_rng_and_global_seed():
    images, targets = constant_images(6), torch.rand(6, 1)
    outs = []
    for _ in range(2):
        np.random.seed(5)
        outs.append(cutmix(images, targets, 1.0, "blend", np.random.default_rng(11)))
    assert torch.equal(outs[0][0], outs[1][0]) and torch.equal(outs[0][1], outs[1][1]) and outs[0][2] == outs[1][2]


def test_cutmix_depends_only_on_its_rng():
    images, targets = constant_images(6), torch.rand(6, 1)
    outs = []
    for global_seed in (0, 1):
        np.random.seed(global_seed)  # unrelated draws from the global generator
        outs.append(cutmix(images, targets, 1.0, "blend", np.random.default_rng(11))[0])
    assert torch.equal(outs[0], outs[1])


# ---- 2. MixUp -----------------------------------------------------------------------------------
@pytest.mark.parametrize("mode", ["blend", "max"])
def test_mixup_blends_images_and_targets_with_the_same_lambda(mode):
    n = 6
    g = torch.Generator().manual_seed(0)
    images = torch.randn(n, 2, 8, 8, generator=g)
    targets = torch.rand(n, 2, generator=g)
    mixed, mixed_t, lam = mixup(images, targets, 0.4, mode, np.random.default_rng(3))
    assert 0.0 < lam < 1.0
    # recover the partner of every sample from the pixels alone: exactly one j fits
    perm = []
    for i in range(n):
        fits = [j for j in range(n) if torch.allclose(mixed[i], lam * images[i] + (1 - lam) * images[j], atol=1e-6)]
        assert len(fits) == 1
        perm.append(fits[0])
    perm = torch.tensor(perm)
    assert sorted(perm.tolist()) == list(range(n)) and (perm != torch.arange(n)).any()
    torch.testing.assert_close(mixed, lam * images + (1 - lam) * images[perm], rtol=0, atol=1e-6)
    expected_t = torch.maximum(targets, targets[perm]) if mode == "max" else lam * targets + (1 - lam) * targets[perm]
    torch.testing.assert_close(mixed_t, expected_t, rtol=0, atol=1e-6)


# ---- 3. mix_batch probabilities -----------------------------------------------------------------
def _augment(cutmix_p: float, mixup_p: float):
    return make_params({"augment": {"cutmix_p": cutmix_p, "mixup_p": mixup_p}}).augment


@pytest.mark.parametrize("cutmix_p, mixup_p, expected", [
    (1.0, 0.0, {"cutmix": 1.0, "mixup": 0.0}),
    (1.0, 1.0, {"cutmix": 1.0, "mixup": 0.0}),
    (0.0, 1.0, {"cutmix": 0.0, "mixup": 1.0}),
    (0.0, 0.0, {"cutmix": 0.0, "mixup": 0.0}),
    (0.3, 0.5, {"cutmix": 0.3, "mixup": 0.7 * 0.5}),  # mixup only when cutmix was not drawn
])
def test_mix_batch_applies_each_mix_with_its_probability(monkeypatch, cutmix_p, mixup_p, expected):
    calls = {"cutmix": 0, "mixup": 0}

    def spy(name):
        real = getattr(mixing, name)

        def wrapped(images, targets, alpha, mode, rng):
            calls[name] += 1
            return real(images, targets, alpha, mode, rng)
        return wrapped

    monkeypatch.setattr(mixing, "cutmix", spy("cutmix"))
    monkeypatch.setattr(mixing, "mixup", spy("mixup"))
    augment = _augment(cutmix_p, mixup_p)
    rng = np.random.default_rng(0)
    np.random.seed(0)
    images, targets = constant_images(4, 8, 8), torch.tensor([[1.0], [0.0], [0.0], [0.0]])
    trials = 300 if all(prob in (0.0, 1.0) for prob in expected.values()) else 2000
    unchanged = 0
    for _ in range(trials):
        out_images, out_targets = mix_batch(images, targets, augment, rng)
        if out_images is images and out_targets is targets:
            unchanged += 1
    for name, prob in expected.items():
        if prob in (0.0, 1.0):
            assert calls[name] == prob * trials, name
        else:
            assert abs(calls[name] / trials - prob) < 0.04, (name, calls[name] / trials)
    assert calls["cutmix"] + calls["mixup"] + unchanged == trials
    if cutmix_p == mixup_p == 0.0:
        assert unchanged == trials


# ---- 3b. CutMix/MixUp for every task ------------------------------------------------------------
def case_targets(task, case: str, n: int, seed: int = 0) -> torch.Tensor:
    """Valid targets (n, len(target_columns)) for ``case``: class indices, PetFinder scores or [0, 1]."""
    gen = torch.Generator().manual_seed(seed)
    if case in CLASS_INDEX_CASES:
        return torch.randint(0, task.num_outputs, (n, 1), generator=gen).float()
    if case == "petfinder":
        return torch.randint(1, 101, (n, 1), generator=gen).float()
    return torch.rand(n, len(task.target_columns), generator=gen)


def replay_mix(rng: np.random.Generator, augment, n: int, h: int, w: int) -> tuple[str, float, np.ndarray]:
    """What ``mix_batch`` draws from ``rng``, drawn again: (which mix, lam, permutation)."""
    draw = rng.random()
    if draw < augment.cutmix_p:
        y0, y1, x0, x1 = mixing.cutmix_box(h, w, float(rng.beta(augment.cutmix_alpha, augment.cutmix_alpha)), rng)
        return "cutmix", 1.0 - (y1 - y0) * (x1 - x0) / (h * w), rng.permutation(n)
    if draw < augment.cutmix_p + (1.0 - augment.cutmix_p) * augment.mixup_p:
        return "mixup", float(rng.beta(augment.mixup_alpha, augment.mixup_alpha)), rng.permutation(n)
    return "none", 1.0, np.arange(n)


@pytest.mark.parametrize("case", list(CASES))
class TestMixingEveryTask:
    """CutMix and MixUp train every task: class indices (mask single/multi head, images multiclass)
    become one-hot rows, blended like any other target and read by the loss as soft targets."""

    @pytest.mark.parametrize("mix", ["cutmix", "mixup"])
    def test_mixed_targets_are_convex_combinations_of_the_pair(self, task_params, case, mix):
        task, p = task_params(case, {"augment": {f"{mix}_p": 1.0}})
        n = 8
        targets = case_targets(task, case, n)
        classes = training.mixed_classes(task.loss(p), task)
        _, mixed = mix_batch(constant_images(n, 16, 16), targets, p.augment, np.random.default_rng(5), classes)
        drawn, lam, perm = replay_mix(np.random.default_rng(5), p.augment, n, 16, 16)
        assert drawn == mix and 0.0 < lam < 1.0
        if case in CLASS_INDEX_CASES:
            assert classes == task.num_outputs and mixed.shape == (n, classes)
            rows = torch.nn.functional.one_hot(targets[:, 0].long(), classes).float()
            torch.testing.assert_close(mixed.sum(1), torch.ones(n))  # still a class distribution
        else:
            assert classes is None
            rows = targets
        torch.testing.assert_close(mixed, lam * rows + (1 - lam) * rows[torch.from_numpy(perm)], rtol=0, atol=1e-6)

    @pytest.mark.parametrize("smoothing", [0.0, 0.1])
    def test_unmixed_rows_give_the_unmixed_loss(self, task_params, case, smoothing):
        """lam = 1 keeps each row whole: for class indices the soft-target cross-entropy of the
        one-hot rows equals the cross-entropy of the indices, label smoothing included."""
        task, p = task_params(case, {"train": {"label_smoothing": smoothing}})
        loss_fn = task.loss(p)
        targets = case_targets(task, case, 6)
        logits = torch.randn(6, task.num_logits(p), generator=torch.Generator().manual_seed(1))
        classes = training.mixed_classes(loss_fn, task)
        rows = targets if classes is None else mixing.one_hot(targets, classes)
        kept = mixing.mix_targets(rows, torch.tensor([5, 4, 3, 2, 1, 0]), 1.0, "blend")
        expected = loss_fn(logits, targets)
        torch.testing.assert_close(loss_fn(logits, kept), expected)
        if classes is not None:  # and a real blend moves the loss
            blended = mixing.mix_targets(rows, torch.tensor([5, 4, 3, 2, 1, 0]), 0.6, "blend")
            assert torch.isfinite(loss_fn(logits, blended)) and not torch.allclose(loss_fn(logits, blended), expected)

    def test_a_mixed_trainer_epoch_learns(self, make_trainer, task_params, case):
        task, _ = task_params(case)
        n = 64
        overrides = deep_update(dict(CASES[case]), {"epochs": 1, "augment": {"cutmix_p": 0.5, "mixup_p": 1.0}})
        trainer = make_trainer(n, overrides, task=task, targets=case_targets(task, case, n).numpy())
        before = state_of(trainer.model)
        loss = trainer.train_epoch(0)
        val_loss, preds = trainer.validate()
        assert np.isfinite([loss, val_loss]).all() and preds.shape == (16, task.num_outputs)
        assert not same_state(before, state_of(trainer.model))


# ---- 4. balanced sampler ------------------------------------------------------------------------
def balanced_sampler(labels: np.ndarray, generator: torch.Generator) -> list[int]:
    """One epoch of the training loader's balanced order (``train.sampler: balanced``)."""
    return epoch_order(len(labels), balanced_weights(labels), generator).tolist()


def test_balanced_sampler_draws_classes_equally_and_is_deterministic():
    labels = np.array([0] * 2700 + [1] * 300)
    idx = list(balanced_sampler(labels, torch.Generator().manual_seed(0)))
    assert len(idx) == len(labels)  # one epoch = n draws
    share = labels[idx].mean()
    assert 0.45 < share < 0.55, share
    assert idx == list(balanced_sampler(labels, torch.Generator().manual_seed(0)))
    assert idx != list(balanced_sampler(labels, torch.Generator().manual_seed(1)))
    # three classes 80/15/5 -> a third each
    labels3 = np.array([0] * 2400 + [1] * 450 + [2] * 150)
    counts = np.bincount(labels3[list(balanced_sampler(labels3, torch.Generator().manual_seed(0)))], minlength=3)
    assert np.all(np.abs(counts / counts.sum() - 1 / 3) < 0.05), counts


@pytest.mark.parametrize("sampler, low, high", [("balanced", 0.45, 0.55), ("none", 0.08, 0.12)])
def test_train_loader_uses_the_sampler_from_params(sampler, low, high):
    labels = np.array([0] * 2700 + [1] * 300)
    p = make_params({"train": {"sampler": sampler}, "batch_size": 50})
    drawn = torch.cat([b for b in make_train_loader(list(range(len(labels))), labels, p, seed=3)]).numpy()
    assert len(drawn) == len(labels)
    assert low < labels[drawn].mean() < high
    again = torch.cat([b for b in make_train_loader(list(range(len(labels))), labels, p, seed=3)]).numpy()
    assert np.array_equal(drawn, again)


# ---- 5. lr schedules ----------------------------------------------------------------------------
def _lrs(kind: str, steps_per_epoch: int = 10, epochs: int = 3, **train):
    """lr in force at each optimizer step, stepping LrSchedule as the trainer does; and the final lr."""
    p = make_params({"lr": 1e-3, "epochs": epochs, "train": {"scheduler": kind, **train}})
    opt = torch.optim.SGD([nn.Parameter(torch.zeros(1))], lr=p.lr)
    schedule = LrSchedule(opt, p, steps_per_epoch)
    lrs = []
    for _ in range(steps_per_epoch * epochs):
        lrs.append(schedule.lr)
        opt.step()
        schedule.step()
    return p, np.array(lrs), schedule.lr


def test_onecycle_starts_peaks_and_ends_where_configured():
    p, lrs, final = _lrs("onecycle", pct_start=0.3, div_factor=25.0, final_div_factor=1e4)
    total = len(lrs)
    assert lrs[0] == pytest.approx(p.lr / 25.0, rel=1e-9)
    assert lrs.max() == pytest.approx(p.lr, rel=1e-6)
    assert abs(int(np.argmax(lrs)) - round(0.3 * total)) <= 1
    assert lrs[-1] == pytest.approx(p.lr / (25.0 * 1e4), rel=1e-6)
    assert final == pytest.approx(p.lr / (25.0 * 1e4), rel=1e-6)
    peak = int(np.argmax(lrs))
    assert np.all(np.diff(lrs[:peak + 1]) > 0) and np.all(np.diff(lrs[peak:]) < 0)


def test_cosine_warms_up_from_min_lr_then_decays():
    p, lrs, _ = _lrs("cosine", warmup_epochs=0.5, min_lr=1e-6)
    warmup = 5  # 0.5 epochs x 10 steps
    assert lrs[0] == pytest.approx(1e-6, rel=1e-9)
    assert lrs[warmup] == pytest.approx(p.lr, rel=1e-9)
    assert np.all(np.diff(lrs[:warmup + 1]) > 0)
    np.testing.assert_allclose(np.diff(lrs[:warmup + 1]), (p.lr - 1e-6) / warmup, rtol=1e-6)  # linear
    assert np.all(np.diff(lrs[warmup:]) < 0), "monotone decreasing after warmup"


def test_cosine_ends_at_min_lr():
    p, lrs, final = _lrs("cosine", warmup_epochs=0.5, min_lr=1e-6)
    assert final == pytest.approx(1e-6, rel=1e-3)
    assert lrs[-1] < 0.02 * p.lr


def test_cosine_without_warmup_ends_at_min_lr():
    p, lrs, final = _lrs("cosine", warmup_epochs=0.0, min_lr=1e-6)
    assert lrs[0] == pytest.approx(p.lr, rel=1e-9)
    assert np.all(np.diff(lrs) < 0)
    assert final == pytest.approx(1e-6, rel=1e-9)


def test_none_schedule_is_constant():
    p, lrs, final = _lrs("none")
    assert np.all(lrs == p.lr) and final == p.lr


@pytest.mark.parametrize("kind", ["cosine", "onecycle", "none"])
def test_schedule_resumes_from_its_state(kind):
    """The trainer's resume: optimizer + schedule state after k steps continue the same lr sequence."""
    p = make_params({"epochs": 3, "train": {"scheduler": kind}})
    _, full, _ = _lrs(kind)
    opt = torch.optim.SGD([nn.Parameter(torch.zeros(1))], lr=p.lr)
    schedule = LrSchedule(opt, p, 10)
    for _ in range(12):
        opt.step()
        schedule.step()
    opt2 = torch.optim.SGD([nn.Parameter(torch.zeros(1))], lr=p.lr)
    resumed = LrSchedule(opt2, p, 10)
    opt2.load_state_dict(copy.deepcopy(opt.state_dict()))
    resumed.load_state_dict(copy.deepcopy(schedule.state_dict()))
    rest = []
    for _ in range(30 - 12):
        rest.append(resumed.lr)
        opt2.step()
        resumed.step()
    np.testing.assert_allclose(rest, full[12:], rtol=1e-12)


def test_optimizer_steps_per_epoch_rounds_up():
    assert [optimizer_steps_per_epoch(b, 2) for b in (1, 4, 5)] == [1, 2, 3]
    assert optimizer_steps_per_epoch(0, 4) == 1


# ---- 6. optimizers and weight decay -------------------------------------------------------------
class TinyNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(1, 4, 3)
        self.bn = nn.BatchNorm2d(4)
        self.fc = nn.Linear(4, 2)

    def forward(self, x):
        return self.fc(self.bn(self.conv(x)).mean(dim=(2, 3)))


@pytest.mark.parametrize("name, cls", [("adamw", torch.optim.AdamW), ("adam", torch.optim.Adam), ("sgd", torch.optim.SGD)])
def test_optimizer_by_name_and_weight_decay_only_on_weights(name, cls):
    p = make_params({"lr": 3e-3, "weight_decay": 0.05, "train": {"optimizer": name, "momentum": 0.8}})
    model = TinyNet()
    opt = build_optimizer(model, p)
    assert type(opt) is cls
    decay_of = {}
    for group in opt.param_groups:
        assert group["lr"] == pytest.approx(3e-3)
        for param in group["params"]:
            decay_of[id(param)] = group["weight_decay"]
    named = dict(model.named_parameters())
    assert set(decay_of) == {id(v) for v in named.values()}, "every parameter is optimized exactly once"
    for key in ("conv.weight", "fc.weight"):
        assert decay_of[id(named[key])] == pytest.approx(0.05), key
    for key in ("conv.bias", "bn.weight", "bn.bias", "fc.bias"):
        assert decay_of[id(named[key])] == 0.0, key
    if name == "sgd":
        assert all(g["momentum"] == pytest.approx(0.8) for g in opt.param_groups)


# ---- 7. early stopping, best epoch, resume ------------------------------------------------------
@pytest.mark.parametrize("early, epochs, scores, n_run, best_epoch", [
    # best at epoch 1; epochs 2 and 3 do not improve -> stop after epoch 3 (patience 2)
    (True, 6, [0.5, 0.7, 0.6, 0.65, 0.9, 0.95], 4, 1),
    # an improvement at epoch 3 resets the count: stop after epoch 5, not after epoch 4
    (True, 8, [0.5, 0.6, 0.55, 0.7, 0.65, 0.6, 0.99, 0.99], 6, 3),
    # without early stopping every epoch runs and the best one is still restored
    (False, 5, [0.5, 0.9, 0.4, 0.3, 0.2], 5, 1),
])
def test_early_stopping_and_best_weights_restored(make_trainer, monkeypatch, tmp_path, early, epochs, scores,
                                                  n_run, best_epoch):
    trainer = make_trainer(overrides={"epochs": epochs, "train": {"early_stopping": early, "patience": 2}})
    script = iter(scores)
    monkeypatch.setattr(trainer.task, "metric", lambda y_true, y_pred: next(script))
    snapshots = []
    real_validate = trainer.validate

    def validate():
        snapshots.append(state_of(trainer.model))  # the weights this epoch is scored on
        return real_validate()

    monkeypatch.setattr(trainer, "validate", validate)
    live = LiveStub()
    result = trainer.fit(live, tmp_path / "ckpt", "fp", log=lambda msg: None)

    assert len(result.history) == n_run == len(live.rows) == len(snapshots)
    assert [row["val/auc"] for row in result.history] == scores[:n_run]
    assert result.stopped_early is (early and n_run < epochs)
    assert result.best_epoch == best_epoch and result.best_score == scores[best_epoch]
    assert live.summary["best"] == {"auc": scores[best_epoch], "epoch": best_epoch + 1}
    # the model ends on the best epoch's weights, not the last epoch's
    assert not same_state(snapshots[best_epoch], snapshots[-1]), "training must change the weights"
    assert same_state(state_of(trainer.model), snapshots[best_epoch])
    assert same_state(result.best_state, snapshots[best_epoch])


def test_resume_after_a_kill_matches_an_uninterrupted_run(make_trainer, tmp_path):
    overrides = {"epochs": 3, "train": {"scheduler": "cosine", "warmup_epochs": 0.5}}
    full = make_trainer(overrides=overrides).fit(LiveStub(), tmp_path / "a", "fp", log=lambda m: None)

    class Killed(Exception):
        pass

    first = make_trainer(overrides=overrides)
    real_train_epoch = first.train_epoch

    def train_epoch(epoch, bar=None):
        if epoch == 2:
            raise Killed  # killed during the third epoch: last.pt holds epoch 2 of 3 (index 1)
        return real_train_epoch(epoch, bar)

    first.train_epoch = train_epoch
    with pytest.raises(Killed):
        first.fit(LiveStub(), tmp_path / "b", "fp", log=lambda m: None)

    messages, live = [], LiveStub()
    second = make_trainer(overrides=overrides)
    resumed = second.fit(live, tmp_path / "b", "fp", log=messages.append)
    assert any("resuming" in m and "after epoch 2" in m for m in messages), messages
    assert len(live.rows) == 3  # two replayed epochs + one trained
    assert resumed.history == full.history
    assert resumed.best_epoch == full.best_epoch
    assert same_state(resumed.best_state, full.best_state)
    np.testing.assert_array_equal(resumed.val_preds, full.val_preds)


# ---- 8. TTA -------------------------------------------------------------------------------------
class PooledLinear(nn.Module):
    """Global average pool then linear: invariant to any flip."""

    def __init__(self, c: int):
        super().__init__()
        self.fc = nn.Linear(c, 1)

    def forward(self, images, meta=None):
        return self.fc(images.mean(dim=(2, 3)))


class FlatLinear(nn.Module):
    """Linear on the flattened pixels: every flip changes its output."""

    def __init__(self, c: int, h: int, w: int):
        super().__init__()
        self.fc = nn.Linear(c * h * w, 1)
        with torch.no_grad():
            self.fc.weight.mul_(20.0)  # spread the logits so mean-of-sigmoids != sigmoid-of-mean

    def forward(self, images, meta=None):
        return self.fc(images.reshape(len(images), -1))


ALL_FLIPS = ["none", "hflip", "vflip", "hvflip"]


def _tta_loader(n=10, h=6, w=5, c=2):
    images = torch.randn(n, h, w, c, generator=torch.Generator().manual_seed(0))  # NHWC, as the datasets give
    return images, [{"image": images[:4]}, {"image": images[4:]}]


def test_flip_mirrors_the_named_axes():
    x = torch.arange(2 * 3 * 4 * 5, dtype=torch.float32).view(2, 3, 4, 5)
    assert torch.equal(flip(x, "none"), x)
    assert torch.equal(flip(x, "hflip"), torch.from_numpy(x.numpy()[..., ::-1].copy()))
    assert torch.equal(flip(x, "vflip"), torch.from_numpy(x.numpy()[..., ::-1, :].copy()))
    assert torch.equal(flip(x, "hvflip"), torch.from_numpy(x.numpy()[..., ::-1, ::-1].copy()))


@pytest.mark.parametrize("channels_last", [True, False])
def test_tta_leaves_a_flip_invariant_model_unchanged(channels_last):
    torch.manual_seed(0)
    p = make_params({"train": {"channels_last": channels_last}})
    _, loader = _tta_loader()
    model = PooledLinear(2)
    plain = predict_batches(model, loader, TASK, p, ["none"], torch.device("cpu"))
    tta = predict_batches(model, loader, TASK, p, ALL_FLIPS, torch.device("cpu"))
    assert plain.shape == (10, 1) and plain.dtype == np.float64
    np.testing.assert_allclose(tta, plain, rtol=0, atol=1e-6)


@pytest.mark.parametrize("flips", [["none", "hflip"], ALL_FLIPS, ["vflip"]])
def test_tta_is_the_mean_of_per_view_probabilities(flips):
    torch.manual_seed(0)
    p = make_params({})
    images, loader = _tta_loader()
    model = FlatLinear(2, 6, 5).eval()
    views = {  # by hand on the NHWC array: width is axis 2, height axis 1
        "none": images.numpy(), "hflip": images.numpy()[:, :, ::-1], "vflip": images.numpy()[:, ::-1],
        "hvflip": images.numpy()[:, ::-1, ::-1],
    }
    with torch.no_grad():
        logits = {k: model(torch.from_numpy(v.copy()).permute(0, 3, 1, 2)).numpy() for k, v in views.items()}
    probs = {k: 1 / (1 + np.exp(-v.astype(np.float64))) for k, v in logits.items()}
    expected = np.mean([probs[f] for f in flips], axis=0)
    got = predict_batches(model, loader, TASK, p, flips, torch.device("cpu"))
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-6)
    if len(flips) > 1:
        assert np.abs(probs[flips[0]] - probs[flips[1]]).max() > 0.05, "views must differ for the test to bite"
        in_logit_space = 1 / (1 + np.exp(-np.mean([logits[f] for f in flips], axis=0)))
        assert np.abs(got - in_logit_space).max() > 1e-3, "averaged in probability space, not logit space"


# ---- 9. transforms ------------------------------------------------------------------------------
def test_eval_dataset_is_deterministic(shards):
    reader, labels = shards(8)
    ds = ShardDataset(reader, np.arange(8), labels[:, None])
    first = [ds[i]["image"].clone() for i in range(8)]
    for _ in range(3):
        assert all(torch.equal(ds[i]["image"], first[i]) for i in range(8))
    assert torch.equal(first[3], torch.from_numpy(np.asarray(reader[3], dtype=np.float32)))


def test_horizontal_flip_p1_mirrors_the_width(shards):
    reader, labels = shards(4)
    ds = ShardDataset(reader, np.arange(4), labels[:, None], None,
                      build_train_transform([{"HorizontalFlip": {"p": 1.0}}], seed=0))
    for i in range(4):
        raw = np.asarray(reader[i], dtype=np.float32)  # (H, W, C)
        img = ds[i]["image"].numpy()
        assert img.shape == raw.shape
        np.testing.assert_array_equal(img, raw[:, ::-1, :])
        assert not np.array_equal(img, raw)


def test_set_random_seed_replays_the_augmented_sequence(shards):
    reader, labels = shards(16)
    transform = build_train_transform([{"HorizontalFlip": {"p": 0.5}}, {"VerticalFlip": {"p": 0.5}}], seed=0)
    ds = ShardDataset(reader, np.arange(16), labels[:, None], None, transform)

    def epoch(seed):
        transform.set_random_seed(seed)
        return [ds[i]["image"].clone() for i in range(16)]

    a, b, c = epoch(7), epoch(7), epoch(8)
    assert all(torch.equal(x, y) for x, y in zip(a, b))
    assert not all(torch.equal(x, y) for x, y in zip(a, c))
    raws = [torch.from_numpy(np.asarray(reader[i], dtype=np.float32)) for i in range(16)]
    assert 0 < sum(torch.equal(x, r) for x, r in zip(a, raws)) < 16, "some images augmented, some not"


# ---- 10. mixed precision ------------------------------------------------------------------------
@pytest.mark.parametrize("amp", ["auto", "none", "fp16", "bf16"])
def test_no_autocast_on_cpu(amp):
    assert autocast_dtype(amp, torch.device("cpu")) is None


def test_autocast_dtype_on_cuda_follows_the_setting():
    cuda = torch.device("cuda")  # no CUDA call is made for these settings
    assert autocast_dtype("none", cuda) is None
    assert autocast_dtype("bf16", cuda) is torch.bfloat16
    assert autocast_dtype("fp16", cuda) is torch.float16


# ---- 11. gradient accumulation and clipping -----------------------------------------------------
@pytest.mark.parametrize("grad_accum, pattern", [
    (1, "bsbsbsbsbs"),
    (2, "bbsbbsbs"),     # 5 batches -> ceil(5/2) = 3 steps, the last after a lone batch
    (3, "bbbsbbs"),
    (8, "bbbbbs"),
])
def test_grad_accum_steps_once_per_group_of_batches(make_trainer, grad_accum, pattern):
    trainer = make_trainer(n=80, overrides={"batch_size": 16, "train": {"grad_accum": grad_accum}})
    assert trainer.batches_per_epoch == 5
    assert trainer.schedule.total_steps == math.ceil(5 / grad_accum) * trainer.p.epochs
    events = []
    real_loss, real_step = trainer.loss_fn, trainer.optimizer.step

    def loss_fn(logits, targets):
        events.append("b")
        return real_loss(logits, targets)

    def step(*args, **kwargs):
        events.append("s")
        return real_step(*args, **kwargs)

    trainer.loss_fn = loss_fn
    trainer.optimizer.step = step
    trainer.train_epoch(0)
    assert "".join(events) == pattern
    assert trainer.schedule.updates == math.ceil(5 / grad_accum)


def test_clip_grad_bounds_the_gradient_norm(make_trainer, monkeypatch):
    clip = 1e-3
    trainer = make_trainer(overrides={"train": {"clip_grad": clip, "grad_accum": 2}})
    pre, post = [], []
    real_clip = torch.nn.utils.clip_grad_norm_

    def norm(params):
        return float(torch.linalg.vector_norm(torch.stack([q.grad.norm() for q in params if q.grad is not None])))

    def clip_spy(parameters, max_norm, *args, **kwargs):
        parameters = list(parameters)
        pre.append(norm(parameters))
        return real_clip(parameters, max_norm, *args, **kwargs)

    monkeypatch.setattr(torch.nn.utils, "clip_grad_norm_", clip_spy)
    real_step = trainer.optimizer.step

    def step(*args, **kwargs):
        post.append(norm(trainer.model.parameters()))
        return real_step(*args, **kwargs)

    trainer.optimizer.step = step
    trainer.train_epoch(0)
    assert len(pre) == len(post) == trainer.schedule.updates == 1
    assert min(pre) > 10 * clip, "clipping must be active for the test to bite"
    assert all(n <= clip * (1 + 1e-4) for n in post)
    assert all(n == pytest.approx(clip, rel=1e-3) for n in post)


def test_trainer_on_cpu_runs_without_autocast_or_scaler(make_trainer):
    trainer = make_trainer(overrides={"train": {"amp": "fp16"}})
    assert trainer.device.type == "cpu"
    assert trainer.amp_dtype is None
    assert not trainer.scaler.is_enabled()
