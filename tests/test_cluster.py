"""Folds through DVC's run-cache: every stage enters it, a fresh clone restores every fold from a
remote without training; and ``foldwise.repro --cluster`` on a LocalCluster of 2 worker processes."""
from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable

import psutil
import pytest
import yaml

from conftest import ROOT, TINY, deep_update, make_repo, pipeline_env, run
from test_repro import alive, fake_dvc_yaml

PY = sys.executable
SRC = ROOT / "src"  # this checkout's foldwise, in the driver and (inherited) its workers
FOLDS = TINY["folds"]
# what a fold's run, wherever it happened, must leave byte for byte as a plain sequential dvc repro
COMPARED = ["data/folds.csv", "data/oof.csv", "metrics/oof/metrics.json",
            *(f"data/models/fold_{k}/{name}" for k in FOLDS for name in ("model.pt", "val_preds.csv", "history.csv")),
            *(f"metrics/train/fold_{k}/metrics.json" for k in FOLDS)]


def dvc(*args: str, cwd: Path, env: dict | None = None, check: bool = True) -> subprocess.CompletedProcess:
    result = subprocess.run([PY, "-m", "dvc", *args], cwd=cwd, capture_output=True, text=True,
                            env={**pipeline_env(), **(env or {})}, timeout=1200)
    if check and result.returncode != 0:
        raise AssertionError(f"dvc {' '.join(args)} failed ({result.returncode}):\n"
                             f"{result.stdout[-3000:]}\n{result.stderr[-3000:]}")
    return result


def run_cache_commands(cache: Path) -> list[str]:
    """The ``cmd`` of every entry in a DVC cache's run-cache (<cache>/runs/<xx>/<key>/<value>)."""
    return [yaml.safe_load(f.read_text())["cmd"] for f in (cache / "runs").glob("*/*/*")]


def stage_commands(repo: Path) -> dict[str, str]:
    lock = yaml.safe_load((repo / "dvc.lock").read_text())
    return {name: entry["cmd"] for name, entry in lock["stages"].items()}


@pytest.fixture(scope="module")
def sequential(tmp_path_factory) -> Path:
    """The tiny pipeline run start to end by plain ``dvc repro``, one thread per fold."""
    repo = make_repo(tmp_path_factory.mktemp("sequential") / "repo", deep_update({}, TINY))
    dvc("repro", cwd=repo, env={"FOLDWISE_THREADS": "1"})
    return repo


@pytest.mark.slow
@pytest.mark.e2e
def test_every_stage_enters_the_run_cache(sequential):
    cached = run_cache_commands(sequential / ".dvc/cache")
    stages = stage_commands(sequential)
    assert {f"train@{k}" for k in FOLDS} <= set(stages)
    assert [name for name, cmd in stages.items() if cmd not in cached] == []


@pytest.mark.slow
@pytest.mark.e2e
def test_a_fresh_clone_restores_every_fold_from_the_remote_run_cache(sequential, tmp_path):
    remote = tmp_path / "remote"
    dvc("remote", "add", "--local", "-d", "store", str(remote), cwd=sequential)
    dvc("push", "--run-cache", cwd=sequential)

    clone = tmp_path / "clone"
    run(["git", "clone", "-q", str(sequential), str(clone)], tmp_path)  # the commit without dvc.lock
    dvc("remote", "add", "--local", "-d", "store", str(remote), cwd=clone)
    # --pull: the run-cache entries, then each restored stage's objects (`dvc pull --run-cache` alone
    # fetches no object of a stage that dvc.lock does not list yet)
    out = dvc("repro", "--pull", cwd=clone, env={"FOLDWISE_THREADS": "1"}).stdout
    for k in FOLDS:
        assert f"Stage 'train@{k}' is cached - skipping run, checking out outputs" in out
    for stage in ("download", "preprocess", "split"):
        assert f"Stage '{stage}' is cached - skipping run" in out
    assert "Running stage 'train@" not in out and "train: fold" not in out  # no fold trained
    assert dvc("status", "--json", cwd=clone).stdout.strip() == "{}"
    assert_same_outputs(clone, sequential)


# ---- foldwise.repro --cluster on the tiny pipeline ----------------------------------------------
def cluster_repro(repo: Path, *args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    result = subprocess.run([PY, "-m", "foldwise.repro", *args], cwd=repo, capture_output=True, text=True,
                            env={**pipeline_env(), "PYTHONPATH": str(SRC), **(env or {})}, timeout=1200)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return result


def final_repro_log(out: str) -> str:
    """What the driver's own last ``dvc repro`` printed: everything after the last fold's report line."""
    reports = list(re.finditer(r"train@\d+: done in \d+ s on \S+\n", out))
    assert len(reports) == len(FOLDS), out[-3000:]
    return out[reports[-1].end():]


def assert_same_lock_entries(repo: Path, reference: Path) -> None:
    """Each stage ``repo`` ran has the same dvc.lock entry (cmd, deps, params, output hashes) as in
    ``reference``, in the same order."""
    ran = yaml.safe_load((repo / "dvc.lock").read_text())["stages"]
    ref = yaml.safe_load((reference / "dvc.lock").read_text())["stages"]
    assert list(ran) == [name for name in ref if name in ran]
    assert [name for name in ran if ran[name] != ref[name]] == []


def assert_same_outputs(repo: Path, reference: Path) -> None:
    """Every COMPARED file of ``repo`` equals ``reference``'s byte for byte."""
    for rel in COMPARED:
        assert (repo / rel).read_bytes() == (reference / rel).read_bytes(), rel


def assert_folds_restored_not_trained(out: str) -> None:
    assert f"{len(FOLDS)} of {len(FOLDS)} train stages to run on local:2" in out
    last = final_repro_log(out)
    for k in FOLDS:
        assert f"Stage 'train@{k}' is cached - skipping run, checking out outputs" in last
    assert "Running stage 'train@" not in out and "train: fold" not in out


@pytest.mark.slow
@pytest.mark.e2e
def test_cluster_with_a_shared_cache_matches_a_sequential_run(sequential, tmp_path):
    repo = make_repo(tmp_path / "repo", deep_update({}, TINY))
    dvc("cache", "dir", "--local", str(tmp_path / "shared-cache"), cwd=repo)
    out = cluster_repro(repo, "--cluster", "local:2", "--shared-cache", "--threads", "1", "oof",
                        env={"FOLDWISE_THREADS": "1"}).stdout
    assert_folds_restored_not_trained(out)
    assert dvc("status", "--json", "oof", cwd=repo).stdout.strip() == "{}"
    assert_same_lock_entries(repo, sequential)
    assert_same_outputs(repo, sequential)
    folds = [cmd for name, cmd in stage_commands(repo).items() if name.startswith("train@")]
    assert len(folds) == len(FOLDS) and set(folds) <= set(run_cache_commands(tmp_path / "shared-cache"))


@pytest.mark.slow
@pytest.mark.e2e
def test_cluster_through_a_remote_matches_a_sequential_run(sequential, tmp_path):
    repo = make_repo(tmp_path / "repo", deep_update({}, TINY))
    dvc("remote", "add", "--local", "-d", "store", str(tmp_path / "remote"), cwd=repo)
    out = cluster_repro(repo, "--cluster", "local:2", "--threads", "1", "oof", env={"FOLDWISE_THREADS": "1"}).stdout
    assert_folds_restored_not_trained(out)
    assert dvc("status", "--json", "oof", cwd=repo).stdout.strip() == "{}"
    assert "in sync" in dvc("status", "-c", "oof", "--with-deps", cwd=repo).stdout
    assert_same_lock_entries(repo, sequential)
    assert_same_outputs(repo, sequential)
    assert run(["git", "for-each-ref", "refs/foldwise"], repo).stdout == ""  # the temporary ref is gone


@pytest.mark.slow
@pytest.mark.e2e
def test_cluster_through_an_s3_remote_matches_a_sequential_run(sequential, tmp_path, monkeypatch):
    """The workers pull from and push to moto's S3 server on 127.0.0.1, as a team's bucket; then a
    fresh clone restores every fold from that bucket's run-cache."""
    import boto3

    from test_remote import BUCKET, s3_env, start_moto, stop

    s3_env(monkeypatch)
    server, endpoint = start_moto(tmp_path / "moto.log")
    try:
        s3 = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1")
        s3.create_bucket(Bucket=BUCKET)
        repo = make_repo(tmp_path / "repo", deep_update({}, TINY))
        clone = tmp_path / "clone"
        run(["git", "clone", "-q", str(repo), str(clone)], tmp_path)  # the commit without dvc.lock
        for cwd in (repo, clone):
            dvc("remote", "add", "--local", "-d", "team", f"s3://{BUCKET}/dvcstore", cwd=cwd)
            dvc("remote", "modify", "--local", "team", "endpointurl", endpoint, cwd=cwd)
        out = cluster_repro(repo, "--cluster", "local:2", "--threads", "1", "oof",
                            env={"FOLDWISE_THREADS": "1"}).stdout
        assert_folds_restored_not_trained(out)
        assert "in sync" in dvc("status", "-c", "oof", "--with-deps", cwd=repo).stdout
        stored = [o["Key"] for o in s3.list_objects_v2(Bucket=BUCKET, Prefix="dvcstore/runs/")["Contents"]]
        restored = dvc("repro", "--pull", "oof", cwd=clone, env={"FOLDWISE_THREADS": "1"}).stdout
    finally:
        stop(server)
    assert_same_lock_entries(repo, sequential)
    assert_same_outputs(repo, sequential)
    assert len(stored) >= len(FOLDS)  # each worker pushed its fold's run-cache entry
    for k in FOLDS:
        assert f"Stage 'train@{k}' is cached - skipping run, checking out outputs" in restored
    assert "train: fold" not in restored
    assert_same_outputs(clone, sequential)


# ---- faults, on a fake project whose folds wait on gate files the test controls ---------------------
GATED_TRAIN = """\
import os, sys, time
from pathlib import Path
item, gate = sys.argv[1], Path(os.environ["GATE"])
(gate / f"started_{item}_{os.getpid()}").touch()
checkpoint = Path(f"data/checkpoints/fold_{item}")  # as a real fold's --checkpoint: what a retry resumes
checkpoint.mkdir(parents=True, exist_ok=True)
(gate / f"resumable_{item}_{len(list(checkpoint.iterdir()))}").touch()
(checkpoint / f"try_{os.getpid()}").touch()
while (gate / f"hold_{item}").exists():
    time.sleep(0.05)
if (gate / f"fail_{item}").exists():
    sys.exit("foldwise train: error: fold " + item + " diverged")
Path(f"out_{item}.txt").write_text(os.environ["FOLDWISE_THREADS"] + "\\n")
"""

GATED_DVC_YAML = fake_dvc_yaml(2)


@pytest.fixture
def gated(tmp_path):
    """(repo, gate dir): a committed DVC project with a shared cache, whose train@k waits while
    ``gate/hold_k`` exists and fails when ``gate/fail_k`` does."""
    repo, gate = tmp_path / "gated", tmp_path / "gate"
    repo.mkdir()
    gate.mkdir()
    (repo / "dvc.yaml").write_text(GATED_DVC_YAML)
    (repo / "train.py").write_text(GATED_TRAIN)
    run(["git", "init", "-q"], repo)
    dvc("init", "-q", cwd=repo)
    dvc("cache", "dir", "--local", str(tmp_path / "cache"), cwd=repo)
    run(["git", "add", "-A"], repo)
    run(["git", "commit", "-qm", "init"], repo)
    return repo, gate


def start_driver(repo: Path, gate: Path, *args: str) -> subprocess.Popen:
    return subprocess.Popen([PY, "-m", "foldwise.repro", "--cluster", "local:2", "--shared-cache", *args], cwd=repo,
                            env={**pipeline_env(), "PYTHONPATH": str(SRC), "GATE": str(gate)},
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def wait_for(paths: Callable[[], list[Path]], proc: subprocess.Popen, count: int = 1,
             timeout_s: float = 180) -> list[Path]:
    """``paths()`` once it lists ``count`` paths, while ``proc`` still runs."""
    deadline = time.monotonic() + timeout_s
    while len(found := paths()) < count:
        assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()
        time.sleep(0.1)
    return found


def fold_pid(started: Path) -> int:
    return int(started.name.rsplit("_", 1)[1])


def fold_guard(pid: int) -> psutil.Process:
    """The guard process above a fold's stage command: train.py <- [sh -c, unless the shell execs]
    <- dvc repro <- guard."""
    parents = psutil.Process(pid).parents()
    guards = [p for p in parents if "guard.py" in " ".join(p.cmdline())]
    assert guards, [" ".join(p.cmdline()) for p in parents]
    return guards[0]


@pytest.mark.slow
def test_a_worker_killed_mid_fold_is_replaced_and_the_run_completes(gated):
    repo, gate = gated
    (gate / "hold_0").touch()
    driver = start_driver(repo, gate, "--checkpoints", str(gate.parent / "checkpoints"))
    first = wait_for(lambda: list(gate.glob("started_0_*")), driver)[0]
    guard = fold_guard(fold_pid(first))
    worker = guard.parent()
    worker.kill()
    assert not alive(fold_pid(first))  # the fold's process went down with its worker
    (gate / "hold_0").unlink()
    out, err = driver.communicate(timeout=300)
    assert driver.returncode == 0, out[-2000:] + err[-2000:]
    assert len(list(gate.glob("started_0_*"))) == 2  # tried again, on another worker process
    assert (gate / "resumable_0_1").exists()  # the second try found the first one's checkpoint
    assert_folds_restored_not_trained(out)
    share = max(1, len(os.sched_getaffinity(0)) // 2)  # this host's cores over its 2 worker processes
    assert (repo / "report.txt").read_text() == f"{share}\n{share}\n"
    assert dvc("status", "--json", cwd=repo).stdout.strip() == "{}"


@pytest.mark.slow
def test_a_failing_fold_stops_the_run_and_is_named_with_its_log(gated):
    repo, gate = gated
    (gate / "hold_0").touch()
    (gate / "hold_1").touch()
    (gate / "fail_1").touch()
    driver = start_driver(repo, gate)
    wait_for(lambda: list(gate.glob("started_*")), driver, count=2)  # both folds running, then fold 1 fails
    held = next(gate.glob("started_0_*"))
    (gate / "hold_1").unlink()
    out, err = driver.communicate(timeout=300)
    assert driver.returncode == 1
    assert re.search(r"error: train@1 failed on worker tcp://127\.0\.0\.1:\d+ \(exit code 255\); "
                     "the other tasks were stopped", err), err
    assert "foldwise train: error: fold 1 diverged" in err  # the worker's last log lines
    assert not alive(fold_pid(held))  # the fold still running was stopped
    assert not (repo / "report.txt").exists()


@pytest.mark.slow
def test_an_interrupted_driver_leaves_no_fold_process_behind(gated):
    repo, gate = gated
    (gate / "hold_0").touch()
    (gate / "hold_1").touch()
    driver = start_driver(repo, gate)
    started = wait_for(lambda: list(gate.glob("started_*")), driver, count=2)
    driver.send_signal(signal.SIGINT)
    _, err = driver.communicate(timeout=120)
    assert driver.returncode == 130, err[-2000:]
    assert not [p for p in started if alive(fold_pid(p))]


@pytest.mark.parametrize("module", ["foldwise.repro", "foldwise.sweep"])
def test_a_bad_local_cluster_size_is_refused_in_one_line(gated, module):
    repo, _ = gated
    required = ["-S", "x=1"] if module == "foldwise.sweep" else []
    result = subprocess.run([PY, "-m", module, "--cluster", "local:zero", *required], cwd=repo, capture_output=True,
                            text=True, env={**pipeline_env(), "PYTHONPATH": str(SRC)})
    assert result.returncode == 1
    name = module.split(".")[1]
    assert result.stderr.strip() == (f"foldwise {name}: error: --cluster local:zero: expected local:N with N >= 1 "
                                     "worker processes")
    assert not (repo / "prep.txt").exists()


def test_uncommitted_code_of_a_stage_is_refused_in_one_line(gated):
    repo, gate = gated
    (repo / "train.py").write_text(GATED_TRAIN + "# tweak\n")
    result = subprocess.run([PY, "-m", "foldwise.repro", "--cluster", "local:2"], cwd=repo, capture_output=True,
                            text=True, env={**pipeline_env(), "PYTHONPATH": str(SRC)})
    assert result.returncode == 1
    assert result.stderr.strip() == ("foldwise repro: error: uncommitted change to train.py (a dependency of "
                                     "train@0): cluster workers run the last commit; commit it first")
    assert not (repo / "prep.txt").exists()  # refused before anything ran


# ---- shares of a cluster's hosts, and the guard ---------------------------------------------------
class FakeClient:
    """What worker_shares reads from a Client: the scheduler's worker list and each worker's cores."""

    def __init__(self, workers: dict[str, dict], cores: dict[str, int]):
        self.workers, self.cores = workers, cores

    def scheduler_info(self, n_workers: int = 5) -> dict:
        assert n_workers == -1  # every worker, not the first 5
        return {"workers": self.workers}

    def run(self, func) -> dict[str, int]:
        return self.cores


def test_each_host_shares_its_cores_over_its_worker_threads():
    from foldwise.cluster.driver import worker_shares

    workers = {"tcp://a:1": {"host": "a", "nthreads": 1}, "tcp://a:2": {"host": "a", "nthreads": 1},
               "tcp://b:1": {"host": "b", "nthreads": 3}}
    shares, slots, gpu = worker_shares(FakeClient(workers, {"tcp://a:1": 16, "tcp://a:2": 16, "tcp://b:1": 4}))
    assert shares == {"a": 8, "b": 1} and slots == 5 and not gpu


def test_gpu_workers_make_each_fold_need_one_gpu():
    from foldwise.cluster.driver import worker_shares

    workers = {"tcp://g:1": {"host": "g", "nthreads": 4, "resources": {"GPU": 2}},
               "tcp://h:1": {"host": "h", "nthreads": 1, "resources": {"GPU": 1}}}
    shares, slots, gpu = worker_shares(FakeClient(workers, {"tcp://g:1": 32, "tcp://h:1": 8}))
    assert gpu and slots == 3 and shares == {"g": 16, "h": 8}  # one fold per GPU, the host's cores split


def test_a_fold_runs_with_its_thread_share_and_without_the_nannys_memory_trimming(monkeypatch):
    from foldwise.cluster.worker import fold_environ

    monkeypatch.setenv("MALLOC_TRIM_THRESHOLD_", "65536")  # as Dask's Nanny starts a worker
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    monkeypatch.setenv("FOLDWISE_TEST_USER_VAR", "kept")
    env = fold_environ(3)
    assert "MALLOC_TRIM_THRESHOLD_" not in env
    assert env["FOLDWISE_THREADS"] == env["OMP_NUM_THREADS"] == "3"
    assert env["FOLDWISE_TEST_USER_VAR"] == "kept"
    monkeypatch.setenv("MALLOC_TRIM_THRESHOLD_", "131072")  # a user's own value is theirs
    assert fold_environ(1)["MALLOC_TRIM_THRESHOLD_"] == "131072"


def test_killing_the_guard_takes_its_command_and_the_commands_children_down(tmp_path):
    from foldwise.cluster import guard

    pids = tmp_path / "pids"
    proc = subprocess.Popen([PY, guard.__file__, str(os.getpid()), "sh", "-c", f"sleep 60 & echo $! > {pids}; wait"],
                            start_new_session=True)
    deadline = time.monotonic() + 30
    while not pids.exists() or not pids.read_text().strip():
        assert time.monotonic() < deadline and proc.poll() is None
        time.sleep(0.05)
    proc.terminate()
    assert proc.wait(timeout=30) == -signal.SIGKILL  # the guard killed its own group, itself included
    assert not alive(int(pids.read_text()))


# ---- sweeps --------------------------------------------------------------------------------------
FIT = """\
import json, yaml
p = yaml.safe_load(open("params.yaml"))
json.dump({"score": p["x"] * (2 if p["y"] == "a" else 3)}, open("m.json", "w"))
"""

SWEEP_DVC_YAML = """\
stages:
  prep:
    cmd: echo p > prep.txt
    outs:
      - prep.txt
  fit:
    cmd: python fit.py
    deps:
      - prep.txt
      - fit.py
    params:
      - x
      - y
    metrics:
      - m.json:
          cache: false
"""


def sweep_project(tmp_path: Path, through: str, hydra: bool = False) -> Path:
    """A two-stage project whose metric is a function of params x and y; ``hydra``: params.yaml composed
    from conf/ (x from the ``preset`` group: low 2, high 7), as this project composes its own."""
    repo = tmp_path / "sweep"
    repo.mkdir()
    (repo / "dvc.yaml").write_text(SWEEP_DVC_YAML)
    (repo / "fit.py").write_text(FIT)
    (repo / "params.yaml").write_text("x: 1\ny: a\n")
    run(["git", "init", "-q"], repo)
    dvc("init", "-q", cwd=repo)
    if hydra:
        (repo / "conf" / "preset").mkdir(parents=True)
        (repo / "conf" / "config.yaml").write_text("defaults:\n  - _self_\n  - preset: low\nx: 1\ny: a\n")
        for name, x in {"low": 2, "high": 7}.items():
            (repo / "conf" / "preset" / f"{name}.yaml").write_text(f"# @package _global_\nx: {x}\n")
        dvc("config", "hydra.enabled", "true", cwd=repo)
    if through == "remote":
        dvc("remote", "add", "--local", "-d", "store", str(tmp_path / "remote"), cwd=repo)
    else:
        dvc("cache", "dir", "--local", str(tmp_path / "cache"), cwd=repo)
    run(["git", "add", "-A"], repo)
    run(["git", "commit", "-qm", "init"], repo)
    return repo


def sweep(repo: Path, *args: str) -> str:
    result = subprocess.run([PY, "-m", "foldwise.sweep", "--cluster", "local:2", *args], cwd=repo, capture_output=True,
                            text=True, env={**pipeline_env(), "PYTHONPATH": str(SRC)})
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    return result.stdout


def experiments(repo: Path) -> dict[str, tuple]:
    """name -> (x, y, score) of every experiment ``dvc exp show`` lists."""
    import json

    shown = json.loads(dvc("exp", "show", "--json", cwd=repo).stdout)
    trials = {}
    for row in shown:
        for exp in row.get("experiments") or []:
            for rev in exp["revs"]:
                data = rev["data"]
                params = data["params"]["params.yaml"]["data"]
                trials[rev["name"]] = (params["x"], params["y"], data["metrics"]["m.json"]["data"]["score"])
    return trials


@pytest.mark.slow
@pytest.mark.parametrize("through", ["shared-cache", "remote"])
def test_a_grid_sweep_runs_every_combination_as_an_experiment_on_the_cluster(tmp_path, through):
    repo = sweep_project(tmp_path, through)
    sweep(repo, "-S", "x=3,5", "-S", "y=a,b", "-n", "grid", *(["--shared-cache"] if through == "shared-cache" else []))
    assert experiments(repo) == {"grid-0": (3, "a", 6), "grid-1": (3, "b", 9), "grid-2": (5, "a", 10),
                                 "grid-3": (5, "b", 15)}
    if through == "remote":
        assert "in sync" in dvc("status", "-c", cwd=repo).stdout


@pytest.mark.slow
def test_a_grid_sweep_composes_each_combination_through_hydra(tmp_path):
    repo = sweep_project(tmp_path, "shared-cache", hydra=True)
    sweep(repo, "-S", "preset=low,high", "-S", "y=a,b", "-n", "hy", "--shared-cache")
    assert experiments(repo) == {"hy-0": (2, "a", 4), "hy-1": (2, "b", 6), "hy-2": (7, "a", 14),
                                 "hy-3": (7, "b", 21)}


@pytest.mark.slow
def test_an_optuna_search_runs_its_trials_as_experiments_and_names_the_best(tmp_path):
    import optuna

    repo = sweep_project(tmp_path, "shared-cache")
    out = sweep(repo, "--shared-cache", "--search", "optuna", "--trials", "4", "--direction", "maximize",
                "--metric", "score", "--seed", "0", "-S", "x=interval(1,10)", "-S", "y=a,b", "-n", "tpe")
    trials = experiments(repo)
    assert sorted(trials) == ["tpe-0", "tpe-1", "tpe-2", "tpe-3"]
    for x, y, score in trials.values():
        assert 1 <= x <= 10 and score == pytest.approx(x * (2 if y == "a" else 3))
    best = max(trials, key=lambda name: trials[name][2])
    assert f"foldwise sweep: best {best}: score" in out and f"dvc exp apply {best}" in out
    study = optuna.load_study(study_name="tpe", storage=f"sqlite:///{repo / '.dvc/tmp/foldwise-optuna.db'}")
    assert sorted(t.value for t in study.trials) == sorted(score for _, _, score in trials.values())
