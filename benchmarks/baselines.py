"""Does each task's default run learn? Its CV beside a linear model and a constant on the same folds.

For every task (and every ``images`` kind) on its synthetic default data, and for scikit-learn's
``load_digits`` (1797 real 8x8 photos of digits) written as an ``images`` folder, this prints:

- default: the CV of the real pipeline (the stage commands of dvc.yaml: download, pretrained,
  preprocess, split, train@k for every fold, oof) run in a temporary copy, with params.yaml plus
  the task's own defaults from conf/task/<task>.yaml, as `dvc exp run -S task=<task>` composes them
  (``--no-task-defaults``: params.yaml alone);
- linear: a logistic regression (ridge for regression targets; fitted to the vote shares themselves
  for HMS) on the prepared images average-pooled to 16x16 pixels, standardised, fitted per fold on
  the other folds of data/folds.csv, its C chosen by the task's metric on one of those folds
  (ridge's alpha by RidgeCV);
- constant: the training folds' class shares, vote shares or mean;
- margin: default minus linear in the better direction, and the margin the goal asks for: 0.02 on
  a score bounded by 1 (AUC, F1, accuracy) or 10 % of the linear model's error where smaller;
  10 % of the linear model's error on an unbounded error (RMSE, KL);
- the default run's wall time and whether the machine was idle (1-minute load average below half
  the cores at start and end; other jobs slow the run down).

    python benchmarks/baselines.py                     # every row (slow: one default run per row)
    python benchmarks/baselines.py --task mask --task digits
    python benchmarks/baselines.py --baselines-only    # linear and constant only (about a minute a row)
"""
from __future__ import annotations

import argparse
import copy
import json
import os
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable

import numpy as np
import torch
import yaml
from ruamel.yaml import YAML

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from foldwise.stages.params import load_params, task_for  # noqa: E402
from foldwise.prepared import bind_labels, load_split, read_folds  # noqa: E402

TASK_CONF = ROOT / "conf" / "task"
POOL = 16  # the linear model's input: images average-pooled to POOL x POOL
IMAGES_KINDS = {
    "multiclass": {},
    "binary": {"kind": "binary", "targets": ["filled"], "classes": ["no", "yes"], "metric": "roc_auc"},
    "multilabel": {"kind": "multilabel", "targets": ["red", "blue"], "classes": [], "metric": "roc_auc"},
    "regression": {"kind": "regression", "targets": ["size"], "classes": [],
                   "metric": "neg_root_mean_squared_error"},
}
ROWS = {
    "seti": {"task": "seti"},
    "hms": {"task": "hms"},
    "petfinder": {"task": "petfinder"},
    "mask": {"task": "mask"},
    **{f"images-{kind}": {"task": "images", "images": group} for kind, group in IMAGES_KINDS.items()},
    "digits": {"task": "images", "data": {"source": "local"},
               "images": {"targets": ["digit"], "classes": [], "group": "", "metric": "accuracy"}},
}
DATA_STAGES = ["download", "pretrained", "preprocess", "split"]
BOUNDED = {"auc", "f1", "accuracy", "roc_auc", "f1_macro", "balanced_accuracy"}


# ---- params and the pipeline --------------------------------------------------------------------
def deep_update(base: dict, extra: dict) -> dict:
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(base.get(key), dict):
            deep_update(base[key], value)
        else:
            base[key] = copy.deepcopy(value)
    return base


def task_defaults(row: str) -> dict:
    """conf/task/<task>.yaml's values for the row's task (all images kinds share ``images``), read as
    Hydra reads them (YAML 1.1)."""
    values = yaml.safe_load((TASK_CONF / f"{ROWS[row]['task']}.yaml").read_text()) or {}
    values.pop("defaults", None)
    return values


def make_workdir(dest: Path, overrides: dict) -> Path:
    """A folder holding params.yaml (the repository's, with ``overrides`` merged as `dvc exp run -S`
    would) and dvc.yaml, with src/ linked: the stage commands run there as they do under dvc."""
    dest.mkdir(parents=True)
    ruamel = YAML()
    params = ruamel.load(ROOT / "params.yaml")
    deep_update(params, overrides)
    ruamel.dump(params, dest / "params.yaml")
    (dest / "src").symlink_to(ROOT / "src")
    return dest


def stage_commands(workdir: Path, folds: list[int]) -> dict[str, str]:
    """dvc.yaml's commands by stage name, ``train`` expanded to ``train@k`` for each fold."""
    stages = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]
    cmds = {name: " ".join(stages[name]["cmd"].split()) for name in DATA_STAGES + ["oof"]}
    train = " ".join(stages["train"]["do"]["cmd"].split())
    for k in folds:
        cmds[f"train@{k}"] = train.replace("${item}", str(k))
    return cmds


def run_stage(cmd: str, workdir: Path, log) -> None:
    env = dict(os.environ, DVC_NO_ANALYTICS="1", NO_ALBUMENTATIONS_UPDATE="1")
    done = subprocess.run(["bash", "-c", cmd], cwd=workdir, env=env, stdout=log, stderr=subprocess.STDOUT)
    if done.returncode:  # the log lives in a temporary folder: show its end here
        log.flush()
        tail = "".join(Path(log.name).read_text().splitlines(keepends=True)[-20:])
        raise RuntimeError(f"`{cmd}` failed in {workdir}; the end of its log:\n{tail}")


def busy() -> float:
    """The 1-minute load average per core."""
    return os.getloadavg()[0] / (os.cpu_count() or 1)


# ---- the baselines ------------------------------------------------------------------------------
def pooled_pixels(reader, n: int) -> np.ndarray:
    """Prepared images (N, H, W, C) -> features (N, POOL * POOL * C), average-pooled."""
    rows = []
    for start in range(0, n, 256):
        batch = torch.from_numpy(np.stack([reader[i] for i in range(start, min(n, start + 256))]))
        batch = batch.permute(0, 3, 1, 2).float()
        rows.append(torch.nn.functional.adaptive_avg_pool2d(batch, POOL).flatten(1).numpy())
    return np.concatenate(rows).astype(np.float64)


C_GRID = (1e-4, 1e-3, 1e-2, 1e-1, 1.0)  # logistic regression's inverse regularisation strengths tried


def fold_predictions(x: np.ndarray, y: np.ndarray, fold_of: np.ndarray, folds: list[int], kind: str,
                     n_out: int, model: str, score: Callable | None = None) -> np.ndarray:
    """Out-of-fold predictions (N, n_out) in the task's prob_columns layout, ``model`` linear or
    constant. The linear model's C is the one of ``C_GRID`` that ``score(y, preds)`` (higher is
    better; default: the class shares' log-likelihood) rates best on an inner fold."""
    from sklearn.linear_model import RidgeCV
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    preds = np.zeros((len(y), n_out))
    for k in folds:
        fit, held = fold_of != k, fold_of == k
        if kind == "regression":
            if model == "constant":
                preds[held] = y[fit].mean(axis=0)
            else:
                reg = make_pipeline(StandardScaler(), RidgeCV(alphas=np.logspace(-1, 4, 11)))
                preds[held] = reg.fit(x[fit], y[fit]).predict(x[held]).reshape(-1, n_out)
        elif model == "constant":
            preds[held] = layout([np.tile(s[fit].mean(axis=0), (held.sum(), 1))
                                  for s in class_shares(y, kind, n_out)], kind)
        else:
            c = choose_c(x, y, fold_of, fit, kind, n_out, score or (lambda t, p: log_likelihood(t, p, kind, n_out)))
            preds[held] = linear_predictions(c, x[fit], y[fit], x[held], kind, n_out)
    return preds


def layout(probs: list[np.ndarray], kind: str) -> np.ndarray:
    """Per-model class probabilities -> the task's columns: P(1) of each binary model, else the one
    model's class probabilities."""
    return np.stack([p[:, 1] for p in probs], axis=1) if kind in ("binary", "multilabel") else probs[0]


def linear_predictions(c: float, x_fit, y_fit, x_held, kind: str, n_out: int) -> np.ndarray:
    return layout([logistic_probs(c, x_fit, s, x_held) for s in class_shares(y_fit, kind, n_out)], kind)


def log_likelihood(y: np.ndarray, preds: np.ndarray, kind: str, n_out: int) -> float:
    """Mean log-likelihood of ``y``'s class shares under ``preds`` (task layout)."""
    shares = class_shares(y, kind, n_out)
    probs = [np.stack([1 - preds[:, j], preds[:, j]], axis=1) for j in range(len(shares))] \
        if kind in ("binary", "multilabel") else [preds]
    return float(sum(np.mean(np.sum(s * np.log(np.clip(p, 1e-12, None)), axis=1)) for s, p in zip(shares, probs)))


def choose_c(x, y, fold_of, fit, kind: str, n_out: int, score: Callable) -> float:
    """The C of ``C_GRID`` that ``score`` rates best on one fold of the fitting rows (the lowest
    numbered), fitted on the others: the held-out fold itself never chooses."""
    inner = fit & (fold_of == fold_of[fit].min())
    rest = fit & ~inner
    return max(C_GRID, key=lambda c: score(y[inner], linear_predictions(c, x[rest], y[rest], x[inner], kind, n_out)))


def class_shares(y: np.ndarray, kind: str, n_out: int) -> list[np.ndarray]:
    """Targets (N, T) -> one (N, classes) array of class shares per fitted model: one-hot rows of each
    binary column (binary, multilabel), of the class index, or the vote shares themselves (HMS)."""
    if kind in ("binary", "multilabel"):
        return [np.eye(2)[y[:, j].astype(int)] for j in range(y.shape[1])]
    if y.shape[1] > 1:
        return [y]
    return [np.eye(n_out)[y[:, 0].astype(int)]]


def logistic_probs(c: float, x_fit: np.ndarray, shares: np.ndarray, x_held: np.ndarray) -> np.ndarray:
    """A logistic regression at C=``c`` fitted to class shares (n_fit, classes) -> probabilities
    (n_held, classes). A sample enters once per class it has a share of, weighted by that share: for
    one-hot rows the usual fit, for vote shares the soft-target cross-entropy, so HMS's bar is the
    best linear KL, not an overconfident consensus class."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    rows, classes = np.nonzero(shares)
    clf = make_pipeline(StandardScaler(), LogisticRegression(C=c, max_iter=300))
    clf.fit(x_fit[rows], classes, logisticregression__sample_weight=shares[rows, classes])
    probs = np.zeros((len(x_held), shares.shape[1]))
    probs[:, clf.classes_] = clf.predict_proba(x_held)
    return probs


def baselines(workdir: Path) -> dict:
    """The linear and constant CV on the workdir's prepared data and folds (one BLAS thread: with
    more, lbfgs on a shared 2-core machine spends minutes waiting for its own threads)."""
    from threadpoolctl import threadpool_limits

    os.chdir(workdir)
    torch.set_num_threads(1)
    with threadpool_limits(limits=1):
        return fit_baselines(workdir)


def fit_baselines(workdir: Path) -> dict:
    p = load_params(check_names=False)
    task = bind_labels(task_for(p), workdir / "data/prepared")
    index, reader = load_split(workdir / "data/prepared", "train")
    fold_of = read_folds(workdir / "data/folds.csv", index, p.n_splits)
    scored = np.isin(fold_of, p.folds)  # as oof scores the default: the rows of the trained folds
    y = index[task.target_columns].to_numpy(dtype=np.float64)
    x = pooled_pixels(reader, len(index))
    kind = task.target_kind(p)
    out = {"metric": task.metric_name if p.task != "images" else p.task_params.metric,
           "greater": bool(task.greater_is_better), "n": len(index)}
    sign = 1.0 if task.greater_is_better else -1.0
    for model in ("linear", "constant"):
        preds = fold_predictions(x, y, fold_of, list(p.folds), kind, task.num_outputs, model,
                                 score=lambda truth, pred: sign * float(task.metric(truth, pred)))
        out[model] = float(task.metric(y[scored], preds[scored]))
    return out


# ---- digits: a real image set that ships with scikit-learn --------------------------------------
def write_digits(root: Path) -> Path:
    """``load_digits`` as an images folder: the first 1437 photos for training, the rest as test."""
    from PIL import Image
    from sklearn.datasets import load_digits

    digits = load_digits()
    (root / "images").mkdir(parents=True)
    names = []
    for i, image in enumerate(digits.images):
        names.append(f"{i:04d}.png")
        Image.fromarray((image * 255 / 16).astype(np.uint8), mode="L").save(root / "images" / names[-1])
    n_train = 1437
    lines = ["image,digit"] + [f"{names[i]},{digits.target[i]}" for i in range(n_train)]
    (root / "train.csv").write_text("\n".join(lines) + "\n")
    (root / "test.csv").write_text("\n".join(["image,digit"] + [f"{n},0" for n in names[n_train:]]) + "\n")
    return root


# ---- one row ------------------------------------------------------------------------------------
def run_row(row: str, tmp: Path, args) -> dict:
    overrides = copy.deepcopy(ROWS[row])
    if row == "digits":
        overrides["data"]["path"] = str(write_digits(tmp / "digits_raw"))
    if not args.no_task_defaults:
        overrides = deep_update(task_defaults(row), overrides)
    for assignment in args.set or []:
        deep_update(overrides, dotted(assignment))
    workdir = make_workdir(tmp / row, overrides)
    folds = load_params(workdir / "params.yaml", check_names=False).folds
    cmds = stage_commands(workdir, folds)
    result = {"row": row, "load_start": busy()}
    start = time.perf_counter()
    with open(tmp / f"{row}.log", "w") as log:
        for name in DATA_STAGES:
            run_stage(cmds[name], workdir, log)
        result["data_s"] = time.perf_counter() - start
        result.update(baselines(workdir))
        print(f"baselines: {row}: linear {result['linear']:.4f}, constant {result['constant']:.4f}",
              file=sys.stderr, flush=True)
        if not args.baselines_only:
            start = time.perf_counter()
            for name in [f"train@{k}" for k in folds] + ["oof"]:
                run_stage(cmds[name], workdir, log)
            metrics = json.loads((workdir / "metrics/oof/metrics.json").read_text())
            result["default"] = float(metrics["cv"][task_metric_key(metrics["cv"])])
            result["train_s"] = time.perf_counter() - start
    result["load_end"] = busy()
    result["overrides"] = {k: v for k, v in overrides.items() if k not in ROWS[row]}
    return result


def dotted(assignment: str) -> dict:
    """``train.lr=1e-3`` -> {"train": {"lr": 0.001}} (the value read as YAML, as `dvc exp run -S` does)."""
    key, _, value = assignment.partition("=")
    if not key or not _:
        raise SystemExit(f"--set {assignment!r}: expected key=value")
    out: dict = YAML(typ="safe").load(value) if value else ""  # YAML 1.2: 1e-3 is a number
    for part in reversed(key.split(".")):
        out = {part: out}
    return out


def task_metric_key(cv: dict) -> str:
    """The task metric in metrics.json's ``cv`` (the first key that is not ``n_folds``)."""
    return next(k for k in cv if k != "n_folds")


def margin(result: dict) -> tuple[float | None, float]:
    """(default's lead over linear, the lead the goal asks for)."""
    lin = result["linear"]
    error = (1.0 - lin) if result["metric"] in BOUNDED else abs(lin)
    needed = min(0.02, 0.1 * error) if result["metric"] in BOUNDED else 0.1 * error
    if "default" not in result:
        return None, needed
    lead = result["default"] - lin if result["greater"] else lin - result["default"]
    return lead, needed


def print_table(results: list[dict]) -> None:
    head = (f"{'row':20} {'metric':36} {'n':>5} {'default':>9} {'linear':>9} {'constant':>9} {'margin':>8} "
            f"{'needed':>7} {'goal':>5} {'train s':>8} {'load/core':>10}")
    print(head)
    print("-" * len(head))
    for r in results:
        lead, needed = margin(r)
        fmt = lambda v: f"{v:9.4f}" if v is not None else f"{'-':>9}"  # noqa: E731
        goal = "-" if lead is None else ("yes" if lead >= needed else "NO")
        train = f"{r['train_s']:8.0f}" if "train_s" in r else f"{'-':>8}"
        load = max(r["load_start"], r["load_end"])
        print(f"{r['row']:20} {r['metric'] + (' (up)' if r['greater'] else ' (down)'):36} {r['n']:5d} "
              f"{fmt(r.get('default'))} {fmt(r['linear'])} {fmt(r['constant'])} "
              f"{(f'{lead:8.4f}' if lead is not None else f'{chr(45):>8}')} {needed:7.4f} {goal:>5} {train} "
              f"{load:6.2f} {'idle' if load < 0.5 else 'busy'}")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--task", action="append", choices=list(ROWS) + ["images"],
                        help="rows to run (repeatable; `images` = every images kind); default: all")
    parser.add_argument("--baselines-only", action="store_true", help="skip the default runs (the slow part)")
    parser.add_argument("--no-task-defaults", action="store_true",
                        help="run params.yaml as it is, without the task's conf/task/<task>.yaml")
    parser.add_argument("--set", action="append", metavar="KEY=VALUE",
                        help="one more params override on every row, e.g. --set epochs=8 --set 'folds=[0]' "
                             "(folds: the baselines are scored on the same folds)")
    parser.add_argument("--json", type=Path, help="also write the rows to this file")
    args = parser.parse_args(argv)
    rows = args.task or list(ROWS)
    rows = [r for name in rows for r in ([k for k in ROWS if k.startswith("images-")] if name == "images" else [name])]
    results = []
    with tempfile.TemporaryDirectory(prefix="foldwise-baselines-") as tmp:
        for row in rows:
            print(f"baselines: {row} ...", file=sys.stderr, flush=True)
            results.append(run_row(row, Path(tmp), args))
            os.chdir(ROOT)
            print(json.dumps(results[-1]), file=sys.stderr, flush=True)
    print_table(results)
    if args.json:
        args.json.write_text(json.dumps(results, indent=1) + "\n")


if __name__ == "__main__":
    main()
