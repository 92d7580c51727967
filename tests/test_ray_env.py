"""`--env_backend ray`: CompilerTasks in Ray actors (compilerdream.ray_env) on a real local runtime.

Same observations as the local task for the same seed and actions; an actor killed in the middle
of an episode ends that episode with `error` set, is replaced, and the vector of tasks goes on.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from compilerdream.compiler.benchmarks import Benchmark
from compilerdream.task import CompilerTask
from compilerdream.vec_env import VecTask

ray = pytest.importorskip("ray", reason="the [ray] extra is not installed (scripts/setup.sh installs it)")
from compilerdream.ray_env import RayTask  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
PROGRAMS = ROOT / "examples" / "programs"
CONFIG = {"compilergym.max_step": 5, "compilergym.null_act": True}
SEEDS = (0, 1)


@pytest.fixture(scope="module")
def ray_runtime():
    if ray.is_initialized():
        ray.shutdown()
    ray.init(address="local", num_cpus=2, include_dashboard=False, logging_level="warning")
    yield
    ray.shutdown()


@pytest.fixture(scope="module")
def programs() -> list[Benchmark]:
    return [Benchmark.from_file(PROGRAMS / f"{name}.c") for name in ("qsort", "crc32", "statemachine")]


def _same(a: dict, b: dict) -> bool:
    if set(a) != set(b):
        return False
    return all(np.array_equal(np.asarray(a[k]), np.asarray(b[k])) for k in a)


def test_ray_tasks_give_the_local_tasks_observations(ray_runtime, programs):
    actions = np.random.default_rng(7).integers(0, 42, size=(6, len(SEEDS)))
    local = VecTask([CompilerTask("examples", "train", CONFIG, seed=s, benchmarks=programs) for s in SEEDS])
    remote = VecTask([RayTask("examples", "train", CONFIG, seed=s, benchmarks=programs) for s in SEEDS])
    try:
        assert remote.obs_space == local.obs_space and remote.num_actions == local.num_actions
        assert remote.tasks[0].split_size == local.tasks[0].split_size
        a, b = local.reset_all(), remote.reset_all()
        assert all(_same(x, y) for x, y in zip(a, b))
        for row in actions:
            a, b = local.step(list(row)), remote.step(list(row))
            assert all(_same(x, y) for x, y in zip(a, b))
            ended = [i for i, ob in enumerate(a) if ob["is_last"]]
            if ended:
                assert all(_same(x, y) for x, y in zip(local.reset(ended), remote.reset(ended)))
        remote.tasks[1].set_forced_actions([3, 4])  # forced sequences reach the actor
        local.tasks[1].set_forced_actions([3, 4])
        assert _same(local.reset([1])[0], remote.reset([1])[0])
        assert _same(local.tasks[1].step(None), remote.tasks[1].step(None))
    finally:
        local.close()
        remote.close()


def test_a_killed_actor_ends_one_episode_and_is_replaced(ray_runtime, programs):
    vec = VecTask([RayTask("examples", "train", CONFIG, seed=s, benchmarks=programs) for s in SEEDS])
    try:
        vec.reset_all()
        first = vec.step([5, 6])
        assert not any(ob.get("error") for ob in first)
        victim = vec.tasks[0]
        old_pid = victim.actor_pid
        os.kill(old_pid, signal.SIGKILL)  # the actor process dies in the middle of its episode
        obs = vec.step([7, 8])
        assert obs[0]["is_last"] and obs[0]["is_terminal"] and obs[0]["reward"] == 0.0
        assert obs[0]["error"].startswith("ActorDiedError"), obs[0]["error"]
        assert obs[0]["action"].argmax() == 7 and obs[0]["autophase"].shape == first[0]["autophase"].shape
        assert not obs[1].get("error"), "the other environment went on"
        assert victim.replacements == 1 and victim.actor_pid != old_pid
        again = vec.reset([0])[0]  # the replacement actor starts the next episode
        assert again["is_first"] and not again.get("error")
        for _ in range(3):
            obs = vec.step([1, 2])
            assert not any(ob.get("error") for ob in obs)
            ended = [i for i, ob in enumerate(obs) if ob["is_last"]]
            if ended:
                vec.reset(ended)
    finally:
        vec.close()


def test_bad_env_backend_is_one_line(tmp_path):
    proc = subprocess.run(
        [sys.executable, str(ROOT / "examples" / "train_dreamerv2.py"), "--logdir", str(tmp_path / "run"), "--configs",
         "compilergym", "compilergym_dv3", "debug", "--task", "compilergym_csmith", "--env_backend", "sockets"],
        capture_output=True, text=True, timeout=300, cwd=tmp_path,
    )  # fmt: skip
    assert proc.returncode != 0
    assert "--env_backend must be local or ray, not 'sockets'" in proc.stderr.strip().splitlines()[-1]


@pytest.mark.slow
def test_training_with_ray_environments(tmp_path):
    """A short debug training run whose environments are Ray actors (a runtime started by the run)."""
    logdir = tmp_path / "run"
    started = time.monotonic()
    proc = subprocess.run(
        [sys.executable, str(ROOT / "examples" / "train_dreamerv2.py"), "--logdir", str(logdir), "--configs",
         "compilergym", "compilergym_dv3", "debug", "--task", "compilergym_csmith", "--env_backend", "ray",
         "--envs", "2", "--steps", "200", "--enable_test", "True", "--test_dataset", "csmith", "--test_eps", "2"],
        capture_output=True, text=True, timeout=600, cwd=tmp_path,
        env=dict(os.environ, COMPILERDREAM_CACHE=str(tmp_path / "cache")),
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert (logdir / "variables.pt").exists() and list((logdir / "train_episodes").glob("*.npz"))
    assert time.monotonic() - started > 0
