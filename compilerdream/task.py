"""CompilerDream's view of the LLVM environment (REFERENCE §2): observation dict, normalised reward, episode rules."""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np

from compilerdream.compiler import make as make_env
from compilerdream.compiler.benchmarks import Benchmark, BenchmarkLike, resolve_benchmark
from compilerdream.compiler.errors import EmptyModuleError
from compilerdream.compiler.spaces import action_space

__all__ = [
    "CompilerTask",
    "PendingBenchmark",
    "TaskSettings",
    "benchmark_source",
    "instcount_observation",
    "leaky",
    "list_source",
    "load_coreset_sequences",
    "coreset_action_sequences",
    "normalize_autophase",
    "step_reward",
    "symlog",
]

log = logging.getLogger(__name__)

#: The reference's defaults for every key the task reads (REFERENCE §1.1 "Defaults worth knowing").
DEFAULTS: dict[str, Any] = {
    "compilergym.max_step": 45,
    "compilergym.baseline_thre": 1.0,
    "compilergym.leakiness": 1.0,
    "compilergym.step_penalty": 0.0,
    "compilergym.rew_space": "IrInstructionCount",
    "compilergym.act_space": "Autophase",
    "compilergym.oz_act": False,
    "compilergym.oz_continue": False,
    "compilergym.start": "o0",
    "compilergym.null_act": False,
    "compilergym.abs_inst_obs": False,
    "compilergym.rel_inst_obs": False,
    "compilergym.instc_list_obs": False,
    "compilergym.has_shuffled": False,
    "compilergym.step_timeout": 60.0,
    "time_limit": 0,
    "seed": 0,
    "data_root": "",
}

#: rew_space -> (cost observation, init (O0) observation, baseline (Oz) observation), REFERENCE §2.3.
REWARD_OBSERVATIONS: dict[str, tuple[str, str, str]] = {
    "IrInstructionCount": ("IrInstructionCount", "IrInstructionCountO0", "IrInstructionCountOz"),
    "ObjectTextSizeBytes": ("ObjectTextSizeBytes", "ObjectTextSizeO0", "ObjectTextSizeOz"),
}

AUTOPHASE_SIZE = 56
TOTAL_INSTS = 51  # index of `TotalInsts` in data/autophase_features.txt
INSTCOUNT_NORM_SIZE = 69
OZ_PIPELINE = "default<Oz>"
#: Where an episode starts (`compilergym.start`): the unoptimized program or -Oz's output.
STARTS = ("o0", "oz")
MAX_RESET_TRIES = 128
MODES = ("train", "val", "test")


# ---------------------------------------------------------------------------------------------
# Pure functions (REFERENCE §2.2, §2.3)


def symlog(x: float | np.ndarray) -> np.ndarray:
    """sign(x)·ln(1 + |x|)."""
    x = np.asarray(x, dtype=np.float64)
    return np.sign(x) * np.log1p(np.abs(x))


def leaky(x: float, leakiness: float) -> float:
    """The reference's leaky clamp: magnitudes beyond 1 are scaled by `leakiness` (L=1: identity), §2.3."""
    magnitude = abs(x)
    return float(np.sign(x) * (max(magnitude - 1.0, 0.0) * leakiness + min(magnitude, 1.0)))


def step_reward(
    last: float,
    current: float,
    init: float,
    baseline: float,
    baseline_thre: float = 1.0,
    leakiness: float = 1.0,
    step_penalty: float = 0.0,
) -> float:
    """r = leaky((last − current) / max(init − baseline, baseline_thre), L) − step_penalty (REFERENCE §2.3)."""
    raw = (last - current) / max(init - baseline, baseline_thre)
    return leaky(raw, leakiness) - step_penalty


def normalize_autophase(features: np.ndarray) -> np.ndarray:
    """Autophase divided by TotalInsts (feature 51) and clipped to [0, 1]; zeros if TotalInsts <= 0 (§2.2)."""
    features = np.asarray(features, dtype=np.float64)
    if features.shape != (AUTOPHASE_SIZE,):
        raise ValueError(f"Autophase must have shape ({AUTOPHASE_SIZE},), got {features.shape}")
    total = features[TOTAL_INSTS]
    if total <= 0:
        return np.zeros(AUTOPHASE_SIZE, np.float32)
    return np.clip(features / total, 0.0, 1.0).astype(np.float32)


def instcount_observation(
    o0: float, oz: float, current: float, norm: np.ndarray | None, abs_obs: bool, rel_obs: bool, list_obs: bool
) -> np.ndarray:
    """The optional `instcount` vector (§2.2): [abs (3)] + [rel (1)] + [InstCountNorm (69)], in that order."""
    parts: list[np.ndarray] = []
    if abs_obs:
        parts.append(symlog(np.array([o0, oz, current], np.float64) / 1000.0))
    if rel_obs:
        parts.append(symlog(np.array([oz / max(current, 1.0) - 1.0])))
    if list_obs:
        if norm is None:
            raise ValueError("instc_list_obs needs the InstCountNorm observation")
        parts.append(np.asarray(norm, np.float64))
    return np.concatenate(parts).astype(np.float32) if parts else np.zeros(0, np.float32)


def coreset_action_sequences(name: str | None, settings: TaskSettings) -> list[list[int]]:
    """A coreset's sequences as indices of the task's action space (coreset mode, value prediction).

    `name`: `default` (the shipped LLVM-19 coreset), `nvp50` (REFERENCE §2.7's 50) or a
    coreset JSON file (compilerdream.compiler.coreset). Flags become NoLimit indices; a
    sequence that starts from -Oz begins with the task's -Oz action, so it needs
    `compilergym.oz_continue` (the `coreset_train`/`coreset_test` blocks set it).
    Bad input raises ValueError with one line.
    """
    from compilerdream.compiler.coreset import CoresetError, load_coreset
    from compilerdream.compiler.spaces import flag_to_index

    if settings.act_space != "NoLimit":
        raise ValueError(f"coreset sequences index the NoLimit action space, not {settings.act_space}")
    try:
        coreset = load_coreset(name or "default")
    except CoresetError as exc:
        raise ValueError(f"--coreset: {exc}") from None
    from_oz = sum(1 for s in coreset.sequences if s.start == "oz")
    if from_oz and not settings.oz_continue:
        raise ValueError(
            f"coreset {coreset.name}: {from_oz} of its {len(coreset)} sequences start from -Oz and need "
            "--compilergym.oz_continue True (the coreset_train/coreset_test blocks set it), or use --coreset nvp50"
        )
    out = []
    for seq in coreset.sequences:
        try:
            indices = [flag_to_index(p) for p in seq.passes]
        except Exception:
            raise ValueError(f"coreset {coreset.name}: a sequence has a pass that is not a NoLimit flag: {seq.passes}") from None
        out.append(([settings.oz_index] if seq.start == "oz" else []) + indices)
    return out


def load_coreset_sequences() -> list[list[int]]:
    """The 50 coreset pass sequences (NoLimit indices) of REFERENCE §2.7, in file order."""
    from compilerdream.compiler.coreset import nvp50_indices

    return [list(seq) for seq in nvp50_indices()]


# ---------------------------------------------------------------------------------------------
# Settings


@dataclass(frozen=True)
class TaskSettings:
    """The `compilergym.*`, `time_limit`, `seed` and `data_root` keys the task reads, validated."""

    max_step: int
    baseline_thre: float
    leakiness: float
    step_penalty: float
    rew_space: str
    act_space: str
    oz_act: bool
    null_act: bool
    abs_inst_obs: bool
    rel_inst_obs: bool
    instc_list_obs: bool
    has_shuffled: bool
    step_timeout: float
    time_limit: int
    seed: int
    data_root: str | None
    #: An action that runs `default<Oz>` and lets the episode go on (oz_act's ends it).
    oz_continue: bool = False
    #: "o0": episodes start from the unoptimized program; "oz": from -Oz's output.
    start: str = "o0"

    @property
    def oz_slot(self) -> bool:
        """Whether the action space has an Oz action (oz_act or oz_continue): one index after null_act."""
        return self.oz_act or self.oz_continue

    @property
    def oz_index(self) -> int:
        """The index the Oz action has (or would have): after the base actions and the null action."""
        return int(action_space(self.act_space).n) + int(self.null_act)

    @property
    def num_actions(self) -> int:
        """Base actions + the null action + the Oz action, as the agent sees them."""
        return int(action_space(self.act_space).n) + int(self.null_act) + int(self.oz_slot)

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> TaskSettings:
        """Read a flat dotted-key config; missing keys take the reference defaults."""

        def get(key: str) -> Any:
            return config.get(key, DEFAULTS[key])

        return cls(
            max_step=int(get("compilergym.max_step")),
            baseline_thre=float(get("compilergym.baseline_thre")),
            leakiness=float(get("compilergym.leakiness")),
            step_penalty=float(get("compilergym.step_penalty")),
            rew_space=str(get("compilergym.rew_space")),
            act_space=str(get("compilergym.act_space")),
            oz_act=bool(get("compilergym.oz_act")),
            null_act=bool(get("compilergym.null_act")),
            abs_inst_obs=bool(get("compilergym.abs_inst_obs")),
            rel_inst_obs=bool(get("compilergym.rel_inst_obs")),
            instc_list_obs=bool(get("compilergym.instc_list_obs")),
            has_shuffled=bool(get("compilergym.has_shuffled")),
            step_timeout=float(get("compilergym.step_timeout")),
            time_limit=int(get("time_limit")),
            seed=int(get("seed")),
            data_root=str(get("data_root") or "") or None,
            oz_continue=bool(get("compilergym.oz_continue")),
            start=str(get("compilergym.start")).strip().lower(),
        )._validated()

    def _validated(self) -> TaskSettings:
        if self.rew_space not in REWARD_OBSERVATIONS:
            raise ValueError(
                f"compilergym.rew_space '{self.rew_space}' is not supported: use one of {', '.join(REWARD_OBSERVATIONS)}"
            )
        if self.max_step < 1:
            raise ValueError(f"compilergym.max_step must be >= 1, got {self.max_step}")
        action_space(self.act_space)  # raises UnknownNameError naming the value
        if self.start not in STARTS:
            raise ValueError(f"compilergym.start '{self.start}' is not supported: use one of {', '.join(STARTS)}")
        if self.oz_act and self.oz_continue:
            raise ValueError(
                "compilergym.oz_act and compilergym.oz_continue are exclusive (oz_act's -Oz action ends the "
                "episode, oz_continue's goes on): set one of them"
            )
        return self


# ---------------------------------------------------------------------------------------------
# Benchmark iteration (REFERENCE §2.6)


class PendingBenchmark(NamedTuple):
    """A benchmark named but not loaded yet: `load()` may fail, and the task then skips it."""

    uri: str
    load: Callable[[], BenchmarkLike]


def _pending(item: BenchmarkLike, data_root: str | None = None) -> PendingBenchmark:
    if isinstance(item, Benchmark):
        return PendingBenchmark(item.uri, lambda: item)
    memo: list[Benchmark] = []

    def load() -> Benchmark:  # compile a .c once, not at every reset
        if not memo:
            memo.append(resolve_benchmark(item, data_root))
        return memo[0]

    return PendingBenchmark(os.fspath(item), load)


def _indices(n: int, mode: str, seed: int, ordered: bool) -> Iterator[int]:
    """Train: uniform with replacement from RandomState(seed); val/test (or `ordered`): in order, cycling."""
    if n <= 0:
        raise ValueError(f"no benchmarks to iterate in mode '{mode}'")
    if mode == "train" and not ordered:
        rng = np.random.RandomState(seed)
        while True:
            yield int(rng.randint(0, n))
    while True:
        yield from range(n)


def list_source(
    benchmarks: Sequence[BenchmarkLike], mode: str, seed: int, ordered: bool = False, data_root: str | None = None
) -> Iterator[PendingBenchmark]:
    """Iterate an explicit benchmark list (paths, URIs, Benchmarks) with the §2.6 order rules."""
    items = [_pending(b, data_root) for b in benchmarks]
    return (items[i] for i in _indices(len(items), _normalize_mode(mode), seed, ordered))


def benchmark_source(
    task_dataset: str, mode: str, seed: int, data_root: str | None = None, ordered: bool = False
) -> Iterator[PendingBenchmark]:
    """Adapter to `compilerdream.compiler.datasets`: the benchmarks of one task dataset's split (§1.2, §2.6).

    Train samples with replacement (generators: a random seed in the window) unless
    `ordered` (the reference's `has_shuffled`); val/test walk the split in order and cycle.
    Raises at once if the dataset is unknown, not installed or its split is empty.
    """
    from compilerdream.compiler.datasets import dataset_for_task, split

    mode = _normalize_mode(mode)
    dataset_split = split(dataset_for_task(task_dataset, data_root=data_root), mode)
    if len(dataset_split) == 0:
        raise ValueError(f"the {mode} split of dataset '{task_dataset}' is empty")

    def pending(uri: str) -> PendingBenchmark:
        return PendingBenchmark(uri, lambda: dataset_split.benchmark(uri))

    def generate() -> Iterator[PendingBenchmark]:
        if mode == "train" and not ordered:
            rng = np.random.RandomState(seed)
            while True:
                yield pending(dataset_split.sample(rng))
        for i in _indices(len(dataset_split), mode, seed, ordered=True):
            yield pending(dataset_split[i])

    return generate()


def _normalize_mode(mode: str) -> str:
    mode = {"eval": "test", "valid": "val", "validation": "val"}.get(mode, mode)  # §1.3: "eval" maps to "test"
    if mode not in MODES:
        raise ValueError(f"unknown mode '{mode}': use one of {', '.join(MODES)}")
    return mode


# ---------------------------------------------------------------------------------------------
# The task


class _StepOutcome(NamedTuple):
    ended: bool  # the environment itself ended the episode (null/Oz action, error)
    error: str | None


class CompilerTask:
    """One CompilerDream environment: dicts of numpy arrays in, dicts out (REFERENCE §2.1–§2.7).

    Every obs dict holds `autophase`, `action_histogram`, optional `instcount`, `reward`,
    `is_first`, `is_last`, `is_terminal`, `reduction` and `action` (one-hot of the applied
    action; zeros at reset), plus the info keys `benchmark`, `O0`, `Oz`, `count`, and
    `error` (a string) only on the last step of an episode the environment aborted.
    `obs_space` lists the model's keys (no `action`, no info keys); `act_space` the action.
    """

    def __init__(
        self,
        dataset: str,
        mode: str,
        config: Mapping[str, Any],
        seed: int | None = None,
        benchmarks: Sequence[BenchmarkLike] | None = None,
        isolation: str = "process",
    ):
        self.settings = TaskSettings.from_config(config)
        self.dataset = dataset
        self.mode = _normalize_mode(mode)
        self.seed = int(self.settings.seed if seed is None else seed)
        s = self.settings
        self.base_actions = int(action_space(s.act_space).n)
        self.null_action = self.base_actions if s.null_act else None
        #: The Oz action's index (oz_act or oz_continue), after the null action; None without one.
        self.oz_action = s.oz_index if s.oz_slot else None
        #: Whether the Oz action ends the episode (oz_act) or lets it go on (oz_continue).
        self.oz_ends_episode = s.oz_act
        self.num_actions = s.num_actions
        self._cost_name, self._init_name, self._baseline_name = REWARD_OBSERVATIONS[s.rew_space]
        self._observation_names = self._needed_observations()
        self._benchmarks = list(benchmarks) if benchmarks is not None else None
        self._source = self._make_source()
        self.env = make_env(
            "llvm-v0",
            observation_space=None,
            reward_space=None,
            action_space=s.act_space,
            step_timeout=s.step_timeout,
            isolation=isolation,
            data_root=s.data_root,
        )
        self._pending: PendingBenchmark | None = None
        self._benchmark: Benchmark | None = None
        self._forced: list[int] | None = None
        self._forced_next = 0
        self._episode_over = True
        self._steps = 0
        self._histogram = np.zeros(self.num_actions, np.float64)
        self._values: dict[str, Any] = {}
        self._uri = ""
        self._init = self._baseline = self._last_cost = 0.0
        self._o0 = self._oz = 0

    def _make_source(self) -> Iterator[PendingBenchmark]:
        s = self.settings
        if self._benchmarks is not None:
            return list_source(self._benchmarks, self.mode, self.seed, s.has_shuffled, s.data_root)
        return benchmark_source(self.dataset, self.mode, self.seed, s.data_root, ordered=s.has_shuffled)

    def restart_iteration(self) -> None:
        """Start the benchmark order again from its beginning (each test pass sees the same programs)."""
        self._source = self._make_source()
        self._pending = None

    @property
    def split_size(self) -> int:
        """Number of distinct benchmarks this task iterates (its split's size)."""
        if self._benchmarks is not None:
            return len(self._benchmarks)
        from compilerdream.compiler.datasets import dataset_for_task, split

        return len(split(dataset_for_task(self.dataset, data_root=self.settings.data_root), self.mode))

    # -- spaces ------------------------------------------------------------------------------
    @property
    def instcount_size(self) -> int:
        s = self.settings
        return 3 * s.abs_inst_obs + 1 * s.rel_inst_obs + INSTCOUNT_NORM_SIZE * s.instc_list_obs

    @property
    def obs_space(self) -> dict[str, tuple[tuple[int, ...], np.dtype]]:
        """Key -> (shape, dtype) of the arrays the model sees (REFERENCE §2.2)."""
        space: dict[str, tuple[tuple[int, ...], np.dtype]] = {
            "autophase": ((AUTOPHASE_SIZE,), np.dtype(np.float32)),
            "action_histogram": ((self.num_actions,), np.dtype(np.float32)),
        }
        if self.instcount_size:
            space["instcount"] = ((self.instcount_size,), np.dtype(np.float32))
        space.update(
            reward=((), np.dtype(np.float32)),
            is_first=((), np.dtype(bool)),
            is_last=((), np.dtype(bool)),
            is_terminal=((), np.dtype(bool)),
            reduction=((), np.dtype(np.float32)),
        )
        return space

    @property
    def act_space(self) -> dict[str, tuple[tuple[int, ...], np.dtype]]:
        return {"action": ((self.num_actions,), np.dtype(np.float32))}

    def _needed_observations(self) -> list[str]:
        names = ["Autophase", "IrInstructionCount"]
        if self._cost_name not in names:
            names.append(self._cost_name)
        if self.settings.instc_list_obs:
            names.append("InstCountNorm")
        return names

    # -- reset -------------------------------------------------------------------------------
    def reset(self, switch_benchmark: bool = True) -> dict[str, Any]:
        """Start an episode: the next benchmark (§2.6), or the current one again if not `switch_benchmark`.

        A benchmark whose reset raises or whose O0 count is <= 0 is skipped (logged) in
        favour of the next one, up to MAX_RESET_TRIES times.
        """
        self._forced_next = 0
        last_error: Exception | None = None
        for attempt in range(MAX_RESET_TRIES):
            if switch_benchmark or attempt > 0 or self._pending is None:
                self._pending, self._benchmark = next(self._source), None
            try:
                self._start_episode()
                return self._observation(0.0, is_first=True, is_last=False, is_terminal=False, applied=None)
            except Exception as exc:  # noqa: BLE001 - any failure skips the benchmark (§2.6)
                last_error = exc
                log.warning(
                    "reset failed on %s (%s: %s); skipping to the next benchmark",
                    self._pending.uri,
                    type(exc).__name__,
                    exc,
                )
        raise RuntimeError(
            f"{MAX_RESET_TRIES} benchmarks in a row failed to reset ({self.dataset}, mode {self.mode}); "
            f"last: {self._pending.uri}: {last_error}"
        ) from last_error

    def _start_episode(self) -> None:
        if self._benchmark is None:
            self._benchmark = resolve_benchmark(self._pending.load(), self.settings.data_root)
        self._episode_over = True
        self.env.reset(benchmark=self._benchmark)
        observe = self.env.observation
        self._o0 = int(observe["IrInstructionCountO0"])
        if self._o0 <= 0:
            raise EmptyModuleError(f"benchmark {self._benchmark.uri} has IrInstructionCountO0 = {self._o0}")
        self._oz = int(observe["IrInstructionCountOz"])
        self._init = float(observe[self._init_name])
        self._baseline = float(observe[self._baseline_name])
        # start "oz": the episode begins from -Oz's output; rewards are measured from its cost
        # (normalised by the same O0 - Oz as always), so the episode's return is its gain over -Oz.
        pipelines = [OZ_PIPELINE] if self.settings.start == "oz" else []
        values, _, terminated, _, info = self.env.multistep(
            pipelines, observation_spaces=self._observation_names, reward_spaces=[]
        )
        if terminated:
            raise RuntimeError(f"-Oz failed on {self._benchmark.uri} at reset: {info.get('error_details')}")
        self._values = dict(zip(self._observation_names, values))
        self._last_cost = float(self._values[self._cost_name])
        self._uri = self._benchmark.uri
        self._steps = 0
        self._histogram[:] = 0.0
        self._episode_over = False

    # -- step --------------------------------------------------------------------------------
    def set_forced_actions(self, actions: Sequence[int] | None) -> None:
        """Override the agent's actions with a fixed sequence (coreset mode, REFERENCE §2.7), or None to stop.

        Indices are into this task's action space (coreset sequences need act_space NoLimit).
        The sequence restarts at every reset(); when it is exhausted the step has is_last=True.
        """
        if actions is not None:
            actions = [int(a) for a in actions]
            if not actions:
                raise ValueError("forced action sequence is empty")
            bad = [a for a in actions if not 0 <= a < self.num_actions]
            if bad:
                raise ValueError(
                    f"forced actions {bad} are outside [0, {self.num_actions}) of action space {self.settings.act_space}"
                )
        self._forced, self._forced_next = actions, 0

    def step(self, action: int | np.ndarray | None) -> dict[str, Any]:
        """Apply one action (index or one-hot vector; ignored while forced actions are set) and observe."""
        if self._episode_over:
            raise RuntimeError("the episode is over (or never started): call reset() first")
        chosen = self._parse_action(action, allow_none=self._forced is not None)
        applied = self._forced[self._forced_next] if self._forced is not None else chosen
        if self._forced is not None:
            self._forced_next += 1
        self._steps += 1
        self._histogram[applied] += 1.0
        outcome = self._apply(applied)
        reward = 0.0
        if outcome.error is None:
            cost = float(self._values[self._cost_name])
            s = self.settings
            reward = step_reward(
                self._last_cost, cost, self._init, self._baseline, s.baseline_thre, s.leakiness, s.step_penalty
            )
            self._last_cost = cost
        is_terminal = outcome.ended or self._steps >= self.settings.max_step
        time_up = self.settings.time_limit > 0 and self._steps >= self.settings.time_limit
        forced_done = self._forced is not None and self._forced_next >= len(self._forced)
        is_last = is_terminal or time_up or forced_done
        self._episode_over = is_last
        return self._observation(reward, False, is_last, is_terminal, applied, outcome.error)

    def _parse_action(self, action: Any, allow_none: bool) -> int:
        if action is None and allow_none:
            return -1
        if isinstance(action, np.ndarray) and action.ndim == 1:
            ones = np.flatnonzero(action)
            if action.shape != (self.num_actions,) or len(ones) != 1 or action[ones[0]] != 1:
                raise ValueError(
                    f"action must be a one-hot vector of length {self.num_actions} (exactly one 1, all else 0); "
                    f"got shape {action.shape} with nonzeros {action[ones][:8].tolist()} at {ones[:8].tolist()}"
                )
            return int(ones[0])
        if isinstance(action, np.ndarray) and action.ndim == 0:
            action = action.item()
        if isinstance(action, (bool, np.bool_)) or not isinstance(action, (int, np.integer)):
            raise ValueError(
                f"action must be an index or a one-hot vector of length {self.num_actions}, got {action!r}"
            )
        if not 0 <= int(action) < self.num_actions:
            raise ValueError(f"action {int(action)} is out of range [0, {self.num_actions})")
        return int(action)

    def _apply(self, applied: int) -> _StepOutcome:
        """Run the action in the engine; the null action changes nothing, the Oz action runs `default<Oz>`
        (and ends the episode with oz_act, not with oz_continue)."""
        if applied == self.null_action:
            return _StepOutcome(ended=True, error=None)
        target: int | str = OZ_PIPELINE if applied == self.oz_action else applied
        try:
            values, _, terminated, _, info = self.env.step(
                target, observation_spaces=self._observation_names, reward_spaces=[]
            )
        except Exception as exc:  # noqa: BLE001 - an env failure ends the episode, never the run (§2.1)
            return self._failed(f"{type(exc).__name__}: {exc}")
        if terminated:
            return self._failed(
                f"{info.get('error_type', 'Error')}: {info.get('error_details', 'the environment ended the episode')}"
            )
        self._values = dict(zip(self._observation_names, values))
        return _StepOutcome(ended=self.oz_ends_episode and applied == self.oz_action, error=None)

    def _failed(self, error: str) -> _StepOutcome:
        log.warning("episode on %s aborted at step %d: %s", self._uri, self._steps, error)
        return _StepOutcome(ended=True, error=error)

    # -- observation -------------------------------------------------------------------------
    def _observation(
        self,
        reward: float,
        is_first: bool,
        is_last: bool,
        is_terminal: bool,
        applied: int | None,
        error: str | None = None,
    ) -> dict[str, Any]:
        s = self.settings
        count = int(self._values["IrInstructionCount"])
        action = np.zeros(self.num_actions, np.float32)
        if applied is not None:
            action[applied] = 1.0
        obs: dict[str, Any] = {
            "autophase": normalize_autophase(self._values["Autophase"]),
            "action_histogram": (self._histogram / s.max_step).astype(np.float32),
        }
        if self.instcount_size:
            norm = self._values.get("InstCountNorm")
            obs["instcount"] = instcount_observation(
                self._o0, self._oz, count, norm, s.abs_inst_obs, s.rel_inst_obs, s.instc_list_obs
            )
        obs.update(
            reward=np.float32(reward),
            is_first=is_first,
            is_last=is_last,
            is_terminal=is_terminal,
            reduction=np.float32(self._oz / max(1, count)),
            action=action,
            benchmark=self._uri,
            O0=np.int64(self._o0),
            Oz=np.int64(self._oz),
            count=np.int64(count),
        )
        if error is not None:
            obs["error"] = error
        return obs

    # -- lifetime ----------------------------------------------------------------------------
    def close(self) -> None:
        self.env.close()
        self._episode_over = True

    def __enter__(self) -> CompilerTask:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()
