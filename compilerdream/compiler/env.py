"""LlvmEnv: CompilerGym's LLVM environment API on gymnasium, backed by the native LLVM 19 engine."""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import gymnasium as gym
import numpy as np

from .benchmarks import Benchmark, BenchmarkLike, resolve_benchmark
from .errors import EmptyModuleError, MalformedInputError, SessionError, UnknownNameError
from .fileio import atomic_write
from .spaces import (
    OBSERVATION_SPACE_NAMES,
    REWARD_SPACES,
    ActionSpace,
    action_space,
    autophase_feature_names,
    canonical_pipeline,
    commandline_for,
    instcount_feature_names,
    observation_space_spec,
    pass_flags,
    reward_spec,
)
from .worker import Worker, make_worker

DEFAULT_BENCHMARK = "benchmark://cbench-v1/qsort"

_UNCHANGED = object()


@dataclass(frozen=True)
class CompilerEnvState:
    """A replayable record of an episode (CompilerGym's CompilerEnvState)."""

    benchmark: str
    commandline: str
    walltime: float = 0.0
    reward: float | None = None

    def to_json(self) -> dict:
        return {"benchmark": self.benchmark, "commandline": self.commandline, "walltime": self.walltime, "reward": self.reward}


@dataclass
class ValidationResult:
    """Outcome of env.validate(): did replaying the state reproduce it?"""

    state: CompilerEnvState
    reward_validated: bool = False
    actual_reward: float | None = None
    errors: list[str] = field(default_factory=list)

    @property
    def okay(self) -> bool:
        return not self.errors

    def __bool__(self) -> bool:
        return self.okay


# Baselines are a property of the program: cache them by content hash, process-wide.
_BASELINE_CACHE: OrderedDict[str, dict[str, int]] = OrderedDict()
_BASELINE_CACHE_SIZE = 100_000


def _cached_baselines(sha1: str) -> dict[str, int]:
    entry = _BASELINE_CACHE.setdefault(sha1, {})
    _BASELINE_CACHE.move_to_end(sha1)
    while len(_BASELINE_CACHE) > _BASELINE_CACHE_SIZE:
        _BASELINE_CACHE.popitem(last=False)
    return entry


class _LazyView:
    """`env.observation["Autophase"]` / `env.reward["IrInstructionCountOz"]`: computed on demand."""

    def __init__(self, getter, names: Iterable[str]):
        self._getter = getter
        self.spaces = tuple(names)

    def __getitem__(self, name: str):
        return self._getter(name)

    def __getattr__(self, name: str):
        if name.startswith("_"):
            raise AttributeError(name)
        return lambda: self._getter(name)


class Trace(NamedTuple):
    """What `LlvmEnv.trace` measured: per action, the count after it, whether it changed the module, its reward."""

    counts: list[int]
    changed: list[bool]
    rewards: list[float]
    error: str | None


class LlvmEnv(gym.Env):
    """The LLVM pass-ordering environment with CompilerGym's vocabulary.

    Each environment owns one compiler session in a worker process (see worker.py);
    `fork()` makes another session on the same worker. When a pass crashes or hangs
    the step ends the episode with `info["error_type"]`; the worker is replaced and
    the environment can be reset and used again.
    """

    metadata = {"render_modes": ["human", "ansi"]}

    def __init__(
        self,
        benchmark: BenchmarkLike | None = None,
        observation_space: str | None = None,
        reward_space: str | None = None,
        action_space: str | ActionSpace = "NoLimit",
        step_timeout: float = 60.0,
        isolation: str = "process",
        data_root: str | None = None,
        worker: Worker | None = None,
        render_mode: str | None = None,
    ):
        self.render_mode = render_mode
        self.data_root = data_root
        self.step_timeout = float(step_timeout)
        self._owns_worker = worker is None
        self.worker: Worker = worker or make_worker(isolation, timeout=self.step_timeout)
        self._session: int | None = None
        self._session_generation = -1
        self._benchmark_spec: BenchmarkLike = benchmark or DEFAULT_BENCHMARK
        self._benchmark: Benchmark | None = None
        self._load_info: dict = {}
        self._action_space: ActionSpace = self._resolve_action_space(action_space)
        self._observation_space_name: str | None = None
        self._reward_space_name: str | None = None
        self.observation_space = observation_space  # type: ignore[assignment]
        self.reward_space = reward_space  # type: ignore[assignment]
        self.actions: list = []
        self._pipelines: list[str] = []
        #: opt's own command-line options every pass of this env runs under (e.g.
        #: ("-force-attribute=minsize",)), as in `opt OPTIONS -passes=...`: they are written into
        #: `commandline()`, kept across reset() and fork(), and never affect the baselines (-Oz etc.).
        self.compiler_options: tuple[str, ...] = ()
        self.episode_reward: float | None = None
        self.episode_walltime_start = time.time()
        self._last_cost: float | None = None
        self._datasets = None
        self.observation = _LazyView(self._observe_one, OBSERVATION_SPACE_NAMES)
        self.reward = _LazyView(self._reward_one, REWARD_SPACES)
        self._closed = False

    # ------------------------------------------------------------------ spaces
    @staticmethod
    def _resolve_action_space(space: str | ActionSpace) -> ActionSpace:
        return space if isinstance(space, ActionSpace) else action_space(space)

    @property
    def action_space(self) -> ActionSpace:  # type: ignore[override]
        return self._action_space

    @action_space.setter
    def action_space(self, space: str | ActionSpace) -> None:
        self._action_space = self._resolve_action_space(space)

    @property
    def observation_space(self):  # type: ignore[override]
        return self._observation_space

    @observation_space.setter
    def observation_space(self, name: str | None) -> None:
        if name is None:
            self._observation_space_name, self._observation_space = None, None
            return
        if not isinstance(name, str):
            name = getattr(name, "name", name)
        self._observation_space = observation_space_spec(name)
        self._observation_space_name = name

    @property
    def observation_space_name(self) -> str | None:
        return self._observation_space_name

    @property
    def reward_space(self):
        return reward_spec(self._reward_space_name) if self._reward_space_name else None

    @reward_space.setter
    def reward_space(self, name: str | None) -> None:
        if name is not None:
            name = getattr(name, "name", name)
            reward_spec(name)  # validates
        self._reward_space_name = name
        if self._session is not None and name is not None:
            self._last_cost = float(self._observe_one(reward_spec(name).cost))

    @property
    def reward_range(self) -> tuple[float, float]:
        return (-np.inf, np.inf)

    # -------------------------------------------------------------- benchmarks
    @property
    def datasets(self):
        if self._datasets is None:
            from . import datasets

            self._datasets = datasets.Datasets(data_root=self.data_root)
        return self._datasets

    @property
    def benchmark(self) -> Benchmark:
        if self._benchmark is None:
            self._benchmark = resolve_benchmark(self._benchmark_spec, self.data_root)
        return self._benchmark

    @benchmark.setter
    def benchmark(self, spec: BenchmarkLike) -> None:
        """Takes effect at the next reset(), as in CompilerGym."""
        self._benchmark_spec = spec
        self._benchmark = None

    def make_benchmark(self, path_or_bytes, uri: str | None = None) -> Benchmark:
        if isinstance(path_or_bytes, (bytes, bytearray)):
            return Benchmark.from_bytes(bytes(path_or_bytes), uri or "benchmark://user-v0/module")
        return Benchmark.from_file(path_or_bytes, uri=uri)

    # ------------------------------------------------------------------- reset
    def reset(  # type: ignore[override]
        self,
        benchmark: BenchmarkLike | None = None,
        action_space: str | ActionSpace | None = None,
        observation_space: Any = _UNCHANGED,
        reward_space: Any = _UNCHANGED,
        seed: int | None = None,
        options: dict | None = None,
    ):
        """Start an episode on `benchmark` (or the current one). Returns (observation, info)."""
        super().reset(seed=seed)
        options = options or {}
        benchmark = options.get("benchmark", benchmark)
        if benchmark is not None:
            self.benchmark = benchmark
        if action_space is not None:
            self.action_space = action_space
        if observation_space is not _UNCHANGED:
            self.observation_space = observation_space
        if reward_space is not _UNCHANGED:
            self.reward_space = reward_space
        bench = self.benchmark
        self._close_session()
        self._start_session(bench)
        if self._load_info["instruction_count"] <= 0:
            self._close_session()
            raise EmptyModuleError(f"benchmark {bench.uri} has no instructions (only declarations): nothing to optimize")
        self.actions, self._pipelines = [], []
        self.episode_walltime_start = time.time()
        self.episode_reward = 0.0 if self._reward_space_name else None
        if self._reward_space_name:
            self._last_cost = float(self._observe_one(reward_spec(self._reward_space_name).cost))
        obs = self._observe_one(self._observation_space_name) if self._observation_space_name else None
        return obs, {"benchmark": bench.uri}

    def _start_session(self, bench: Benchmark) -> None:
        sid = self.worker.new_session_id()
        try:
            self._load_info = self.worker.request("load", sid, bench.data, bench.uri, bench.sha1, timeout=max(self.step_timeout, 300))
        except ValueError as exc:
            raise MalformedInputError(f"cannot load benchmark {bench.uri}: {exc}") from None
        except SessionError as exc:
            raise MalformedInputError(f"the compiler crashed loading benchmark {bench.uri}: {exc}") from None
        self._session = sid
        self._session_generation = self.worker.generation

    def _ensure_session(self) -> None:
        """Recreate a session lost with its worker (e.g. a fork's sibling crashed) by replaying."""
        if self._session is None:
            raise SessionError("call reset() before using the environment", "NotReset")
        if self._session_generation != self.worker.generation:
            self._start_session(self.benchmark)
            for p in self._pipelines:
                self.worker.request("step", self._session, [p], (), *self._options_arg(), timeout=self.step_timeout)

    def _close_session(self) -> None:
        if self._session is not None and self._session_generation == self.worker.generation:
            try:
                self.worker.request("close", self._session, timeout=10)
            except SessionError:
                pass
        self._session = None

    # -------------------------------------------------------------------- step
    def step(self, action, observation_spaces=None, reward_spaces=None):  # type: ignore[override]
        """Apply one action. Returns (observation, reward, terminated, truncated, info)."""
        return self.multistep([action], observation_spaces, reward_spaces)

    def multistep(self, actions: Sequence, observation_spaces=None, reward_spaces=None):
        """Apply several actions in one worker call (CompilerGym's multistep)."""
        pipelines: list[str] = []
        for a in actions:
            pipelines.extend(self._pipelines_of(a))
        self._ensure_session()
        obs_names = list(observation_spaces) if observation_spaces is not None else (
            [self._observation_space_name] if self._observation_space_name else []
        )
        rew_names = list(reward_spaces) if reward_spaces is not None else (
            [self._reward_space_name] if self._reward_space_name else []
        )
        native = self._native_observations(obs_names + [reward_spec(r).cost for r in rew_names])
        try:
            changed, values = self.worker.request(
                "step", self._session, pipelines, tuple(native), *self._options_arg(), timeout=self.step_timeout
            )
        except SessionError as exc:
            return self._error_step(exc, obs_names, rew_names)
        self.actions.extend(actions)
        self._pipelines.extend(pipelines)
        observations = [self._derive(n, values) for n in obs_names]
        rewards = []
        for r in rew_names:
            spec = reward_spec(r)
            cost = float(values[spec.cost])
            rewards.append(self._reward_from_cost(spec, cost, commit=(r == self._reward_space_name)))
        info = {"action_had_no_effect": not any(changed), "new_action_space": False}
        if observation_spaces is None:
            obs = observations[0] if observations else None
        else:
            obs = observations
        if reward_spaces is None:
            reward = rewards[0] if rewards else None
            if reward is not None:
                self.episode_reward = (self.episode_reward or 0.0) + reward
        else:
            reward = rewards
        return obs, reward, False, False, info

    def trace(self, actions: Sequence) -> Trace:
        """Apply actions in one worker call, measuring the IR instruction count after each action.

        Every prefix of a pass sequence is measured for the price of applying the sequence
        once (coreset evaluation). `counts[i]`, `changed[i]` and `rewards[i]` describe the step
        of `actions[i]`; rewards are the env's reward space's, committed as `multistep` does
        (a reward space whose cost is not the instruction count gets the whole trace's reward
        on its last step). When a pass crashes or hangs, `error` says why, the lists are empty
        and the session is gone (reset() before using the env again).
        """
        per_action = [self._pipelines_of(a) for a in actions]
        pipelines = [p for ps in per_action for p in ps]
        self._ensure_session()
        try:
            raw_counts, raw_changed = self.worker.request(
                "trace", self._session, pipelines, *self._options_arg(), timeout=self.step_timeout
            )
        except SessionError as exc:
            self._session = None
            return Trace([], [], [], f"{exc.error_type}: {getattr(exc, 'details', str(exc))}")
        counts, changed, end = [], [], 0
        for ps in per_action:  # an action may expand to several pipelines: report after its last one
            end += len(ps)
            counts.append(int(raw_counts[end - 1]))
            changed.append(any(raw_changed[end - len(ps) : end]))
        self.actions.extend(actions)
        self._pipelines.extend(pipelines)
        rewards: list[float] = []
        if self._reward_space_name and counts:
            spec = reward_spec(self._reward_space_name)
            if spec.cost == "IrInstructionCount":
                rewards = [self._reward_from_cost(spec, float(c), commit=True) for c in counts]
            else:
                last = self._reward_from_cost(spec, float(self._observe_one(spec.cost)), commit=True)
                rewards = [0.0] * (len(counts) - 1) + [last]
            self.episode_reward = (self.episode_reward or 0.0) + sum(rewards)
        return Trace(counts, changed, rewards, None)

    def _options_arg(self) -> tuple:
        """The worker's `options` argument: none at all without options (any worker backend understands that)."""
        return (tuple(self.compiler_options),) if self.compiler_options else ()

    def _pipelines_of(self, action) -> list[str]:
        if isinstance(action, str):  # a CompilerGym flag or any new-PM pipeline
            stripped = action.strip()
            if stripped.startswith("-"):
                from .spaces import flag_to_index

                return [pass_flags()[flag_to_index(stripped)].pipeline]
            canonical_pipeline(stripped)  # raises UnknownNameError if it does not parse
            return [stripped]
        return self.action_space.pipelines(action)

    def _error_step(self, exc: SessionError, obs_names, rew_names):
        info = {
            "action_had_no_effect": True,
            "new_action_space": False,
            "error_type": exc.error_type,
            "error_details": exc.details if hasattr(exc, "details") else str(exc),
        }
        self._session = None  # the worker was replaced; reset() starts a new session
        obs = None
        if self._observation_space_name and obs_names == [self._observation_space_name]:
            space = self._observation_space
            obs = np.zeros(space.shape, dtype=space.dtype) if isinstance(space, gym.spaces.Box) else None
        reward = 0.0 if rew_names else None
        return obs, reward, True, False, info

    # ------------------------------------------------------------ observations
    _DERIVED = {
        "AutophaseDict": "Autophase",
        "InstCountDict": "InstCount",
        "InstCountNorm": "InstCount",
        "InstCountNormDict": "InstCount",
    }
    _BASELINES = (
        "IrInstructionCountO0",
        "IrInstructionCountO3",
        "IrInstructionCountOz",
        "ObjectTextSizeO0",
        "ObjectTextSizeO3",
        "ObjectTextSizeOz",
    )

    def _native_observations(self, names: Iterable[str]) -> list[str]:
        """The observations the worker must compute to answer `names` (derived and baseline ones excluded)."""
        native: list[str] = []
        for n in names:
            if n not in OBSERVATION_SPACE_NAMES:
                raise UnknownNameError(f"unknown observation space '{n}': choose one of {', '.join(OBSERVATION_SPACE_NAMES)}")
            base = self._DERIVED.get(n, n)
            if base in self._BASELINES:
                continue
            if base not in native:
                native.append(base)
        return native

    def _derive(self, name: str, values: dict):
        if name in self._BASELINES:
            return self._baseline(name)
        if name == "AutophaseDict":
            return dict(zip(autophase_feature_names(), (int(v) for v in values["Autophase"])))
        if name == "InstCountDict":
            return {k + "Count": int(v) for k, v in zip(instcount_feature_names(), values["InstCount"])}
        if name in ("InstCountNorm", "InstCountNormDict"):
            counts = np.asarray(values["InstCount"], dtype=np.float64)
            norm = (counts[1:] / max(counts[0], 1.0)).astype(np.float32)
            if name == "InstCountNorm":
                return norm
            return {k + "Density": float(v) for k, v in zip(instcount_feature_names()[1:], norm)}
        value = values[name]
        if name in ("IrInstructionCount", "ObjectTextSizeBytes"):
            return np.int64(value)
        return value

    def _observe_one(self, name: str):
        if name in self._BASELINES:
            return self._baseline(name)
        self._ensure_session()
        native = self._native_observations([name])
        try:
            values = self.worker.request("observe", self._session, tuple(native), timeout=max(self.step_timeout, 300))
        except SessionError as exc:
            self._session = None
            raise SessionError(f"computing observation {name} failed: {exc}", exc.error_type) from None
        return self._derive(name, values)

    def _baseline(self, name: str) -> np.int64:
        if name not in self._BASELINES:
            raise UnknownNameError(f"'{name}' is not a baseline observation")
        cache = _cached_baselines(self.benchmark.sha1)
        if name not in cache:
            self._ensure_session()
            # A family's baselines (instruction counts, or .text sizes) are wanted together (a
            # reward needs -O0's and -Oz's), except -O3's, which costs as much as -Oz's (and for
            # .text a code generation too) and which few callers read: it is computed when asked.
            names = [
                n for n in self._BASELINES
                if n.startswith(name[:-2]) and n not in cache and (not n.endswith("O3") or n == name)
            ]  # fmt: skip
            cache.update(self.worker.request("baselines", self._session, tuple(names), timeout=max(self.step_timeout, 600)))
        return np.int64(cache[name])

    # ----------------------------------------------------------------- rewards
    def _reward_from_cost(self, spec, cost: float, commit: bool) -> float:
        init = float(self._baseline(spec.init_observation()))
        base_name = spec.baseline_observation()
        base = float(self._baseline(base_name)) if base_name else None
        previous = self._last_cost if self._last_cost is not None else init
        reward = (previous - cost) / spec.scale(init, base)
        if commit:
            self._last_cost = cost
        return float(reward)

    def _reward_one(self, name: str) -> float:
        """Reward for the *current* state relative to the last step, without committing it."""
        spec = reward_spec(name)
        cost = float(self._observe_one(spec.cost))
        return self._reward_from_cost(spec, cost, commit=False)

    # ------------------------------------------------------------ fork / state
    def fork(self) -> LlvmEnv:
        """An independent copy of this environment in the same state (shares the worker process)."""
        self._ensure_session()
        other = LlvmEnv.__new__(LlvmEnv)
        other.__dict__.update({k: v for k, v in self.__dict__.items()})
        other._owns_worker = False
        other.actions = list(self.actions)
        other._pipelines = list(self._pipelines)
        other.observation = _LazyView(other._observe_one, OBSERVATION_SPACE_NAMES)
        other.reward = _LazyView(other._reward_one, REWARD_SPACES)
        sid = self.worker.new_session_id()
        self.worker.request("fork", self._session, sid, timeout=self.step_timeout)
        other._session = sid
        other._session_generation = self.worker.generation
        return other

    def commandline(self) -> str:
        """An `opt` command that reproduces the current module from the benchmark's bitcode.

        Run it with opt-19 on the benchmark file and the result has the same
        instruction count as this environment's module.
        """
        return commandline_for(
            self._pipelines, strip_debug=bool(self._load_info.get("had_debug_info")), options=self.compiler_options
        )

    @property
    def state(self) -> CompilerEnvState:
        return CompilerEnvState(
            benchmark=self.benchmark.uri,
            commandline=self.commandline(),
            walltime=time.time() - self.episode_walltime_start,
            reward=self.episode_reward,
        )

    def apply(self, state: CompilerEnvState) -> None:
        """Replay a state: reset to its benchmark and apply its command line."""
        from .spaces import commandline_steps, parse_commandline_flags, parse_commandline_options

        self.compiler_options = parse_commandline_options(state.commandline)
        self.reset(benchmark=state.benchmark)
        try:
            actions: list = self.action_space.from_string(state.commandline)
        except UnknownNameError:  # flags outside this action space: apply them as pipelines
            try:
                actions = [pass_flags()[i].pipeline for i in parse_commandline_flags(state.commandline)]
            except UnknownNameError:  # pipelines that are no flag (e.g. the IR outliner): its steps as written
                actions = commandline_steps(state.commandline)
        if actions:
            _, _, done, _, info = self.multistep(actions)
            if done:
                raise SessionError(f"replaying state failed: {info.get('error_details')}", info.get("error_type", "SessionError"))

    def validate(self, state: CompilerEnvState | None = None) -> ValidationResult:
        """Replay `state` (default: the current one) in a fresh session and compare rewards."""
        state = state or self.state
        result = ValidationResult(state=state)
        replay = LlvmEnv(
            benchmark=state.benchmark if state.benchmark != self.benchmark.uri else self.benchmark,
            reward_space=self._reward_space_name or "IrInstructionCountOz",
            action_space=self.action_space,
            step_timeout=self.step_timeout,
            data_root=self.data_root,
            worker=self.worker,
        )
        try:
            replay.apply(state)
            verify = replay.worker.request("observe", replay._session, ("Verify",))["Verify"]
            if verify:
                result.errors.append(f"module fails verification after replay: {verify.strip()[:500]}")
            result.actual_reward = replay.episode_reward
            if state.reward is not None and result.actual_reward is not None:
                ok = np.isclose(result.actual_reward, state.reward, rtol=1e-5, atol=1e-9)
                result.reward_validated = bool(ok)
                if not ok:
                    result.errors.append(f"reward mismatch: expected {state.reward}, replay gave {result.actual_reward}")
        except Exception as exc:  # validation reports, it does not raise
            result.errors.append(f"{type(exc).__name__}: {exc}")
        finally:
            replay._close_session()
        return result

    # ------------------------------------------------------------------ output
    def write_bitcode(self, path) -> str:
        data = self._observe_one("Bitcode")
        atomic_write(path, data)
        return str(path)

    def write_ir(self, path) -> str:
        atomic_write(path, self._observe_one("Ir"))
        return str(path)

    @property
    def ir(self) -> str:
        return self._observe_one("Ir")

    def render(self):
        text = self._observe_one("Ir")
        if self.render_mode == "human":
            print(text)
            return None
        return text

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._close_session()
        if self._owns_worker:
            self.worker.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __del__(self) -> None:  # pragma: no cover
        try:
            self.close()
        except Exception:
            pass
