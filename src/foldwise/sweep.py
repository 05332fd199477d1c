"""``foldwise sweep --cluster ADDRESS -S 'lr=1e-4,3e-4' -S 'model=resnet18,efficientnet_b0'``:
every combination as a named DVC experiment, each run on a Dask worker.

The ``-S`` sweep syntax is ``dvc exp run``'s (DVC's own parser expands it). Each combination becomes
``dvc exp run -n <prefix>-<i> -S ...`` in a worker's clone of this commit (stages the experiment does
not change are restored from the run-cache), then ``dvc exp push`` to this repository (or
``--git-remote``, from which they are pulled back) and to the DVC remote or shared cache: afterwards
``dvc exp show`` here lists every trial with its CV, and ``dvc exp apply <name>`` brings one back.
"""
from __future__ import annotations

import argparse
import time
import uuid
from pathlib import Path

from .cli import run_cli
from .cluster.driver import connect, local_workers, run_tasks
from .cluster.state import publish, refuse_uncommitted, stage_sources, withdraw
from .cluster.worker import run_experiment
from .core.errors import FoldwiseError
from .launch.graph import dvc_argv
from .repro import run_foreground


def grid(sets: list[str]) -> list[list[str]]:
    """``-S`` arguments -> one list of ``-S`` values per combination, in DVC's order:
    ``["lr=1,2", "model=a"]`` -> ``[["lr=1", "model=a"], ["lr=2", "model=a"]]``."""
    from dvc.exceptions import DvcException
    from dvc.utils.cli_parse import to_path_overrides
    from dvc.utils.hydra import get_hydra_sweeps

    try:
        sweeps = get_hydra_sweeps(to_path_overrides(sets))
    except DvcException as exc:
        raise FoldwiseError(f"-S: {exc}") from None
    except Exception as exc:  # hydra's own parse errors
        raise FoldwiseError(f"-S {' '.join(sets)}: {exc}") from None
    return [[override if path == "params.yaml" else f"{path}:{override}"
             for path, overrides in combo.items() for override in overrides] for combo in sweeps]


def search_space(sets: list[str]) -> dict[str, tuple]:
    """``-S`` arguments -> what an Optuna trial suggests per key: ``("choice", [values])`` for
    ``k=a,b`` or ``k=range(1,4)``, ``("float", low, high, log)`` for ``k=interval(1e-4,1e-2)``
    (``tag(log,interval(...))``: log scale), ``("fixed", value)`` for ``k=v``."""
    from dvc.utils.cli_parse import to_path_overrides
    from dvc.utils.hydra import to_hydra_overrides
    from hydra.core.override_parser.types import IntervalSweep

    space: dict[str, tuple] = {}
    for path, overrides in to_path_overrides(sets).items():
        try:
            parsed = to_hydra_overrides(overrides)
        except Exception as exc:  # hydra's parse errors
            raise FoldwiseError(f"-S {' '.join(overrides)}: {exc}") from None
        for override in parsed:
            key = override.key_or_group if path == "params.yaml" else f"{path}:{override.key_or_group}"
            value = override.value()
            if isinstance(value, IntervalSweep):
                space[key] = ("float", float(value.start), float(value.end), "log" in value.tags)
            elif override.is_sweep_override():
                space[key] = ("choice", list(override.sweep_iterator()))
            else:
                space[key] = ("fixed", override.get_value_element_as_str())
    return space


def suggest(trial, key: str, spec: tuple):
    if spec[0] == "float":
        return trial.suggest_float(key, spec[1], spec[2], log=spec[3])
    if spec[0] == "choice":
        return trial.suggest_categorical(key, spec[1])
    return spec[1]


def metric_value(metrics: dict, path: str) -> float:
    """``metrics`` (nested, as dvc.api.metrics_show gives them) at ``path``, e.g. ``cv.auc``."""
    value = metrics
    for part in path.split("."):
        if not isinstance(value, dict) or part not in value:
            raise FoldwiseError(f"--metric {path}: not among the experiment's metrics {sorted(metrics)}")
        value = value[part]
    return float(value)


def optuna_search(args, prefix: str, run) -> list[str]:
    """Run ``args.trials`` experiments suggested by an Optuna TPE study, stored in ``args.storage``
    (default: an SQLite file under .dvc/tmp/, so a study named again is resumed); ``run(tasks, total,
    on_result)`` runs them. Returns the experiment names; prints the best trial."""
    import optuna

    space = search_space(args.sets)
    Path(".dvc/tmp").mkdir(parents=True, exist_ok=True)
    storage = args.storage or f"sqlite:///{Path('.dvc/tmp/foldwise-optuna.db').resolve()}"
    study = optuna.create_study(study_name=args.study or prefix, storage=storage, direction=args.direction,
                                sampler=optuna.samplers.TPESampler(seed=args.seed), load_if_exists=True)
    asked: dict[str, object] = {}

    def tasks():
        for _ in range(args.trials):
            trial = study.ask()
            name = f"{prefix}-{trial.number}"
            asked[name] = trial
            combo = [f"{key}={suggest(trial, key, spec)}" for key, spec in space.items()]
            print(f"  {name}: {' '.join(combo)}", flush=True)
            yield name, run_experiment, (name, combo)

    def tell(result: dict) -> None:
        value = metric_value(result["metrics"], args.metric)
        study.tell(asked[result["name"]], value)
        print(f"  {result['name']}: {args.metric} {value:.6g}", flush=True)

    run(tasks(), args.trials, tell)
    best = study.best_trial
    print(f"foldwise sweep: best {prefix}-{best.number}: {args.metric} {best.value:.6g} "
          f"({' '.join(f'{k}={v}' for k, v in best.params.items())}); dvc exp apply {prefix}-{best.number}")
    return list(asked)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="foldwise sweep", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cluster", metavar="ADDRESS", required=True,
                        help="a Dask scheduler (tcp://host:8786), or local:N worker processes started here")
    parser.add_argument("-S", "--set-param", dest="sets", action="append", required=True,
                        help="as for dvc exp run: 'key=v1,v2' sweeps a value, given again for a grid")
    parser.add_argument("-n", "--name", help="experiment name prefix (default: sweep-<random>); trials <name>-<i>")
    parser.add_argument("-j", "--jobs", type=int, help="experiments at once (default: the cluster's slots)")
    parser.add_argument("--shared-cache", action="store_true", help="as for foldwise repro")
    parser.add_argument("--git-remote", help="a git remote the workers fetch this commit from and push their "
                                             "experiments to (default: this directory)")
    parser.add_argument("--threads", type=int, help="FOLDWISE_THREADS per experiment")
    parser.add_argument("--retries", type=int, default=2, help="tries again of an experiment killed by a signal")
    parser.add_argument("--checkpoints", metavar="DIR", help="as for foldwise repro")
    search = parser.add_argument_group("a search instead of the grid")
    search.add_argument("--search", choices=["grid", "optuna"], default="grid",
                        help="optuna: an Optuna TPE study suggests each trial from the -S choices, "
                             "range(...) and interval(...) (tag(log,interval(...)): log scale)")
    search.add_argument("--trials", type=int, default=10, help="experiments the study runs (default: 10)")
    search.add_argument("--direction", choices=["maximize", "minimize"], default="maximize")
    search.add_argument("--metric", default="cv.auc", help="the metric the study optimises, as dvc metrics "
                                                           "show names it (default: cv.auc)")
    search.add_argument("--storage", help="Optuna storage URL (default: sqlite under .dvc/tmp/)")
    search.add_argument("--study", help="study name, to resume one (default: the name prefix)")
    search.add_argument("--seed", type=int, default=None, help="TPE sampler seed")
    args = parser.parse_args(argv)
    local_workers(args.cluster)
    prefix = args.name or f"sweep-{uuid.uuid4().hex[:6]}"
    if args.search == "grid":
        combos = grid(args.sets)
        names = [f"{prefix}-{i}" for i in range(len(combos))]
    elif args.trials < 1:
        raise FoldwiseError(f"--trials must be >= 1, got {args.trials}")

    start = time.monotonic()
    sources, _ = stage_sources(all_stages())
    refuse_uncommitted(sources)
    if not args.shared_cache:  # what the experiments' unchanged stages restore
        run_foreground(dvc_argv("push", "--run-cache"))
    state = publish([], args.shared_cache, args.git_remote, args.checkpoints)
    try:
        with connect(args.cluster) as client:
            def run(tasks, total, on_result=None):
                return run_tasks(client, tasks, total, state, args.jobs, args.threads, args.retries, "experiments",
                                 echo=lambda m: print(f"  {m}", flush=True), on_result=on_result)

            if args.search == "optuna":
                names = optuna_search(args, prefix, run)
            else:
                for name, combo in zip(names, combos):
                    print(f"  {name}: {' '.join(combo)}")
                run([(name, run_experiment, (name, combo)) for name, combo in zip(names, combos)], len(names))
    finally:
        withdraw(state, args.git_remote)
    if args.git_remote:
        run_foreground(dvc_argv("exp", "pull", "--no-cache", args.git_remote, *names))
    print(f"foldwise sweep: done in {time.monotonic() - start:.0f} s; `dvc exp show` lists them")


def all_stages() -> list[str]:
    from dvc.repo import Repo

    with Repo() as repo:
        return [stage.addressing for stage in repo.index.stages]


def cli(argv: list[str] | None = None) -> None:
    run_cli("sweep", main, argv, stopped="experiment")


if __name__ == "__main__":
    cli()
