"""The ``foldwise`` command: every subcommand's help, the dispatch, and one-line errors, through the
real entry points (``python -m foldwise`` is what the ``foldwise`` console script calls)."""
from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from foldwise import cli

ROOT = Path(__file__).resolve().parents[1]
ENV = {**os.environ, "PYTHONPATH": str(ROOT / "src"), "DVC_NO_ANALYTICS": "1"}

# each subcommand's options, as its --help must list them
OPTIONS = {
    "repro": ["--jobs", "--cluster", "--shared-cache", "--git-remote", "--threads", "--retries", "--checkpoints"],
    "sweep": ["--cluster", "--set-param", "--search", "--trials", "--direction", "--metric"],
    "export": ["--id", "--title", "--models", "--params", "--prepared"],
    "kaggle-submit": ["--message"],
}


def foldwise(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "foldwise", *args], cwd=cwd, capture_output=True, text=True,
                          env=ENV, timeout=120)


def test_top_level_help_lists_every_command():
    result = foldwise("--help")
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("usage: foldwise ")
    for name, (_, summary) in cli.COMMANDS.items():
        assert f"  {name} " in result.stdout and summary in result.stdout


def test_the_commands_are_the_documented_four():
    assert list(cli.COMMANDS) == ["repro", "sweep", "export", "kaggle-submit"]
    assert list(OPTIONS) == list(cli.COMMANDS)


@pytest.mark.parametrize("name", list(OPTIONS))
def test_each_command_help_exits_0_and_names_its_options(name):
    result = subprocess.run([sys.executable, "-X", "importtime", "-m", "foldwise", name, "--help"], cwd=ROOT,
                            capture_output=True, text=True, env=ENV, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(f"usage: foldwise {name} ")
    missing = [option for option in OPTIONS[name] if option not in result.stdout]
    assert not missing, result.stdout
    # help is instant: torch (seconds to import) is loaded only by the work itself
    assert not re.search(r"\|\s+torch$", result.stderr, re.M)


@pytest.mark.parametrize("module, name", [("foldwise.repro", "repro"), ("foldwise.sweep", "sweep"),
                                          ("foldwise.export", "export"),
                                          ("foldwise.export.kaggle_submit", "kaggle-submit")])
def test_the_python_m_forms_still_run(module, name):
    result = subprocess.run([sys.executable, "-m", module, "--help"], cwd=ROOT, capture_output=True, text=True,
                            env=ENV, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(f"usage: foldwise {name} ")


def test_an_unknown_command_is_refused_naming_the_choices():
    result = foldwise("submit")
    assert result.returncode == 2
    assert "invalid choice: 'submit'" in result.stderr and "kaggle-submit" in result.stderr


def test_kaggle_submit_without_credentials_is_one_line(tmp_path):
    (tmp_path / "params.yaml").write_text((ROOT / "params.yaml").read_text())
    (tmp_path / "sub.csv").write_text("id,target\na,0.5\n")
    env = {k: v for k, v in ENV.items() if not k.startswith("KAGGLE_")}
    result = subprocess.run([sys.executable, "-m", "foldwise", "kaggle-submit", "sub.csv", "-m", "try"], cwd=tmp_path,
                            capture_output=True, text=True, env={**env, "HOME": str(tmp_path)}, timeout=120)
    assert result.returncode == 1
    assert result.stderr.startswith("foldwise kaggle-submit: error: submitting needs Kaggle API credentials")
    assert len(result.stderr.strip().splitlines()) == 1


# ---- run_cli: the one error path shared by repro and sweep -------------------------------------------

class _TailedFailure(cli.FoldwiseError):
    def __init__(self):
        self.tail, self.source = "epoch 3\nTraceback: boom", "train@1"
        super().__init__("train@1 failed (exit code 1)")


@pytest.mark.parametrize("raised, code, expected", [
    (cli.FoldwiseError("no dvc.yaml here"), 1, "foldwise repro: error: no dvc.yaml here"),
    (subprocess.CalledProcessError(2, ["dvc", "exp", "push"]), 1,
     "foldwise repro: error: Command '['dvc', 'exp', 'push']' returned non-zero exit status 2."),
    (KeyboardInterrupt(), 130, "foldwise repro: interrupted; every stage process was stopped"),
])
def test_run_cli_turns_a_failure_into_one_line(capsys, raised, code, expected):
    def main(argv):
        raise raised

    with pytest.raises(SystemExit) as exit_:
        cli.run_cli("repro", main, [])
    assert exit_.value.code == code
    assert capsys.readouterr().err.strip() == expected


def test_run_cli_prints_a_failed_jobs_last_lines_before_the_error(capsys):
    def main(argv):
        raise _TailedFailure()

    with pytest.raises(SystemExit):
        cli.run_cli("sweep", main, [], stopped="experiment")
    assert capsys.readouterr().err.splitlines() == [
        "--- last lines of train@1 ---", "epoch 3", "Traceback: boom", "---",
        "foldwise sweep: error: train@1 failed (exit code 1)"]


def test_run_cli_passes_the_arguments_through():
    seen = []
    cli.run_cli("repro", seen.append, ["-j", "2"])
    assert seen == [["-j", "2"]]
