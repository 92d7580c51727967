"""Tests of compilerdream/vec_env.py: concurrent stepping equals sequential stepping."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from compilerdream.compiler.benchmarks import Benchmark
from compilerdream.task import CompilerTask
from compilerdream.vec_env import VecTask

PROGRAMS = Path(__file__).resolve().parent.parent / "examples" / "programs"
CONFIG = {"compilergym.max_step": 4, "compilergym.null_act": True}
SEEDS = (0, 1, 2)


@pytest.fixture(scope="module")
def programs() -> list[Benchmark]:
    return [Benchmark.from_file(PROGRAMS / f"{name}.c") for name in ("qsort", "crc32", "statemachine")]


@pytest.fixture
def make_tasks(programs) -> Iterator:
    made: list[CompilerTask] = []

    def make() -> list[CompilerTask]:
        tasks = [CompilerTask("examples", "train", CONFIG, seed=seed, benchmarks=programs) for seed in SEEDS]
        made.extend(tasks)
        return tasks

    yield make
    for task in made:
        task.close()


def _actions(num_actions: int, steps: int) -> np.ndarray:
    return np.random.default_rng(123).integers(num_actions, size=(steps, len(SEEDS)))


def _run_sequential(tasks: list[CompilerTask], actions: np.ndarray) -> list[list[dict]]:
    trace = [[task.reset() for task in tasks]]
    for row in actions:
        obs = [task.step(int(a)) for task, a in zip(tasks, row)]
        trace.append(obs)
        for i, o in enumerate(obs):  # the driver's rule: reset after is_last
            if o["is_last"]:
                trace.append([tasks[i].reset()])
    return trace


def _run_vec(vec: VecTask, actions: np.ndarray) -> list[list[dict]]:
    trace = [vec.reset_all()]
    for row in actions:
        obs = vec.step([int(a) for a in row])
        trace.append(obs)
        for i, o in enumerate(obs):
            if o["is_last"]:
                trace.append(vec.reset([i]))
    return trace


def _assert_same(a: list[list[dict]], b: list[list[dict]]) -> None:
    assert len(a) == len(b)
    for row_a, row_b in zip(a, b):
        assert len(row_a) == len(row_b)
        for obs_a, obs_b in zip(row_a, row_b):
            assert obs_a.keys() == obs_b.keys()
            for key in obs_a:
                np.testing.assert_array_equal(obs_a[key], obs_b[key], err_msg=key)


def test_vec_task_equals_sequential_stepping(make_tasks):
    sequential_tasks = make_tasks()
    actions = _actions(sequential_tasks[0].num_actions, steps=10)
    expected = _run_sequential(sequential_tasks, actions)
    with VecTask(make_tasks()) as vec:
        assert len(vec) == 3 and vec.num_actions == 43 and vec.obs_space == sequential_tasks[0].obs_space
        got = _run_vec(vec, actions)
    _assert_same(got, expected)
    assert any(o["is_last"] for row in expected for o in row)  # resets were exercised


def test_vec_task_protocol_errors(make_tasks):
    vec = VecTask(make_tasks())
    with pytest.raises(RuntimeError, match="step_async"):
        vec.step_wait()
    vec.reset_all()
    with pytest.raises(ValueError, match="2 actions for 3 tasks"):
        vec.step_async([0, 0])
    vec.step_async([0, 1, 2])
    with pytest.raises(RuntimeError, match="in flight"):
        vec.step_async([0, 1, 2])
    assert len(vec.step_wait()) == 3
    with pytest.raises(ValueError, match="one-hot"):  # a task's error reaches the caller
        vec.step([0, np.ones(vec.num_actions), 0])
    vec.close()
    with pytest.raises(RuntimeError, match="closed"):
        vec.reset_all()
    with pytest.raises(ValueError):
        VecTask([])
