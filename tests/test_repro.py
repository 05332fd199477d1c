"""foldwise.repro: slots, the job pool (parallelism, lock retry, failure, cleanup), train.threads,
and the launcher on a fake DVC project whose train@k stages are tiny scripts."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest
import yaml

from conftest import ROOT, pipeline_env, run
from foldwise.core.errors import FoldwiseError
from foldwise.stages.params import parse_params
from foldwise.launch.graph import sort_lock_entries
from foldwise.launch.pool import Job, JobFailed, Retry, run_jobs
from foldwise.launch.slots import THREADS_ENV, slot_envs, visible_gpus

PY = sys.executable


def alive(pid: int, settle_s: float = 5.0) -> bool:
    """Whether ``pid`` still runs ``settle_s`` after it was killed (a SIGKILLed process in another
    process group dies, and is reaped by init, a moment later: on a loaded machine that takes a while)."""
    deadline = time.monotonic() + settle_s
    while True:
        try:
            if psutil.Process(pid).status() == psutil.STATUS_ZOMBIE:
                return False
        except psutil.NoSuchProcess:
            return False
        if time.monotonic() > deadline:
            return True
        time.sleep(0.05)


# ---- slots -------------------------------------------------------------------------------------
def test_cpu_slots_split_the_cores_and_set_every_thread_variable():
    envs = slot_envs(2, cores=5, gpus=[])
    assert len(envs) == 2
    for env in envs:
        assert env[THREADS_ENV] == env["OMP_NUM_THREADS"] == env["MKL_NUM_THREADS"] == "2"
        assert "CUDA_VISIBLE_DEVICES" not in env
    assert slot_envs(4, cores=2, gpus=[])[0][THREADS_ENV] == "1"  # never 0


def test_gpu_slots_take_the_visible_gpus_round_robin():
    envs = slot_envs(3, cores=16, gpus=["1", "3"])
    assert [e["CUDA_VISIBLE_DEVICES"] for e in envs] == ["1", "3", "1"]
    assert envs[0][THREADS_ENV] == "5"


def test_visible_gpus_follow_cuda_visible_devices():
    assert visible_gpus({"CUDA_VISIBLE_DEVICES": "1, 3"}) == ["1", "3"]
    assert visible_gpus({"CUDA_VISIBLE_DEVICES": ""}) == []
    assert visible_gpus({"CUDA_VISIBLE_DEVICES": "-1"}) == []


def test_threads_env_name_matches_the_train_stage():
    from foldwise.engine.runtime import THREADS_ENV as stage_var

    assert stage_var == THREADS_ENV


# ---- train.threads -----------------------------------------------------------------------------
def test_train_threads_auto_follows_the_launcher_then_the_affinity(monkeypatch):
    from foldwise.engine.runtime import resolve_threads

    monkeypatch.setenv(THREADS_ENV, "3")
    assert resolve_threads("auto") == 3
    assert resolve_threads(2) == 2  # an explicit value wins
    monkeypatch.delenv(THREADS_ENV)
    assert resolve_threads("auto") == len(os.sched_getaffinity(0))
    monkeypatch.setenv(THREADS_ENV, "zero")
    with pytest.raises(FoldwiseError, match="FOLDWISE_THREADS='zero'"):
        resolve_threads("auto")


@pytest.mark.parametrize("value, expected", [("auto", "auto"), (4, 4)])
def test_train_threads_param_reads(value, expected):
    raw = yaml.safe_load((ROOT / "params.yaml").read_text())
    raw["train"]["threads"] = value
    assert parse_params(raw, check_names=False).train.threads == expected


@pytest.mark.parametrize("value, message", [
    ("many", "'train.threads' must be auto or an integer, got 'many'"),
    (0, "'train.threads' must be >= 1, got 0"),
    ("2", "'train.threads' must be auto or an integer, got '2'"),  # YAML 1.2 (DVC's -S) writes numbers unquoted
])
def test_bad_train_threads_names_the_key(value, message):
    raw = yaml.safe_load((ROOT / "params.yaml").read_text())
    raw["train"]["threads"] = value
    with pytest.raises(FoldwiseError, match=message):
        parse_params(raw, check_names=False)


def test_fold_entries_are_put_back_in_dvc_yaml_order(tmp_path):
    lock = tmp_path / "dvc.lock"
    lock.write_text("schema: '2.0'\nstages:\n  split:\n    cmd: a\n  train@1:\n    cmd: c\n"
                    "  train@0:\n    cmd: b\n  oof:\n    cmd: d\n")
    sort_lock_entries(["train@0", "train@1"], str(lock))
    data = yaml.safe_load(lock.read_text())
    assert list(data["stages"]) == ["split", "train@0", "train@1", "oof"]
    assert data["stages"]["train@0"] == {"cmd": "b"} and data["schema"] == "2.0"
    before = lock.read_text()
    sort_lock_entries(["train@0", "train@1"], str(lock))  # already in order: left as it is
    assert lock.read_text() == before


# ---- the job pool ------------------------------------------------------------------------------
def sh(script: str) -> list[str]:
    return ["sh", "-c", script]


def test_jobs_run_n_at_a_time_each_with_its_slot_env(tmp_path):
    log = tmp_path / "events"
    script = f'echo "start $(date +%s.%N) $NAME $FOLDWISE_THREADS" >> {log}; sleep 0.4; echo "end $(date +%s.%N)" >> {log}'
    jobs = [Job(f"j{i}", sh(script.replace("$NAME", f"j{i}"))) for i in range(4)]
    run_jobs(jobs, [{THREADS_ENV: "1"}, {THREADS_ENV: "7"}], tmp_path / "logs", echo=lambda m: None)
    events = sorted((float(line.split()[1]), line.split()[0]) for line in log.read_text().splitlines())
    running, peak = 0, 0
    for _, kind in events:
        running += 1 if kind == "start" else -1
        peak = max(peak, running)
    assert peak == 2
    starts = [line.split() for line in log.read_text().splitlines() if line.startswith("start")]
    assert sorted(s[2] for s in starts) == ["j0", "j1", "j2", "j3"]
    assert {s[3] for s in starts} == {"1", "7"}


def test_a_job_that_meets_dvcs_lock_is_started_again(tmp_path):
    tries = tmp_path / "tries"
    script = (f'echo x >> {tries}; [ $(wc -l < {tries}) -ge 3 ] && exit 0; '
              'echo "ERROR: Unable to acquire lock. Most likely another DVC process is running" >&2; exit 255')
    said = []
    run_jobs([Job("train@0", sh(script))], [{}], tmp_path / "logs", Retry(attempts=5, first=0.01), echo=said.append)
    assert len(tries.read_text().splitlines()) == 3
    assert sum("lock taken" in m for m in said) == 2


def test_lock_retries_are_bounded(tmp_path):
    script = "echo \"ERROR: 'data/prepared' is busy, it is being blocked by:\" >&2; exit 255"
    with pytest.raises(JobFailed, match="train@0 failed"):
        run_jobs([Job("train@0", sh(script))], [{}], tmp_path / "logs", Retry(attempts=2, first=0.01), echo=lambda m: None)


def test_a_failing_job_stops_the_others_and_is_named(tmp_path):
    pids = tmp_path / "pids"
    slow = sh(f"sleep 60 & echo $! >> {pids}; echo $$ >> {pids}; wait")  # a group of two processes
    bad = sh(f"while [ $(wc -l < {pids} 2>/dev/null || echo 0) -lt 2 ]; do sleep 0.05; done; "
             "echo 'foldwise train: error: params.yaml: bad value'; exit 3")
    start = time.monotonic()
    with pytest.raises(JobFailed) as err:
        run_jobs([Job("train@0", slow), Job("train@1", bad)], [{}, {}], tmp_path / "logs", echo=lambda m: None)
    assert err.value.job.name == "train@1" and err.value.code == 3
    assert "train@1 failed (exit code 3)" in str(err.value)
    assert "foldwise train: error: params.yaml: bad value" in err.value.tail
    assert time.monotonic() - start < 10
    assert not any(alive(int(p)) for p in pids.read_text().split())


# ---- the launcher on a fake DVC project --------------------------------------------------------
FAKE_TRAIN = """\
import os, sys, time
from pathlib import Path
item = sys.argv[1]
Path(f"pid_{item}").write_text(str(os.getpid()))
mode = Path("mode").read_text().strip() if Path("mode").exists() else ""
if mode == "sleep":
    time.sleep(120)
Path(f"out_{item}.txt").write_text(f"{os.environ.get('FOLDWISE_THREADS')} {os.environ.get('OMP_NUM_THREADS')}\\n")
"""

def fake_dvc_yaml(folds: int) -> str:
    """A dvc.yaml shaped like foldwise's: prep, then ``train@k`` for k < ``folds`` (``python train.py k``
    writing out_k.txt), then a report reading every fold's output."""
    outs = [f"out_{k}.txt" for k in range(folds)]
    return "\n".join([
        "stages:", "  prep:", "    cmd: echo x > prep.txt", "    outs:", "      - prep.txt",
        "  train:", f"    foreach: {list(range(folds))}", "    do:", "      cmd: python train.py ${item}",
        "      deps:", "        - prep.txt", "        - train.py", "      outs:", "        - out_${item}.txt",
        "  report:", f"    cmd: cat {' '.join(outs)} > report.txt", "    deps:", *(f"      - {o}" for o in outs),
        "    outs:", "      - report.txt", ""])


FAKE_DVC_YAML = fake_dvc_yaml(3)


@pytest.fixture
def fake_project(tmp_path):
    repo = tmp_path / "fake"
    repo.mkdir()
    (repo / "dvc.yaml").write_text(FAKE_DVC_YAML)
    (repo / "train.py").write_text(FAKE_TRAIN)
    (repo / ".gitignore").write_text("mode\npid_*\n")
    run(["git", "init", "-q"], repo)
    run([PY, "-m", "dvc", "init", "-q"], repo)
    run(["git", "add", "-A"], repo)
    run(["git", "commit", "-qm", "init"], repo)
    return repo


def launcher(*args: str) -> list[str]:
    return [PY, "-c", f"import sys; sys.path.insert(0, {str(ROOT / 'src')!r}); from foldwise.repro import cli; cli()", *args]


def test_launcher_runs_the_graph_with_folds_in_parallel(fake_project):
    out = run(launcher("-j", "2"), fake_project)
    assert "3 of 3 train stages to run, 2 at a time" in out.stdout
    cores = len(os.sched_getaffinity(0))
    share = str(max(1, cores // 2))
    assert (fake_project / "report.txt").read_text().split() == [share, share] * 3
    status = run([PY, "-m", "dvc", "status", "--json"], fake_project).stdout.strip()
    assert status == "{}"
    lock = yaml.safe_load((fake_project / "dvc.lock").read_text())
    assert list(lock["stages"]) == ["prep", "train@0", "train@1", "train@2", "report"]
    again = run(launcher("-j", "2"), fake_project)  # nothing stale: no fold is started
    assert "train stages to run" not in again.stdout


def test_ctrl_c_leaves_no_stage_process_behind(fake_project):
    (fake_project / "mode").write_text("sleep")
    proc = subprocess.Popen(launcher("-j", "2"), cwd=fake_project, env=pipeline_env(),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    while not all((fake_project / f"pid_{i}").exists() for i in (0, 1)):
        assert time.monotonic() < deadline and proc.poll() is None, proc.communicate()
        time.sleep(0.1)
    children = [c.pid for c in psutil.Process(proc.pid).children(recursive=True)]
    assert len(children) >= 4  # two `dvc repro -s` and their stage commands
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 130
    assert "interrupted" in err
    assert not [pid for pid in children if alive(pid)]
    assert not (fake_project / "pid_2").exists()  # the third fold never started


# ---- the real pipeline -------------------------------------------------------------------------
def snapshot(repo: Path) -> dict[str, bytes]:
    files = [repo / "dvc.lock", *sorted((repo / "data" / "models").rglob("*.*")), *sorted((repo / "metrics").rglob("*.*")),
             repo / "data" / "oof.csv", repo / "data" / "submission.csv"]
    return {str(f.relative_to(repo)): f.read_bytes() for f in files if f.is_file()}


@pytest.mark.slow
@pytest.mark.e2e
def test_parallel_repro_matches_a_sequential_run_with_the_same_threads(tiny_repo):
    repo = tiny_repo()
    out = subprocess.run([PY, "-m", "foldwise.repro", "-j", "2"], cwd=repo, capture_output=True, text=True,
                         env={**pipeline_env(), "PYTHONPATH": "src"})  # this checkout's foldwise
    assert out.returncode == 0, out.stderr[-3000:]
    assert "2 of 2 train stages to run, 2 at a time" in out.stdout
    assert run([PY, "-m", "dvc", "status", "--json"], repo).stdout.strip() == "{}"
    parallel = snapshot(repo)
    assert {"data/models/fold_0/model.pt", "data/models/fold_1/model.pt", "data/submission.csv"} <= set(parallel)

    # The same folds trained again one after another by plain dvc, with the thread count each
    # parallel fold had (a fold's float results depend on it; see docs/how-to/parallel-folds.md).
    env = {**pipeline_env(), THREADS_ENV: str(max(1, len(os.sched_getaffinity(0)) // 2))}
    for cmd in (["repro", "-f", "train@0", "train@1", "-s"], ["repro"]):
        result = subprocess.run([PY, "-m", "dvc", *cmd], cwd=repo, env=env, capture_output=True, text=True)
        assert result.returncode == 0, result.stderr[-3000:]
    assert "Running stage 'oof'" not in result.stdout  # its inputs came out the same
    sequential = snapshot(repo)
    assert sequential.keys() == parallel.keys()
    assert [name for name in parallel if parallel[name] != sequential[name]] == []
