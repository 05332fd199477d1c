"""Wall time of the folds trained by ``foldwise repro -j N`` vs a sequential ``dvc repro``.

    python benchmarks/parallel_folds.py [--jobs 2] [--folds 2] [--epochs 1] [--n-train 600] [--img-size 64] [--rounds 1]

Copies the project into a temporary git + DVC repo (synthetic SETI, the sizes above, otherwise
params.yaml), runs download, preprocess and split once, then times the rest of the graph (every
train@k, oof, infer, submit) both ways: ``dvc repro`` (each fold on every core, one after another)
and ``foldwise repro -j N`` (N folds at once, cores // N threads each). Before each timed
run ``lr`` is nudged, so DVC's run cache cannot restore the folds and both runs do the same work.
Prints both wall times, their ratio and whether ``dvc status`` is clean after the parallel run.
``--cluster local:2`` times ``foldwise repro --cluster local:2 --shared-cache`` instead, and
prints how long its driver took restoring the folds from the run-cache.
"""
from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
REPO_FILES = ["src", "dvc.yaml", "params.yaml", ".gitignore", ".dvcignore", ".dvc/config", ".dvc/.gitignore"]


def sh(cmd: list[str], cwd: Path) -> float:
    env = {**os.environ, "DVC_NO_ANALYTICS": "1", "NO_ALBUMENTATIONS_UPDATE": "1", "PYTHONPATH": "src",
           "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"}
    start = time.perf_counter()
    result = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True)
    if result.returncode != 0:
        sys.exit(f"{' '.join(cmd)} failed:\n{result.stdout[-2000:]}\n{result.stderr[-2000:]}")
    for line in result.stdout.splitlines():
        if "restored from the run-cache" in line:  # the cluster driver's own restore time
            print(f"    {line}")
    return time.perf_counter() - start


def set_params(repo: Path, **updates) -> None:
    params = yaml.safe_load((repo / "params.yaml").read_text())
    for key, value in updates.items():
        *groups, last = key.split(".")
        target = params
        for g in groups:
            target = target[g]
        target[last] = value
    (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--folds", type=int, default=2)
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--n-train", type=int, default=600)
    parser.add_argument("--img-size", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--cluster", metavar="ADDRESS",
                        help="time foldwise repro --cluster ADDRESS --shared-cache (e.g. local:2) instead of -j")
    args = parser.parse_args()
    py = sys.executable
    with tempfile.TemporaryDirectory() as tmp:
        repo = Path(tmp) / "repo"
        for rel in REPO_FILES:
            src, dst = ROOT / rel, repo / rel
            dst.parent.mkdir(parents=True, exist_ok=True)
            if src.is_dir():
                shutil.copytree(src, dst, ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
            else:
                shutil.copy2(src, dst)
        set_params(repo, folds=list(range(args.folds)), epochs=args.epochs, img_size=args.img_size,
                   **{"synthetic.n_train": args.n_train, "synthetic.n_test": max(20, args.n_train // 5)})
        for cmd in (["git", "init", "-q"], ["git", "add", "-A"],
                    ["git", "-c", "user.name=b", "-c", "user.email=b@b", "commit", "-qm", "init"]):
            sh(cmd, repo)
        sh([py, "-m", "dvc", "repro", "split"], repo)
        cores = len(os.sched_getaffinity(0))
        print(f"{args.folds} folds x {args.epochs} epoch(s), {args.n_train} SETI samples at {args.img_size} px, "
              f"{cores} cores; timed: every train@k + oof + infer + submit")
        lr = 1e-3
        seq, par = [], []
        for r in range(args.rounds):
            launcher = (["--cluster", args.cluster, "--shared-cache"] if args.cluster else ["-j", str(args.jobs)])
            for name, cmd, times in ((f"dvc repro", [py, "-m", "dvc", "repro"], seq),
                                     (f"foldwise.repro {' '.join(launcher[:2])}",
                                      [py, "-m", "foldwise.repro", *launcher], par)):
                lr *= 1.01
                set_params(repo, lr=lr)
                times.append(sh(cmd, repo))
                print(f"round {r}: {name:22s} {times[-1]:7.1f} s", flush=True)
        status = subprocess.run([py, "-m", "dvc", "status", "--json"], cwd=repo, capture_output=True, text=True,
                                env={**os.environ, "DVC_NO_ANALYTICS": "1"}).stdout.strip()
        s, p = statistics.median(seq), statistics.median(par)
        print(f"sequential {s:.1f} s, parallel {p:.1f} s, parallel/sequential {p / s:.2f}; "
              f"dvc status after: {'clean' if status == '{}' else status}")


if __name__ == "__main__":
    main()
