"""The driver's side of ``foldwise.repro --cluster`` and ``foldwise.sweep``: connect to (or start) a
Dask cluster, give each stale fold (or experiment) to a worker as one task, at most N at a time, and
stop everything when one fails.

Each worker host's cores are shared by the worker threads on it: a fold gets ``cores // threads on
the host`` as $FOLDWISE_THREADS (or ``--threads``). Workers started with ``--resources GPU=1`` (or
dask-cuda's ``LocalCUDACluster``, which pins one GPU per worker through CUDA_VISIBLE_DEVICES) make
every fold task require one GPU, so no two folds share a device.
"""
from __future__ import annotations

import contextlib
from collections import defaultdict
from typing import Callable, Iterable, Iterator

from ..core.errors import FoldwiseError
from ..launch.slots import usable_cores
from .state import RepoState
from .worker import stop_run, train_fold

LOCAL_PREFIX = "local:"
CONNECT_TIMEOUT_S = 60


class FoldFailed(FoldwiseError):
    def __init__(self, stage: str, worker: str, reason: str, tail: str):
        self.stage, self.worker, self.tail = stage, worker, tail
        self.source = f"{stage} on {worker}"  # whose log ``tail`` is
        super().__init__(f"{stage} failed on worker {worker} ({reason}); the other tasks were stopped")


def local_workers(address: str) -> int | None:
    """N for ``local:N``, None for a scheduler address; a bad ``local:`` count is an error."""
    if not address.startswith(LOCAL_PREFIX):
        return None
    count = address[len(LOCAL_PREFIX):]
    if not count.isdigit() or int(count) < 1:
        raise FoldwiseError(f"--cluster {address}: expected local:N with N >= 1 worker processes")
    return int(count)


@contextlib.contextmanager
def connect(address: str) -> Iterator:
    """A Client of the scheduler at ``address``, or of a LocalCluster of N worker processes (one
    thread each; CPU: for a GPU each, start dask-cuda's ``dask cuda worker``) for ``local:N``,
    closed (with its worker processes) on leaving."""
    from distributed import Client, LocalCluster

    count = local_workers(address)
    if count is not None:
        with LocalCluster(n_workers=count, threads_per_worker=1, processes=True,
                          dashboard_address=None) as cluster, Client(cluster) as client:
            yield client
        return
    try:
        client = Client(address, timeout=f"{CONNECT_TIMEOUT_S}s")
    except OSError as exc:
        raise FoldwiseError(f"--cluster {address}: no Dask scheduler reached ({exc})") from None
    with client:
        try:
            client.wait_for_workers(1, timeout=CONNECT_TIMEOUT_S)
        except TimeoutError:
            raise FoldwiseError(f"--cluster {address}: no worker joined the scheduler in "
                                f"{CONNECT_TIMEOUT_S} s") from None
        yield client


def worker_shares(client) -> tuple[dict[str, int], int, bool]:
    """Threads per fold on each worker host, how many folds the cluster runs at once, and whether
    its workers advertise GPUs (then a fold is a task that needs one: ``resources={"GPU": 1}``)."""
    workers = client.scheduler_info(n_workers=-1)["workers"]
    cores = client.run(usable_cores)
    gpu = any(w.get("resources", {}).get("GPU") for w in workers.values())
    slots_on = defaultdict(int)
    for w in workers.values():
        slots_on[w["host"]] += int(w.get("resources", {}).get("GPU", 0)) if gpu else w["nthreads"]
    shares = {workers[a]["host"]: max(1, cores[a] // max(1, slots_on[workers[a]["host"]])) for a in workers}
    return shares, max(1, sum(slots_on.values())), gpu


def run_folds(client, stages: list[str], state: RepoState, jobs: int | None, threads: int | None,
              retries: int, echo: Callable[[str], None] = print) -> list[dict]:
    """Train ``stages`` (train@k) on the cluster; see run_tasks."""
    return run_tasks(client, [(stage, train_fold, (stage,)) for stage in stages], len(stages), state, jobs,
                     threads, retries, "folds", echo)


Task = tuple[str, Callable, tuple]  # name, function, its leading args (state and threads follow)


def run_tasks(client, tasks: Iterable[Task], total: int, state: RepoState, jobs: int | None, threads: int | None,
              retries: int, what: str, echo: Callable[[str], None] = print,
              on_result: Callable[[dict], None] | None = None) -> list[dict]:
    """Run the ``total`` ``tasks`` on the cluster, at most ``jobs`` at a time (default: as many as it
    runs at once), taking the next from ``tasks`` only when a slot frees (after ``on_result`` saw the
    last result: a search can ask for its next trial then). One killed by a signal (its worker died,
    the OOM killer) is tried again; the first that fails otherwise stops the others and raises
    FoldFailed with the worker's last log lines."""
    from distributed import as_completed

    shares, slots, gpu = worker_shares(client)
    at_once = min(jobs or slots, total)
    echo(f"{total} {what} on {len(client.scheduler_info(n_workers=-1)['workers'])} Dask workers, "
         f"{at_once} at a time" + (", one GPU each" if gpu else ""))
    pending = iter(tasks)
    running: dict = {}
    results: list[dict] = []

    def submit() -> None:
        task = next(pending, None)
        if task is None:
            return
        name, func, args = task
        future = client.submit(func, *args, state, threads or shares, key=f"{name}-{state.run_id}", pure=False,
                               retries=retries, resources={"GPU": 1} if gpu else None)
        running[future] = name
        done.add(future)

    done = as_completed()
    for _ in range(at_once):
        submit()
    try:
        for future in done:
            name = running.pop(future)
            if future.status != "finished":
                exc = future.exception()
                raise FoldFailed(name, "?", f"{type(exc).__name__}: {exc}", "")
            result = future.result()
            if result["code"]:
                raise FoldFailed(name, result["worker"], f"exit code {result['code']}", result["tail"])
            echo(f"{name}: done in {result['seconds']:.0f} s on {result['worker']}")
            results.append(result)
            if on_result:
                on_result(result)
            if len(results) + len(running) < total:
                submit()
    except BaseException:
        client.cancel(list(running))
        with contextlib.suppress(Exception):
            client.run(stop_run, state.run_id)
        raise
    return results
