"""The CUDA code path, run on the CPU as far as torch allows: no host sync in any task's loss, the AMP
branch with a forced autocast dtype and a GradScaler, DataLoader workers (seeded, one thread each,
reproducible), ``train.compile``, the one fold-prediction function, and benchmarks/gpu_check.py.
Collectives and DDP gradient syncs are in test_distributed.py.
"""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode

from conftest import deep_update
from foldwise.core.errors import FoldwiseError
from foldwise.engine import runtime
from foldwise.engine.datasets import ShardDataset
from foldwise.engine.inference import MODEL_FILE, predict_batches, predict_folds, save_fold_model
from foldwise.engine.loaders import make_eval_loader
from foldwise.engine.mixing import mix_batch, one_hot
from foldwise.tasks import get_task
from foldwise.engine.training import check_mixing, make_train_loader, mixed_classes
from test_recipe import (CASES, CLASS_INDEX_CASES, _one_thread, make_params, make_trainer, shards,  # noqa: F401
                         state_of, task_params, tiny_create_model)

ROOT = Path(__file__).resolve().parents[1]

def loss_inputs(task, p, case: str, n: int = 6):
    """Logits (n, num_logits) and valid targets (n, len(target_columns)) for ``task``'s loss."""
    gen = torch.Generator().manual_seed(0)
    logits = torch.randn(n, task.num_logits(p), generator=gen)
    if case in CLASS_INDEX_CASES:
        targets = torch.randint(0, task.num_outputs, (n, 1), generator=gen).float()
    elif case == "petfinder":
        targets = torch.randint(1, 101, (n, 1), generator=gen).float()
    else:
        targets = torch.rand(n, len(task.target_columns), generator=gen)
    return logits, targets


class OpLog(TorchDispatchMode):
    """Every aten op run inside the block, by name (e.g. ``aten::equal``)."""

    def __init__(self):
        super().__init__()
        self.ops: list[str] = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        self.ops.append(func._schema.name)
        return func(*args, **(kwargs or {}))


# A device->host read (item, bool, equal) waits for the GPU; a tensor made from Python data is a
# host->device copy from pageable memory, which also synchronises.
SYNC_OPS = {"aten::_local_scalar_dense", "aten::item", "aten::equal", "aten::is_nonzero", "aten::lift_fresh"}


@pytest.mark.parametrize("case", list(CASES))
def test_loss_forward_makes_no_host_sync(task_params, case):
    task, p = task_params(case)
    loss_fn = task.loss(p)
    logits, targets = loss_inputs(task, p, case)
    with OpLog() as log:
        loss = loss_fn(logits, targets)
    assert loss.ndim == 0 and torch.isfinite(loss)
    assert not SYNC_OPS & set(log.ops), sorted(SYNC_OPS & set(log.ops))


@pytest.mark.parametrize("case", sorted(CLASS_INDEX_CASES))
def test_class_index_losses_are_cross_entropies_of_the_index(task_params, case):
    task, p = task_params(case)
    logits, targets = loss_inputs(task, p, case)
    classes = targets[:, 0].long()
    ce = torch.nn.functional.cross_entropy
    if case == "mask-multi":  # mask 3 | gender 2 | age 3 heads over the 18 codes mask * 6 + gender * 3 + age
        parts = torch.split(logits, [3, 2, 3], dim=1)
        expected = ce(parts[0], classes // 6) + ce(parts[1], (classes // 3) % 2) + ce(parts[2], classes % 3)
    else:
        expected = ce(logits, classes)
    assert torch.allclose(task.loss(p)(logits, targets), expected)


@pytest.mark.parametrize("case", list(CASES))
def test_mixed_loss_forward_makes_no_host_sync(task_params, case):
    """CutMix/MixUp's targets (one-hot rows for class indices) reach the loss without a device read."""
    task, p = task_params(case, {"augment": {"mixup_p": 1.0}})
    loss_fn = task.loss(p)
    logits, targets = loss_inputs(task, p, case)
    classes = mixed_classes(loss_fn, task)
    _, mixed = mix_batch(torch.zeros(len(targets), 1, 4, 4), targets, p.augment, np.random.default_rng(0), classes)
    with OpLog() as log:  # the permutation's host->device copy happens once per batch, in mix_batch
        if classes is not None:
            one_hot(targets, classes)
        loss = loss_fn(logits, mixed)
    assert loss.ndim == 0 and torch.isfinite(loss)
    assert not SYNC_OPS & set(log.ops), sorted(SYNC_OPS & set(log.ops))


@pytest.mark.parametrize("case", list(CASES))
def test_max_mixing_is_refused_once_for_class_index_targets_only(task_params, case):
    task, p = task_params(case, {"augment": {"mixup_p": 0.5, "mix_label": "max"}})
    if case in CLASS_INDEX_CASES:
        with pytest.raises(FoldwiseError, match=f"task {task.name} trains on class labels; augment.mix_label must be blend"):
            check_mixing(task.loss(p), p.augment, task.name)
    else:
        check_mixing(task.loss(p), p.augment, task.name)
    task, p = task_params(case, {"augment": {"mixup_p": 0.5, "mix_label": "blend"}})
    check_mixing(task.loss(p), p.augment, task.name)


# ---- AMP on the CPU -------------------------------------------------------------------------------
@pytest.mark.parametrize("amp, dtype", [("bf16", torch.bfloat16), ("fp16", torch.float16), ("auto", torch.bfloat16)])
def test_forced_cpu_autocast_runs_the_amp_branch_with_a_grad_scaler(make_trainer, monkeypatch, amp, dtype):
    assert runtime.autocast_dtype(amp, torch.device("cpu")) is None  # by default CPU training is fp32
    monkeypatch.setenv(runtime.CPU_AMP_ENV, "1")
    trainer = make_trainer(overrides={"train": {"amp": amp}, "epochs": 1})
    assert trainer.amp_dtype is dtype
    assert trainer.scaler.is_enabled() == (dtype is torch.float16)  # GradScaler('cpu') for fp16 only
    conv_dtypes = []
    trainer.model.backbone.conv.register_forward_hook(lambda m, i, out: conv_dtypes.append(out.dtype))
    before = state_of(trainer.model)
    loss = trainer.train_epoch(0)
    val_loss, preds = trainer.validate()
    assert set(conv_dtypes) == {dtype}  # train and validation forwards ran under autocast
    assert np.isfinite([loss, val_loss]).all() and np.isfinite(preds).all() and preds.dtype == np.float64
    after = state_of(trainer.model)
    assert after["backbone.conv.weight"].dtype == torch.float32  # master weights stay fp32
    assert not torch.equal(before["backbone.conv.weight"], after["backbone.conv.weight"])  # steps were taken
    if trainer.scaler.is_enabled():
        assert trainer.scaler.get_scale() > 0


# ---- DataLoader workers ---------------------------------------------------------------------------
class WorkerProbe(torch.utils.data.Dataset):
    """Reports, per item, the loading process's torch and OpenCV threads and a NumPy random draw."""

    transform = None

    def __len__(self) -> int:
        return 16

    def __getitem__(self, i):
        import cv2

        info = torch.utils.data.get_worker_info()
        return torch.tensor([torch.get_num_threads(), cv2.getNumThreads(), np.random.randint(2**31),
                             -1 if info is None else info.id])


def test_workers_are_seeded_and_limited_to_one_thread(monkeypatch):
    import cv2

    threads = cv2.getNumThreads()
    cv2.setNumThreads(2)  # as configure_threads leaves the parent: forked workers inherit it
    try:
        p = make_params({"batch_size": 4, "train": {"num_workers": 2}})
        loader = make_train_loader(WorkerProbe(), np.zeros(16), p, seed=3)
        rows = torch.cat([batch for batch in loader]).numpy()
    finally:
        cv2.setNumThreads(threads)
    assert loader.persistent_workers and set(rows[:, 3]) == {0, 1}
    assert set(rows[:, 0]) == {1} and set(rows[:, 1]) == {1}  # torch and OpenCV: one thread per worker
    first_draw = {w: rows[rows[:, 3] == w][0, 2] for w in (0, 1)}
    assert first_draw[0] != first_draw[1]  # NumPy seeded per worker


def _fit_files(make_trainer, out: Path, workers: int) -> dict:
    """Fit 2 epochs with ``workers`` loader workers and augmentation; the fold's files as bytes."""
    trainer = make_trainer(overrides={"epochs": 2, "batch_size": 16, "train": {"num_workers": workers},
                                      "augment": {"train": [{"HorizontalFlip": {"p": 0.5}},
                                                            {"GaussNoise": {"p": 0.5}}]}})
    from test_recipe import LiveStub

    result = trainer.fit(LiveStub(), out / "ckpt", "fp", log=lambda m: None)
    out.mkdir(parents=True, exist_ok=True)
    save_fold_model(out / MODEL_FILE, trainer.model, trainer.model_config)
    np.save(out / "val_preds.npy", result.val_preds)
    return {name: (out / name).read_bytes() for name in (MODEL_FILE, "val_preds.npy")}


def test_two_worker_runs_give_identical_files_and_match_no_workers(make_trainer, tmp_path):
    two = _fit_files(make_trainer, tmp_path / "a", 2)
    assert two == _fit_files(make_trainer, tmp_path / "b", 2)
    # each sample's augmentation is seeded by its place in the epoch, not by the worker that loads it
    assert two == _fit_files(make_trainer, tmp_path / "c", 0)


def test_train_loader_is_built_once_and_reseeded_per_epoch(make_trainer):
    trainer = make_trainer(overrides={"batch_size": 16, "train": {"num_workers": 0}})
    loader = trainer.train_loader
    orders = []
    for epoch in (0, 1, 0):
        trainer.train_epoch(epoch)
        assert trainer.train_loader is loader
        orders.append(list(loader.batch_sampler.order))
    assert orders[0] == orders[2] != orders[1]


# ---- torch.compile on the CPU ---------------------------------------------------------------------
@pytest.mark.slow  # ~70 s on a busy 2-core machine (inductor compiles C++ kernels with gcc)
def test_compile_trains_and_matches_eager(make_trainer):
    eager = make_trainer(overrides={"epochs": 1})
    compiled = make_trainer(overrides={"epochs": 1, "train": {"compile": True}})
    assert compiled.forward is not compiled.model
    losses = [t.train_epoch(0) for t in (eager, compiled)]
    assert losses[1] == pytest.approx(losses[0], rel=1e-4)
    np.testing.assert_allclose(compiled.validate()[1], eager.validate()[1], atol=1e-5)


# ---- prediction -----------------------------------------------------------------------------------
def test_predict_folds_averages_each_model_with_the_training_loader_settings(shards, tmp_path, monkeypatch):
    reader, labels = shards(24)
    p = make_params({"train": {"num_workers": 2}, "infer": {"tta": ["none", "hflip"], "batch_size": 8}})
    task = get_task("seti")
    monkeypatch.setattr("foldwise.engine.inference.create_model", tiny_create_model)
    dirs = []
    for k in range(2):
        torch.manual_seed(k)
        model = tiny_create_model("", 1, 1)
        (tmp_path / f"fold_{k}").mkdir()
        save_fold_model(tmp_path / f"fold_{k}" / MODEL_FILE, model, {"model": "x", "in_chans": 1, "num_outputs": 1,
                                                                    "n_meta": 0})
        dirs.append(tmp_path / f"fold_{k}")
    dataset = ShardDataset(reader, np.arange(24))
    made = []
    real_loader = make_eval_loader

    def loader_spy(*args, **kwargs):
        made.append(real_loader(*args, **kwargs))
        return made[-1]

    monkeypatch.setattr("foldwise.engine.inference.make_eval_loader", loader_spy)
    mean = predict_folds(dirs, dataset, task, p, torch.device("cpu"))
    assert len(made) == 1 and made[0].num_workers == 2 and made[0].batch_size == 8  # one loader, params' workers
    single = []
    for d in dirs:
        model = tiny_create_model("", 1, 1)
        model.load_state_dict(torch.load(d / MODEL_FILE, weights_only=False)["state_dict"])
        model.to(memory_format=torch.channels_last)
        single.append(predict_batches(model, make_eval_loader(dataset, 8, 0), task, p, ["none", "hflip"], torch.device("cpu")))
    assert mean.shape == (24, 1) and mean.dtype == np.float64
    np.testing.assert_allclose(mean, (single[0] + single[1]) / 2, atol=1e-7)
    with pytest.raises(FoldwiseError, match="no fold models"):
        predict_folds([], dataset, task, p, torch.device("cpu"))


# ---- the prepared GPU check -----------------------------------------------------------------------
# Not on the GPU machine's bare image (see docs/how-to/ddp.md, "On a GPU machine"): importing any of them fails there.
# pydantic is not either, but gpu_check needs it: it is carried there as wheels.
NOT_ON_THE_GPU_IMAGE = ("dvc", "dvclive", "albumentations", "pytorch_grad_cam", "ruamel")


def block_packages(folder: Path, names: tuple[str, ...]) -> dict:
    """An environment where importing any of ``names`` fails, as on the GPU image."""
    for name in names:
        (folder / name).mkdir()
        (folder / name / "__init__.py").write_text(f"raise ImportError('{name} is not on the GPU image')\n")
    return {**os.environ, "PYTHONPATH": f"{folder}{os.pathsep}{ROOT / 'src'}", "CUDA_VISIBLE_DEVICES": ""}


def test_gpu_check_without_pydantic_says_how_to_carry_it_in_one_line(tmp_path):
    env = block_packages(tmp_path, ("pydantic",))
    result = subprocess.run([sys.executable, "benchmarks/gpu_check.py"], cwd=ROOT, env=env,
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 1
    line = result.stderr.strip()
    assert "\n" not in line and line.startswith("gpu_check: error: pydantic is not installed")
    pinned = next(r for r in (ROOT / "requirements.txt").read_text().splitlines() if r.startswith("pydantic=="))
    assert "pip install --no-index --find-links wheels pydantic" in line and f"-d wheels {pinned}" in line


@pytest.mark.slow  # 1-4 minutes on a shared 2-core CPU
def test_gpu_check_passes_without_cuda_or_the_pipeline_packages(tmp_path):
    env = block_packages(tmp_path, NOT_ON_THE_GPU_IMAGE)
    result = subprocess.run([sys.executable, "benchmarks/gpu_check.py"], cwd=ROOT, env=env,
                            capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stdout + result.stderr[-3000:]
    out = result.stdout
    for check in ("trainer", "collectives", "data path", "prediction"):
        assert f"PASS {check} (" in out, out
    assert "bf16: losses" in out and "fp16: losses" in out and "gloo: sum_over_ranks" in out
    table = out[out.index("raw img/s"):]
    assert "resnet34d" in table and "efficientnet_b0" in table and "skipped on the CPU" in table
    assert "GPU figures: not measured (no CUDA device)" in out and "all checks passed" in out
    assert "FAIL" not in out
