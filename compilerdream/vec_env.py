"""VecTask: steps several CompilerTasks at once on a thread pool (stable-baselines3's step_async/step_wait)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor, wait
from typing import Any

import numpy as np

from compilerdream.task import CompilerTask

__all__ = ["VecTask"]

Obs = dict[str, Any]


class VecTask:
    """N CompilerTasks stepped concurrently; results come back in task order.

    Each task's LlvmEnv talks to its own worker process, and a thread waiting for its
    worker releases the GIL, so the compilations overlap. No auto-reset: the driver
    resets a task (`reset([i])`) after it returns `is_last` (REFERENCE §1.3 step 7).
    """

    def __init__(self, tasks: Sequence[CompilerTask]):
        if not tasks:
            raise ValueError("VecTask needs at least one task")
        sizes = {task.num_actions for task in tasks}
        if len(sizes) != 1:
            raise ValueError(f"all tasks must share one action space size, got {sorted(sizes)}")
        self.tasks = list(tasks)
        self._pool = ThreadPoolExecutor(max_workers=len(self.tasks), thread_name_prefix="vec-task")
        self._pending: list[Future] | None = None
        self._closed = False

    def __len__(self) -> int:
        return len(self.tasks)

    @property
    def obs_space(self) -> dict[str, tuple[tuple[int, ...], np.dtype]]:
        return self.tasks[0].obs_space

    @property
    def act_space(self) -> dict[str, tuple[tuple[int, ...], np.dtype]]:
        return self.tasks[0].act_space

    @property
    def num_actions(self) -> int:
        return self.tasks[0].num_actions

    def reset(self, indices: Iterable[int], switch_benchmark: bool = True) -> list[Obs]:
        """Reset the tasks at `indices` concurrently; their first observations, in the order given."""
        self._check_idle()
        futures = [self._pool.submit(self.tasks[i].reset, switch_benchmark) for i in indices]
        return _results(futures)

    def reset_all(self) -> list[Obs]:
        return self.reset(range(len(self.tasks)))

    def step_async(self, actions: Sequence[Any]) -> None:
        """Start one step of every task; `actions[i]` (index or one-hot) goes to task i."""
        self._check_idle()
        if len(actions) != len(self.tasks):
            raise ValueError(f"got {len(actions)} actions for {len(self.tasks)} tasks")
        self._pending = [self._pool.submit(task.step, action) for task, action in zip(self.tasks, actions)]

    def step_wait(self) -> list[Obs]:
        """Wait for the steps started by step_async; one obs dict per task."""
        if self._pending is None:
            raise RuntimeError("step_wait() called without step_async()")
        futures, self._pending = self._pending, None
        return _results(futures)

    def step(self, actions: Sequence[Any]) -> list[Obs]:
        self.step_async(actions)
        return self.step_wait()

    def _check_idle(self) -> None:
        if self._closed:
            raise RuntimeError("VecTask is closed")
        if self._pending is not None:
            raise RuntimeError("a step is in flight: call step_wait() first")

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self._pending is not None:
            wait(self._pending)
            self._pending = None
        self._pool.shutdown(wait=True)
        for task in self.tasks:
            task.close()

    def __enter__(self) -> VecTask:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


def _results(futures: list[Future]) -> list[Obs]:
    """All results in order; waits for every future before re-raising the first failure."""
    wait(futures)
    for future in futures:
        if future.exception() is not None:
            raise future.exception()
    return [future.result() for future in futures]
