"""Tests of compilerdream/task.py: CompilerDream's observation dict, reward and episode rules (REFERENCE §2)."""

from __future__ import annotations

import logging
import os
import signal
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from compiler.helpers import count_instructions, run_commandline  # tests/compiler/helpers.py

from compilerdream.compiler.benchmarks import Benchmark
from compilerdream.compiler.env import LlvmEnv
from compilerdream.compiler.toolchain import find_tool
from compilerdream.task import (
    AUTOPHASE_SIZE,
    MAX_RESET_TRIES,
    TOTAL_INSTS,
    CompilerTask,
    leaky,
    load_coreset_sequences,
    normalize_autophase,
    step_reward,
    symlog,
)

PROGRAMS = Path(__file__).resolve().parent.parent / "examples" / "programs"
FIXTURES = Path(__file__).resolve().parent / "fixtures" / "programs"


@pytest.fixture(scope="module")
def programs() -> dict[str, Benchmark]:
    """The example programs compiled once (clang runs here, not at every reset)."""
    return {name: Benchmark.from_file(PROGRAMS / f"{name}.c") for name in ("qsort", "crc32", "matmul")}


@pytest.fixture
def make_task(programs) -> Iterator:
    """Factory of tasks on the example programs; every task is closed after the test."""
    made: list[CompilerTask] = []

    def make(mode: str = "val", seed: int = 0, benchmarks=None, **config) -> CompilerTask:
        flat = {("" if key in ("time_limit", "seed") else "compilergym.") + key: value for key, value in config.items()}
        flat.setdefault("compilergym.max_step", 5)
        task = CompilerTask("examples", mode, flat, seed=seed, benchmarks=benchmarks or list(programs.values()))
        made.append(task)
        return task

    yield make
    for task in made:
        task.close()


# ---------------------------------------------------------------------------------------------
# Pure functions (hand-computed values)


def test_leaky_is_identity_for_l1_and_scales_the_excess():
    assert leaky(2.0, 1.0) == 2.0
    assert leaky(-3.5, 1.0) == -3.5
    assert leaky(2.0, 0.5) == 1.5
    assert leaky(-2.0, 0.5) == -1.5
    assert leaky(0.4, 0.5) == 0.4
    assert leaky(0.0, 0.0) == 0.0


def test_step_reward_formula():
    # (315 - 300) / max(315 - 130, 1) = 15 / 185
    assert step_reward(315, 300, init=315, baseline=130) == pytest.approx(15 / 185)
    # Denominator floor: init == baseline divides by baseline_thre.
    assert step_reward(10, 7, init=10, baseline=10, baseline_thre=2.0) == pytest.approx(1.5)
    # Leaky clamp, then the step penalty: raw 2.0 -> 1.5 -> 1.4.
    assert step_reward(30, 10, init=20, baseline=10, leakiness=0.5, step_penalty=0.1) == pytest.approx(1.4)
    assert step_reward(10, 30, init=20, baseline=10, leakiness=0.5) == pytest.approx(-1.5)


def test_symlog():
    np.testing.assert_allclose(symlog(np.array([-np.e + 1, 0.0, np.e - 1])), [-1.0, 0.0, 1.0])


def test_normalize_autophase_bounds():
    features = np.arange(AUTOPHASE_SIZE, dtype=np.int64)
    features[TOTAL_INSTS] = 20
    out = normalize_autophase(features)
    assert out.dtype == np.float32 and out.shape == (AUTOPHASE_SIZE,)
    assert out.min() >= 0.0 and out.max() <= 1.0
    assert out[TOTAL_INSTS] == 1.0 and out[10] == pytest.approx(0.5)
    features[TOTAL_INSTS] = 0
    assert not normalize_autophase(features).any()


def test_coreset_sequences_are_nolimit_indices():
    sequences = load_coreset_sequences()
    assert len(sequences) == 50
    assert all(seq and all(0 <= a < 124 for a in seq) for seq in sequences)
    assert sequences[2] == [91, 115, 46, 2]


def test_unsupported_reward_space_names_the_value():
    with pytest.raises(ValueError, match="'Runtime'"):
        CompilerTask("examples", "val", {"compilergym.rew_space": "Runtime"}, benchmarks=["unused.c"])


# ---------------------------------------------------------------------------------------------
# Episodes on real LLVM


def _check_obs(task: CompilerTask, obs: dict) -> None:
    for key, (shape, dtype) in task.obs_space.items():
        value = np.asarray(obs[key])
        assert value.shape == shape, key
        assert value.dtype == dtype, key
    assert obs["action"].shape == task.act_space["action"][0]
    assert {"benchmark", "O0", "Oz", "count"} <= set(obs)


def test_episode_reward_histogram_and_autophase(make_task):
    task = make_task(max_step=5)
    obs = task.reset()
    _check_obs(task, obs)
    assert obs["is_first"] and obs["reward"] == 0.0 and not obs["action"].any() and not obs["action_histogram"].any()
    o0, oz, start = int(obs["O0"]), int(obs["Oz"]), int(obs["count"])
    assert start == o0
    rng = np.random.default_rng(0)
    previous, total = start, 0.0
    for step in range(1, 6):
        obs = task.step(int(rng.integers(task.num_actions)))
        _check_obs(task, obs)
        assert obs["reward"] == pytest.approx((previous - int(obs["count"])) / max(o0 - oz, 1), abs=1e-6)
        assert obs["autophase"].min() >= 0.0 and obs["autophase"].max() <= 1.0 and obs["autophase"][TOTAL_INSTS] == 1.0
        assert obs["reduction"] == pytest.approx(oz / max(1, int(obs["count"])))
        assert bool(obs["is_last"]) == bool(obs["is_terminal"]) == (step == 5)
        previous, total = int(obs["count"]), total + float(obs["reward"])
    assert total == pytest.approx((o0 - int(obs["count"])) / max(o0 - oz, 1), abs=1e-5)
    assert obs["action_histogram"].sum() == pytest.approx(1.0)
    with pytest.raises(RuntimeError, match="reset"):
        task.step(0)


def test_time_limit_ends_without_terminal(make_task):
    task = make_task(max_step=5, time_limit=2)
    task.reset()
    assert not task.step(0)["is_last"]
    obs = task.step(1)
    assert obs["is_last"] and not obs["is_terminal"]


def test_null_action_ends_episode_without_change(make_task):
    task = make_task(null_act=True, step_penalty=0.25)
    start = task.reset()
    assert task.num_actions == 43 and task.null_action == 42
    obs = task.step(task.null_action)
    assert obs["is_last"] and obs["is_terminal"]
    assert obs["count"] == start["count"] and obs["reward"] == pytest.approx(-0.25)
    assert obs["action_histogram"][42] == pytest.approx(1 / 5) and obs["action"][42] == 1.0


def test_oz_action_matches_oz_in_engine(make_task, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    task = make_task(null_act=True, oz_act=True)
    task.reset()
    assert task.oz_action == task.num_actions - 1 == 43
    obs = task.step(task.oz_action)
    assert obs["is_last"] and obs["is_terminal"]
    assert obs["count"] == obs["Oz"] and obs["reduction"] == 1.0
    assert obs["reward"] == pytest.approx(1.0)  # (O0 - Oz) / max(O0 - Oz, 1)
    assert list(tmp_path.iterdir()) == []  # no ./temp, no ./bin/opt, no error.log


def test_oz_continue_action_goes_on_and_its_commandline_replays_with_opt(make_task, programs, opt_tool, tmp_path):
    """compilergym.oz_continue: one more action (after null_act) running default<Oz>, and the episode goes on."""
    task = make_task(null_act=True, oz_continue=True, max_step=5)
    assert task.oz_action == task.num_actions - 1 == 43 and not task.oz_ends_episode
    assert task.obs_space["action_histogram"][0] == (44,)
    start = task.reset()
    counts = []
    for action in (5, task.oz_action, 7):  # -dse (Autophase), -Oz, -gvn
        obs = task.step(action)
        assert not obs["is_last"] and not obs["is_terminal"] and "error" not in obs
        counts.append(int(obs["count"]))
    assert counts[1] <= start["Oz"] and obs["action_histogram"][task.oz_action] == pytest.approx(1 / 5)
    path = tmp_path / "qsort.bc"
    path.write_bytes(programs["qsort"].data)
    commandline = task.env.commandline()
    assert "default<Oz>" in commandline
    run_commandline(opt_tool, commandline, path, tmp_path / "out.bc")
    assert count_instructions(tmp_path / "out.bc") == counts[-1]


def test_start_oz_episodes_begin_from_the_oz_module(make_task, programs):
    """compilergym.start oz: the first observation is -Oz's module, and rewards count from its size."""
    task = make_task(start="oz", abs_inst_obs=True)
    obs = task.reset()
    o0, oz = int(obs["O0"]), int(obs["Oz"])
    assert obs["is_first"] and int(obs["count"]) == oz < o0 and obs["reduction"] == 1.0 and obs["reward"] == 0.0
    with LlvmEnv() as env:  # the -Oz module's features, computed apart
        env.reset(benchmark=programs["qsort"])
        env.step("default<Oz>")
        np.testing.assert_array_equal(obs["autophase"], normalize_autophase(env.observation["Autophase"]))
        np.testing.assert_allclose(obs["instcount"], symlog(np.array([o0, oz, oz]) / 1000.0), rtol=1e-6)
    total = 0.0
    for action in (5, 7, 11):
        obs = task.step(action)
        total += float(obs["reward"])
    assert total == pytest.approx((oz - int(obs["count"])) / max(o0 - oz, 1), abs=1e-5)  # the return: gain over -Oz
    assert task.reset(switch_benchmark=False)["count"] == oz


def test_forced_actions_work_with_start_oz_and_oz_continue(make_task):
    """coreset_mode's forced sequences (NoLimit indices) run from -Oz's output; the -Oz action may be forced too."""
    sequence = [*load_coreset_sequences()[2], 124]  # + the oz_continue action (NoLimit: 124 actions)
    task = make_task(act_space="NoLimit", max_step=45, start="oz", oz_continue=True)
    assert task.num_actions == 125
    task.set_forced_actions(sequence)
    first = task.reset()
    assert int(first["count"]) == int(first["Oz"])
    applied = []
    for k in range(len(sequence)):
        obs = task.step(None)
        applied.append(int(np.argmax(obs["action"])))
        assert bool(obs["is_last"]) == (k == len(sequence) - 1) and not obs["is_terminal"]
    assert applied == sequence and "error" not in obs


@pytest.mark.parametrize(
    "config, message",
    [
        ({"compilergym.start": "o3"}, "compilergym.start 'o3' is not supported: use one of o0, oz"),
        ({"compilergym.oz_act": True, "compilergym.oz_continue": True}, "oz_continue are exclusive"),
    ],
)
def test_bad_start_and_oz_options_are_one_line(config, message):
    with pytest.raises(ValueError) as info:
        CompilerTask("examples", "val", config, benchmarks=["unused.c"])
    assert message in str(info.value) and "\n" not in str(info.value)


def test_forced_coreset_actions_override_the_agent(make_task):
    sequence = load_coreset_sequences()[2]
    task = make_task(act_space="NoLimit", max_step=45)
    task.set_forced_actions(sequence)
    task.reset()
    applied = []
    for k in range(len(sequence)):
        obs = task.step(0 if k % 2 else None)  # the agent's action is ignored (None allowed)
        applied.append(int(np.argmax(obs["action"])))
        assert bool(obs["is_last"]) == (k == len(sequence) - 1)
        assert not obs["is_terminal"]
    assert applied == sequence
    assert obs["action_histogram"][sequence].sum() == pytest.approx(len(sequence) / 45)
    task.reset()  # the sequence restarts with each episode
    assert int(np.argmax(task.step(None)["action"])) == sequence[0]
    task.set_forced_actions(None)
    with pytest.raises(ValueError):
        task.step(None)
    with pytest.raises(ValueError, match="outside"):
        task.set_forced_actions([0, 124])


def test_dead_worker_ends_episode_with_error(make_task, caplog, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    task = make_task(max_step=5)
    obs = task.reset()
    task.step(1)
    os.kill(task.env.worker.process.pid, signal.SIGKILL)
    with caplog.at_level(logging.WARNING, logger="compilerdream.task"):
        obs = task.step(2)
    assert obs["is_last"] and obs["is_terminal"] and obs["reward"] == 0.0
    assert "SessionCrash" in obs["error"]
    assert obs["benchmark"] in caplog.text
    assert list(tmp_path.iterdir()) == []  # nothing written to ./error.log
    obs = task.reset()  # the worker is replaced; the next episode works
    assert "error" not in obs and "error" not in task.step(1)


def test_llvm_abort_ends_episode_with_error(make_task, monkeypatch):
    # Bare `instcombine` (verifying its fixpoint) aborts LLVM 19 on this module; route it through the Oz slot.
    monkeypatch.setattr("compilerdream.task.OZ_PIPELINE", "instcombine")
    task = make_task(oz_act=True, benchmarks=[str(FIXTURES / "instcombine_fixpoint_abort.ll")])
    task.reset()
    obs = task.step(task.oz_action)
    assert obs["is_last"] and obs["is_terminal"] and obs["reward"] == 0.0
    assert "did not reach a fixpoint" in obs["error"]


def test_exception_from_env_step_ends_episode(make_task, monkeypatch):
    task = make_task()
    task.reset()

    def broken_step(*args, **kwargs):
        raise RuntimeError("engine exploded")

    monkeypatch.setattr(task.env, "step", broken_step)
    obs = task.step(3)
    assert obs["is_last"] and obs["is_terminal"] and obs["reward"] == 0.0
    assert obs["error"] == "RuntimeError: engine exploded"


@pytest.mark.parametrize(
    "flags, size",
    [
        ({}, 0),
        ({"abs_inst_obs": True}, 3),
        ({"abs_inst_obs": True, "rel_inst_obs": True}, 4),
        ({"instc_list_obs": True}, 69),
        ({"abs_inst_obs": True, "rel_inst_obs": True, "instc_list_obs": True}, 73),
    ],
)
def test_instcount_observation_variants(make_task, flags, size):
    task = make_task(**flags)
    obs = task.reset()
    assert task.instcount_size == size
    if size == 0:
        assert "instcount" not in obs and "instcount" not in task.obs_space
        return
    _check_obs(task, obs)
    if flags.get("abs_inst_obs"):
        expected = symlog(np.array([obs["O0"], obs["Oz"], obs["count"]]) / 1000.0)
        np.testing.assert_allclose(obs["instcount"][:3], expected, rtol=1e-6)
    if flags.get("rel_inst_obs"):
        np.testing.assert_allclose(obs["instcount"][3], symlog(obs["Oz"] / obs["count"] - 1.0), rtol=1e-6)
    _check_obs(task, task.step(1))


def test_one_hot_actions(make_task):
    task = make_task()
    task.reset()
    one_hot = np.zeros(task.num_actions, np.float32)
    one_hot[5] = 1.0
    assert int(np.argmax(task.step(one_hot)["action"])) == 5
    bad = [
        np.ones(task.num_actions, np.float32),
        np.zeros(task.num_actions, np.float32),
        np.full(task.num_actions, 0.5, np.float32),
        np.eye(task.num_actions + 1, dtype=np.float32)[0],
        task.num_actions,
        True,
        1.0,
    ]
    for action in bad:
        with pytest.raises(ValueError, match="one-hot|out of range"):
            task.step(action)


def test_object_text_size_reward_space(make_task):
    task = make_task(rew_space="ObjectTextSizeBytes")
    task.reset()
    init, base = task.env.observation["ObjectTextSizeO0"], task.env.observation["ObjectTextSizeOz"]
    obs = task.step(11)  # an Autophase action that shrinks qsort's .text
    size = task.env.observation["ObjectTextSizeBytes"]
    assert size < init and obs["reward"] == pytest.approx((init - size) / max(init - base, 1), abs=1e-6)


def test_subsequence_action_space(make_task):
    task = make_task(act_space="SubseqAutophase")
    assert task.num_actions == 74
    task.reset()
    obs = task.step(5)  # PosetRL sub-sequence: several passes in one step
    assert obs["count"] < obs["O0"] and not obs["is_last"]


# ---------------------------------------------------------------------------------------------
# Benchmark iteration (REFERENCE §2.6)


def test_val_mode_cycles_in_order_and_can_repeat(make_task, programs):
    task = make_task(mode="val")
    uris = [task.reset()["benchmark"] for _ in range(4)]
    names = [b.uri for b in programs.values()]
    assert uris == names + names[:1]
    assert task.reset(switch_benchmark=False)["benchmark"] == names[0]


def test_train_mode_samples_with_replacement_seeded(make_task, programs):
    names = [b.uri for b in programs.values()]
    rng = np.random.RandomState(7)  # the reference's sampler: RandomState(seed), uniform with replacement
    expected = [names[rng.randint(0, len(names))] for _ in range(8)]
    for _ in range(2):  # same seed, same order
        task = make_task(mode="train", seed=7)
        assert [task.reset()["benchmark"] for _ in range(8)] == expected
    other = make_task(mode="train", seed=8)
    assert [other.reset()["benchmark"] for _ in range(8)] != expected


def test_reset_skips_bad_benchmarks(make_task, programs, tmp_path, caplog):
    empty = tmp_path / "empty.ll"
    empty.write_text("declare i32 @f()\n")
    missing = tmp_path / "missing.bc"
    task = make_task(benchmarks=[str(missing), str(empty), programs["crc32"]])
    with caplog.at_level(logging.WARNING, logger="compilerdream.task"):
        obs = task.reset()
    assert obs["benchmark"] == programs["crc32"].uri
    assert str(missing) in caplog.text and str(empty) in caplog.text
    hopeless = make_task(benchmarks=[str(missing)])
    with pytest.raises(RuntimeError, match=f"{MAX_RESET_TRIES} benchmarks in a row"):
        hopeless.reset()


@pytest.mark.skipif(find_tool("csmith", required=False) is None, reason="csmith is not installed")
def test_csmith_generator_through_the_dataset_adapter(tmp_path, monkeypatch):
    monkeypatch.setenv("COMPILERDREAM_CACHE", str(tmp_path))  # generated programs go here, not ~/.cache
    config = {"compilergym.max_step": 2}
    with CompilerTask("csmith", "val", config, seed=0) as task:  # val: seeds 50, 51, ... in order
        assert task.reset()["benchmark"] == "generator://csmith-v0/50"
        assert "error" not in task.step(1)
    with (
        CompilerTask("csmith", "train", config, seed=0) as first,
        CompilerTask("csmith", "train", config, seed=0) as again,
    ):
        uri = first.reset()["benchmark"]
        assert uri.startswith("generator://csmith-v0/") and again.reset()["benchmark"] == uri
