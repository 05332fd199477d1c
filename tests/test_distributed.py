"""DDP (`train.nproc`): the sharded epoch order and validation rows, the loader options per device,
and real 2-process gloo runs on CPU: the in-process Trainer on a tiny backbone (checkpoint and logs
from rank 0 only, logged best score == the saved model's score, resume), then (slow) the train stage
as two torchrun "nodes" on 127.0.0.1 and a whole `dvc repro` with `train.nproc: 2`.
"""
from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from conftest import pipeline_env, run
from foldwise.core import threads
from foldwise.core.errors import FoldwiseError
from foldwise.engine import checkpoint, distributed, runtime, training
from foldwise.engine.datasets import ShardDataset
from foldwise.engine.distributed import Dist, ShardedBatchSampler, epoch_order, shard_rows
from foldwise.engine.inference import predict_batches
from foldwise.engine.loaders import seed_worker
from foldwise.engine.training import balanced_weights, loader_options, make_eval_loader, make_train_loader
from foldwise.prepared.shards import ShardReader, write_shards
from foldwise.tasks.seti import TASK
from test_recipe import IMG, LiveStub, make_params, state_of, tiny_create_model


# ---- sharding, in-process -----------------------------------------------------------------------
@pytest.mark.parametrize("n, batch_size, world", [(100, 32, 2), (100, 32, 3), (20, 32, 2), (64, 32, 4)])
def test_ranks_split_every_global_batch_without_overlap(n, batch_size, world):
    order = epoch_order(n, None, torch.Generator().manual_seed(0))
    per_rank = [list(ShardedBatchSampler(n, batch_size, r, world, seed=0)) for r in range(world)]
    expected_batches = n // batch_size if n > batch_size else 1
    assert all(len(batches) == expected_batches for batches in per_rank)  # same step count on every rank
    for j in range(expected_batches):
        parts = [per_rank[r][j] for r in range(world)]
        assert all(parts), "every rank gets samples in every step"
        assert sum(parts, []) == order[j * batch_size:(j + 1) * batch_size].tolist()  # contiguous, in rank order
    seen = sum((b for batches in per_rank for b in batches), [])
    assert len(seen) == len(set(seen)) == min(n, expected_batches * batch_size)


def test_epoch_order_is_seeded_and_balanced_draws_classes_equally():
    labels = (np.arange(400) % 10 == 0).astype(int)  # 10% positives
    weights = balanced_weights(labels)

    def draw(seed, w):
        return epoch_order(len(labels), w, torch.Generator().manual_seed(seed))

    assert torch.equal(draw(3, None), draw(3, None)) and not torch.equal(draw(3, None), draw(4, None))
    assert sorted(draw(3, None).tolist()) == list(range(400))  # a permutation
    assert torch.equal(draw(3, weights), draw(3, weights))
    positives = np.mean([labels[draw(s, weights).numpy()].mean() for s in range(5)])
    assert 0.45 < positives < 0.55


@pytest.mark.parametrize("sampler", ["none", "balanced"])
def test_ddp_train_loaders_of_all_ranks_give_the_global_batches(tmp_path, sampler):
    n = 40
    write_shards(tmp_path, "train", iter(np.arange(n, dtype=np.float32).reshape(n, 1, 1, 1)), n)
    labels = (np.arange(n) % 4 == 0).astype(int)
    ds = ShardDataset(ShardReader(tmp_path, "train"), np.arange(n), labels[:, None])
    p = make_params({"batch_size": 8, "train": {"sampler": sampler, "num_workers": "auto"}})

    def batches(ctx):
        return [b["image"].flatten().int().tolist() for b in make_train_loader(ds, labels, p, seed=11, ctx=ctx)]

    ranks = [batches(Dist(rank=r, world_size=2, local_rank=r, local_world_size=2)) for r in range(2)]
    weights = balanced_weights(labels) if sampler == "balanced" else None
    order = epoch_order(n, weights, torch.Generator().manual_seed(11)).tolist()
    assert [a + b for a, b in zip(*ranks)] == [order[j * 8:(j + 1) * 8] for j in range(n // 8)]
    assert ranks == [batches(Dist(r, 2, r, 2)) for r in range(2)]  # the same seed, the same epoch


def test_set_epoch_redraws_the_order_and_sample_seeds_do_not_depend_on_the_rank_split():
    def items(world, seed):
        samplers = [ShardedBatchSampler(40, 8, r, world, seed=0, sample_seeds=True) for r in range(world)]
        for sampler in samplers:
            sampler.set_epoch(seed)
        return [sum(parts, []) for parts in zip(*(list(s) for s in samplers))]  # global batches

    one, two = items(1, 5), items(2, 5)
    assert one == two  # the same (row, seed) pairs whether one process or two load them
    assert [row for batch in one for row, _ in batch] == epoch_order(40, None, torch.Generator().manual_seed(5)).tolist()
    seeds = [seed for batch in one for _, seed in batch]
    assert len(set(seeds)) == 40  # a seed per position, so a row drawn twice is augmented twice
    assert items(1, 6) != one and items(1, 5) == one


def test_batch_smaller_than_the_process_count_is_refused():
    with pytest.raises(FoldwiseError, match="train.nproc=4"):
        ShardedBatchSampler(10, 3, 0, 4)


@pytest.mark.parametrize("n, world", [(7, 3), (16, 2), (2, 3), (0, 2)])
def test_val_shards_cover_the_rows_once_in_order(n, world):
    parts = [shard_rows(n, r, world) for r in range(world)]
    assert np.concatenate(parts).tolist() == list(range(n))  # no padding duplicates, original order
    assert max(map(len, parts)) - min(map(len, parts)) <= 1


def test_launch_env_is_read_and_ddp_on_cuda_needs_a_gpu_per_process(monkeypatch):
    for name in distributed.LAUNCH_ENV:
        monkeypatch.delenv(name, raising=False)
    assert not distributed.launched() and distributed.from_env() == Dist()
    env = {"RANK": "3", "WORLD_SIZE": "4", "LOCAL_RANK": "1", "LOCAL_WORLD_SIZE": "2",
           "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": "29500"}
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    assert distributed.launched() and distributed.from_env() == Dist(3, 4, 1, 2)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    with pytest.raises(FoldwiseError, match="2 processes per machine need as many GPUs, found 1"):
        distributed.setup(use_cuda=True)


# ---- collectives on the process group's device ---------------------------------------------------
def test_the_group_device_follows_the_backend():
    assert distributed.group_device("nccl") == torch.device("cuda")  # NCCL has no CPU tensors
    assert distributed.group_device("gloo") == torch.device("cpu")
    assert distributed.group_device("cpu:gloo,cuda:nccl") == torch.device("cuda")


@pytest.fixture
def one_rank_group():
    torch.distributed.init_process_group("gloo", store=torch.distributed.HashStore(), rank=0, world_size=1)
    yield
    torch.distributed.destroy_process_group()


COLLECTIVES = ("all_reduce", "all_gather", "broadcast", "all_gather_object", "broadcast_object_list",
               "reduce", "gather", "all_gather_into_tensor", "reduce_scatter")


def spy_collectives(monkeypatch, run: bool = True) -> list[tuple[str, set]]:
    """Record (collective, devices of the tensors it was given) for each call; ``run``: then do it."""
    calls = []
    for name in COLLECTIVES:
        real = getattr(torch.distributed, name)

        def spy(*args, _name=name, _real=real, **kwargs):
            values = list(args) + list(kwargs.values())
            tensors = [v for v in values if isinstance(v, torch.Tensor)]
            tensors += [t for v in values if isinstance(v, list) for t in v if isinstance(t, torch.Tensor)]
            calls.append((_name, {t.device for t in tensors}))
            return _real(*args, **kwargs) if run else None

        monkeypatch.setattr(torch.distributed, name, spy)
    return calls


def test_every_collective_sends_tensors_on_the_groups_device(one_rank_group, monkeypatch):
    calls = spy_collectives(monkeypatch)
    assert distributed.sum_over_ranks(1.5, 2) == [1.5, 2.0]
    rows = np.arange(12, dtype=np.float64).reshape(6, 2)
    np.testing.assert_array_equal(distributed.gather_rows(rows), rows)
    assert distributed.gather_rows(np.zeros((0, 3))).shape == (0, 3)  # a rank may have no validation rows
    model = torch.nn.Sequential(torch.nn.Conv2d(1, 2, 1), torch.nn.BatchNorm2d(2))
    model[1].running_mean.fill_(0.25)
    distributed.average_bn_stats(model)
    assert torch.equal(model[1].running_mean, torch.full((2,), 0.25))
    assert {name for name, _ in calls} >= {"all_reduce", "all_gather", "broadcast"}
    for name, devices in calls:  # tensors, not pickled objects, and on the device NCCL would need
        assert devices == {distributed.group_device()}, (name, devices)


@pytest.mark.skipif(torch.cuda.is_available(), reason="a real NCCL group is run by benchmarks/gpu_check.py")
def test_under_nccl_the_collectives_move_their_tensors_to_cuda(one_rank_group, monkeypatch):
    """The NCCL group that `train.nproc > 1` starts on CUDA, faked: each collective must first put its
    tensor on the GPU (here that fails, for lack of one), not hand NCCL a CPU tensor."""
    monkeypatch.setattr(torch.distributed, "get_backend", lambda group=None: "nccl")
    calls = spy_collectives(monkeypatch, run=False)
    model = torch.nn.BatchNorm2d(2)
    for collective in (lambda: distributed.sum_over_ranks(1.0), lambda: distributed.gather_rows(np.ones((2, 1))),
                       lambda: distributed.average_bn_stats(model)):
        with pytest.raises((RuntimeError, AssertionError), match="(?i)cuda|nvidia|gpu"):
            collective()
    assert calls == []  # nothing reached the collective with a CPU tensor


# ---- loader options per device ------------------------------------------------------------------
def test_loader_options_pin_memory_and_auto_workers_follow_the_device(monkeypatch):
    monkeypatch.delenv(runtime.THREADS_ENV, raising=False)
    monkeypatch.setattr(threads, "cpu_cores", lambda: 16)
    cpu, cuda = torch.device("cpu"), torch.device("cuda")
    assert loader_options("auto", cpu) == {"num_workers": 0, "pin_memory": False}
    assert loader_options("auto", cuda) == {"num_workers": 8, "pin_memory": True, "persistent_workers": True,
                                            "worker_init_fn": seed_worker}  # 16 cores - 1, at most 8
    assert loader_options("auto", cuda, processes_per_machine=4)["num_workers"] == 3  # 16 / 4 - 1
    assert loader_options("auto", cuda, processes_per_machine=16)["num_workers"] == 0
    assert loader_options(2, cpu) == {"num_workers": 2, "pin_memory": False, "persistent_workers": True,
                                      "worker_init_fn": seed_worker}
    # under `repro -j N` the process's share ($FOLDWISE_THREADS), not the machine, sizes `auto`
    monkeypatch.setenv(runtime.THREADS_ENV, "4")
    assert loader_options("auto", cuda)["num_workers"] == 3
    assert loader_options("auto", cuda, processes_per_machine=2)["num_workers"] == 1
    assert loader_options("auto", cuda, threads=6)["num_workers"] == 5  # an explicit train.threads wins
    loader = make_eval_loader(list(range(4)), 2, 1, cpu)
    assert loader.persistent_workers and loader.num_workers == 1 and not loader.pin_memory
    assert not make_eval_loader(list(range(4)), 2, 0, cpu).persistent_workers


def test_params_nproc_and_num_workers():
    p = make_params({"batch_size": 8, "train": {"nproc": 4, "num_workers": "auto", "sync_bn": True}})
    assert (p.train.nproc, p.train.num_workers, p.train.sync_bn) == (4, "auto", True)
    with pytest.raises(FoldwiseError, match="'batch_size' must be >= train.nproc"):
        make_params({"batch_size": 2, "train": {"nproc": 4}})
    with pytest.raises(FoldwiseError, match="'train.num_workers' must be auto or an integer, got 'many'"):
        make_params({"train": {"num_workers": "many"}})
    with pytest.raises(FoldwiseError, match="'train.nproc' must be >= 1"):
        make_params({"train": {"nproc": 0}})


# ---- two real processes (gloo on CPU) -----------------------------------------------------------
def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


N_ROWS, N_VAL, EPOCHS = 64, 24, 3
OVERRIDES = {"model": "resnet10t", "img_size": IMG, "batch_size": 16, "epochs": EPOCHS, "seed": 0,
             "train": {"scheduler": "cosine", "sampler": "balanced", "num_workers": 0, "nproc": 2},
             "infer": {"batch_size": 8}}


def _datasets(prepared: Path):
    reader = ShardReader(prepared, "train")
    labels = (np.arange(N_ROWS) % 4 == 0).astype(int)
    targets = labels[:, None].astype(np.float32)
    from foldwise.engine.transforms import build_train_transform

    p = make_params(OVERRIDES)
    train_ds = ShardDataset(reader, np.arange(N_ROWS), targets, None, build_train_transform(p.augment.train, 0))
    val_ds = ShardDataset(reader, np.arange(N_VAL), targets[:N_VAL])
    return p, train_ds, labels, val_ds


def _ddp_worker(rank: int, world: int, port: int, tmp: str) -> None:
    """One rank: an uninterrupted fit, then a fit killed in epoch 3 and resumed; results to rank<k>.pt."""
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.set_num_threads(1)
    torch.distributed.init_process_group("gloo", rank=rank, world_size=world)
    training.create_model = tiny_create_model
    saves = []
    real_save = checkpoint.save
    checkpoint.save = lambda ckpt_dir, state: (saves.append(ckpt_dir.name), real_save(ckpt_dir, state))
    tmp = Path(tmp)
    p, train_ds, labels, val_ds = _datasets(tmp / "prepared")
    ctx = Dist(rank, world, rank, world)

    def trainer():
        return training.Trainer(TASK, p, 0, train_ds, labels, val_ds, 1, 0, ctx, torch.device("cpu"))

    live = LiveStub()
    full_trainer = trainer()
    full = full_trainer.fit(live, tmp / "full", "fp", log=lambda m: None)

    class Killed(Exception):
        pass

    first = trainer()
    real_epoch = first.train_epoch

    def train_epoch(epoch, bar=None):
        if epoch == 2:
            raise Killed  # on every rank, before the epoch's first collective
        return real_epoch(epoch, bar)

    first.train_epoch = train_epoch
    try:
        first.fit(LiveStub(), tmp / "killed", "fp", log=lambda m: None)
    except Killed:
        pass
    torch.distributed.barrier()  # rank 0 has written the checkpoint of epoch 2
    resumed_live, messages = LiveStub(), []
    resumed = trainer().fit(resumed_live, tmp / "killed", "fp", log=messages.append)
    torch.save({"full": full, "rows": live.rows, "summary": live.summary, "saves": saves,
                "final_state": state_of(full_trainer.model), "resumed": resumed,
                "resumed_rows": resumed_live.rows, "messages": messages}, tmp / f"rank{rank}.pt")
    torch.distributed.destroy_process_group()


def test_two_gloo_processes_log_once_and_score_what_rank_0_saves(tmp_path):
    images = np.random.default_rng(0).standard_normal((N_ROWS, IMG, IMG, 1)).astype(np.float32)
    (tmp_path / "prepared").mkdir()
    write_shards(tmp_path / "prepared", "train", iter(images), N_ROWS)
    torch.multiprocessing.spawn(_ddp_worker, args=(2, free_port(), str(tmp_path)), nprocs=2, join=True)
    r0, r1 = (torch.load(tmp_path / f"rank{r}.pt", weights_only=False) for r in range(2))

    # rank 0 alone logs and writes checkpoints: one dvclive row and one save per epoch
    assert len(r0["rows"]) == EPOCHS and r1["rows"] == [] and r1["summary"] == {}
    assert r0["saves"].count("full") == EPOCHS and r1["saves"] == []
    assert r0["full"].history == r1["full"].history  # every rank saw the gathered validation set
    # parameters (DDP) and BatchNorm buffers (averaged each epoch) are the same on both ranks
    assert all(torch.equal(r0["final_state"][k], r1["final_state"][k]) for k in r0["final_state"])
    assert r0["full"].val_preds.shape == (N_VAL, 1)

    # the logged best score is the saved (rank 0) model's score on the validation rows, single-process
    p, _, _, val_ds = _datasets(tmp_path / "prepared")
    model = tiny_create_model("", 1, 1)
    model.load_state_dict(r0["full"].best_state)
    model.to(memory_format=torch.channels_last)
    preds = predict_batches(model, make_eval_loader(val_ds, 64, 0), TASK, p, ["none"], torch.device("cpu"))
    np.testing.assert_allclose(preds, r0["full"].val_preds, atol=1e-6)
    assert TASK.metric(val_ds.targets, preds) == pytest.approx(r0["full"].best_score, abs=1e-6)
    assert r0["summary"]["best"]["auc"] == r0["full"].best_score

    # resume under DDP: killed in epoch 3, the rerun replays 2 epochs and ends as the uninterrupted run
    assert any("resuming" in m and "after epoch 2" in m for m in r0["messages"]) and r1["messages"] == []
    assert len(r0["resumed_rows"]) == EPOCHS
    for r in (r0, r1):
        assert r["resumed"].history == r0["full"].history
        assert all(torch.equal(r["resumed"].best_state[k], r0["full"].best_state[k]) for k in r0["full"].best_state)


def _accum_worker(rank: int, world: int, port: int, tmp: str) -> None:
    """One rank: an epoch of 4 batches with grad_accum 1 and 2, counting DDP's gradient all-reduces
    (a comm hook is called once per gradient bucket per sync) and optimizer steps."""
    from torch.distributed.algorithms.ddp_comm_hooks.default_hooks import allreduce_hook

    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.set_num_threads(1)
    torch.distributed.init_process_group("gloo", rank=rank, world_size=world)
    training.create_model = tiny_create_model
    counts = {}
    for accum in (1, 2):
        p, train_ds, labels, val_ds = _datasets(Path(tmp) / "prepared")
        p = make_params({**OVERRIDES, "train": {**OVERRIDES["train"], "grad_accum": accum}})
        trainer = training.Trainer(TASK, p, 0, train_ds, labels, val_ds, 1, 0, Dist(rank, world, rank, world),
                                   torch.device("cpu"))
        reduces, steps = [], []
        trainer.ddp.register_comm_hook(None, lambda state, bucket: reduces.append(1) or allreduce_hook(state, bucket))
        real_step = trainer._optimizer_step
        trainer._optimizer_step = lambda: steps.append(1) or real_step()
        trainer.train_epoch(0)
        counts[accum] = {"reduces": len(reduces), "steps": len(steps), "state": state_of(trainer.model)}
    torch.save(counts, Path(tmp) / f"accum{rank}.pt")
    torch.distributed.destroy_process_group()


def test_grad_accum_under_ddp_all_reduces_once_per_optimizer_step(tmp_path):
    images = np.random.default_rng(0).standard_normal((N_ROWS, IMG, IMG, 1)).astype(np.float32)
    (tmp_path / "prepared").mkdir()
    write_shards(tmp_path / "prepared", "train", iter(images), N_ROWS)
    torch.multiprocessing.spawn(_accum_worker, args=(2, free_port(), str(tmp_path)), nprocs=2, join=True)
    ranks = [torch.load(tmp_path / f"accum{r}.pt", weights_only=False) for r in range(2)]
    for counts in ranks:
        assert counts[1]["steps"] == 4 and counts[2]["steps"] == 2  # 64 rows / batch 16
        buckets = counts[1]["reduces"] // counts[1]["steps"]
        assert buckets >= 1 and counts[1]["reduces"] == buckets * 4
        assert counts[2]["reduces"] == buckets * 2  # none for the micro-batches inside a step
    for accum in (1, 2):  # the skipped syncs lose nothing: both ranks end with the same weights
        assert all(torch.equal(ranks[0][accum]["state"][k], ranks[1][accum]["state"][k]) for k in ranks[0][accum]["state"])


# ---- the train stage under torchrun -------------------------------------------------------------
def _prepared_repo(tiny_repo, overrides: dict) -> Path:
    repo = tiny_repo(overrides)
    run(["dvc", "repro", "-q", "split"], repo)
    return repo


TRAIN_ARGS = ["-m", "foldwise.stages.train", "--fold", "0", "--prepared", "data/prepared",
              "--folds", "data/folds.csv", "--out", "data/models/fold_0", "--live", "metrics/train/fold_0",
              "--checkpoint", "data/checkpoints/fold_0"]


@pytest.mark.slow
def test_train_stage_as_two_torchrun_nodes_on_localhost(tiny_repo):
    """The multi-machine recipe: the same stage command under torchrun --nnodes 2, one process per
    "node", static rendezvous on 127.0.0.1; the stage finds itself launched and joins (gloo)."""
    repo = _prepared_repo(tiny_repo, {"epochs": 2, "img_size": 32, "synthetic": {"n_train": 96, "n_test": 8}})
    env = {**pipeline_env(), "PYTHONPATH": "src", "OMP_NUM_THREADS": "1"}
    port = free_port()
    nodes = [subprocess.Popen(
        [sys.executable, "-m", "torch.distributed.run", "--nnodes", "2", "--node-rank", str(rank),
         "--nproc-per-node", "1", "--master-addr", "127.0.0.1", "--master-port", str(port), *TRAIN_ARGS],
        cwd=repo, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for rank in range(2)]
    outputs = [node.communicate(timeout=300) for node in nodes]
    assert [node.returncode for node in nodes] == [0, 0], outputs
    assert "DDP over 2 processes" in outputs[0][0] and outputs[1][0].count("train:") == 0  # rank 1 is quiet
    summary = json.loads((repo / "metrics/train/fold_0/metrics.json").read_text())
    assert summary["step"] == 1 and summary["best"]["epoch"] in (1, 2)
    auc_rows = (repo / "metrics/train/fold_0/plots/metrics/val/auc.tsv").read_text().splitlines()
    assert len(auc_rows) == 1 + 2  # header + one row per epoch
    assert (repo / "data/models/fold_0/model.pt").is_file()
    assert not (repo / "data/checkpoints/fold_0/last.pt").exists()  # cleared when the fold ended


@pytest.mark.slow
def test_dvc_repro_with_two_processes_per_fold_matches_oof(tiny_repo):
    """`train.nproc: 2` on CPU, both folds under DDP in `dvc repro`; each fold's
    best validation score equals the oof stage's score of the saved model (no TTA) to 1e-6."""
    repo = tiny_repo({"epochs": 2, "train": {"nproc": 2}, "infer": {"tta": ["none"]}})
    result = run(["dvc", "repro"], repo, timeout=900)
    assert result.stdout.count("DDP over 2 processes") == 2
    oof = json.loads((repo / "metrics/oof/metrics.json").read_text())
    for k in (0, 1):
        fold = json.loads((repo / f"metrics/train/fold_{k}/metrics.json").read_text())
        assert fold["best"]["auc"] == pytest.approx(oof[f"fold_{k}"]["auc"], abs=1e-6)
        rows = (repo / f"metrics/train/fold_{k}/plots/metrics/val/auc.tsv").read_text().splitlines()
        assert len(rows) == 1 + 2
    assert (repo / "data/submission.csv").is_file()


@pytest.mark.parametrize("local_rank, printed", [("0", True), ("1", False)])
def test_a_worker_error_is_printed_by_local_rank_0_only(monkeypatch, capsys, local_rank, printed):
    from foldwise.core.errors import run_stage

    monkeypatch.delenv("FOLDWISE_DEBUG", raising=False)
    monkeypatch.setenv("LOCAL_RANK", local_rank)

    def main():
        raise FoldwiseError("data/folds.csv: no fold for id 'x'")

    with pytest.raises(SystemExit) as exit_info:
        run_stage("train", main)
    assert exit_info.value.code == 1
    err = capsys.readouterr().err
    assert err == ("foldwise train: error: data/folds.csv: no fold for id 'x'\n" if printed else "")
