"""Guided search (REFERENCE §3, §1.4): the trained agent's policy as a policy of the search harness.

The agent does not plan in its world model here: it proposes passes, the real
compiler applies them. Rollouts restart from the search's start (the unoptimized
program by default; -Oz's output with `--search.start oz`, or both with half the
budget each) until the budget (seconds or compilations,
`compilerdream.compiler.search.Budget`) is spent;
the harness charges every applied action and keeps the best prefix. When nothing
improves, the result is the unoptimized program (reduction Oz/O0), not the
reference's 0 (§3 quirk).

`examples/test_guided_search.py` (`main_guided`) runs it on the test split of
`--test_dataset`; `compilerdream.optimize` and `evaluate` use `load_guided_policy`.
The agent-loading helpers here are shared with `compilerdream.coreset`.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import sys
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from compilerdream.compiler.benchmarks import Benchmark
from compilerdream.compiler.env import LlvmEnv
from compilerdream.compiler.progress import line_buffered_stdout, progress_bar
from compilerdream.compiler.search import (
    SEARCH_STARTS,
    Budget,
    SearchContext,
    SearchPolicy,
    SearchResult,
    check_start,
    search_benchmark,
    summary_table,
    write_results,
)
from compilerdream.compiler.spaces import action_space
from compilerdream.config import Config, load_configs
from compilerdream.task import (
    AUTOPHASE_SIZE,
    INSTCOUNT_NORM_SIZE,
    OZ_PIPELINE,
    REWARD_OBSERVATIONS,
    TaskSettings,
    instcount_observation,
    normalize_autophase,
    step_reward,
)

if TYPE_CHECKING:
    from compilerdream.agent import Agent

log = logging.getLogger(__name__)

P_RANDOM = 0.05  # the reference's probability of a uniformly random action (§3)
OUTPUT_DIR = "guided_search"
CHECKPOINT_NAMES = ("variables_best_val.pt", "variables_best_eval.pt", "variables.pt")
#: Keys that describe how to search, taken from the command line even when the
#: agent's own keys (architecture, observation and action spaces) come from its config.yaml.
RUNTIME_KEYS = (
    "actor.temp",
    "eval_state_mean",
    "device",
    "seed",
    "data_root",
    "search.seconds",
    "search.compilations",
    "search.p_random",
    "search.start",
    "compilergym.step_timeout",
)


# ---------------------------------------------------------------------------------------------
# The agent's view of a program (REFERENCE §2.2), built from any LlvmEnv


def agent_spaces(settings: TaskSettings) -> tuple[dict[str, tuple[int, ...]], int]:
    """(obs_space, num_actions) the agent is built with: CompilerTask's, key order included, without an env.

    The encoder concatenates its inputs in this order, so it must equal `CompilerTask.obs_space`
    (a test compares them).
    """
    num_actions = settings.num_actions
    instcount = 3 * settings.abs_inst_obs + settings.rel_inst_obs + INSTCOUNT_NORM_SIZE * settings.instc_list_obs
    space: dict[str, tuple[int, ...]] = {"autophase": (AUTOPHASE_SIZE,), "action_histogram": (num_actions,)}
    if instcount:
        space["instcount"] = (int(instcount),)
    space.update(reward=(), is_first=(), is_last=(), is_terminal=(), reduction=())
    return space, num_actions


def episode_length(settings: TaskSettings) -> int:
    """Steps until `is_last`: max_step, or time_limit when it is shorter (REFERENCE §2.4)."""
    if settings.time_limit > 0:
        return min(settings.max_step, settings.time_limit)
    return settings.max_step


class AgentObserver:
    """The observation dict of `CompilerTask` (REFERENCE §2.2), read from an env someone else steps.

    `start(env)` after a reset reads the baselines and features; `restart()` gives the same
    first observation again for the next rollout on the same program (no IPC);
    `step(env, action)` after the caller applied `action` reads the new features in one
    worker call.
    """

    def __init__(self, settings: TaskSettings, num_actions: int):
        self.settings = settings
        self.num_actions = int(num_actions)
        self.cost_name, self.init_name, self.baseline_name = REWARD_OBSERVATIONS[settings.rew_space]
        names = ["Autophase", "IrInstructionCount"]
        if self.cost_name not in names:
            names.append(self.cost_name)
        if settings.instc_list_obs:
            names.append("InstCountNorm")
        self.names = names
        self._histogram = np.zeros(self.num_actions, np.float64)
        self._first: dict[str, Any] = {}
        self._steps = 0
        self._o0 = self._oz = 0
        self._init = self._baseline = self._last_cost = 0.0

    def read(self, env: LlvmEnv) -> dict[str, Any]:
        """The raw observations this observer needs, in one worker call (no pass applied)."""
        values, *_ = env.multistep([], observation_spaces=self.names, reward_spaces=[])
        return dict(zip(self.names, values))

    def start(self, env: LlvmEnv) -> dict[str, Any]:
        """The first observation of a freshly reset program (remembered for `restart`)."""
        self._o0 = int(env.observation["IrInstructionCountO0"])
        self._oz = int(env.observation["IrInstructionCountOz"])
        self._init = float(env.observation[self.init_name])
        self._baseline = float(env.observation[self.baseline_name])
        self._first = self.read(env)
        return self.restart()

    def restart(self) -> dict[str, Any]:
        """The first observation again: the program is back at the state `start` read (its start)."""
        self._histogram[:] = 0.0
        self._steps = 0
        self._last_cost = float(self._first[self.cost_name])
        return self._build(self._first, 0.0, is_first=True)

    @property
    def o0(self) -> int:
        return self._o0

    @property
    def oz(self) -> int:
        return self._oz

    @property
    def init(self) -> float:
        """The reward's O0 baseline (REFERENCE §2.3 `init`)."""
        return self._init

    @property
    def baseline(self) -> float:
        """The reward's Oz baseline (REFERENCE §2.3 `baseline`)."""
        return self._baseline

    def step(self, env: LlvmEnv, applied: int) -> dict[str, Any]:
        """The observation after the caller applied action `applied` (an agent index) to `env`."""
        self._histogram[applied] += 1.0
        self._steps += 1
        values = self.read(env)
        cost = float(values[self.cost_name])
        s = self.settings
        reward = step_reward(
            self._last_cost, cost, self._init, self._baseline, s.baseline_thre, s.leakiness, s.step_penalty
        )
        self._last_cost = cost
        return self._build(values, reward, is_first=False)

    def _build(self, values: Mapping[str, Any], reward: float, is_first: bool) -> dict[str, Any]:
        s = self.settings
        count = int(values["IrInstructionCount"])
        obs: dict[str, Any] = {
            "autophase": normalize_autophase(values["Autophase"]),
            "action_histogram": (self._histogram / s.max_step).astype(np.float32),
        }
        if 3 * s.abs_inst_obs + s.rel_inst_obs + s.instc_list_obs:
            obs["instcount"] = instcount_observation(
                self._o0, self._oz, count, values.get("InstCountNorm"), s.abs_inst_obs, s.rel_inst_obs, s.instc_list_obs
            )
        last = self._steps >= episode_length(s)
        obs.update(
            reward=np.float32(reward),
            is_first=np.bool_(is_first),
            is_last=np.bool_(last),
            is_terminal=np.bool_(self._steps >= s.max_step),
            reduction=np.float32(self._oz / max(1, count)),
        )
        return obs


def batch_of_one(obs: Mapping[str, Any]) -> dict[str, np.ndarray]:
    """A batch of one observation, (1, ...) per key: what `Agent.policy` takes."""
    return {key: np.asarray(value)[None] for key, value in obs.items()}


# ---------------------------------------------------------------------------------------------
# The policy


class GuidedSearch(SearchPolicy):
    """Policy-guided random search in the real compiler (REFERENCE §3).

    Each rollout starts from the search's start (`ctx.reset()`: the unoptimized program, or
    -Oz's output) with a fresh agent state and runs until the episode length (max_step /
    time_limit, 45), an error, the null action or the Oz action of `oz_act` (the Oz action
    of `oz_continue` applies -Oz and goes on). Each step: the agent's observation (as the
    task builds it) -> slow actor in `mode` ("explore": sample + `expl_noise`, as the
    reference) -> with probability `p_random` a uniformly random action instead -> one
    compilation through the harness.
    The agent's recurrent state is told the action really applied (the reference kept the
    discarded policy action).

    Args:
        agent: a trained `Agent` whose action space is `settings.act_space` (+ null/Oz actions).
        settings: the task settings (or a flat config) the agent was trained with.
        p_random: probability of a uniform action instead of the policy's.
        temperature: softmax temperature of the acting actor (the reference's `actor.temp`);
            None keeps the agent's.
        mode: `Agent.policy` mode.
    """

    name = "guided"

    def __init__(
        self,
        agent: Agent,
        settings: TaskSettings | Mapping[str, Any],
        p_random: float = P_RANDOM,
        temperature: float | None = 1.0,
        mode: str = "explore",
    ):
        self.agent = agent
        self.settings = settings if isinstance(settings, TaskSettings) else TaskSettings.from_config(settings)
        _, self.num_actions = agent_spaces(self.settings)
        if int(agent.num_actions) != self.num_actions:
            raise ValueError(
                f"the agent has {agent.num_actions} actions but action space {self.settings.act_space} "
                f"(null_act={self.settings.null_act}, oz_act={self.settings.oz_act}, "
                f"oz_continue={self.settings.oz_continue}) has {self.num_actions}"
            )
        if not 0.0 <= p_random <= 1.0:
            raise ValueError(f"p_random must be in [0, 1], got {p_random}")
        self.p_random = float(p_random)
        self.mode = mode
        self.base_actions = int(action_space(self.settings.act_space).n)
        self.null_action = self.base_actions if self.settings.null_act else None
        self.oz_action = self.settings.oz_index if self.settings.oz_slot else None
        self.oz_ends_episode = self.settings.oz_act  # oz_continue's Oz action lets the rollout go on
        self.max_length = episode_length(self.settings)
        if temperature is not None:
            # The acting actor's temperature is a plain attribute of its head; changing it changes only sampling.
            agent.behavior.acting_actor().temp = float(temperature)
        self.temperature = temperature

    def search(self, ctx: SearchContext) -> None:
        """Rollouts from the context's start until the budget is spent (the harness stops us)."""

        ctx.env.action_space = self.settings.act_space
        observer = AgentObserver(self.settings, self.num_actions)
        with agent_on_benchmark(self.agent, ctx):
            first = True
            while not ctx.exhausted:
                ctx.reset()
                obs = observer.start(ctx.env) if first else observer.restart()
                first = False
                self.rollout(ctx, observer, obs)

    def rollout(self, ctx: SearchContext, observer: AgentObserver, obs: dict[str, Any]) -> None:
        """One episode of the policy in the real compiler; returns when it ends (BudgetExhausted propagates)."""
        state = None
        for _ in range(self.max_length):
            onehot, state = self.agent.policy(batch_of_one(obs), state, mode=self.mode)
            action = int(np.asarray(onehot[0]).argmax())
            if self.p_random and ctx.rng.random() < self.p_random:
                action = ctx.rng.randrange(self.num_actions)
                state = (state[0], _one_hot_like(state[1], action))
            if action == self.null_action:
                return
            _, died = ctx.step(OZ_PIPELINE if action == self.oz_action else action)
            if died or (self.oz_ends_episode and action == self.oz_action):
                return
            obs = observer.step(ctx.env, action)


@contextmanager
def single_thread_on_cpu(agent: Agent) -> Iterator[None]:
    """One torch thread while an agent on the CPU alternates with the compiler worker (restored afterwards).

    Each compilation is followed by one small forward pass; more threads only fight the
    worker process for the cores (8x slower on 2 cores).
    """
    import torch

    threads = torch.get_num_threads()
    if agent.device.type == "cpu":
        torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


@contextmanager
def agent_on_benchmark(agent: Agent, ctx: SearchContext) -> Iterator[None]:
    """The agent acting on one benchmark: one CPU thread, and torch's RNG seeded from the harness's
    (so each benchmark is reproducible from the harness seed), the caller's RNG state restored after."""
    import torch

    devices = [agent.device] if agent.device.type == "cuda" else []
    with single_thread_on_cpu(agent), torch.random.fork_rng(devices=devices):
        torch.manual_seed(ctx.rng.randrange(2**31))
        yield


def _one_hot_like(previous: Any, action: int) -> Any:
    """A (1, A) one-hot tensor on the device and dtype of `previous`."""
    onehot = previous.new_zeros(previous.shape)
    onehot[0, action] = 1.0
    return onehot


# ---------------------------------------------------------------------------------------------
# Loading a trained agent


def checkpoint_config(directory: str | os.PathLike) -> Config | None:
    """`directory/config.yaml` over the current defaults (keys added since it was written get defaults), or None."""
    path = Path(directory) / "config.yaml"
    if not path.is_file():
        return None
    saved = Config.load(path)
    return Config({**load_configs([]).to_dict(), **saved.to_dict()})


def find_agent_checkpoint(path: str | os.PathLike) -> Path:
    """The checkpoint file: `path` itself if it is a file, else the reference's priority in the folder (§1.3 step 10)."""
    from compilerdream.pretrained import describe_missing, resolve_checkpoint

    p = Path(resolve_checkpoint(path))
    if p.is_file():
        return p
    if not p.is_dir():
        raise FileNotFoundError(describe_missing(p))
    for name in CHECKPOINT_NAMES:
        if (p / name).is_file():
            return p / name
    raise FileNotFoundError(f"no checkpoint in {p}: expected one of {', '.join(CHECKPOINT_NAMES)} (train one first)")


def load_agent(
    checkpoint: str | os.PathLike, device: str = "auto", config: Mapping[str, Any] | None = None
) -> tuple[Agent, Config]:
    """Build the agent described by `config` (default: the checkpoint folder's config.yaml) and load its weights.

    The checkpoint may be the driver's (`{"agent": state_dict, "counters", "rng"}`) or
    `Agent.save`'s plain state dict. Global RNG states are not touched.
    """
    import torch

    from compilerdream.agent import Agent
    from compilerdream.driver import resolve_device

    path = find_agent_checkpoint(checkpoint)
    if config is None:
        config = checkpoint_config(path.parent)
        if config is None:
            raise FileNotFoundError(f"{path.parent} has no config.yaml describing the agent; pass `config`")
    config = config if isinstance(config, Config) else Config(dict(config))
    settings = TaskSettings.from_config(config)
    obs_space, num_actions = agent_spaces(settings)
    agent = Agent(obs_space, num_actions, config, resolve_device(str(device)))
    payload = torch.load(path, map_location=agent.device, weights_only=False)
    state = payload["agent"] if isinstance(payload, Mapping) and "agent" in payload else payload
    problem = weights_mismatch(agent, state)
    if problem is None:
        try:
            if "model_opt" in state:
                agent.load_state_dict(state)
            else:  # weights only (a shipped agent): the optimisers keep their fresh state
                agent.world_model.load_state_dict(state["world_model"])
                agent.behavior.load_state_dict(state["behavior"])
        except (RuntimeError, KeyError, ValueError) as exc:
            problem = str(exc).strip().splitlines()[0]
    if problem is not None:
        raise ValueError(
            f"checkpoint {path} does not fit the agent its config.yaml describes (act_space {settings.act_space}, "
            f"{num_actions} actions, rssm deter {config['rssm.deter']}): {problem}"
        ) from None
    log.info("loaded %s (%s, %d actions)", path, settings.act_space, num_actions)
    return agent, config


class OneRollout(SearchPolicy):
    """The agent's one greedy rollout: one episode of `GuidedSearch.rollout` (pass it a greedy GuidedSearch).

    GuidedSearch restarts rollouts until its budget is spent; an episode that ends early
    (null action, -Oz action, crash) would be replayed identically, so this runs exactly one.
    """

    name = "agent-rollout"

    def __init__(self, guided_policy: GuidedSearch):
        self.guided = guided_policy

    def search(self, ctx: SearchContext) -> None:

        g = self.guided
        ctx.env.action_space = g.settings.act_space
        observer = AgentObserver(g.settings, g.num_actions)
        with agent_on_benchmark(g.agent, ctx):
            ctx.reset()
            g.rollout(ctx, observer, observer.start(ctx.env))


def weights_mismatch(agent: Agent, state: Any) -> str | None:
    """The first difference between a checkpoint's weights and `agent`'s, in one line; None when they fit."""
    if not isinstance(state, Mapping) or not all(k in state for k in ("world_model", "behavior")):
        return "not an agent checkpoint (no world_model/behavior weights)"
    for part in ("world_model", "behavior"):
        have, saved = getattr(agent, part).state_dict(), state[part]
        missing = [k for k in have if k not in saved]
        extra = [k for k in saved if k not in have]
        if missing or extra:
            name = (missing or extra)[0]
            return f"{part}: {len(missing)} weights missing, {len(extra)} unexpected (first: {name})"
        for key, tensor in have.items():
            shape = tuple(getattr(saved[key], "shape", ()))
            if shape != tuple(tensor.shape):
                return f"{part}.{key} has shape {shape} in the checkpoint, {tuple(tensor.shape)} in the agent"
    return None


def load_guided_policy(
    checkpoint_dir: str | os.PathLike,
    device: str = "auto",
    config: Mapping[str, Any] | None = None,
    p_random: float | None = None,
    temperature: float | None = None,
) -> GuidedSearch:
    """The guided-search policy of a trained agent (REFERENCE §3).

    `config` defaults to the checkpoint folder's config.yaml; `p_random` and `temperature`
    default to its `search.p_random` and `actor.temp`.
    """
    agent, config = load_agent(checkpoint_dir, device, config)
    return GuidedSearch(
        agent,
        TaskSettings.from_config(config),
        p_random=float(config.get("search.p_random", P_RANDOM)) if p_random is None else p_random,
        temperature=float(config.get("actor.temp", 1.0)) if temperature is None else temperature,
    )


def agent_config(cli: Config) -> Config:
    """The agent's config for a run: its checkpoint's config.yaml, with the search keys of the command line.

    Without a config.yaml beside the checkpoint the command-line config is used as is.
    A different `compilergym.act_space` on the command line is reported, not obeyed:
    the weights fix the action space.
    """
    saved = checkpoint_config(_load_dir(cli))
    if saved is None:
        return cli
    if saved["compilergym.act_space"] != cli["compilergym.act_space"]:
        log.warning(
            "the checkpoint was trained with compilergym.act_space %s; using it instead of %s",
            saved["compilergym.act_space"],
            cli["compilergym.act_space"],
        )
    return saved.update({key: cli[key] for key in RUNTIME_KEYS if key in cli and key in saved})


def require_checkpoint(config: Mapping[str, Any]) -> Path:
    """The checkpoint of `--load_logdir`, or exit with a clear message (the reference's `assert False`, §1.4)."""
    try:
        return find_agent_checkpoint(_load_dir(config))
    except FileNotFoundError as exc:
        raise SystemExit(f"compilerdream: {exc}") from None


def _load_dir(config: Mapping[str, Any]) -> Path:
    load_dir = str(config["load_logdir"])
    if load_dir in ("", "/dev/null"):
        raise SystemExit("compilerdream: --load_logdir DIR is required: a trained agent's checkpoint folder")
    from compilerdream.pretrained import resolve_checkpoint

    return Path(resolve_checkpoint(load_dir))


# ---------------------------------------------------------------------------------------------
# Benchmarks and outputs of the example scripts


@dataclass(frozen=True)
class BenchmarkRef:
    """A test benchmark named by URI, loaded on demand (so one broken file fails alone)."""

    uri: str
    load: Callable[[], Benchmark]


def split_benchmarks(config: Mapping[str, Any]) -> list[BenchmarkRef]:
    """The first `test_eps` benchmarks of the test split of `test_dataset`, in order (REFERENCE §2.6)."""
    from compilerdream.compiler.datasets import dataset_for_task, split
    from compilerdream.compiler.errors import CompilerDreamError

    name = str(config["test_dataset"])
    data_root = str(config.get("data_root") or "") or None
    try:
        test_split = split(dataset_for_task(name, data_root=data_root), "test")
    except CompilerDreamError as exc:
        raise SystemExit(f"compilerdream: --test_dataset {name}: {exc}") from None
    count = min(int(config["test_eps"]), len(test_split))
    if count <= 0:
        raise SystemExit(f"compilerdream: the test split of '{name}' is empty (or --test_eps is 0)")
    return [BenchmarkRef(uri, _loader(test_split, uri)) for uri in (test_split[i] for i in range(count))]


def _loader(test_split: Any, uri: str) -> Callable[[], Benchmark]:
    return lambda: test_split.benchmark(uri)


def safe_name(uri: str, limit: int = 120) -> str:
    """A file name for a benchmark URI: `cbench-v1_qsort` for benchmark://cbench-v1/qsort."""
    text = re.sub(r"[^A-Za-z0-9._-]+", "_", uri.split("://", 1)[-1]).strip("_.") or "benchmark"
    if len(text) > limit:
        text = text[-limit:].lstrip("_.") + "-" + hashlib.sha1(uri.encode()).hexdigest()[:8]
    return text


def search_budget(config: Mapping[str, Any]) -> Budget:
    """`search.compilations` per benchmark when > 0 (deterministic), else `search.seconds` of wall time.

    Raises SystemExit with one line for a negative count or a non-positive time.
    """
    compilations, seconds = int(config["search.compilations"]), float(config["search.seconds"])
    if compilations < 0:
        raise SystemExit(f"compilerdream: --search.compilations must be positive (or 0 to use --search.seconds), got {compilations}")
    if compilations > 0:
        return Budget(compilations=compilations)
    if seconds <= 0:
        raise SystemExit(f"compilerdream: --search.seconds must be positive, got {config['search.seconds']}")
    return Budget(seconds=seconds)


def search_start(config: Mapping[str, Any]) -> str:
    """`search.start` (o0, oz or both), or SystemExit with one line naming the key and the allowed values."""
    try:
        return check_start(str(config.get("search.start", "o0")), SEARCH_STARTS, "--search.start")
    except ValueError as exc:
        raise SystemExit(f"compilerdream: {exc}") from None


def failed_result(uri: str, method: str, budget: Budget, error: str) -> SearchResult:
    """The result row of a benchmark that could not be loaded (counted as 0 in geomeans, as a failure)."""
    from compilerdream.compiler.metrics import dataset_of

    return SearchResult(
        benchmark=uri, dataset=dataset_of(uri), method=method, best_actions=[], commandline="", O0=0, Oz=0, final=0,
        reduction=0.0, leaderboard=0.0, walltime=0.0, compilations=0, budget=budget.describe(), error=error,
    )  # fmt: skip


def write_json_atomic(path: Path, data: Any) -> None:
    """JSON (numpy values converted) through a temporary file and os.replace."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    tmp.write_text(json.dumps(data, indent=1, default=_json_default))
    os.replace(tmp, path)


def _json_default(value: Any) -> Any:
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


def prepare_output(config: Config, argv: Sequence[str], subdir: str) -> Path:
    """`logdir/subdir`, with config.yaml and used_config.yaml written (REFERENCE §1.3 step 5).

    They go to the logdir as in the reference, except when the logdir is the checkpoint's
    own folder, whose config.yaml describes the agent: then they go to the subfolder.
    """
    logdir = Path(os.path.expanduser(str(config["logdir"])))
    if str(config["logdir"]) in ("", "/dev/null"):
        raise SystemExit("compilerdream: --logdir DIR is required (every output goes under it)")
    if logdir.exists() and not logdir.is_dir():
        raise SystemExit(f"compilerdream: --logdir {logdir} is a file, not a folder")
    out = logdir / subdir
    out.mkdir(parents=True, exist_ok=True)
    load_dir = str(config["load_logdir"])
    same = load_dir not in ("", "/dev/null") and Path(os.path.expanduser(load_dir)).resolve() == logdir.resolve()
    target = out if same else logdir
    config.save(target / "config.yaml")
    header = "## command line input:\n## " + " ".join(argv) + "\n##########\n\n"
    (target / "used_config.yaml").write_text(header + config.to_yaml())
    return out


def run_guided(
    policy: GuidedSearch,
    benchmarks: Sequence[BenchmarkRef],
    budget: Budget,
    out_dir: Path,
    seed: int = 0,
    progress: bool = True,
    start: str = "o0",
) -> list[SearchResult]:
    """Guided search on each benchmark; per-benchmark JSON as it goes, then results.json/.csv and summary.md.

    `start`: "o0", "oz" or "both", as in `compilerdream.compiler.search.search_benchmark`.
    """
    start = check_start(start or "o0")
    results: list[SearchResult] = []
    bar = progress_bar(benchmarks, desc="guided search", unit="benchmark", disable=not progress, dynamic_ncols=True)
    for ref in bar:
        try:
            bench = ref.load()
        except Exception as exc:  # noqa: BLE001 - one unloadable benchmark must not end the run
            log.warning("cannot load %s: %s", ref.uri, exc)
            result = failed_result(ref.uri, policy.name, budget, f"{type(exc).__name__}: {exc}")
        else:
            result = search_benchmark(
                policy, bench, budget, action_space=policy.settings.act_space, seed=seed,
                env_factory=_env_factory(policy.settings), start=start,
            )  # fmt: skip
        results.append(result)
        record = {**result.to_json(), "p_random": policy.p_random, "temperature": policy.temperature}
        write_json_atomic(out_dir / f"{safe_name(ref.uri)}.json", record)
        bar.set_postfix_str(f"{bench_label(ref.uri)} {result.reduction:.3f}x", refresh=False)
    write_results(results, out_dir)
    return results


def _env_factory(settings: TaskSettings) -> Callable[[], LlvmEnv]:
    return lambda: LlvmEnv(action_space=settings.act_space, step_timeout=settings.step_timeout)


def bench_label(uri: str) -> str:
    return uri.rstrip("/").rsplit("/", 1)[-1]


# ---------------------------------------------------------------------------------------------
# examples/test_guided_search.py


def main_guided(argv: Sequence[str] | None = None) -> int:
    """Guided search with a trained agent on the test split (REFERENCE §1.4); outputs under --logdir."""
    line_buffered_stdout()
    from compilerdream.config import main_parse
    from compilerdream.driver import seed_everything

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    argv = list(sys.argv[1:] if argv is None else argv)
    cli = main_parse(argv, description="Guided search with a trained CompilerDream agent (REFERENCE §3)")
    budget = search_budget(cli)  # refused before anything is written
    start = search_start(cli)
    require_checkpoint(cli)
    config = agent_config(cli)
    out_dir = prepare_output(cli, ["test_guided_search.py", *argv], OUTPUT_DIR)
    seed_everything(int(cli["seed"]))
    benchmarks = split_benchmarks(cli)
    try:
        policy = load_guided_policy(
            _load_dir(cli), str(cli["device"]), config, float(cli["search.p_random"]), float(cli["actor.temp"])
        )
    except (FileNotFoundError, ValueError) as exc:
        raise SystemExit(f"compilerdream: {exc}") from None
    print(f"guided search: {len(benchmarks)} benchmarks of {cli['test_dataset']}, {budget.describe()} each, "
          f"action space {policy.settings.act_space}, p_random {policy.p_random}, start {start}")  # fmt: skip
    if policy.settings.start != "o0" and start == "o0":
        log.warning("the agent was trained from compilergym.start %s; this search starts from o0 (--search.start %s "
                    "starts where it learned)", policy.settings.start, policy.settings.start)  # fmt: skip
    results = run_guided(policy, benchmarks, budget, out_dir, seed=int(cli["seed"]), start=start)
    print(summary_table(results))
    print(f"results: {out_dir}")
    return 0
