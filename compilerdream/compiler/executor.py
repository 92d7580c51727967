"""Where per-program work runs: a local process pool or a Ray cluster (`--executor local|ray`).

Every command that splits its work per program (`search`, `evaluate`, `datasets build` and
`build-default`, `coreset build`, `benchmarks/quality.py`) gets an executor from `make_executor`
and calls `map_unordered(fn, items, *args)`, which yields `(item, value, error)` as each
`fn(item, *args)` finishes: `error` is None, or a `TaskError` when that item's process died or
its task raised (the other items go on). Callers record each result as it comes, which is what
makes their runs resumable; the order of completion never changes a result.

Ray is an optional extra (`pip install 'compilerdream[ray]'`) and is imported only when asked for.
No torch here.
"""

from __future__ import annotations

import argparse
import concurrent.futures as cf
import importlib.util
import multiprocessing
import os
import re
import sys
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from .errors import CompilerDreamError

__all__ = [
    "EXECUTORS",
    "RAY_INSTALL",
    "LocalExecutor",
    "RayExecutor",
    "RayMissingError",
    "TaskError",
    "add_executor_args",
    "import_ray",
    "make_executor",
    "start_local_runtime",
]

EXECUTORS = ("local", "ray")
RAY_INSTALL = "pip install 'compilerdream[ray]'"


class RayMissingError(CompilerDreamError):
    """Ray was asked for but is not installed."""


class TaskError(Exception):
    """One item's task failed: it raised, or the process (or node) running it died for good."""


def import_ray(asked_by: str = "--executor ray"):
    """The `ray` module, or RayMissingError with the install command (one line naming what asked for Ray)."""
    try:
        import ray
    except ImportError as exc:
        why = "not installed" if importlib.util.find_spec("ray") is None else f"not importable ({exc})"
        raise RayMissingError(f"{asked_by}: Ray is {why}; install it with: {RAY_INSTALL}") from None
    return ray


def add_executor_args(parser: argparse.ArgumentParser) -> None:
    """`--executor local|ray` and `--ray-address` (the same two options on every command)."""
    parser.add_argument(
        "--executor",
        default="local",
        type=str.lower,
        choices=EXECUTORS,
        help="where the per-program work runs: local (process pool of --jobs) or ray (a Ray cluster; "
        f"needs {RAY_INSTALL})",
    )
    parser.add_argument(
        "--ray-address",
        default=None,
        help="with --executor ray: the cluster to join ('auto' or HOST:PORT of `ray start --head`); "
        "default: start a local Ray runtime with --jobs CPUs",
    )


def make_executor(
    kind: str = "local",
    jobs: int | None = None,
    ray_address: str | None = None,
    initializer: Callable[[], None] | None = None,
    mp_context: str = "spawn",
) -> LocalExecutor | RayExecutor:
    """An executor by name. `jobs`: local pool size (and the CPUs of a Ray runtime started here)."""
    kind = str(kind).lower()
    if kind == "local":
        if ray_address:
            raise CompilerDreamError("--ray-address needs --executor ray")
        return LocalExecutor(jobs or os.cpu_count() or 1, initializer=initializer, mp_context=mp_context)
    if kind == "ray":
        return RayExecutor(jobs=jobs, address=ray_address, initializer=initializer)
    raise CompilerDreamError(f"--executor {kind}: unknown executor; choose from {', '.join(EXECUTORS)}")


class LocalExecutor:
    """A process pool on this machine (`jobs` <= 1: in this process, exceptions propagate)."""

    kind = "local"

    def __init__(self, jobs: int = 1, initializer: Callable[[], None] | None = None, mp_context: str = "spawn"):
        self.jobs = max(1, int(jobs))
        self.initializer = initializer
        self.mp_context = mp_context

    def map_unordered(self, fn: Callable[..., Any], items: Iterable[Any], *args: Any) -> Iterator[tuple[Any, Any, TaskError | None]]:
        items = list(items)
        if self.jobs <= 1 or len(items) <= 1:
            for item in items:
                yield item, fn(item, *args), None
            return
        ctx = multiprocessing.get_context(self.mp_context)
        with cf.ProcessPoolExecutor(max_workers=self.jobs, mp_context=ctx, initializer=self.initializer) as ex:
            futures = {ex.submit(fn, item, *args): item for item in items}
            for fut in cf.as_completed(futures):
                try:
                    yield futures[fut], fut.result(), None
                except Exception as exc:  # noqa: BLE001 - a dead pool process fails its item, not the run
                    yield futures[fut], None, TaskError(f"{type(exc).__name__}: {exc}")

    def close(self) -> None:
        pass

    def __enter__(self) -> LocalExecutor:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


class RayExecutor:
    """Ray tasks, one per item (1 CPU each), on a cluster or on a runtime started here.

    A task whose worker process or node dies is retried by Ray (`max_retries`), so a node that
    leaves costs time, not results; a task that raises is not retried (our task functions
    report their own failures as rows).
    """

    kind = "ray"

    def __init__(
        self,
        jobs: int | None = None,
        address: str | None = None,
        initializer: Callable[[], None] | None = None,
        max_retries: int = 3,
    ):
        ray = import_ray()
        self._ray = ray
        self.initializer = initializer
        self.max_retries = max_retries
        self._owns_runtime = False
        if not ray.is_initialized():
            start_local_runtime(ray, address, jobs or os.cpu_count() or 1)
            self._owns_runtime = True
        self.jobs = int(ray.cluster_resources().get("CPU", 1))

    def map_unordered(self, fn: Callable[..., Any], items: Iterable[Any], *args: Any) -> Iterator[tuple[Any, Any, TaskError | None]]:
        ray = self._ray
        _ship_module_of(fn)
        if self.initializer is not None:
            _ship_module_of(self.initializer)
        remote = ray.remote(num_cpus=1, max_retries=self.max_retries)(_call).options(name=getattr(fn, "__name__", "task"))
        shared = [ray.put(a) for a in args]  # each argument is sent once, not once per item
        fn_ref = ray.put(fn)
        refs = {remote.remote(fn_ref, self.initializer, item, *shared): item for item in items}
        pending = list(refs)
        try:
            while pending:
                done, pending = ray.wait(pending, num_returns=1)
                for ref in done:
                    try:
                        value = ray.get(ref)
                    except ray.exceptions.RayError as exc:
                        yield refs[ref], None, TaskError(_first_line(exc))
                    else:
                        yield refs[ref], value, None
        finally:
            for ref in pending:  # the caller stopped early (an error, Ctrl-C): no orphaned work
                ray.cancel(ref, force=True)

    def close(self) -> None:
        if self._owns_runtime and self._ray.is_initialized():
            self._ray.shutdown()
        self._owns_runtime = False

    def __enter__(self) -> RayExecutor:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


def start_local_runtime(ray, address: str | None, num_cpus: int) -> None:
    """Join the cluster at `address`, or start a runtime of our own here (never another user's on this machine).

    Workers of a runtime started here inherit our environment (COMPILERDREAM_DATA, ...) and run at
    normal priority, as the local pool's processes do (Ray's default is `nice 15`).
    """
    kwargs: dict[str, Any] = {"include_dashboard": False, "logging_level": "warning"}
    if address:
        ray.init(address=address, **kwargs)
    else:
        ray.init(address="local", num_cpus=num_cpus, _system_config={"worker_niceness": 0}, **kwargs)


_initialized = False


def _call(fn: Callable[..., Any], initializer: Callable[[], None] | None, item: Any, *args: Any) -> Any:
    """Runs in a Ray worker: the pool's initializer once per worker process, then fn."""
    global _initialized
    if initializer is not None and not _initialized:
        initializer()
        _initialized = True
    return fn(item, *args)


def _ship_module_of(fn: Callable[..., Any]) -> None:
    """Functions of a script (benchmarks/quality.py loaded by path) are sent by value, not by module name."""
    module = sys.modules.get(getattr(fn, "__module__", "") or "")
    if module is None or module.__name__ == "__main__" or module.__name__.split(".")[0] == "compilerdream":
        return
    from ray import cloudpickle

    try:
        cloudpickle.register_pickle_by_value(module)
    except ValueError:  # a module cloudpickle cannot send by value: left to its importer
        pass


def _first_line(exc: BaseException) -> str:
    """One line: the task's own exception when it raised, else Ray's (worker or node died)."""
    cause = getattr(exc, "cause", None)
    if isinstance(cause, BaseException):
        exc = cause
    text = re.sub(r"\x1b\[[0-9;]*m", "", str(exc))
    lines = [line for line in text.splitlines() if line.strip()]
    head = lines[0] if lines else ""
    return f"{type(exc).__name__}: {head}"[:500]
