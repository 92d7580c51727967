"""Rewards equal CompilerGym's definitions (REFERENCE §6.5), computed here from observed costs."""

from __future__ import annotations

import pytest

import compilerdream.compiler as cc

from .helpers import random_actions

IR_REWARDS = ("IrInstructionCount", "IrInstructionCountNorm", "IrInstructionCountO3", "IrInstructionCountOz")


def expected_reward(name: str, previous: int, current: int, o0: int, o3: int, oz: int) -> float:
    """REFERENCE §6.5: the cost delta, raw, over O0, or over max(O0 - baseline, 1)."""
    delta = previous - current
    scale = {"": 1, "Norm": max(o0, 1), "O3": max(o0 - o3, 1), "Oz": max(o0 - oz, 1)}[
        name.replace("IrInstructionCount", "")
    ]
    return delta / scale


@pytest.mark.parametrize("reward_space", IR_REWARDS)
def test_step_rewards_match_definition(reward_space, program_bitcode):
    """Every step's reward equals the definition applied to the counts before and after the step."""
    with cc.make("llvm-v0", benchmark=program_bitcode["csmith_94"], reward_space=reward_space, isolation="none") as env:
        env.reset()
        o0, o3, oz = (int(env.observation[f"IrInstructionCount{b}"]) for b in ("O0", "O3", "Oz"))
        previous = int(env.observation["IrInstructionCount"])
        assert previous == o0
        total = 0.0
        for action in random_actions(124, 25, seed=7):
            _, reward, _, _, _ = env.step(action)
            current = int(env.observation["IrInstructionCount"])
            assert reward == pytest.approx(expected_reward(reward_space, previous, current, o0, o3, oz), abs=1e-12)
            total += reward
            previous = current
        assert env.episode_reward == pytest.approx(total, abs=1e-9)
        assert env.episode_reward == pytest.approx(expected_reward(reward_space, o0, previous, o0, o3, oz), abs=1e-9)


@pytest.mark.parametrize("program", ["qsort", "shapes", "csmith_258"])
def test_cumulative_oz_reward_is_normalised_improvement(program, program_bitcode):
    """Cumulative IrInstructionCountOz reward = (O0 - c) / max(O0 - Oz, 1); applying Oz's own pipeline scores 1."""
    with cc.make("llvm-ic-v0", benchmark=program_bitcode[program], isolation="none") as env:
        env.reset()
        o0, oz = int(env.observation["IrInstructionCountO0"]), int(env.observation["IrInstructionCountOz"])
        env.multistep(random_actions(124, 30, seed=1))
        c = int(env.observation["IrInstructionCount"])
        assert env.episode_reward == pytest.approx((o0 - c) / max(o0 - oz, 1), abs=1e-9)
        env.reset()
        env.step("default<Oz>")
        assert int(env.observation["IrInstructionCount"]) == oz
        assert env.episode_reward == pytest.approx(1.0, abs=1e-12)


def test_multistep_with_several_reward_spaces(program_bitcode):
    """multistep(reward_spaces=[...]) returns one reward per space; only the env's own space is accumulated."""
    with cc.make("llvm-ic-v0", benchmark=program_bitcode["qsort"], isolation="none") as env:
        env.reset()
        o0, o3, oz = (int(env.observation[f"IrInstructionCount{b}"]) for b in ("O0", "O3", "Oz"))
        _, rewards, _, _, _ = env.multistep(["-mem2reg", "-gvn"], reward_spaces=list(IR_REWARDS))
        c = int(env.observation["IrInstructionCount"])
        assert rewards == pytest.approx([expected_reward(r, o0, c, o0, o3, oz) for r in IR_REWARDS])
        assert env.episode_reward == 0.0  # lists of spaces return values but do not add to the episode


def test_lazy_reward_does_not_commit(program_bitcode):
    """env.reward[name] reports the reward of the current state without moving the reference cost."""
    with cc.make("llvm-ic-v0", benchmark=program_bitcode["matmul"], isolation="none") as env:
        env.reset()
        _, first, _, _, _ = env.step("-mem2reg")
        peek = env.reward["IrInstructionCountOz"]
        assert peek == 0.0 and env.reward["IrInstructionCountOz"] == 0.0
        _, second, _, _, _ = env.step("-instcombine")
        assert second > 0 and env.episode_reward == pytest.approx(first + second)


def test_changing_reward_space_mid_episode(program_bitcode):
    """Setting env.reward_space mid-episode starts measuring from the current cost."""
    with cc.make("llvm-v0", benchmark=program_bitcode["crc32"], isolation="none") as env:
        env.reset()
        env.step("-mem2reg")
        env.reward_space = "IrInstructionCount"
        before = int(env.observation["IrInstructionCount"])
        _, reward, _, _, _ = env.step("-instcombine")
        assert reward == before - int(env.observation["IrInstructionCount"])


def test_object_text_size_reward_matches_observations(program_bitcode):
    """ObjectTextSizeOz: (previous .text size - current) / max(O0 size - Oz size, 1)."""
    with cc.make("llvm-codesize-v0", benchmark=program_bitcode["crc32"], isolation="none") as env:
        env.reset()
        o0, oz = int(env.observation["ObjectTextSizeO0"]), int(env.observation["ObjectTextSizeOz"])
        previous = int(env.observation["ObjectTextSizeBytes"])
        for action in ("-mem2reg", "-instcombine", "-simplifycfg"):
            _, reward, _, _, _ = env.step(action)
            current = int(env.observation["ObjectTextSizeBytes"])
            assert reward == pytest.approx((previous - current) / max(o0 - oz, 1), abs=1e-12)
            previous = current


@pytest.mark.parametrize("reward_space", ["IrInstructionCountOz", "ObjectTextSizeBytes"])
def test_trace_commits_rewards_like_steps(reward_space, program_bitcode):
    """env.trace gives the counts and rewards that one step per action gives, and leaves the reward state where they do."""
    passes = ["-mem2reg", "-instcombine", "-simplifycfg", "-gvn"]
    with cc.make("llvm-v0", benchmark=str(program_bitcode["qsort"]), reward_space=reward_space) as env:
        env.reset()
        stepped = [env.step(p) for p in passes]
        counts = [int(env.observation["IrInstructionCount"])]
        after_steps = env.step("-dce")[1]
        env.reset()
        traced = env.trace(passes)
        assert traced.error is None and traced.counts[-1] == counts[0]
        if reward_space == "IrInstructionCountOz":  # per pass; a text-size reward comes whole on the last step
            assert traced.rewards == pytest.approx([s[1] for s in stepped])
        assert sum(traced.rewards) == pytest.approx(sum(s[1] for s in stepped))
        assert env.episode_reward == pytest.approx(sum(s[1] for s in stepped))
        assert env.step("-dce")[1] == pytest.approx(after_steps)
