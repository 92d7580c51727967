"""Helpers of the compiler_gym tests: paths, running scripts with this checkout's compiler_gym, native replays."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
COMPAT_DIR = ROOT / "compilerdream" / "compat"
SCRIPTS = Path(__file__).resolve().parent / "scripts"
PROGRAMS = ROOT / "tests" / "fixtures" / "programs"
CRC32_BC = COMPAT_DIR / "compiler_gym" / "data" / "cbench-v1" / "crc32.bc"
CRC32_URI = "benchmark://cbench-v1/crc32"


def script_env(data_root: Path, **extra: str) -> dict:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(COMPAT_DIR), str(ROOT), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    env["COMPILERDREAM_DATA"] = str(data_root)
    env["COMPILERDREAM_QUIET_COMPILER_GYM"] = "1"
    env.update(extra)
    return env


def run_python(args: list[str], data_root: Path, cwd: Path, timeout: float = 240) -> subprocess.CompletedProcess:
    """Run `python ARGS` with this checkout's compiler_gym first on the path."""
    return subprocess.run(
        [sys.executable, *args], capture_output=True, text=True, timeout=timeout, cwd=cwd, env=script_env(data_root)
    )


def run_script(name: str, data_root: Path, cwd: Path, *args: str) -> dict:
    """Run tests/compat/scripts/NAME unchanged; its last stdout line is a JSON summary."""
    proc = run_python([str(SCRIPTS / name), *args], data_root, cwd)
    assert proc.returncode == 0, f"{name} failed ({proc.returncode}):\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    return json.loads(proc.stdout.strip().splitlines()[-1])


def native_env(benchmark, reward_space: str = "IrInstructionCountOz", **kwargs):
    """Our own environment (compilerdream.compiler, gymnasium API) on a Benchmark, a path or bytes."""
    from compilerdream.compiler import Benchmark, make

    if isinstance(benchmark, (bytes, bytearray)):
        benchmark = Benchmark.from_bytes(bytes(benchmark), CRC32_URI)
    return make("llvm-v0", benchmark=benchmark, reward_space=reward_space, **kwargs)


def crc32_benchmark():
    from compilerdream.compiler import Benchmark

    return Benchmark.from_bytes(CRC32_BC.read_bytes(), CRC32_URI)


def native_replay(benchmark, actions: Sequence, reward_space: str = "IrInstructionCountOz") -> dict:
    """Rewards, episode reward and final instruction count of `actions` (indices or flags) in our environment."""
    with native_env(benchmark, reward_space) as env:
        env.reset()
        rewards = []
        for action in actions:
            _, reward, terminated, _, info = env.step(action)
            assert not terminated, info
            rewards.append(reward)
        return {
            "rewards": rewards,
            "episode_reward": env.episode_reward,
            "instcount": int(env.observation["IrInstructionCount"]),
            "commandline": env.commandline(),
        }
