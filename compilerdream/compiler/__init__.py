"""compilerdream.compiler: CompilerGym's LLVM environment rebuilt on LLVM 19+ (imports no torch).

    >>> import compilerdream.compiler as cc
    >>> env = cc.make("llvm-autophase-ic-v0", benchmark="file:///path/prog.bc")
    >>> obs, info = env.reset()
    >>> obs, reward, terminated, truncated, info = env.step(env.action_space.flags.index("-mem2reg"))
"""

from __future__ import annotations

from .benchmarks import Benchmark, resolve_benchmark
from .env import CompilerEnvState, LlvmEnv, ValidationResult
from .errors import (
    ActionOutOfRangeError,
    BenchmarkNotFoundError,
    CompileError,
    CompilerDreamError,
    EmptyModuleError,
    MalformedInputError,
    SessionError,
    ToolNotFoundError,
    UnknownNameError,
)
from .spaces import ActionSpace, action_space, pass_flags

#: Environment ids (CompilerGym's), with their default observation and reward spaces.
ENV_SPECS: dict[str, dict] = {
    "llvm-v0": {},
    "llvm-ic-v0": {"reward_space": "IrInstructionCountOz"},
    "llvm-codesize-v0": {"reward_space": "ObjectTextSizeOz"},
    "llvm-autophase-ic-v0": {"observation_space": "Autophase", "reward_space": "IrInstructionCountOz"},
    "llvm-autophase-codesize-v0": {"observation_space": "Autophase", "reward_space": "ObjectTextSizeOz"},
    "llvm-ir-ic-v0": {"observation_space": "Ir", "reward_space": "IrInstructionCountOz"},
    "llvm-ir-codesize-v0": {"observation_space": "Ir", "reward_space": "ObjectTextSizeOz"},
}

_UNSET = object()


def make(
    id: str,
    benchmark=None,
    observation_space=_UNSET,
    reward_space=_UNSET,
    action_space=None,
    **kwargs,
) -> LlvmEnv:
    """Create an LLVM environment by CompilerGym id (`llvm-v0`, `llvm-ic-v0`, ...)."""
    key = id.split("/", 1)[-1]
    if key not in ENV_SPECS:
        raise UnknownNameError(f"unknown environment id '{id}': choose one of {', '.join(ENV_SPECS)}")
    spec = dict(ENV_SPECS[key])
    if observation_space is not _UNSET:
        spec["observation_space"] = observation_space
    if reward_space is not _UNSET:
        spec["reward_space"] = reward_space
    if action_space is not None:
        spec["action_space"] = action_space
    return LlvmEnv(benchmark=benchmark, **spec, **kwargs)


def _register_with_gymnasium() -> None:
    import gymnasium

    for env_id, spec in ENV_SPECS.items():
        full = f"compilerdream/{env_id}"
        if full not in gymnasium.registry:
            gymnasium.register(
                id=full,
                entry_point="compilerdream.compiler:_gym_entry",
                kwargs={"env_id": env_id},
                # Like CompilerGym's, these ids have no observation space by default, which
                # gymnasium's passive checker (run by gymnasium.make) rejects outright.
                disable_env_checker="observation_space" not in spec,
            )


def _gym_entry(env_id: str, **kwargs) -> LlvmEnv:
    return make(env_id, **kwargs)


_register_with_gymnasium()

__all__ = [
    "ActionOutOfRangeError",
    "ActionSpace",
    "Benchmark",
    "BenchmarkNotFoundError",
    "CompileError",
    "CompilerDreamError",
    "CompilerEnvState",
    "ENV_SPECS",
    "EmptyModuleError",
    "LlvmEnv",
    "MalformedInputError",
    "SessionError",
    "ToolNotFoundError",
    "UnknownNameError",
    "ValidationResult",
    "action_space",
    "make",
    "pass_flags",
    "resolve_benchmark",
]
