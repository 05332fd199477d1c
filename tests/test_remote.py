"""The remotes how-to's team flow (docs/how-to/remotes.md) through an S3 remote: push, exp push, a teammate's clone + pull + exp pull.

The remote is moto's S3 server (``python -m moto.server``, a test-only dependency) started by the
test on 127.0.0.1 with dummy credentials; no other traffic leaves the machine.
"""
from __future__ import annotations

import json
import re
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import run

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

BUCKET = "foldwise-team"
EXPERIMENT = "fewer-overlays"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_moto(log: Path, timeout: float = 30.0) -> tuple[subprocess.Popen, str]:
    """moto's S3 server on a free 127.0.0.1 port -> (process, endpoint url); waits until it accepts."""
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
                            stdout=log.open("w"), stderr=subprocess.STDOUT)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"moto server exited ({proc.returncode}): {log.read_text()[-2000:]}")
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return proc, f"http://127.0.0.1:{port}"
        time.sleep(0.2)
    proc.kill()
    raise RuntimeError(f"moto server did not listen on 127.0.0.1:{port} within {timeout:.0f} s")


def stop(proc: subprocess.Popen) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=10)


def s3_env(monkeypatch) -> None:
    """Dummy credentials for moto; only the environment holds them, never .dvc/config."""
    for var, value in {"AWS_ACCESS_KEY_ID": "foldwise-test", "AWS_SECRET_ACCESS_KEY": "foldwise-test",
                       "AWS_DEFAULT_REGION": "us-east-1", "NO_PROXY": "127.0.0.1"}.items():
        monkeypatch.setenv(var, value)
    for var in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy"):
        monkeypatch.delenv(var, raising=False)


def timed(cmd: list[str], cwd: Path) -> tuple[subprocess.CompletedProcess, float]:
    start = time.perf_counter()
    result = run(cmd, cwd)
    return result, time.perf_counter() - start


def count_transferred(output: str, verb: str) -> int:
    """'219 files pushed' -> 219 ('Everything is up to date.' -> 0)."""
    match = re.search(rf"(\d+) files? {verb}", output)
    return int(match.group(1)) if match else 0


def experiment_names(repo: Path) -> set[str]:
    shown = json.loads(run(["dvc", "exp", "show", "--json"], repo).stdout)
    return {exp["name"] for rev in shown for exp in (rev.get("experiments") or []) if exp.get("name")}


def team_round_trip(repo: Path, origin: Path, clone: Path, remote_url: str, endpoint: str | None) -> dict:
    """The remotes how-to's team flow in ``repo`` (a committed project after `dvc repro`); returns figures.

    Owner: add the remote, commit its config, `git push`, `dvc push`, run an experiment and
    `dvc exp push origin NAME`. Teammate: `git clone`, `dvc pull`, `dvc exp pull origin NAME`.
    """
    run(["git", "init", "-q", "--bare", str(origin)], repo)
    run(["git", "remote", "add", "origin", str(origin)], repo)
    run(["dvc", "remote", "add", "-d", "team", remote_url], repo)
    if endpoint:
        run(["dvc", "remote", "modify", "team", "endpointurl", endpoint], repo)
    run(["git", "add", "-A"], repo)
    run(["git", "commit", "-qm", "baseline and team remote"], repo)
    run(["git", "push", "-q", "origin", "HEAD:main"], repo)
    pushed, push_s = timed(["dvc", "push"], repo)
    run(["dvc", "exp", "run", "-n", EXPERIMENT, "-S", "explain.n_worst=2"], repo)
    _, exp_push_s = timed(["dvc", "exp", "push", "origin", EXPERIMENT], repo)

    run(["git", "clone", "-q", "-b", "main", str(origin), str(clone)], repo.parent)
    pulled, pull_s = timed(["dvc", "pull"], clone)
    status = json.loads(run(["dvc", "status", "--json"], clone).stdout)
    repro = run(["dvc", "repro"], clone)
    _, exp_pull_s = timed(["dvc", "exp", "pull", "origin", EXPERIMENT], clone)
    return {
        "files_pushed": count_transferred(pushed.stdout, "pushed"), "push_s": push_s, "exp_push_s": exp_push_s,
        "files_pulled": count_transferred(pulled.stdout, "fetched") or count_transferred(pulled.stdout, "added"),
        "pull_s": pull_s, "exp_pull_s": exp_pull_s, "clone_status": status, "clone_repro": repro.stdout,
    }


def test_s3_round_trip_gives_a_teammate_an_up_to_date_clone(tiny_repo, tmp_path, monkeypatch):
    s3_env(monkeypatch)
    server, endpoint = start_moto(tmp_path / "moto.log")
    try:
        import boto3

        boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1").create_bucket(Bucket=BUCKET)
        repo = tiny_repo()
        run(["dvc", "repro"], repo)
        figures = team_round_trip(repo, tmp_path / "origin.git", tmp_path / "teammate",
                                  f"s3://{BUCKET}/dvcstore", endpoint)
        clone = tmp_path / "teammate"
        keys = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1").list_objects_v2(
            Bucket=BUCKET, Prefix="dvcstore/")
        stored = keys.get("KeyCount", 0)
    finally:
        stop(server)

    assert figures["files_pushed"] > 0 and stored >= figures["files_pushed"]
    assert figures["clone_status"] == {}, figures["clone_status"]
    assert "Running stage" not in figures["clone_repro"]
    assert figures["files_pulled"] > 0
    # The teammate has the data and models, byte-identical, and the owner's experiment.
    for rel in ("data/oof.csv", "data/submission.csv", "data/models/fold_0/model.pt"):
        assert (clone / rel).read_bytes() == (repo / rel).read_bytes(), rel
    assert EXPERIMENT in experiment_names(clone)
    run(["dvc", "exp", "apply", EXPERIMENT], clone)
    assert len(list((clone / "metrics/explain/worst").glob("*.png"))) == 2
    print(f"\nS3 (moto on 127.0.0.1) round trip: {figures['files_pushed']} files pushed in {figures['push_s']:.1f} s; "
          f"fresh clone pulled {figures['files_pulled']} files in {figures['pull_s']:.1f} s and reran nothing; "
          f"exp push {figures['exp_push_s']:.1f} s, exp pull {figures['exp_pull_s']:.1f} s")
