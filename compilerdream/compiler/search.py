"""The search harness: any policy, one budget accounting, one result format (REFERENCE §6.8, §3).

A policy explores a benchmark through a `SearchContext`, which applies actions
in the real compiler, charges every applied action (one "compilation") and
elapsed seconds to the budget, and remembers the best action prefix seen.
Random search, greedy search and fixed pipelines (-Oz, -O3) are policies here;
the agent's guided search (compilerdream/search.py) plugs in the same way.

A search starts from the unoptimized program (`start="o0"`, the default), from
-Oz's output (`"oz"`: -Oz runs once per benchmark search, charged as one
compilation and recorded as the action "default<Oz>"; later resets restore it by
forking) or from both (`"both"`: the policy runs from each with half the budget).
"""

from __future__ import annotations

import csv
import json
import logging
import math
import os
import random
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field

from .benchmarks import Benchmark, BenchmarkLike, resolve_benchmark
from .env import LlvmEnv
from .errors import CompilerDreamError
from .fileio import atomic_write
from .metrics import dataset_of, leaderboard_reward, reduction, summarize
from .progress import progress_bar

log = logging.getLogger(__name__)

REWARD_SPACE = "IrInstructionCountOz"
OZ_PIPELINE = "default<Oz>"
#: Where a context's trajectories start: the unoptimized program, or -Oz's output.
STARTS = ("o0", "oz")
#: What a search may be asked to start from: a start, or both (half the budget each).
SEARCH_STARTS = (*STARTS, "both")


def check_start(start: str, allowed: Sequence[str] = SEARCH_STARTS, name: str = "start") -> str:
    """`start` in lower case if it is one of `allowed`; else ValueError with one line naming them."""
    value = start.strip().lower() if isinstance(start, str) else start
    if value not in allowed:
        raise ValueError(f"{name} must be one of {', '.join(allowed)}, got {start!r}")
    return value


class StartUnavailable(CompilerDreamError):
    """-Oz crashed on the benchmark: a search cannot start from its output."""


class BudgetExhausted(Exception):
    """Raised inside a policy when the budget is spent; the harness catches it."""


@dataclass
class Budget:
    """A limit in wall-clock seconds and/or compilations (applied actions) per benchmark."""

    seconds: float | None = None
    compilations: int | None = None

    def __post_init__(self) -> None:
        if self.seconds is None and self.compilations is None:
            raise ValueError("a search budget needs seconds or compilations (or both)")
        if self.seconds is not None and self.seconds <= 0:
            raise ValueError(f"budget seconds must be positive, got {self.seconds}")
        if self.compilations is not None and self.compilations <= 0:
            raise ValueError(f"budget compilations must be positive, got {self.compilations}")

    def halves(self) -> tuple[Budget | None, Budget | None]:
        """This budget split in two (seconds halved, compilations c//2 and c - c//2); None for a half with nothing."""
        seconds = None if self.seconds is None else self.seconds / 2
        if self.compilations is None:
            return Budget(seconds=seconds), Budget(seconds=seconds)
        first, second = self.compilations // 2, self.compilations - self.compilations // 2
        return (
            Budget(seconds=seconds, compilations=first) if first else None,
            Budget(seconds=seconds, compilations=second) if second else None,
        )

    def describe(self) -> str:
        parts = []
        if self.seconds is not None:
            parts.append(f"{self.seconds:g}s")
        if self.compilations is not None:
            parts.append(f"{self.compilations} compilations")
        return " / ".join(parts)


#: How long a compiler call that starts within a seconds budget may run past its end before it
#: counts as hung (the worker is then replaced, as for the env's own step timeout).
HANG_GRACE_SECONDS = 2.0


class _Meter:
    """Budget consumption shared by a context and its forks."""

    def __init__(self, budget: Budget, timeout: float | None = None):
        self.budget = budget
        self.start = time.monotonic()
        self.compilations = 0
        self.timeout = timeout  # the env's own step timeout: what one compiler call may take at most

    def call_timeout(self) -> float | None:
        """Seconds the next compiler call may take: what is left of a seconds budget plus
        HANG_GRACE_SECONDS, at most the env's own step timeout (a hung pass costs the budget,
        not the step timeout); None: leave the env's as it is."""
        if self.budget.seconds is None or self.timeout is None:
            return None
        return min(self.timeout, max(0.0, self.budget.seconds - self.elapsed) + HANG_GRACE_SECONDS)

    @property
    def elapsed(self) -> float:
        return time.monotonic() - self.start

    def exhausted(self, upcoming: int = 1) -> bool:
        b = self.budget
        if b.compilations is not None and self.compilations + upcoming > b.compilations:
            return True
        return b.seconds is not None and self.elapsed >= b.seconds


@dataclass
class _Best:
    reward: float = 0.0
    actions: list = field(default_factory=list)
    count: int | None = None
    start: str = "o0"  # where the trajectory of `actions` started
    options: tuple = ()  # opt's options `actions` were compiled under (`LlvmEnv.compiler_options`)


class _StartStates:
    """The start states of one benchmark search, shared by a context and its forks.

    `root` is the harness's env (it owns the worker; contexts never close it); `oz` a
    session holding -Oz's output, computed once and forked at every later reset.
    """

    def __init__(self, root: LlvmEnv):
        self.root = root
        self.oz: LlvmEnv | None = None
        self.oz_reward = 0.0
        # After SearchContext.try_options: the "o0" start is the program after `o0_actions`
        # (e.g. forceattrs), held by the session `o0`.
        self.o0: LlvmEnv | None = None
        self.o0_actions: list = []
        self.o0_reward = 0.0

    def close(self) -> None:
        if self.oz is not None:
            self.oz.close()
            self.oz = None
        if self.o0 is not None:
            self.o0.close()
            self.o0 = None


class SearchContext:
    """What a policy sees: apply actions, fork, reset; budget and best prefix are tracked for it.

    `start` ("o0" or "oz") is where `reset()` without an argument goes; the attribute
    `start` says where the current trajectory began (`trajectory` then holds "default<Oz>" first).
    """

    def __init__(
        self,
        env: LlvmEnv,
        meter: _Meter,
        best: _Best,
        prefix: list | None = None,
        rng=None,
        start: str = "o0",
        starts: _StartStates | None = None,
    ):
        self.env = env
        self._meter = meter
        self._best = best
        self.trajectory: list = list(prefix or [])
        self.cumulative = 0.0
        self.rng = rng or random.Random(0)
        self.default_start = check_start(start, STARTS)
        self._starts = starts or _StartStates(env)
        self.start = "o0"  # the env given is the unoptimized program (plus `prefix`)
        self._own_starts = False

    # -- budget ---------------------------------------------------------------
    @property
    def exhausted(self) -> bool:
        return self._meter.exhausted()

    @property
    def compilations(self) -> int:
        return self._meter.compilations

    @property
    def elapsed(self) -> float:
        return self._meter.elapsed

    @property
    def action_space(self):
        return self.env.action_space

    # -- acting ---------------------------------------------------------------
    def reset(self, start: str | None = None) -> None:
        """Start a new trajectory from `start` (None: this context's default start).

        "o0": the unoptimized benchmark (free: the program is cached in the worker).
        "oz": -Oz's output. The first time in a benchmark search -Oz runs here, charged as one
        compilation (BudgetExhausted if none is left) and recorded as the action "default<Oz>";
        afterwards it is restored for free by forking the session that holds it.
        Raises StartUnavailable when -Oz crashes on the benchmark.
        """
        start = self.default_start if start is None else check_start(start, STARTS)
        states = self._starts
        if start == "o0" and states.o0 is not None:  # the prepared program (see try_options)
            self._switch_to(states.o0.fork())
            self.trajectory, self.cumulative, self.start = list(states.o0_actions), states.o0_reward, "o0"
            return
        if start == "o0":
            self.env.reset()
            self.trajectory, self.cumulative, self.start = [], 0.0, "o0"
            return
        if states.oz is None:
            if self._meter.exhausted():
                raise BudgetExhausted
            self.env.reset()
            self.trajectory, self.cumulative, self.start = [], 0.0, "oz"
            _, died = self.step(OZ_PIPELINE)
            if died:
                uri = self.env.benchmark.uri
                raise StartUnavailable(f"-Oz ({OZ_PIPELINE}) crashed on {uri}: cannot start from its output")
            states.oz, states.oz_reward = self.env.fork(), self.cumulative
            return
        self._switch_to(states.oz.fork())
        self.trajectory, self.cumulative, self.start = [OZ_PIPELINE], states.oz_reward, "oz"

    def _switch_to(self, restored: LlvmEnv) -> None:
        """Continue in `restored` (a fork of a start state), closing the env used so far."""
        restored.action_space = self.env.action_space  # the space the policy chose
        previous, self.env = self.env, restored
        if previous is not self._starts.root:  # the harness's env owns the worker and replays the result
            previous.close()

    def start_actions(self, start: str) -> list:
        """The trajectory a reset to `start` begins with: [] or the preparation of try_options
        for "o0", ["default<Oz>"] for "oz"."""
        return list(self._starts.o0_actions) if check_start(start, STARTS) == "o0" else [OZ_PIPELINE]

    def try_options(self, options: Sequence[str], prepare: Sequence[str] = ()) -> bool:
        """`choose_options` with one candidate: whether the search now compiles under `options`."""
        return self.choose_options([options], prepare) is not None

    def choose_options(self, candidates: Sequence[Sequence[str]], prepare: Sequence[str] = ()) -> tuple | None:
        """Runs -Oz under each candidate set of opt's command-line options (e.g.
        ('-force-attribute=minsize',)), one compilation each, and keeps the one with the fewest
        instructions if that is fewer than -Oz's; returns it (None: none is, nothing changes).

        Under the kept options the rest of this benchmark search compiles (the harness replays and
        prints the result with them): the "oz" start becomes that output (and the best result so
        far, if it is), the "o0" start the program after `prepare` (e.g. "forceattrs", which adds
        the attributes the options name; one compilation each), and the context resets to "o0".
        A budget that ends among the candidates keeps the best of those tried, then raises
        BudgetExhausted. Call it before the policy applies anything.
        """
        states = self._starts
        best_count, best_probe, best_options, best_reward = int(states.root.observation["IrInstructionCountOz"]), None, None, 0.0
        exhausted = False
        try:
            for options in map(tuple, candidates):
                try:
                    count, probe, reward = self._probe_oz(options)
                except BudgetExhausted:  # keep what the probes so far found, then stop
                    exhausted = True
                    break
                if probe is not None and count < best_count:
                    if best_probe is not None:
                        best_probe.close()
                    best_count, best_probe, best_options, best_reward = count, probe, options, reward
                elif probe is not None:
                    probe.close()
        except BaseException:
            if best_probe is not None:
                best_probe.close()
            raise
        if best_probe is None:
            if exhausted:
                raise BudgetExhausted
            return None
        best_probe.step_timeout = states.root.step_timeout
        states.root.compiler_options = self.env.compiler_options = best_options
        if states.oz is not None:
            states.oz.close()
        states.oz, states.oz_reward = best_probe, best_reward
        if states.oz_reward > self._best.reward + 1e-12:  # a result in its own right: -Oz, smaller
            self._best.reward, self._best.actions, self._best.start = states.oz_reward, [OZ_PIPELINE], "oz"
            self._best.options = best_options
        if exhausted:
            raise BudgetExhausted
        self.reset("o0")  # the unoptimized program, now compiled under the options
        for action in prepare:
            _, died = self.step(action)
            if died:
                raise CompilerDreamError(f"preparing the program with {action!r} under {' '.join(best_options)} failed")
        states.o0, states.o0_actions, states.o0_reward = self.env.fork(), list(prepare), self.cumulative
        return best_options

    def fork_with_options(self, options: Sequence[str], prepare: Sequence[str] = ()) -> SearchContext:
        """A context on the unoptimized program compiled under other opt options (after
        `prepare`, one compilation each), sharing this one's budget and best result; this
        context's own options do not change. A result found there is kept with its options (the
        harness replays it with them). Close it after use. Raises CompilerDreamError where
        `prepare` crashes."""
        options = tuple(options)
        if self._meter.exhausted(len(prepare) or 1):
            raise BudgetExhausted
        env = self._starts.root.fork()
        try:
            env.reset()
            env.compiler_options = options
            child = SearchContext(env, self._meter, self._best, rng=self.rng, start="o0", starts=_StartStates(env))
            for action in prepare:
                _, died = child.step(action)
                if died:
                    raise CompilerDreamError(f"preparing the program with {action!r} under {' '.join(options)} failed")
        except BaseException:
            env.close()
            raise
        child._own_starts = True  # its env and start states are its own: close() closes them
        return child

    def _probe_oz(self, options: tuple) -> tuple[int, LlvmEnv | None, float]:
        """-Oz from the unoptimized program under `options` (one compilation): its count, the
        session holding it (None when it crashed) and its reward."""
        if self._meter.exhausted():
            raise BudgetExhausted
        probe = self._starts.root.fork()
        try:
            probe.reset()
            probe.compiler_options = options
            self._meter.compilations += 1
            self._bound_call(probe)
            _, reward, died, _, info = probe.step(OZ_PIPELINE)
            if died:
                log.warning("%s: -Oz under %s crashed: %s", probe.benchmark.uri, " ".join(options), info.get("error_details"))
                probe.close()
                return 0, None, 0.0
            return int(probe.observation["IrInstructionCount"]), probe, float(reward or 0.0)
        except BaseException:
            probe.close()
            raise

    def step(self, action) -> tuple[float, bool]:
        """Apply one action; returns (IrInstructionCountOz reward, episode ended by an error)."""
        if self._meter.exhausted():
            raise BudgetExhausted
        self._meter.compilations += 1
        self._bound_call()
        _, reward, terminated, _, info = self.env.step(action)
        if terminated:  # the compiler crashed or hung on this action: the trajectory is dead
            log.warning("%s: action %r ended the episode: %s", self.env.benchmark.uri, action, info.get("error_details"))
            self.trajectory = []
            return 0.0, True
        self._advance(action, float(reward or 0.0))
        return float(reward or 0.0), False

    def _advance(self, action, reward: float) -> None:
        """An applied action joins the trajectory; the best prefix is kept."""
        self.trajectory.append(action)
        self.cumulative += reward
        if self.cumulative > self._best.reward + 1e-12:
            self._best.reward = self.cumulative
            self._best.actions = list(self.trajectory)
            self._best.start = self.start
            self._best.options = tuple(self.env.compiler_options)

    def trace(self, actions: Sequence) -> tuple[list[float], bool]:
        """Apply several actions in one compiler call: each is one compilation, every prefix counts.

        The same as calling `step` for each action (best prefix, budget, rewards), but the
        worker measures the instruction count after each pass in one round trip. A budget
        with fewer compilations left than actions applies what fits, then raises
        BudgetExhausted. Returns (rewards, episode ended by an error).
        """
        actions = list(actions)
        if not actions:
            return [], False
        if self._meter.exhausted():
            raise BudgetExhausted
        b = self._meter.budget
        room = len(actions) if b.compilations is None else b.compilations - self._meter.compilations
        todo = actions[: max(room, 0)]
        self._meter.compilations += len(todo)
        self._bound_call()
        traced = self.env.trace(todo)
        if traced.error is not None:
            log.warning("%s: a pass of %r ended the episode: %s", self.env.benchmark.uri, todo, traced.error)
            self.trajectory = []
            return [], True
        for action, reward in zip(todo, traced.rewards):
            self._advance(action, reward)
        if len(todo) < len(actions):
            raise BudgetExhausted
        return list(traced.rewards), False

    def _bound_call(self, env: LlvmEnv | None = None) -> None:
        """The next compiler call (in `env`, default this context's) may not outlast the budget
        by more than HANG_GRACE_SECONDS."""
        timeout = self._meter.call_timeout()
        if timeout is not None:
            (env or self.env).step_timeout = timeout

    def keep_current(self) -> None:
        """Report the current trajectory as the search's result, better than the best so far or not."""
        self._best.reward, self._best.actions, self._best.start = self.cumulative, list(self.trajectory), self.start
        self._best.options = tuple(self.env.compiler_options)

    @property
    def best_actions(self) -> list:
        """The best sequence found so far in this search (from the unoptimized program)."""
        return list(self._best.actions)

    @property
    def best_options(self) -> tuple:
        """The opt options the best sequence so far was compiled under (see `fork_with_options`)."""
        return tuple(self._best.options)

    @property
    def best_start(self) -> str:
        """Where the best sequence found so far started ("o0" or "oz")."""
        return self._best.start

    def apply_pipeline(self, pipeline: str) -> tuple[float, bool]:
        """Apply any pipeline (e.g. 'default<Oz>') as one compilation."""
        return self.step(pipeline)

    def fork(self) -> SearchContext:
        child = SearchContext(
            self.env.fork(), self._meter, self._best, self.trajectory, self.rng, self.default_start, self._starts
        )
        child.cumulative, child.start = self.cumulative, self.start
        return child

    def close(self) -> None:
        if self.env is not self._starts.root:
            self.env.close()
        if self._own_starts:  # a context of fork_with_options
            self._starts.close()
            self._starts.root.close()


class SearchPolicy:
    """Base class: explore `ctx` until the budget or the method says stop.

    Policies start trajectories with `ctx.reset()`, which goes to the search's start.
    """

    name = "policy"
    #: A start the harness always uses for this policy, whatever it is asked (fixed pipelines: "o0").
    fixed_start: str | None = None

    def search(self, ctx: SearchContext) -> None:
        raise NotImplementedError


class RandomSearch(SearchPolicy):
    """CompilerGym's random search: random episodes, restarted after `patience` steps without improvement."""

    name = "random"

    def __init__(self, patience_ratio: float = 1.25, max_episode_length: int | None = None):
        self.patience_ratio = patience_ratio
        self.max_episode_length = max_episode_length

    def search(self, ctx: SearchContext) -> None:
        n = ctx.action_space.n
        patience = max(1, int(n * self.patience_ratio))
        while not ctx.exhausted:
            ctx.reset()
            best_in_episode, since_improvement, length = 0.0, 0, 0
            while since_improvement < patience and not ctx.exhausted:
                _, died = ctx.step(ctx.rng.randrange(n))
                length += 1
                if died:
                    break
                if ctx.cumulative > best_in_episode + 1e-12:
                    best_in_episode, since_improvement = ctx.cumulative, 0
                else:
                    since_improvement += 1
                if self.max_episode_length and length >= self.max_episode_length:
                    break


class GreedySearch(SearchPolicy):
    """(ε-)greedy search: each step fork once per action and keep the best immediate reward."""

    name = "greedy"

    def __init__(self, epsilon: float = 0.0):
        self.epsilon = epsilon

    def search(self, ctx: SearchContext) -> None:
        ctx.reset()
        n = ctx.action_space.n
        while not ctx.exhausted:
            if self.epsilon and ctx.rng.random() < self.epsilon:
                _, died = ctx.step(ctx.rng.randrange(n))
                if died:
                    return
                continue
            best = (-math.inf, -1)
            for action in range(n):
                child = ctx.fork()
                try:
                    reward, died = child.step(action)
                finally:
                    child.close()
                if not died:
                    best = max(best, (reward, action))  # ties go to the higher index, like CompilerGym
            if best[0] <= 0:
                return
            _, died = ctx.step(best[1])
            if died:
                return


class PipelinePolicy(SearchPolicy):
    """A fixed pipeline applied once to the unoptimized program, e.g. -Oz = 'default<Oz>'."""

    fixed_start = "o0"

    def __init__(self, name: str, pipeline: str):
        self.name = name
        self.pipeline = pipeline

    def search(self, ctx: SearchContext) -> None:
        ctx.reset("o0")
        _, died = ctx.apply_pipeline(self.pipeline)
        if not died:  # its result even where it is larger than the unoptimized program (-Oz can be)
            ctx.keep_current()


#: Methods `make_policy` knows (guided search needs a checkpoint and lives in compilerdream.search).
POLICY_NAMES = ("oz", "o3", "random", "greedy", "coreset", "optimize", "optimize-no-outline", "oz-outline")


def make_policy(
    name: str, coreset: str | None = "default", budget: Budget | None = None, start: str | None = None
) -> SearchPolicy:
    """A policy by name: random, greedy, oz, o3, coreset (best prefix over `coreset`; `start`
    o0/oz/both overrides the starts it stores), optimize (`compilerdream optimize`'s default
    method; with `budget`, its search stops there, else at its own small default),
    optimize-no-outline (the same without LLVM's IR outliner: CompilerGym's actions and -Oz
    only), oz-outline (-Oz, then the outlining pipelines of `optimize`)."""
    key = name.lower()
    if key == "coreset":
        from .coreset import CoresetPolicy

        return CoresetPolicy(coreset or "default", start=start)
    if key in ("optimize", "optimize-no-outline"):
        from .default_optimizer import default_policy

        seconds, compilations = (budget.seconds, budget.compilations) if budget else (None, None)
        return default_policy(coreset, seconds, compilations, outline=key == "optimize")[0]
    if key == "oz-outline":
        from .default_optimizer import Outline

        return Outline(from_oz=True)
    if key == "random":
        return RandomSearch()
    if key == "greedy":
        return GreedySearch()
    if key in ("oz", "-oz"):
        return PipelinePolicy("-Oz", "default<Oz>")
    if key in ("o3", "-o3"):
        return PipelinePolicy("-O3", "default<O3>")
    raise CompilerDreamError(
        f"unknown search method '{name}': choose {', '.join(POLICY_NAMES)} (or guided with a checkpoint)"
    )


@dataclass
class SearchResult:
    """One benchmark searched by one method: the result format of every search."""

    benchmark: str
    dataset: str
    method: str
    best_actions: list
    commandline: str
    O0: int
    Oz: int
    final: int
    reduction: float  # CompilerDream: Oz / final
    leaderboard: float  # CompilerGym: (O0 - final) / max(O0 - Oz, 1)
    walltime: float
    compilations: int
    budget: str
    error: str | None = None
    #: The action space `best_actions` index into (policies may switch the env's space).
    action_space: str = "NoLimit"
    #: `best_actions` as CompilerGym flags (pipelines kept as they are): replayable in any space.
    best_passes: list = field(default_factory=list)
    #: Where the winning sequence started: "o0", or "oz" (then `best_actions` begin with "default<Oz>").
    start: str = "o0"
    #: opt's own options every pass of `best_actions` ran under (`SearchContext.try_options`);
    #: replay them with these set (`LlvmEnv.compiler_options`), as `commandline` does.
    compiler_options: list = field(default_factory=list)

    def to_json(self) -> dict:
        return asdict(self)


def search_benchmark(
    policy: SearchPolicy,
    benchmark: BenchmarkLike,
    budget: Budget,
    action_space: str = "NoLimit",
    seed: int = 0,
    env_factory: Callable[[], LlvmEnv] | None = None,
    dataset: str | None = None,
    start: str | None = "o0",
) -> SearchResult:
    """Run one policy on one benchmark within `budget`; the best prefix is replayed and measured.

    `start`: "o0" (the unoptimized program), "oz" (-Oz's output, see `SearchContext.reset`)
    or "both" (the policy runs from -O0 with the first half of the budget, then from -Oz with
    the second; the best over both wins); None is "o0". Policies with a `fixed_start` ignore it.
    """
    start = check_start(start or "o0")
    start = getattr(policy, "fixed_start", None) or start  # duck-typed policies may lack the attribute
    bench = resolve_benchmark(benchmark)
    if start == "both":
        runs = [(s, b) for s, b in zip(STARTS, budget.halves()) if b is not None]
    else:
        runs = [(start, budget)]
    env = env_factory() if env_factory else LlvmEnv(reward_space=REWARD_SPACE, action_space=action_space)
    env.reward_space = REWARD_SPACE
    best, states = _Best(), _StartStates(env)
    spent = {"walltime": 0.0, "compilations": 0}
    ds = dataset or dataset_of(bench.uri)
    try:
        env.reset(benchmark=bench)
        o0 = int(env.observation["IrInstructionCountO0"])
        oz = int(env.observation["IrInstructionCountOz"])
        for i, (run_start, run_budget) in enumerate(runs):
            if i:
                env.reset()  # the next half starts from a clean program too
            _run_policy(policy, env, run_budget, run_start, best, states, seed, spent, may_fail=len(runs) > 1)
        walltime, compilations = spent["walltime"], spent["compilations"]
        states.close()
        env.compiler_options = tuple(best.options)  # what the best result was compiled under
        env.reset(benchmark=bench)  # replay the best prefix: the reported count is measured, not predicted
        if best.actions:
            _, _, died, _, info = env.multistep(best.actions)
            if died:
                raise CompilerDreamError(f"replaying the best sequence crashed: {info.get('error_details')}")
        final = int(env.observation["IrInstructionCount"])
        commandline = env.commandline()
        options = list(env.compiler_options)
        error = None
        space = env.action_space  # after the policy ran: the space its actions index into
        passes = space.passes(best.actions)
    except CompilerDreamError as exc:
        log.warning("search on %s failed: %s", bench.uri, exc)
        o0 = oz = final = 0
        walltime, compilations, commandline, error = spent["walltime"], spent["compilations"], "", str(exc)
        space, passes, options = env.action_space, [], []
    finally:
        states.close()
        env.close()
    return SearchResult(
        benchmark=bench.uri,
        dataset=ds,
        method=policy.name,
        best_actions=[a if isinstance(a, str) else int(a) for a in best.actions],
        commandline=commandline,
        O0=o0,
        Oz=oz,
        final=final,
        reduction=reduction(oz, final) if not error else 0.0,
        leaderboard=leaderboard_reward(o0, oz, final) if not error else 0.0,
        walltime=round(walltime, 4),
        compilations=compilations,
        budget=budget.describe(),
        error=error,
        action_space=space.name,
        best_passes=passes,
        start=best.start if best.actions else "o0",
        compiler_options=options,
    )


def _run_policy(
    policy: SearchPolicy,
    env: LlvmEnv,
    budget: Budget,
    start: str,
    best: _Best,
    states: _StartStates,
    seed: int,
    spent: dict,
    may_fail: bool,
) -> None:
    """One run of `policy` from `start` within `budget` (its own meter); adds what it spent to `spent`.

    With `may_fail` (one half of start="both") a StartUnavailable is logged and the run skipped.
    """
    meter = _Meter(budget, timeout=env.step_timeout)  # started after the baselines: not charged to the method
    ctx = SearchContext(env, meter, best, rng=random.Random(seed), start=start, starts=states)
    try:
        if start != "o0":
            ctx.reset()  # the policy's first view is its start
        policy.search(ctx)
    except BudgetExhausted:
        pass
    except StartUnavailable as exc:
        if not may_fail:
            raise
        log.warning("%s: %s; only the search from -O0 counts", env.benchmark.uri, exc)
    finally:
        spent["walltime"] += meter.elapsed
        spent["compilations"] += meter.compilations
        env.step_timeout = meter.timeout  # the policy's calls may have shortened it; the replay gets it whole
        ctx.close()  # a session the context forked (never the harness's env)


#: Written one line per result while a search runs, so a killed run keeps what it finished.
PARTIAL_FILE = "results.jsonl"


def run_search(
    policies: Sequence[SearchPolicy],
    benchmarks: Iterable[BenchmarkLike | tuple[str, BenchmarkLike]],
    budget: Budget,
    action_space: str = "NoLimit",
    seed: int = 0,
    out_dir: str | os.PathLike | None = None,
    progress: bool = True,
    budgets: dict[str, Budget] | None = None,
    start: str | None = "o0",
) -> list[SearchResult]:
    """Every policy on every benchmark; writes results.json/.csv and summary.md to `out_dir` if given.

    `benchmarks` items are URIs/paths/Benchmarks or (dataset_name, benchmark) pairs.
    `budgets` overrides the budget per method name (e.g. -Oz needs 1 compilation).
    `start`: "o0", "oz" or "both", as in `search_benchmark`.
    """
    start = check_start(start or "o0")  # refused before any work
    items: list[tuple[str | None, Benchmark]] = []
    for item in benchmarks:
        name, spec = item if isinstance(item, tuple) else (None, item)
        items.append((name, resolve_benchmark(spec)))
    results: list[SearchResult] = []
    if out_dir:  # results.jsonl grows as results come in: it holds this run only
        partial = os.path.join(out_dir, PARTIAL_FILE)
        if os.path.exists(partial):
            os.unlink(partial)
    total = len(items) * len(policies)
    bar = progress_bar(total=total, desc="search", unit="run", disable=not progress)
    for name, bench in items:
        for policy in policies:
            b = (budgets or {}).get(policy.name, budget)
            result = search_benchmark(policy, bench, b, action_space=action_space, seed=seed, dataset=name, start=start)
            results.append(result)
            bar.set_postfix_str(f"{policy.name} {bench.name}: {result.reduction:.3f}x", refresh=False)
            bar.update(1)
            if out_dir:
                _write_partial(out_dir, result)
    bar.close()
    if out_dir:
        write_results(results, out_dir)
    return results


def _write_partial(out_dir, result: SearchResult) -> None:
    os.makedirs(out_dir, exist_ok=True)
    with open(os.path.join(out_dir, PARTIAL_FILE), "a") as f:
        f.write(json.dumps(result.to_json()) + "\n")


def summary_table(results: Sequence[SearchResult]) -> str:
    """Markdown table: per method and dataset, both metrics, labelled.

    A benchmark whose search failed (`error` set: it did not load, or its best sequence
    crashed on replay) counts as 0 in the geomeans, as in the reference, so the `failed`
    column says when a 0 comes from failures; a note under the table names them.
    """
    methods = list(dict.fromkeys(r.method for r in results))
    datasets = sorted({r.dataset for r in results})
    lines = [
        "| method | dataset | n | failed | CompilerDream reduction (geomean Oz/final) | CompilerGym leaderboard (geomean (O0-final)/(O0-Oz)) | mean walltime s | mean compilations |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for m in methods:
        rows = [r.to_json() for r in results if r.method == m]
        red = summarize(rows, "reduction")
        lb = summarize(rows, "leaderboard")
        for ds in datasets:
            sub = [r for r in rows if r["dataset"] == ds]
            if not sub:
                continue
            lines.append(
                f"| {m} | {ds} | {len(sub)} | {sum(1 for r in sub if r['error'])} | {red['per_dataset'][ds]:.4f} | "
                f"{lb['per_dataset'][ds]:.4f} | {sum(r['walltime'] for r in sub) / len(sub):.2f} | "
                f"{sum(r['compilations'] for r in sub) / len(sub):.0f} |"
            )
        lines.append(
            f"| {m} | **all (geomean of datasets)** | {len(rows)} | {sum(1 for r in rows if r['error'])} | "
            f"**{red['geomean_of_datasets']:.4f}** | **{lb['geomean_of_datasets']:.4f}** | "
            f"{sum(r['walltime'] for r in rows) / max(len(rows), 1):.2f} | "
            f"{sum(r['compilations'] for r in rows) / max(len(rows), 1):.0f} |"
        )
    failed = sorted({r.benchmark for r in results if r.error})
    if failed:
        shown = ", ".join(failed[:5]) + (f" and {len(failed) - 5} more" if len(failed) > 5 else "")
        lines += ["", f"Failed (counted as 0 in the geomeans; reasons in results.json `error`): {shown}"]
    return "\n".join(lines)


def write_results(results: Sequence[SearchResult], out_dir) -> dict[str, str]:
    """results.json, results.csv and summary.md (atomic writes)."""
    os.makedirs(out_dir, exist_ok=True)
    paths = {k: os.path.join(out_dir, v) for k, v in (("json", "results.json"), ("csv", "results.csv"), ("md", "summary.md"))}
    rows = [r.to_json() for r in results]
    atomic_write(paths["json"], json.dumps(rows, indent=1))
    fields = list(rows[0].keys()) if rows else list(SearchResult.__dataclass_fields__)
    import io

    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=fields)
    writer.writeheader()
    for row in rows:
        writer.writerow({k: (json.dumps(v) if isinstance(v, list) else v) for k, v in row.items()})
    atomic_write(paths["csv"], buf.getvalue())
    atomic_write(paths["md"], "# Search results\n\n" + summary_table(results) + "\n")
    return paths
