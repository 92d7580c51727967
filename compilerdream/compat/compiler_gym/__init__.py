"""compiler_gym: CompilerGym 0.2.5's Python API (LLVM environments) on compilerdream's LLVM 19 engine.

Scripts written for CompilerGym run unchanged:

    >>> import compiler_gym
    >>> env = compiler_gym.make("llvm-autophase-ic-v0", benchmark="cbench-v1/crc32")
    >>> observation = env.reset()
    >>> observation, reward, done, info = env.step(env.action_space.sample())

This package is compilerdream's, not Meta's: `compiler_gym.__compilerdream__` holds
compilerdream's version (the real CompilerGym has no such attribute), and
`compiler_gym.__version__` is the CompilerGym API version implemented. See the README,
"Coming from CompilerGym", for what differs (LLVM 19 counts, no ProGraML/inst2vec, no gRPC).
"""

from __future__ import annotations

import importlib.metadata
import os
import warnings
from pathlib import Path

from compilerdream.compiler import ENV_SPECS

from .compiler_env_state import CompilerEnvState, CompilerEnvStateReader, CompilerEnvStateWriter
from .datasets import Benchmark, Dataset, Datasets
from .envs import CompilerEnv, LlvmEnv
from .errors import (
    BenchmarkInitError,
    DatasetInitError,
    EnvironmentNotSupported,
    ServiceError,
    ServiceInitError,
    ServiceIsClosed,
    ServiceOSError,
    ServiceTransportError,
    SessionNotFound,
)
from .validation_result import ValidationError, ValidationResult

#: The CompilerGym API version this package implements.
__version__ = "0.2.5"
#: compilerdream's version: present only on compilerdream's compiler_gym, so `hasattr` tells the two apart.
__compilerdream__ = "0.1.0"

#: Environment ids -> their default observation and reward spaces: CompilerGym's LLVM ids, as our
#: own environment registers them (`compilerdream.compiler.ENV_SPECS`).
COMPILER_GYM_ENVS = list(ENV_SPECS)

_UNSET = object()


def make(id: str, benchmark=None, observation_space=_UNSET, reward_space=_UNSET, **kwargs) -> LlvmEnv:
    """An LLVM environment by CompilerGym id (`llvm-v0`, `llvm-ic-v0`, `llvm-autophase-ic-v0`, ...).

    Keyword arguments override the id's defaults; others (`action_space`, `data_root`,
    `step_timeout`) go to LlvmEnv.
    """
    key = str(id).split(":", 1)[-1].split("/", 1)[-1]
    if key not in ENV_SPECS:
        raise LookupError(f"unknown environment id '{id}': choose one of {', '.join(ENV_SPECS)}")
    spec = dict(ENV_SPECS[key])
    if observation_space is not _UNSET:
        spec["observation_space"] = observation_space
    if reward_space is not _UNSET:
        spec["reward_space"] = reward_space
    return LlvmEnv(benchmark=benchmark, **spec, **kwargs)


def validate_states(make_env, states, nproc: int | None = None, inorder: bool = False):
    """Validate each state on an environment from `make_env()`, in order (one process); yields ValidationResults."""
    env = make_env()
    try:
        for state in states:
            yield env.validate(state)
    finally:
        env.close()


def site_data_path(relpath: str | os.PathLike = "") -> Path:
    """Where our datasets are installed: compilerdream's data root ($COMPILERDREAM_DATA, else ./data).

    Datasets a CompilerGym install left in its own site data directory
    (`compiler_gym.datasets.compiler_gym_site_data()`) are also found, and only read.
    """
    from compilerdream.compiler.datasets import data_root

    return data_root() / relpath


def cache_path(relpath: str | os.PathLike = "") -> Path:
    """compilerdream's cache root ($COMPILERDREAM_CACHE, else ~/.cache/compilerdream)."""
    from compilerdream.compiler.datasets import cache_root

    return cache_root() / relpath


def _gym_entry(env_id: str, **kwargs) -> LlvmEnv:
    return make(env_id, **kwargs)


def _register() -> None:
    """Register the ids with gymnasium (and with the old gym when it is importable) under CompilerGym's names.

    No order enforcing or checker wrappers: `gymnasium.make("llvm-v0")` returns the
    LlvmEnv itself, so `env.observation[...]`, `env.fork()`, ... work on it, and its
    old-gym step API is not rejected by gymnasium's passive checker.
    """
    import gymnasium

    for env_id in ENV_SPECS:
        if env_id not in gymnasium.registry:
            gymnasium.register(
                id=env_id,
                entry_point="compiler_gym:_gym_entry",
                kwargs={"env_id": env_id},
                order_enforce=False,
                disable_env_checker=True,
            )
    try:
        import gym  # noqa: F401  (only when the old package is installed)
    except Exception:
        return
    try:
        for env_id in ENV_SPECS:
            if env_id not in gym.envs.registry:
                gym.register(id=env_id, entry_point="compiler_gym:_gym_entry", kwargs={"env_id": env_id})
    except Exception as exc:  # an old gym that cannot register is no reason to fail the import
        warnings.warn(f"compiler_gym: could not register environments with gym: {exc}", stacklevel=2)


def _warn_if_shadowing() -> None:
    """A distribution named compiler-gym (Meta's) installed beside us: say which package this import found."""
    if os.environ.get("COMPILERDREAM_QUIET_COMPILER_GYM"):
        return
    try:
        other = importlib.metadata.distribution("compiler-gym")
    except importlib.metadata.PackageNotFoundError:
        return
    warnings.warn(
        f"another distribution named compiler-gym ({other.version}) is installed; `import compiler_gym` "
        f"loaded compilerdream's compatibility package ({os.path.dirname(__file__)}). "
        "Uninstall one of the two (pip uninstall compiler-gym) to choose; "
        "`hasattr(compiler_gym, '__compilerdream__')` tells which one you have.",
        stacklevel=2,
    )


_register()
_warn_if_shadowing()

__all__ = [
    "COMPILER_GYM_ENVS",
    "Benchmark",
    "BenchmarkInitError",
    "CompilerEnv",
    "CompilerEnvState",
    "CompilerEnvStateReader",
    "CompilerEnvStateWriter",
    "Dataset",
    "DatasetInitError",
    "Datasets",
    "EnvironmentNotSupported",
    "LlvmEnv",
    "ServiceError",
    "ServiceInitError",
    "ServiceIsClosed",
    "ServiceOSError",
    "ServiceTransportError",
    "SessionNotFound",
    "ValidationError",
    "ValidationResult",
    "cache_path",
    "make",
    "site_data_path",
    "validate_states",
]
