"""The gymnasium face of the env: registration, the env checker, ids, space setters, and no torch import."""

from __future__ import annotations

import subprocess
import sys
import warnings

import gymnasium
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

import compilerdream.compiler as cc


def test_import_does_not_pull_torch():
    """`import compilerdream.compiler` in a fresh interpreter imports neither torch nor the agent package."""
    code = (
        "import sys, compilerdream.compiler as cc; cc.action_space('NoLimit'); "
        "bad = [m for m in sys.modules if m == 'torch' or m.startswith(('torch.', 'compilerdream.agent'))]; "
        "print(bad); sys.exit(1 if bad else 0)"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_gymnasium_env_checker_passes(program_bitcode):
    """gymnasium's check_env accepts llvm-autophase-ic-v0 without warnings."""
    env = cc.make("llvm-autophase-ic-v0", benchmark=program_bitcode["qsort"])
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # any checker warning fails the test
            check_env(env, skip_render_check=True)
    finally:
        env.close()


def test_gymnasium_make(program_bitcode):
    """gymnasium.make('compilerdream/llvm-ic-v0', benchmark=...) builds a working env with CompilerGym's defaults."""
    env = gymnasium.make("compilerdream/llvm-ic-v0", benchmark=str(program_bitcode["crc32"]))
    try:
        obs, info = env.reset(seed=0)
        assert obs is None and info["benchmark"].endswith("crc32.bc")
        _, reward, terminated, truncated, _ = env.step(103)
        assert reward > 0 and not terminated and not truncated
        assert env.unwrapped.reward_space.name == "IrInstructionCountOz"
        obs, _ = env.reset(options={"benchmark": str(program_bitcode["qsort"])})
        assert env.unwrapped.benchmark.name == "qsort.bc"
    finally:
        env.close()


@pytest.mark.parametrize(
    "env_id, observation, reward",
    [
        ("llvm-v0", None, None),
        ("llvm-ic-v0", None, "IrInstructionCountOz"),
        ("llvm-codesize-v0", None, "ObjectTextSizeOz"),
        ("llvm-autophase-ic-v0", "Autophase", "IrInstructionCountOz"),
        ("llvm-autophase-codesize-v0", "Autophase", "ObjectTextSizeOz"),
        ("llvm-ir-ic-v0", "Ir", "IrInstructionCountOz"),
        ("compilerdream/llvm-ic-v0", None, "IrInstructionCountOz"),
    ],
)
def test_env_ids_set_compilergym_default_spaces(env_id, observation, reward, program_bitcode):
    """Each CompilerGym id selects its observation and reward space; explicit arguments override them."""
    with cc.make(env_id, benchmark=program_bitcode["qsort"], isolation="none") as env:
        assert env.observation_space_name == observation
        assert (env.reward_space.name if env.reward_space else None) == reward
    with cc.make(
        env_id, benchmark=program_bitcode["qsort"], observation_space="InstCount", reward_space=None, isolation="none"
    ) as env:
        obs, _ = env.reset()
        assert obs.shape == (70,) and env.reward_space is None
        assert env.step(0)[1] is None


def test_observation_space_setter_and_reset_arguments(program_bitcode):
    """env.observation_space = name switches what step returns; reset(observation_space=...) too."""
    with cc.make("llvm-v0", benchmark=program_bitcode["matmul"], isolation="none") as env:
        env.reset()
        env.observation_space = "Autophase"
        assert env.step("-mem2reg")[0].shape == (56,)
        env.observation_space = "IrInstructionCount"
        assert isinstance(env.step("-gvn")[0], np.int64)
        obs, _ = env.reset(observation_space="InstCountNorm", reward_space="IrInstructionCountNorm")
        assert obs.dtype == np.float32 and obs.shape == (69,)
        assert env.step(0)[1] is not None


def test_multistep_returns_lists_for_lists_of_spaces(program_bitcode):
    """multistep with observation_spaces/reward_spaces lists returns one value per requested space."""
    with cc.make("llvm-v0", benchmark=program_bitcode["qsort"], isolation="none") as env:
        env.reset()
        obs, rewards, terminated, _, info = env.multistep(
            ["-mem2reg", "-early-cse"],
            observation_spaces=["IrInstructionCount", "Autophase", "IrInstructionCountOz"],
            reward_spaces=["IrInstructionCount"],
        )
        assert len(obs) == 3 and obs[1].shape == (56,) and obs[0] == obs[1][51]
        assert isinstance(rewards, list) and len(rewards) == 1 and not terminated
        assert info["action_had_no_effect"] is False
        assert env.actions == ["-mem2reg", "-early-cse"]


def test_action_space_sample_is_seeded(program_bitcode):
    """env.action_space is a gymnasium Discrete: seeded sampling is reproducible and contained."""
    with cc.make("llvm-v0", benchmark=program_bitcode["qsort"], action_space="Autophase", isolation="none") as env:
        env.action_space.seed(0)
        first = [int(env.action_space.sample()) for _ in range(10)]
        env.action_space.seed(0)
        assert [int(env.action_space.sample()) for _ in range(10)] == first
        assert all(env.action_space.contains(a) for a in first) and env.action_space.n == 42
