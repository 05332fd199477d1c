"""``foldwise COMMAND``: the commands that are not DVC stages, under one name.

``foldwise repro``, ``foldwise sweep``, ``foldwise export`` and ``foldwise kaggle-submit`` are the
modules ``foldwise.repro``, ``foldwise.sweep``, ``foldwise.export`` and ``foldwise.export.kaggle_submit``
(each also runs as ``python -m <module>``). Stages are run by DVC (``dvc repro``, ``dvc exp run``).
"""
from __future__ import annotations

import argparse
import importlib
import signal
import subprocess
import sys
from typing import Callable

from .core.errors import FoldwiseError

# command -> (module with a ``cli(argv)``, one line for ``foldwise --help``)
COMMANDS = {
    "repro": ("foldwise.repro", "dvc repro with the folds trained N at a time (-j N), here or on a Dask cluster"),
    "sweep": ("foldwise.sweep", "a grid or an Optuna search of DVC experiments, run on a Dask cluster"),
    "export": ("foldwise.export.__main__", "the run's fold models and predict.py as a Kaggle dataset folder"),
    "kaggle-submit": ("foldwise.export.kaggle_submit", "upload a submission CSV to the task's Kaggle competition"),
}


def run_cli(name: str, main: Callable[[list[str] | None], None], argv: list[str] | None = None,
            stopped: str = "stage") -> None:
    """Run a long-running command's ``main(argv)``: a failure is one line ``foldwise <name>: error: ...``
    and exit code 1 (a failed job's last log lines first); Ctrl-C or SIGTERM ends with exit code 130
    after ``main`` has stopped the ``stopped`` processes it started."""
    signal.signal(signal.SIGTERM, _interrupt)
    try:
        main(argv)
    except (FoldwiseError, subprocess.CalledProcessError) as exc:
        tail = getattr(exc, "tail", None)
        if tail is not None:
            print(f"--- last lines of {exc.source} ---\n{tail}\n---", file=sys.stderr)
        print(f"foldwise {name}: error: {exc}", file=sys.stderr)
        sys.exit(1)
    except KeyboardInterrupt:
        print(f"foldwise {name}: interrupted; every {stopped} process was stopped", file=sys.stderr)
        sys.exit(130)


def _interrupt(signum, frame):
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> None:
    listing = "\n".join(f"  {name:<14} {summary}" for name, (_, summary) in COMMANDS.items())
    parser = argparse.ArgumentParser(
        prog="foldwise", formatter_class=argparse.RawDescriptionHelpFormatter,
        description=f"commands:\n{listing}\n\nfoldwise COMMAND --help shows a command's options. "
                    "The pipeline itself runs through DVC: dvc repro, dvc exp run -S key=value, dvc exp show.")
    parser.add_argument("command", choices=list(COMMANDS), metavar="COMMAND", help="one of: " + ", ".join(COMMANDS))
    parser.add_argument("args", nargs=argparse.REMAINDER, help="the command's own arguments")
    args = parser.parse_args(argv)
    module = importlib.import_module(COMMANDS[args.command][0])
    module.cli(args.args)


if __name__ == "__main__":
    main()
