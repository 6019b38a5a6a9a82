"""Many independent lab jobs (the models of a hyperparameter sweep, one model per asset, a backtest's folds, a
backfill's chunks of assets) run serially, over a local process pool, or over Ray — a local Ray instance, or a
cluster at `Settings.ray_address` (TAEHWA_RAY_ADDRESS). The data every job shares is shipped once per worker (Ray:
once, through its object store), not once per job; results come back in job order, and since every job is a pure
function of the data and its own parameters, they are the same whichever way ran them (the tests hold all three to
that). `choose_backend` is the one rule for which of them runs when the caller does not say."""

from __future__ import annotations

import os
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from multiprocessing import get_context
from typing import Any, Literal, cast

from taehwa.core.errors import InvalidInput, Unavailable
from taehwa.core.settings import Settings, load_settings

Backend = Literal["serial", "pool", "ray"]
BACKENDS: tuple[str, ...] = ("serial", "pool", "ray")
RAY_ADDRESS_ENV = "TAEHWA_RAY_ADDRESS"  # read by Settings (ray_address) only; named here for messages

_shared: Any = None  # in each pool worker: the data every job reads


def choose_backend(asked: str | None = None, *, settings: Settings | None = None, small: bool = False) -> Backend:
    """The one rule for where fanned-out jobs run (lab sweeps, lab runs, backfills): the backend asked for; else Ray
    when the settings name a cluster; else in this process for a `small` batch (starting workers would cost more
    than it saves) and over the local process pool otherwise. `settings`: the process's own when not given."""
    if asked is not None:
        if asked not in BACKENDS:
            raise InvalidInput(f"backend is one of {', '.join(BACKENDS)}", where="backend")
        return cast(Backend, asked)
    if (settings or load_settings()).ray_address:
        return "ray"
    return "serial" if small else "pool"


def default_backend(ray: bool = False) -> Backend:
    """Ray when asked for (or when the settings name a cluster), else the local process pool."""
    return choose_backend("ray" if ray else None)


def _one_thread() -> None:
    """Native libraries in a worker use one thread: one job per core, not one per thread."""
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[var] = "1"


def _init_worker(shared: Any) -> None:
    global _shared
    _shared = shared
    _one_thread()


def _call(fn: Callable[[Any, Any], Any], job: Any) -> Any:
    return fn(_shared, job)


def run_all(
    fn: Callable[[Any, Any], Any],
    jobs: Sequence[Any],
    shared: Any,
    *,
    backend: Backend = "pool",
    workers: int | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> list[Any]:
    """`[fn(shared, job) for job in jobs]`, over the chosen backend (all jobs submitted at once). `fn` must be a
    module-level function (it is sent to other processes by name)."""
    if backend not in BACKENDS:
        raise InvalidInput(f"backend is one of {', '.join(BACKENDS)}", where="backend")
    total = len(jobs)
    if backend != "serial" and total <= 1:
        backend = "serial"  # nothing to share out: no workers to start
    n = max(1, min(workers or (os.cpu_count() or 1), total))
    results = []
    for i, result in enumerate(run_stream(fn, jobs, shared, backend=backend, workers=n, window=max(1, total))):
        results.append(result)
        if progress:
            progress(i + 1, total)
    return results


def run_stream(
    fn: Callable[[Any, Any], Any],
    jobs: Iterable[Any],
    shared: Any,
    *,
    backend: Backend = "pool",
    workers: int | None = None,
    window: int | None = None,
) -> Iterator[Any]:
    """`fn(shared, job)` for jobs made one by one (a long backfill reads its next chunk while the workers score the
    last ones), the results yielded in job order; at most `window` jobs (twice the workers by default) are made
    and not yet collected, so memory stays bounded however many jobs there are."""
    if backend not in BACKENDS:
        raise InvalidInput(f"backend is one of {', '.join(BACKENDS)}", where="backend")
    if backend == "serial":
        for job in jobs:
            yield fn(shared, job)
        return
    n = max(1, workers or (os.cpu_count() or 1))
    window = window or 2 * n
    if backend == "ray":
        ray = _ray()
        shared_ref = ray.put(shared)
        task = ray.remote(_ray_call)
        refs: deque[Any] = deque()
        for job in jobs:
            refs.append(task.remote(fn, shared_ref, job))
            if len(refs) >= window:
                yield ray.get(refs.popleft())
        while refs:
            yield ray.get(refs.popleft())
        return
    with ProcessPoolExecutor(n, mp_context=get_context("spawn"), initializer=_init_worker, initargs=(shared,)) as pool:
        pending: deque[Future[Any]] = deque()
        for job in jobs:
            pending.append(pool.submit(_call, fn, job))
            if len(pending) >= window:
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()


def _ray() -> Any:
    """The ray module, connected: to the cluster the process's settings name (one connection per process, as
    Ray keeps it), else to a local instance started here."""
    try:
        import ray
    except ImportError:
        raise Unavailable(
            "Ray is not installed: pip install -e '.[ray]' (or drop --ray to use the local process pool)",
            where="backend",
        ) from None
    if not ray.is_initialized():
        address = load_settings().ray_address
        # a local instance when no cluster is named: loopback only, no dashboard, nothing sent anywhere
        ray.init(
            address=address or None,
            include_dashboard=False,
            log_to_driver=False,
            configure_logging=False,
            _node_ip_address="127.0.0.1" if not address else None,
        )
    return ray


def _ray_call(fn: Callable[[Any, Any], Any], shared: Any, job: Any) -> Any:
    _one_thread()
    return fn(shared, job)


def shutdown_ray() -> None:
    """Stop a local Ray instance this process started (tests, benchmarks)."""
    try:
        import ray
    except ImportError:
        return
    if ray.is_initialized():
        ray.shutdown()
