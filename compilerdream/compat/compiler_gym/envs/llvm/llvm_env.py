"""CompilerGym 0.2.5's LlvmEnv on compilerdream's environment: old gym API, CompilerGym's names and errors.

The native environment (compilerdream.compiler.LlvmEnv) speaks gymnasium: `reset()` returns
`(obs, info)` and `step()` five values. This subclass keeps everything else (sessions in a
worker process, baselines, rewards, fork) and changes only what CompilerGym code sees:
`reset()` returns the observation, `step()`/`multistep()` return `(obs, reward, done, info)`,
errors carry CompilerGym's class names, states and validation results are CompilerGym's.
"""

from __future__ import annotations

import abc
import logging
import math
import os
import time
import warnings
from collections.abc import Collection, Iterable
from typing import Any

from compilerdream.compiler import env as native_env
from compilerdream.compiler._core import LLVM_VERSION
from compilerdream.compiler.errors import SessionError, UnknownNameError
from compilerdream.compiler.spaces import (
    OBSERVATION_SPACE_NAMES,
    REWARD_SPACES,
    observation_space_spec,
    parse_commandline_flags,
    pass_flags,
    reward_spec,
)

from ...compiler_env_state import CompilerEnvState
from ...datasets import Benchmark, Datasets, resolve
from ...errors import ServiceIsClosed, SessionNotFound, compilergym_errors
from ...semantics import run_callbacks
from ...spaces import ActionSpace, Reward, llvm_action_space, observation_spec, space_name
from ...validation_result import ValidationError, ValidationResult
from .llvm_benchmark import make_benchmark

logger = logging.getLogger("compiler_gym")

#: CompilerGym's default benchmark; when cbench-v1 is not installed, the bundled crc32 is used instead.
DEFAULT_BENCHMARK = "benchmark://cbench-v1/qsort"
FALLBACK_BENCHMARK = "benchmark://cbench-v1/crc32"

_UNCHANGED: Any = object()


class _SpaceView:
    """Values of named spaces: `view["Name"]`, `view.Name()` and `view.spaces` (name -> space)."""

    kind = ""  # "observation" or "reward", for messages
    _names: Collection[str] = ()

    def __init__(self, env: LlvmEnv):
        self._env = env

    def _value(self, name: str | None):
        raise NotImplementedError

    def __getitem__(self, space):
        with compilergym_errors():
            return self._value(space_name(space))

    def __getattr__(self, name: str):
        if name.startswith("_") or name not in self._names:
            raise AttributeError(f"no {self.kind} space '{name}'")
        return lambda: self[name]


class ObservationView(_SpaceView):
    """`env.observation["Autophase"]`, `env.observation.Autophase()`, `env.observation.spaces`."""

    kind = "observation"
    _names = OBSERVATION_SPACE_NAMES

    @property
    def spaces(self) -> dict:
        return {name: observation_spec(name) for name in OBSERVATION_SPACE_NAMES}

    def _value(self, name):
        return self._env._observe_one(name)


class RewardView(_SpaceView):
    """`env.reward["IrInstructionCountOz"]`: the reward of the state now against the last step (not committed)."""

    kind = "reward"
    _names = REWARD_SPACES

    @property
    def spaces(self) -> dict:
        return {name: Reward(spec) for name, spec in REWARD_SPACES.items()}

    def _value(self, name):
        return self._env._reward_one(name)


class CompilerEnv(abc.ABC):  # noqa: B024 (an interface for isinstance checks, and CompilerGym's step())
    """CompilerGym's environment interface: LlvmEnv and every wrapper of compiler_gym.wrappers are instances."""

    def step(self, action, observation_spaces=None, reward_spaces=None, observations=None, rewards=None, timeout=300):
        """Apply one action; returns `(observation, reward, done, info)`. A list of actions is the
        deprecated form of multistep()."""
        if isinstance(action, Iterable) and not isinstance(action, str):
            warnings.warn(
                "step() with a list of actions is deprecated: use multistep()", DeprecationWarning, stacklevel=2
            )
            return self.multistep(list(action), observation_spaces, reward_spaces, observations, rewards)
        return self.multistep([action], observation_spaces, reward_spaces, observations, rewards)


class LlvmEnv(native_env.LlvmEnv, CompilerEnv):
    """CompilerGym's `compiler_gym.envs.LlvmEnv`, running passes with LLVM 19's new pass manager."""

    # The native class comes first (fork() retypes its forks, which needs its instance layout), so
    # CompilerGym's step() is named here over gymnasium's.
    step = CompilerEnv.step

    def __init__(
        self,
        benchmark=None,
        observation_space=None,
        reward_space=None,
        action_space: str | None = None,
        data_root: str | os.PathLike | None = None,
        **kwargs,
    ):
        with compilergym_errors():
            # Names are checked before the worker process starts, so a typo leaks no process.
            if space_name(observation_space) is not None:
                observation_space_spec(space_name(observation_space))
            if space_name(reward_space) is not None:
                reward_spec(space_name(reward_space))
            super().__init__(
                benchmark=None,
                observation_space=space_name(observation_space),
                reward_space=space_name(reward_space),
                action_space=action_space if isinstance(action_space, ActionSpace) else llvm_action_space(action_space),
                data_root=data_root,
                **kwargs,
            )
        self._cg_datasets: Datasets | None = None
        self.benchmark = benchmark if benchmark is not None else self._default_benchmark()

    def _default_benchmark(self) -> str:
        if self.datasets.dataset("cbench-v1").installed:
            return DEFAULT_BENCHMARK
        logger.warning(
            "benchmark://cbench-v1 is not installed (compilerdream datasets install cbench-v1): "
            "the default benchmark is %s instead of %s",
            FALLBACK_BENCHMARK,
            DEFAULT_BENCHMARK,
        )
        return FALLBACK_BENCHMARK

    # ------------------------------------------------------------------ views
    @property
    def observation(self) -> ObservationView:
        return ObservationView(self)

    @observation.setter
    def observation(self, view) -> None:  # the native constructor assigns its own view; ours is a property
        pass

    @property
    def reward(self) -> RewardView:
        return RewardView(self)

    @reward.setter
    def reward(self, view) -> None:
        pass

    # ----------------------------------------------------------------- spaces
    @property
    def action_space(self) -> ActionSpace:  # type: ignore[override]
        return self._action_space

    @action_space.setter
    def action_space(self, space) -> None:
        self._action_space = space if isinstance(space, ActionSpace) else llvm_action_space(space)

    @property
    def action_spaces(self) -> list:
        return [self._action_space]

    @property
    def observation_space(self):  # type: ignore[override]
        return self._observation_space

    @observation_space.setter
    def observation_space(self, space) -> None:
        with compilergym_errors():
            native_env.LlvmEnv.observation_space.fset(self, space_name(space))  # type: ignore[attr-defined]

    @property
    def observation_space_spec(self):
        name = self.observation_space_name
        return observation_spec(name) if name else None

    @property
    def reward_space(self):
        name = self._reward_space_name
        return Reward(REWARD_SPACES[name]) if name else None

    @reward_space.setter
    def reward_space(self, space) -> None:
        with compilergym_errors():
            native_env.LlvmEnv.reward_space.fset(self, space_name(space))  # type: ignore[attr-defined]

    reward_space_spec = reward_space

    # ------------------------------------------------------------- benchmarks
    @property
    def datasets(self) -> Datasets:
        if self._cg_datasets is None:
            self._cg_datasets = Datasets(self.data_root)
        return self._cg_datasets

    @property
    def benchmark(self) -> Benchmark:
        if self._benchmark is None:
            self._benchmark = resolve(self._benchmark_spec, self.data_root)
        return self._benchmark  # type: ignore[return-value]

    @benchmark.setter
    def benchmark(self, spec) -> None:
        """Takes effect at the next reset(), as in CompilerGym; an unknown URI is an error now."""
        if spec is None:
            raise TypeError("benchmark must be a URI, a path or a Benchmark, not None")
        self._benchmark_spec = spec if isinstance(spec, (str, Benchmark, native_env.Benchmark)) else str(spec)
        self._benchmark = None

    def make_benchmark(self, inputs, copt=None, system_includes: bool = True, timeout: int = 600) -> Benchmark:  # type: ignore[override]
        return make_benchmark(inputs, copt=copt, system_includes=system_includes, timeout=timeout)

    # ------------------------------------------------------------- episodes
    @property
    def in_episode(self) -> bool:
        return self._session is not None and not self._closed

    @property
    def episode_walltime(self) -> float:
        return time.time() - self.episode_walltime_start

    @property
    def version(self) -> str:
        from compiler_gym import __version__

        return __version__

    @property
    def compiler_version(self) -> str:
        return f"LLVM {LLVM_VERSION}"

    def _check_open(self) -> None:
        if self._closed:
            raise ServiceIsClosed("the environment is closed: make a new one")

    def reset(  # type: ignore[override]
        self,
        benchmark=None,
        action_space=None,
        observation_space=_UNCHANGED,
        reward_space=_UNCHANGED,
        timeout: float = 300,
        retry_count: int = 0,
        seed: int | None = None,
        options: dict | None = None,
    ):
        """Start an episode; returns the observation of the observation space (None when unset)."""
        self._check_open()
        kwargs: dict = {}
        if observation_space is not _UNCHANGED:
            kwargs["observation_space"] = space_name(observation_space)
        if reward_space is not _UNCHANGED:
            kwargs["reward_space"] = space_name(reward_space)
        if benchmark is not None:
            self.benchmark = benchmark
        if action_space is not None:
            self.action_space = action_space
        if seed is not None:
            self._action_space.seed(seed)
        with compilergym_errors():
            observation, _ = super().reset(seed=seed, options=options, **kwargs)
        return observation

    def multistep(
        self, actions, observation_spaces=None, reward_spaces=None, observations=None, rewards=None, timeout=300
    ):  # type: ignore[override]
        """Apply several actions in one call; returns `(observation, reward, done, info)`."""
        observation_spaces = observation_spaces if observation_spaces is not None else observations
        reward_spaces = reward_spaces if reward_spaces is not None else rewards
        obs, reward, terminated, truncated, info = self._native_multistep(
            list(actions), observation_spaces, reward_spaces
        )
        return obs, reward, bool(terminated or truncated), info

    def raw_step(self, actions, observation_spaces, reward_spaces, timeout=300):
        """Lists in, lists out: the observations and rewards of the given spaces after `actions`."""
        obs, reward, terminated, truncated, info = self._native_multistep(
            list(actions), list(observation_spaces or []), list(reward_spaces or [])
        )
        return obs, reward, bool(terminated or truncated), info

    def _native_multistep(self, actions, observation_spaces, reward_spaces):
        self._check_open()
        if self._session is None:
            raise SessionNotFound("must call reset() before step()")
        obs_names = [space_name(s) for s in observation_spaces] if observation_spaces is not None else None
        rew_names = [space_name(s) for s in reward_spaces] if reward_spaces is not None else None
        with compilergym_errors():
            return native_env.LlvmEnv.multistep(self, actions, obs_names, rew_names)

    # --------------------------------------------------------- fork / state
    def fork(self) -> LlvmEnv:
        """An independent copy in the same state; usable as a context manager (`with env.fork() as f:`)."""
        self._check_open()
        if self._session is None:
            # CompilerGym forks an environment that was never reset by resetting it first.
            self.reset()
        with compilergym_errors():
            other = super().fork()
        other.__class__ = type(self)
        other._cg_datasets = self._cg_datasets
        return other  # type: ignore[return-value]

    @property
    def state(self) -> CompilerEnvState:  # type: ignore[override]
        with compilergym_errors():
            return CompilerEnvState.from_native(super().state)

    def commandline_to_actions(self, commandline: str) -> list[int]:
        with compilergym_errors():
            return self.action_space.from_string(commandline)

    def _benchmark_for(self, uri: str):
        """This environment's Benchmark when its URI is `uri` (so a user benchmark, which no URI
        finds, and its validation callbacks carry over), else `uri`."""
        spec = self._benchmark_spec
        current = spec if isinstance(spec, native_env.Benchmark) else self._benchmark
        return current if current is not None and current.uri == uri else uri

    def apply(self, state) -> None:  # type: ignore[override]
        """Reset to the state's benchmark and replay its command line."""
        self.reset(benchmark=self._benchmark_for(state.benchmark))
        with compilergym_errors():
            try:
                actions: list = self.action_space.from_string(state.commandline)
            except UnknownNameError:  # flags outside this action space: apply them as pipelines
                actions = [pass_flags()[i].pipeline for i in parse_commandline_flags(state.commandline)]
        if actions:
            _, _, done, info = self.multistep(actions)
            if done:
                with compilergym_errors():
                    raise SessionError(
                        f"replaying the state failed: {info.get('error_details')}",
                        info.get("error_type", "SessionError"),
                    )

    def validate(self, state=None) -> ValidationResult:  # type: ignore[override]
        """Replay `state` (default: the current one) in a new session: the module must verify; when
        the state has a reward, the replay must reproduce it (relative tolerance 1e-5); when the
        benchmark is validatable (csmith-v0, or a callback added), its validation callbacks run on
        the replayed environment. Problems are reported in the result, never raised."""
        state = CompilerEnvState.from_native(state if state is not None else self.state)
        started = time.time()
        result = ValidationResult(state=state)
        replay = LlvmEnv(
            benchmark=self._benchmark_for(state.benchmark),
            reward_space=self._reward_space_name or "IrInstructionCountOz",
            action_space=self._action_space,
            data_root=self.data_root,
            worker=self.worker,
            step_timeout=self.step_timeout,
        )
        try:
            try:
                replay.apply(state)
            except Exception:
                result.actions_replay_failed = True
                raise
            self._validate_replay(replay, result)
            self._validate_semantics(replay, result)
        except Exception as exc:  # validation reports, it does not raise
            result.errors.append(ValidationError(f"{type(exc).__name__}: {exc}"))
        finally:
            replay.close()
        result.walltime = time.time() - started
        return result

    @staticmethod
    def _validate_replay(replay: LlvmEnv, result: ValidationResult) -> None:
        """The replayed module verifies, and the replay reproduces the state's reward."""
        state = result.state
        verify = replay.worker.request("observe", replay._session, ("Verify",))["Verify"]
        if verify:
            result.errors.append(ValidationError("Module fails verification", {"details": verify.strip()[:2000]}))
        result.actual_reward = actual = replay.episode_reward
        if state.reward is not None and actual is not None:
            result.reward_validated = math.isclose(actual, state.reward, rel_tol=1e-5, abs_tol=1e-9)
            if not result.reward_validated:
                result.reward_validation_failed = True
                result.errors.append(
                    ValidationError(
                        f"Expected reward {state.reward:.4f} but received reward {actual:.4f}",
                        {"expected": state.reward, "actual": actual},
                    )
                )

    @staticmethod
    def _validate_semantics(replay: LlvmEnv, result: ValidationResult) -> None:
        """The benchmark's validation callbacks on the replayed environment (a callback that raises
        is an error of the check)."""
        benchmark = replay.benchmark
        if not benchmark.is_validatable():
            return
        try:
            judged, errors = run_callbacks(benchmark, replay)
        except Exception as exc:
            judged, errors = True, [ValidationError(f"{type(exc).__name__}: {exc}")]
        result.benchmark_semantics_validated = judged
        result.benchmark_semantics_validation_failed = bool(errors)
        result.errors += errors

    # ------------------------------------------------------------- outputs
    @property
    def ir_sha1(self) -> str:
        with compilergym_errors():
            return self._observe_one("IrSha1")

    def write_bitcode(self, path) -> str:  # type: ignore[override]
        with compilergym_errors():
            return super().write_bitcode(os.path.expanduser(str(path)))

    def write_ir(self, path) -> str:  # type: ignore[override]
        with compilergym_errors():
            return super().write_ir(os.path.expanduser(str(path)))

    def render(self, mode: str = "human"):  # type: ignore[override]
        text = self.ir
        if mode == "human":
            print(text)
            return None
        return text

    def send_param(self, key: str, value: str) -> str:
        raise UnknownNameError(f"unknown session parameter '{key}': compilerdream's environment takes none")

    def seed(self, seed: int | None = None) -> list:
        """Seed the action space's sampler (CompilerGym's gym-era `env.seed`)."""
        self._action_space.seed(seed)
        return [seed]

    def __repr__(self) -> str:
        return f"LlvmEnv(benchmark={self._benchmark_spec!s}, LLVM {LLVM_VERSION})"
