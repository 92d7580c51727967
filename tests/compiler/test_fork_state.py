"""fork(), state, apply(state), validate() and writing the module out."""

from __future__ import annotations

import dataclasses

import pytest

import compilerdream.compiler as cc

from .helpers import count_instructions, random_actions


@pytest.mark.parametrize("isolation", ["none", "process"])
def test_fork_is_independent(isolation, program_bitcode):
    """Stepping a fork leaves the parent unchanged and vice versa; the fork starts from the parent's state."""
    with cc.make("llvm-ic-v0", benchmark=program_bitcode["qsort"], isolation=isolation) as env:
        env.reset()
        env.multistep(["-mem2reg", "-simplifycfg"])
        parent_ir, parent_reward = env.observation["Ir"], env.episode_reward
        fork = env.fork()
        try:
            assert fork.observation["Ir"] == parent_ir
            assert fork.actions == env.actions and fork.episode_reward == parent_reward
            fork.multistep(["-inline", "-gvn", "-instcombine"])
            assert env.observation["Ir"] == parent_ir
            assert env.actions == ["-mem2reg", "-simplifycfg"] and env.episode_reward == parent_reward
            fork_ir = fork.observation["Ir"]
            assert fork_ir != parent_ir
            env.multistep(["-loop-rotate", "-licm"])
            assert fork.observation["Ir"] == fork_ir
            assert len(fork.actions) == 5 and len(env.actions) == 4
        finally:
            fork.close()
        assert int(env.observation["IrInstructionCount"]) > 0  # closing the fork does not touch the parent


@pytest.mark.parametrize("program", ["qsort", "matmul", "csmith_94"])
def test_fork_then_same_actions_gives_same_module(program, program_bitcode):
    """A fork and its parent given the same further actions end with the same features.

    Regression: llvm::CloneModule does not keep use-list orders, which passes follow; with
    seed 11 a fork of qsort ended with 241 instructions and its parent with 242.
    """
    for seed in (11, 12, 13):
        actions = random_actions(124, 40, seed)
        with cc.make("llvm-v0", benchmark=program_bitcode[program], isolation="none") as env:
            env.reset()
            env.step(actions[0])
            fork = env.fork()
            assert fork.observation["Ir"] == env.observation["Ir"]  # use-list orders show in `; preds = ...`
            env.multistep(actions[1:])
            fork.multistep(actions[1:])
            assert fork.observation["Autophase"].tolist() == env.observation["Autophase"].tolist(), seed
            fork.close()


def test_fork_reward_continues_from_parent(program_bitcode):
    """A fork's next reward is measured from the parent's last cost, like the parent's own would be."""
    with cc.make("llvm-ic-v0", benchmark=program_bitcode["crc32"], isolation="none") as env:
        env.reset()
        env.step("-mem2reg")
        fork = env.fork()
        parent_reward = env.step("-instcombine")[1]
        fork_reward = fork.step("-instcombine")[1]
        assert fork_reward == parent_reward and fork.episode_reward == env.episode_reward
        fork.close()


@pytest.mark.parametrize("space", ["NoLimit", "Autophase", "SubseqAutophase"])
def test_apply_state_reproduces_episode(space, program_bitcode):
    """apply(env.state) in a new env gives the same count, reward and (index) actions."""
    path = program_bitcode["csmith_94"]
    with cc.make("llvm-ic-v0", benchmark=path, action_space=space, isolation="none") as env:
        env.reset()
        actions = random_actions(env.action_space.n, 25, seed=5)
        env.multistep(actions)
        state, count = env.state, int(env.observation["IrInstructionCount"])
    assert state.benchmark == "file://" + str(path.resolve()) and state.reward is not None
    with cc.make("llvm-ic-v0", action_space=space, isolation="none") as replay:
        replay.apply(state)
        assert int(replay.observation["IrInstructionCount"]) == count
        assert replay.episode_reward == pytest.approx(state.reward, rel=1e-9)
        assert all(isinstance(a, int) for a in replay.actions)
        assert [p for a in replay.actions for p in replay.action_space.pipelines(a)] == [
            p for a in actions for p in replay.action_space.pipelines(a)
        ]


def test_validate_accepts_own_state_and_rejects_wrong_reward(program_bitcode):
    """validate() replays the state in a fresh session: ok for the env's own state, an error for a wrong reward."""
    with cc.make("llvm-ic-v0", benchmark=program_bitcode["matmul"]) as env:
        env.reset()
        env.multistep(random_actions(124, 20, seed=2))
        result = env.validate()
        assert result.okay and result.reward_validated, result.errors
        bad = env.validate(dataclasses.replace(env.state, reward=env.episode_reward + 1.0))
        assert not bad.okay and "reward mismatch" in bad.errors[0]


def test_state_to_json_round_trip(program_bitcode):
    """The state serialises to plain JSON types and rebuilds into an equal, replayable state."""
    import json

    with cc.make("llvm-ic-v0", benchmark=program_bitcode["qsort"], isolation="none") as env:
        env.reset()
        env.multistep(["-sroa", "-gvn"])
        data = json.loads(json.dumps(env.state.to_json()))
        state = cc.CompilerEnvState(**data)
        assert state.commandline == env.state.commandline
        assert env.validate(state).okay


def test_write_bitcode_and_ir(program_bitcode, tmp_path):
    """write_bitcode/write_ir write the current module: reloading gives the same instruction count."""
    with cc.make("llvm-v0", benchmark=program_bitcode["statemachine"], isolation="none") as env:
        env.reset()
        env.multistep(["-mem2reg", "-simplifycfg", "-instcombine"])
        count = int(env.observation["IrInstructionCount"])
        env.write_bitcode(tmp_path / "m.bc")
        env.write_ir(tmp_path / "m.ll")
    assert count_instructions(tmp_path / "m.bc") == count
    assert count_instructions((tmp_path / "m.ll").read_bytes()) == count
    with cc.make("llvm-v0", benchmark=tmp_path / "m.ll", isolation="none") as env:
        env.reset()
        assert int(env.observation["IrInstructionCount"]) == count


def test_reset_restarts_from_the_original_program(program_bitcode):
    """reset() discards the episode: actions, reward and module return to the benchmark's initial state."""
    with cc.make("llvm-ic-v0", benchmark=program_bitcode["qsort"], observation_space="IrInstructionCount") as env:
        first, _ = env.reset()
        env.multistep(["-mem2reg", "-gvn"])
        again, info = env.reset()
        assert again == first and env.actions == [] and env.episode_reward == 0.0
        assert info["benchmark"].startswith("file://")
