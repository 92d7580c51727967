"""Compiler environments as Ray actors (`--env_backend ray`): rollouts anywhere on a Ray cluster, the learner here.

`RayTask` has `CompilerTask`'s interface (reset, step, set_forced_actions, restart_iteration,
close, obs_space, act_space, num_actions, split_size), so `VecTask` and the driver use it
unchanged: each step is one actor call, and VecTask's threads overlap the calls of several
actors, which Ray places on any node with a free CPU. Inside an actor the CompilerTask keeps
its compiler worker process, so an LLVM crash is handled there as always.

Crash isolation one level up: when the actor itself dies (killed, out of memory, its node
left the cluster), the step in flight ends its episode with `error` set (`ActorDiedError: ...`,
the error type first, as CompilerTask reports compiler errors), a new actor replaces the dead
one, and the next `reset()` goes on with it. The replacement starts the benchmark order of its
seed afresh.

Ray is imported only here, and only when this backend is asked for (`pip install 'compilerdream[ray]'`).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from compilerdream.compiler.executor import import_ray, start_local_runtime

__all__ = ["RayTask", "connect"]

log = logging.getLogger(__name__)

#: How many times in a row a reset may find its actor dead before the error is raised.
MAX_REPLACEMENTS_PER_CALL = 3


def connect(address: str | None = None, num_cpus: int | None = None):
    """The ray module, connected: to `address` ('auto', HOST:PORT) or a runtime started here."""
    ray = import_ray("--env_backend ray")
    if not ray.is_initialized():
        start_local_runtime(ray, address, max(num_cpus or 0, os.cpu_count() or 1))
    return ray


class _TaskActor:
    """Runs in the actor process: one CompilerTask."""

    def __init__(self, dataset: str, mode: str, config: dict, seed: int | None, benchmarks: Sequence | None):
        from compilerdream.task import CompilerTask

        self.task = CompilerTask(dataset, mode, config, seed=seed, benchmarks=benchmarks)

    def describe(self) -> dict[str, Any]:
        t = self.task
        return {
            "obs_space": t.obs_space,
            "act_space": t.act_space,
            "num_actions": t.num_actions,
            "split_size": t.split_size,
            "pid": os.getpid(),
            "node_id": _node_id(),
        }

    def reset(self, switch_benchmark: bool = True) -> dict[str, Any]:
        return self.task.reset(switch_benchmark)

    def step(self, action: Any) -> dict[str, Any]:
        return self.task.step(action)

    def set_forced_actions(self, actions: Sequence[int] | None) -> None:
        self.task.set_forced_actions(actions)

    def restart_iteration(self) -> None:
        self.task.restart_iteration()

    def close(self) -> None:
        self.task.close()


_actor_classes: dict[int, Any] = {}


def _actor_class(ray):
    if id(ray) not in _actor_classes:
        # max_restarts=0: a dead actor is replaced by RayTask (which knows the episode ended), not by Ray.
        _actor_classes[id(ray)] = ray.remote(num_cpus=1, max_restarts=0, max_task_retries=0)(_TaskActor)
    return _actor_classes[id(ray)]


class RayTask:
    """A CompilerTask in a Ray actor, with CompilerTask's interface (see the module docstring)."""

    def __init__(
        self,
        dataset: str,
        mode: str,
        config: Mapping[str, Any],
        seed: int | None = None,
        benchmarks: Sequence | None = None,
        address: str | None = None,
    ):
        address = address if address is not None else (str(config.get("ray_address", "")) or None)
        self._ray = connect(address, num_cpus=_cpus_wanted(config))
        self.dataset, self.mode, self.seed = dataset, mode, seed
        self._spec = (dataset, mode, {k: config[k] for k in config}, seed, list(benchmarks) if benchmarks is not None else None)
        self._forced: list[int] | None = None
        self._last: dict[str, Any] | None = None
        self.replacements = 0
        self._actor = self._start()
        meta = self._call("describe")
        self.obs_space = meta["obs_space"]
        self.act_space = meta["act_space"]
        self.num_actions = int(meta["num_actions"])
        self.split_size = meta["split_size"]
        self.actor_pid, self.actor_node = meta["pid"], meta["node_id"]

    # -- the actor ---------------------------------------------------------------------------
    def _start(self):
        actor = _actor_class(self._ray).remote(*self._spec)
        if self._forced is not None:
            actor.set_forced_actions.remote(self._forced)
        return actor

    def _call(self, method: str, *args: Any) -> Any:
        return self._ray.get(getattr(self._actor, method).remote(*args))

    def _replace(self, why: BaseException) -> None:
        log.warning("environment actor died (%s); starting a new one", _one_line(why))
        try:
            self._ray.kill(self._actor)
        except Exception:  # noqa: BLE001 - it is gone already
            pass
        self.replacements += 1
        self._actor = self._start()
        meta = self._call("describe")
        self.actor_pid, self.actor_node = meta["pid"], meta["node_id"]

    def _died(self, exc: BaseException) -> bool:
        errors = self._ray.exceptions
        return isinstance(exc, (errors.RayActorError, errors.ActorUnavailableError, errors.NodeDiedError))

    # -- CompilerTask's interface --------------------------------------------------------------
    def reset(self, switch_benchmark: bool = True) -> dict[str, Any]:
        for attempt in range(MAX_REPLACEMENTS_PER_CALL + 1):
            try:
                obs = self._call("reset", switch_benchmark)
                break
            except Exception as exc:  # noqa: BLE001
                if not self._died(exc) or attempt == MAX_REPLACEMENTS_PER_CALL:
                    raise
                self._replace(exc)
        self._last = obs
        return obs

    def step(self, action: Any) -> dict[str, Any]:
        try:
            obs = self._call("step", action)
        except Exception as exc:  # noqa: BLE001
            if not self._died(exc):
                raise
            self._replace(exc)
            return self._aborted(action, exc)
        self._last = obs
        return obs

    def _aborted(self, action: Any, exc: BaseException) -> dict[str, Any]:
        """The last step of an episode whose actor died: CompilerTask's shape, zero reward, `error` set."""
        if self._last is None:
            raise RuntimeError("the environment actor died before its first reset") from exc
        obs = dict(self._last)
        onehot = np.zeros(self.num_actions, np.float32)
        index = _action_index(action)
        if index is not None and 0 <= index < self.num_actions:
            onehot[index] = 1.0
        obs.update(
            reward=np.float32(0.0),
            is_first=False,
            is_last=True,
            is_terminal=True,
            action=onehot,
            error=f"ActorDiedError: the environment actor died mid-episode ({_one_line(exc)}); replaced",
        )
        self._last = None
        return obs

    def set_forced_actions(self, actions: Sequence[int] | None) -> None:
        self._forced = None if actions is None else [int(a) for a in actions]
        self._call("set_forced_actions", self._forced)

    def restart_iteration(self) -> None:
        self._call("restart_iteration")

    def close(self) -> None:
        actor, self._actor = self._actor, None
        if actor is None:
            return
        try:
            self._ray.get(actor.close.remote(), timeout=30)
        except Exception:  # noqa: BLE001 - closing a dead or unreachable actor
            pass
        try:
            self._ray.kill(actor)
        except Exception:  # noqa: BLE001
            pass

    def __enter__(self) -> RayTask:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


def _node_id() -> str:
    import ray

    return ray.get_runtime_context().get_node_id()


def _cpus_wanted(config: Mapping[str, Any]) -> int:
    """A runtime started here gets a CPU slot per actor the driver makes (train envs + val + test)."""
    try:
        return int(config.get("envs", 1)) + int(bool(config.get("enable_val", False))) + int(bool(config.get("enable_test", False)))
    except (TypeError, ValueError):
        return 1


def _action_index(action: Any) -> int | None:
    if isinstance(action, np.ndarray) and action.ndim == 1:
        ones = np.flatnonzero(action)
        return int(ones[0]) if len(ones) == 1 else None
    try:
        return int(action)
    except (TypeError, ValueError):
        return None


def _one_line(exc: BaseException) -> str:
    import re

    text = re.sub(r"\x1b\[[0-9;]*m", "", str(exc))
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return f"{type(exc).__name__}: {lines[0] if lines else ''}"[:300]
