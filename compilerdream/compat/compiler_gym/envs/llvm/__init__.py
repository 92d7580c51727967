"""compiler_gym.envs.llvm: the LLVM environment, user benchmarks and one-off observations."""

from __future__ import annotations

import os
from pathlib import Path

from compilerdream.compiler.benchmarks import Benchmark as _NativeBenchmark

from ...errors import compilergym_errors
from ...spaces import space_name
from .llvm_benchmark import ClangInvocation, get_system_library_flags, make_benchmark, make_benchmark_from_command_line
from .llvm_env import LlvmEnv


def compute_observation(observation_space, bitcode: str | os.PathLike, timeout: float = 300):
    """The observation `observation_space` (a name or spec) of a bitcode file, without an environment."""
    name = space_name(observation_space)
    with compilergym_errors():
        benchmark = _NativeBenchmark.from_file(Path(bitcode))
    env = LlvmEnv(benchmark=benchmark, step_timeout=float(timeout))
    try:
        env.reset()
        return env.observation[name]
    finally:
        env.close()


__all__ = [
    "ClangInvocation",
    "LlvmEnv",
    "compute_observation",
    "get_system_library_flags",
    "make_benchmark",
    "make_benchmark_from_command_line",
]
