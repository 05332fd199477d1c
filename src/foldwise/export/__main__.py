"""``foldwise export OUT`` (or ``python -m foldwise.export OUT``): a Kaggle dataset folder of the workspace's run (see bundle.py).

Run from the repository root after `dvc repro` (or `dvc exp apply <exp>`), then
`kaggle datasets create -p OUT` uploads it.
"""
from __future__ import annotations

import argparse
from pathlib import Path

from ..core.errors import run_stage


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="foldwise export", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("out", type=Path, help="folder to write (an earlier export there is replaced)")
    parser.add_argument("--id", dest="dataset_id", help="Kaggle dataset id <user>/<slug> "
                        "(default: $KAGGLE_USERNAME/foldwise-<task>-<model>)")
    parser.add_argument("--title", help="dataset title (default: foldwise <task> <model>)")
    parser.add_argument("--models", type=Path, default=Path("data/models"), help="the fold models (data/models)")
    parser.add_argument("--params", type=Path, default=Path("params.yaml"), help="the run's params (params.yaml)")
    parser.add_argument("--prepared", type=Path, default=Path("data/prepared"),
                        help="the run's prepared data, whose labels.json says how to decode (data/prepared)")
    args = parser.parse_args(argv)
    from .bundle import build, folder_bytes  # torch and the tasks: not needed for --help

    out = build(args.out, args.models, args.params, args.dataset_id, args.title, args.prepared)
    print(f"export: {out} ({folder_bytes(out) / 2**20:.1f} MiB); upload with `kaggle datasets create -p {out}`, "
          f"then in a notebook: python predict.py --data /kaggle/input/<competition> --out submission.csv")


def cli(argv: list[str] | None = None) -> None:
    run_stage("export", lambda: main(argv))


if __name__ == "__main__":
    cli()
