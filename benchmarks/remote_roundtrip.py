"""`dvc push` and a fresh clone's `dvc pull` through a local-folder remote and an S3 remote.

    python benchmarks/remote_roundtrip.py [--workdir DIR]

Runs the tiny pipeline of the tests (2 folds, 240 SETI cadences, 48 px) once, then for each remote
(a local folder; moto's S3 server started on 127.0.0.1 with dummy credentials) times `dvc push`
from the project and `dvc pull` in a fresh `git clone`, and checks that the clone's `dvc status` is
clean and `dvc repro` reruns nothing. Prints files and seconds per remote. Needs the test-only
dependencies (moto[server], boto3) from requirements.txt.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from conftest import TINY, make_repo, run  # noqa: E402
from test_remote import count_transferred, start_moto, stop, timed  # noqa: E402

BUCKET = "foldwise-bench"


def round_trip(repo: Path, origin: Path, name: str, url: str, endpoint: str | None) -> dict:
    run(["dvc", "remote", "add", name, url], repo)
    if endpoint:
        run(["dvc", "remote", "modify", name, "endpointurl", endpoint], repo)
    run(["git", "add", "-A"], repo)
    run(["git", "commit", "-qm", f"remote {name}"], repo)
    run(["git", "push", "-q", "origin", "HEAD:main"], repo)
    pushed, push_s = timed(["dvc", "push", "-r", name], repo)
    clone = repo.parent / f"clone_{name}"
    run(["git", "clone", "-q", "-b", "main", str(origin), str(clone)], repo.parent)
    pulled, pull_s = timed(["dvc", "pull", "-r", name], clone)
    clean = json.loads(run(["dvc", "status", "--json"], clone).stdout) == {}
    reran = "Running stage" in run(["dvc", "repro"], clone).stdout
    return {"pushed": count_transferred(pushed.stdout, "pushed"), "push_s": push_s,
            "pulled": count_transferred(pulled.stdout, "fetched"), "pull_s": pull_s,
            "clean": clean, "reran": reran}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workdir", type=Path, default=None)
    args = parser.parse_args()
    work = args.workdir or Path(tempfile.mkdtemp(prefix="foldwise-remote-"))
    os.environ.update({"AWS_ACCESS_KEY_ID": "bench", "AWS_SECRET_ACCESS_KEY": "bench",
                       "AWS_DEFAULT_REGION": "us-east-1", "NO_PROXY": "127.0.0.1", "DVC_NO_ANALYTICS": "1"})
    repo = make_repo(work / "repo", yaml.safe_load(yaml.safe_dump(TINY)))
    run(["dvc", "repro"], repo)
    origin = work / "origin.git"
    run(["git", "init", "-q", "--bare", str(origin)], work)
    run(["git", "remote", "add", "origin", str(origin)], repo)
    server, endpoint = start_moto(work / "moto.log")
    try:
        import boto3

        boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1").create_bucket(Bucket=BUCKET)
        results = {"local folder": round_trip(repo, origin, "folder", str(work / "store"), None),
                   "S3 (moto, 127.0.0.1)": round_trip(repo, origin, "s3", f"s3://{BUCKET}/store", endpoint)}
    finally:
        stop(server)
    print(f"{'remote':<22} {'pushed':>7} {'push s':>7} {'pulled':>7} {'pull s':>7}  clone up to date, reran nothing")
    for name, r in results.items():
        print(f"{name:<22} {r['pushed']:>7} {r['push_s']:>7.1f} {r['pulled']:>7} {r['pull_s']:>7.1f}  "
              f"{r['clean'] and not r['reran']}")
    print(f"(work dir: {work})")


if __name__ == "__main__":
    main()
