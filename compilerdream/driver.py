"""The training loop of CompilerDream (REFERENCE §1.3): prefill, pretrain, train every N env steps, validate, test.

`run(config, argv)` receives everything through the config; the pieces it uses
(tasks, replay, agent, logger) are built by small factories, so the loop reads
top to bottom. Everything is written under `--logdir`; nothing into the CWD.
"""

from __future__ import annotations

import logging
import os
import random
import signal
import sys
import time
from collections import defaultdict
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from compilerdream.compiler.errors import CompilerDreamError
from compilerdream.compiler.fileio import atomic_write_json
from compilerdream.compiler.metrics import dataset_of, geomean
from compilerdream.compiler.progress import line_buffered_stdout, progress_bar

log = logging.getLogger("compilerdream.driver")

CHECKPOINT = "variables.pt"
BEST_VAL = "variables_best_val.pt"
ERROR_CHECKPOINT = "variables_error.pt"
# Keys of an observation that are stored in the replay (strings and diagnostics are not).
REPLAY_SKIP = {"benchmark", "error", "O0", "Oz", "count"}


# --------------------------------------------------------------------------- setup
def resolve_device(name: str) -> str:
    """'auto' -> 'cuda' when a GPU is visible, else 'cpu'. 'cuda' without a GPU is an error."""
    import torch

    name = str(name).lower()
    if name == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise SystemExit("compilerdream: --device cuda was requested but no CUDA GPU is visible; use --device cpu or auto")
    if name not in ("cpu",) and not name.startswith("cuda"):
        raise SystemExit(f"compilerdream: unknown --device '{name}': use auto, cpu or cuda")
    return name


def seed_everything(seed: int) -> None:
    import torch

    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    if torch.cuda.is_available():
        torch.cuda.manual_seed_all(seed)


#: Settings that must be at least 1 (counts and sizes) or at least 0; checked before any work starts.
_AT_LEAST_ONE = ("envs", "dataset.batch", "dataset.length", "train_every", "train_steps", "compilergym.max_step",
                 "time_limit", "log_every", "eval_every", "imag_horizon", "replay.capacity")  # fmt: skip
_AT_LEAST_ZERO = ("prefill", "pretrain", "steps", "test_eps", "eval_eps")


def check_settings(config) -> None:
    """One clear line for a setting out of range, instead of a failure deep inside a later step."""
    for key in _AT_LEAST_ONE:
        if float(config[key]) < 1:
            raise SystemExit(f"compilerdream: --{key} must be at least 1, got {config[key]}")
    for key in _AT_LEAST_ZERO:
        if float(config[key]) < 0:
            raise SystemExit(f"compilerdream: --{key} must not be negative, got {config[key]}")
    if not 0.0 <= float(config["replay.dreamsmooth"]) < 1.0:
        raise SystemExit(f"compilerdream: --replay.dreamsmooth must be in [0, 1), got {config['replay.dreamsmooth']}")
    from compilerdream.task import TaskSettings

    try:  # the task's own keys (compilergym.start, oz_act/oz_continue, rew_space, ...)
        TaskSettings.from_config(config)
    except (ValueError, KeyError) as exc:
        raise SystemExit(f"compilerdream: {exc}") from None


def prepare_logdir(config, argv: Sequence[str]) -> Path:
    logdir = Path(os.path.expanduser(str(config["logdir"])))
    if str(logdir) in ("/dev/null", ""):
        raise SystemExit("compilerdream: --logdir is required (every output goes under it)")
    if logdir.exists() and not logdir.is_dir():
        raise SystemExit(f"compilerdream: --logdir {logdir} is a file, not a folder")
    logdir.mkdir(parents=True, exist_ok=True)
    config.save(logdir / "config.yaml")
    header = "## command line input:\n## " + " ".join(argv) + "\n##########\n\n"
    (logdir / "used_config.yaml").write_text(header + config.to_yaml())
    return logdir


def make_task(config, mode: str, index: int = 0, benchmarks=None):
    from compilerdream.task import CompilerTask

    dataset = task_dataset(config) if mode in ("train", "val") else str(config["test_dataset"])
    backend = str(config["env_backend"]).lower()
    if backend == "ray":  # the same task interface, in a Ray actor on any node of the cluster
        from compilerdream.compiler.executor import RayMissingError
        from compilerdream.ray_env import RayTask

        try:
            return RayTask(dataset, mode, config, seed=int(config["seed"]) + index, benchmarks=benchmarks)
        except RayMissingError as exc:
            raise SystemExit(f"compilerdream: {exc}") from None
    if backend != "local":
        raise SystemExit(f"compilerdream: --env_backend must be local or ray, not '{config['env_backend']}'")
    return CompilerTask(dataset, mode, config, seed=int(config["seed"]) + index, benchmarks=benchmarks)


def task_dataset(config) -> str:
    suite, _, dataset = str(config["task"]).partition("_")
    if suite != "compilergym" or not dataset:
        raise SystemExit(f"compilerdream: unknown --task '{config['task']}': expected compilergym_<dataset>, e.g. compilergym_csmith")
    return dataset


# --------------------------------------------------------------------- episodes
class EpisodeRunner:
    """Steps several tasks with one policy; hands complete episodes to callbacks.

    `policy(obs_batch, state) -> (actions_onehot, state)`; the agent state is
    carried across steps (rows restart on is_first).
    """

    def __init__(self, vec, forced_sequences: list[list[int]] | None = None, rng=None):
        self.vec = vec
        self.forced = forced_sequences
        self.rng = rng or np.random.default_rng(0)
        self.obs: list[dict] | None = None
        self.buffers: list[list[dict]] = []
        self.state = None
        self.sequence_index: list[int | None] = []

    def reset(self) -> None:
        self.obs = []
        self.sequence_index = [None] * len(self.vec.tasks)
        for i, task in enumerate(self.vec.tasks):
            self._choose_sequence(i)
            self.obs.append(task.reset())
        self.buffers = [[o] for o in self.obs]
        self.state = None

    def _choose_sequence(self, i: int, index: int | None = None) -> None:
        if not self.forced:
            return
        # Every sequence can be drawn, including the last (fixes REFERENCE §7.9).
        k = int(self.rng.integers(len(self.forced))) if index is None else index
        self.sequence_index[i] = k
        self.vec.tasks[i].set_forced_actions(self.forced[k])

    def run(
        self,
        policy: Callable,
        steps: int = 0,
        episodes: int = 0,
        on_step: Callable[[int], None] | None = None,
        on_episode: Callable[[dict, dict], None] | None = None,
        sequence_for_episode: Callable[[int], int | None] | None = None,
        stop: Callable[[], bool] | None = None,
        while_compiling: Callable[[], None] | None = None,
    ) -> int:
        """Run until `steps` env steps (total) and/or `episodes` complete episodes; returns episodes done.

        `while_compiling` runs after the actions are sent to the compiler workers and before
        their results are awaited, so learning overlaps compilation.
        """
        if self.obs is None:
            self.reset()
        done_steps = done_episodes = 0
        while True:
            if steps and done_steps >= steps and not episodes:
                break
            if episodes and done_episodes >= episodes:
                break
            if stop is not None and stop():
                break
            batch = stack_obs(self.obs)
            actions, self.state = policy(batch, self.state)
            indices = np.asarray(actions).argmax(-1)
            self.vec.step_async([int(a) for a in indices])
            if while_compiling is not None:
                while_compiling()
            new_obs = self.vec.step_wait()
            self._record_applied_actions(new_obs)
            for i, ob in enumerate(new_obs):
                self.buffers[i].append(ob)
                done_steps += 1
                if on_step is not None:
                    on_step(1)
                if ob["is_last"]:
                    episode = stack_episode(self.buffers[i])
                    info = {"benchmark": ob.get("benchmark"), "O0": ob.get("O0"), "Oz": ob.get("Oz"),
                            "count": ob.get("count"), "error": ob.get("error"), "sequence": self.sequence_index[i]}
                    done_episodes += 1
                    if on_episode is not None:
                        on_episode(episode, info)
                    seq = sequence_for_episode(done_episodes) if sequence_for_episode else None
                    self._choose_sequence(i, seq)
                    new_obs[i] = self.vec.tasks[i].reset()
                    self.buffers[i] = [new_obs[i]]
            self.obs = new_obs
        return done_episodes

    def _record_applied_actions(self, new_obs: list[dict]) -> None:
        """The agent's recurrent state must see the action really applied (forced coreset actions differ)."""
        if not (isinstance(self.state, tuple) and len(self.state) == 2 and "action" in new_obs[0]):
            return
        import torch

        latent, prev = self.state
        applied = torch.as_tensor(np.stack([o["action"] for o in new_obs]), dtype=prev.dtype, device=prev.device)
        self.state = (latent, applied)

    def discard_partial(self) -> None:
        """Drop unfinished episodes (after prefill, as the reference does) and start fresh ones."""
        self.obs = None


def stack_obs(obs_list: list[dict]) -> dict[str, np.ndarray]:
    """Stack the numeric keys of several obs dicts (a batch of envs, or the steps of an episode)."""
    keys = [k for k, v in obs_list[0].items() if k not in REPLAY_SKIP and not isinstance(v, str)]
    return {k: np.stack([np.asarray(o[k]) for o in obs_list]) for k in keys}


def stack_episode(steps: list[dict]) -> dict[str, np.ndarray]:
    episode = stack_obs(steps)
    if any(s.get("error") for s in steps):
        episode["error"] = np.asarray(True)
    return episode


def episode_summary(episode: dict, info: dict) -> dict:
    reward = np.asarray(episode.get("reward_raw", episode["reward"]), dtype=np.float64)
    count = info.get("count")
    oz = info.get("Oz")
    reduction = float(episode["reduction"][-1]) if "reduction" in episode else (oz / max(1, count) if count else 0.0)
    return {
        "benchmark": info.get("benchmark"),
        "length": int(len(reward) - 1),
        "score": float(reward[1:].sum()),
        "reduction": 0.0 if info.get("error") else reduction,
        "O0": None if info.get("O0") is None else int(info["O0"]),
        "final": None if count is None else int(count),
        "Oz": None if oz is None else int(oz),
        "error": info.get("error"),
        "seq_index": info.get("sequence"),
    }


# ---------------------------------------------------------------------- testing
def summarize_test(results: dict[str, dict]) -> dict[str, float]:
    """Per-dataset means/geomeans and overall figures (REFERENCE §1.3, with file:// grouping fixed)."""
    groups: dict[str, list[dict]] = defaultdict(list)
    for uri, r in results.items():
        groups[dataset_of(uri)].append(r)
    metrics: dict[str, float] = {}
    means, geos = [], []
    for ds, rows in sorted(groups.items()):
        red = [r["reduction"] for r in rows]
        metrics[f"test_reduction_{ds}_mean"] = float(np.mean(red))
        metrics[f"test_reduction_{ds}_geomean"] = geomean(red)
        metrics[f"test_return_{ds}_mean"] = float(np.mean([r["score"] for r in rows]))
        metrics[f"test_length_{ds}_mean"] = float(np.mean([r["length"] for r in rows]))
        means.append(metrics[f"test_reduction_{ds}_mean"])
        geos.append(metrics[f"test_reduction_{ds}_geomean"])
    all_red = [r["reduction"] for r in results.values()]
    metrics["test_reduction_mean"] = float(np.mean(means)) if means else 0.0
    metrics["test_reduction_geomean"] = geomean(geos)
    metrics["test_raw_reduction_geomean"] = geomean(all_red)
    metrics["test_reduction_max"] = float(max(all_red)) if all_red else 0.0
    metrics["test_reduction_min"] = float(min(all_red)) if all_red else 0.0
    return metrics


def test_table(results: dict[str, dict], metrics: dict[str, float], step: int) -> str:
    lines = [f"# Test at step {step}", "", "| benchmark | length | return | O0 | Oz | final | reduction (Oz/final) |",
             "|---|---|---|---|---|---|---|"]
    for uri, r in results.items():
        lines.append(f"| {uri} | {r['length']} | {r['score']:.4f} | {r['O0']} | {r['Oz']} | {r['final']} | {r['reduction']:.4f} |")
    lines += ["", "| dataset | reduction geomean | reduction mean |", "|---|---|---|"]
    for key, value in metrics.items():
        if key.startswith("test_reduction_") and key.endswith("_geomean") and key != "test_reduction_geomean":
            ds = key[len("test_reduction_") : -len("_geomean")]
            lines.append(f"| {ds} | {value:.4f} | {metrics.get(f'test_reduction_{ds}_mean', 0):.4f} |")
    lines.append(f"| **all (geomean of datasets)** | **{metrics['test_reduction_geomean']:.4f}** | {metrics['test_reduction_mean']:.4f} |")
    return "\n".join(lines) + "\n"


def run_test(agent, config, logdir: Path, step: int, logger, test_vec) -> dict[str, float]:
    """`test_eps` greedy episodes on the test split; in coreset-enumerate mode every sequence on every benchmark."""
    from compilerdream.task import TaskSettings, coreset_action_sequences

    task = test_vec.tasks[0]
    enumerate_coreset = bool(config["coreset_mode"]) and bool(config["coreset_enumerate_test"])
    # Each sequence k runs on all test benchmarks (fixes the k/k+1 mix-up of REFERENCE §4.4).
    sequences = coreset_action_sequences(str(config["coreset"]), TaskSettings.from_config(config)) if enumerate_coreset else []
    plans = [[seq] for seq in sequences] if enumerate_coreset else [None]
    n_bench = int(config["test_eps"])
    split_size = getattr(task, "split_size", None)
    if split_size:
        n_bench = min(n_bench, int(split_size))
    results: dict[str, dict] = {}
    current = {"k": None}

    def on_episode(episode, info):
        s = episode_summary(episode, info)
        s["seq_index"] = current["k"]
        uri = s["benchmark"]
        if uri in results and results[uri]["score"] >= s["score"]:
            return  # coreset enumeration keeps each benchmark's best real return
        results[uri] = s

    for k, plan in enumerate(plans):
        current["k"] = k if plan is not None else None
        task.restart_iteration()
        runner = EpisodeRunner(test_vec, forced_sequences=plan)
        runner.run(lambda obs, state: agent.policy(obs, state, mode="eval"), episodes=n_bench, on_episode=on_episode)
    metrics = summarize_test(results)
    write_json(logdir / "test_results.json", {"step": step, "metrics": metrics, "results": results})
    (logdir / "tests").mkdir(exist_ok=True)
    table = test_table(results, metrics, step)
    (logdir / "tests" / f"test_{step:08d}.md").write_text(table)
    (logdir / "test_results.md").write_text(table)
    logger.add(metrics, prefix="test")
    logger.write()
    return metrics


write_json = atomic_write_json


def run_validation(agent, config, logger, val_vec) -> float:
    """`eval_eps` greedy episodes on the validation split (same programs each time); returns the reduction geomean."""
    summaries: list[dict] = []
    val_vec.tasks[0].restart_iteration()
    runner = EpisodeRunner(val_vec)
    runner.run(lambda obs, state: agent.policy(obs, state, mode="eval"), episodes=int(config["eval_eps"]),
               on_episode=lambda episode, info: summaries.append(episode_summary(episode, info)))
    reductions = [v["reduction"] for v in summaries]
    value = geomean(reductions)
    logger.add({"val_reduction_geomean": value, "val_reduction_mean": float(np.mean(reductions)),
                "val_return_mean": float(np.mean([v["score"] for v in summaries]))}, prefix="val")
    logger.write()
    return value


# ------------------------------------------------------------------ checkpoints
def save_checkpoint(path: Path, agent, counters: dict) -> None:
    import torch

    payload = {"agent": agent.state_dict(), "counters": dict(counters),
               "rng": {"numpy": np.random.get_state(), "python": random.getstate(), "torch": torch.get_rng_state()}}
    tmp = path.with_name(path.name + f".tmp{os.getpid()}")
    torch.save(payload, tmp)
    os.replace(tmp, path)


def load_checkpoint(path: Path, agent) -> dict:
    import torch

    payload = torch.load(path, map_location=agent.device, weights_only=False)
    agent.load_state_dict(payload["agent"])
    rng = payload.get("rng") or {}
    if "numpy" in rng:
        np.random.set_state(rng["numpy"])
        random.setstate(rng["python"])
        torch.set_rng_state(rng["torch"])
    return dict(payload.get("counters") or {})


def find_checkpoint(directory: Path) -> Path | None:
    """Load priority of the reference: best validation, then best eval, then the latest."""
    for name in (BEST_VAL, "variables_best_eval.pt", CHECKPOINT):
        if (directory / name).exists():
            return directory / name
    return None


# ---------------------------------------------------------------------- trainer
class Trainer:
    """The training loop as named steps (REFERENCE §1.3): resume, prefill, pretrain, train, evaluate, checkpoint.

    `Trainer(config, argv)` checks the settings and builds the run's parts (logdir, replay,
    logger, tasks, agent); `run()` drives them and always closes them. Each step is one
    method, so a reader (or a subclass) finds where a thing happens by its name:

    * `resume()`: a checkpoint from `--load_logdir`, or this logdir's own after a kill;
    * `prefill()`: random episodes until `prefill` env steps, then `pretrain()` updates;
    * `collect(steps)`: the agent acts; due updates (`train_step()`) run while the
      compiler workers apply the actions;
    * `evaluate()`: validation (best checkpoint) and the test every `test_interval`;
    * `checkpoint(name)`: agent, counters and RNG states, written atomically.
    """

    def __init__(self, config, argv: Sequence[str] = ()):
        from compilerdream.task import TaskSettings, coreset_action_sequences

        check_settings(config)
        if config["coreset_mode"] and str(config["compilergym.act_space"]) != "NoLimit":
            raise SystemExit(
                "compilerdream: coreset_mode needs --compilergym.act_space NoLimit (the 50 coreset sequences index "
                f"the 124 flags), not {config['compilergym.act_space']}"
            )
        try:  # the coreset is read (and checked against the action space) before any work starts
            self.forced = (coreset_action_sequences(str(config["coreset"]), TaskSettings.from_config(config))
                           if config["coreset_mode"] else None)
        except ValueError as exc:
            raise SystemExit(f"compilerdream: {exc}") from None
        self.config = config
        self.logdir = prepare_logdir(config, argv)
        self.device = resolve_device(str(config["device"]))
        seed_everything(int(config["seed"]))
        set_threads(self.device)
        self.test_only = bool(config["test_only"])
        self.batch_size, self.seq_len = int(config["dataset.batch"]), int(config["dataset.length"])
        stop_steps = int(config["stop_steps"])
        #: The run ends at this many env steps (`steps`, or `stop_steps` when smaller and set).
        self.step_limit = min(int(config["steps"]), stop_steps if stop_steps > 0 else int(config["steps"]))

        self.replay = self._make_replay()
        stats = self.replay.stats()
        self.counters = {"step": stats.get("total_steps", self.replay.num_steps), "updates": 0, "eval_count": 0,
                         "best_val": -1.0, "episodes": stats.get("total_episodes", self.replay.num_episodes)}
        self.logger = self._make_logger()
        self.train_vec = self.val_vec = self.test_vec = None
        self.bar = None
        self.runner: EpisodeRunner | None = None
        self.carry = None  # the world model's last posterior, passed back to agent.train
        self.since_train = 0  # env steps since updates were last scheduled
        self.pending = 0  # updates due, run while the compiler works
        self.metrics: dict[str, list[float]] = defaultdict(list)
        self.recent_returns: list[float] = []
        self.recent_reductions: list[float] = []
        self.last_test: dict[str, float] = {}
        self.last_test_step = -1
        self.resumed = False
        self.loaded_from: Path | None = None
        self.started = time.monotonic()
        self.interrupted = False
        try:
            self._make_tasks()
            self.agent = self._make_agent()
        except BaseException:
            self.close()
            raise

    # ------------------------------------------------------------------ parts
    def _make_replay(self):
        from compilerdream.replay import Replay

        return Replay.from_config(self.logdir / "train_episodes", self.config)

    def _make_logger(self):
        from compilerdream.logger import JSONLOutput, Logger, TensorBoardOutput, TerminalOutput

        terminal = TerminalOutput(pattern=r"^(train/(return|reduction)|losses/(model_loss|reward_loss|actor_ent|"
                                  r"critic_loss)|fps|val/val_reduction_geomean|test/test_reduction_geomean)$")
        logger = Logger(self.logdir, lambda: self.counters["step"],
                        outputs=[terminal, JSONLOutput(self.logdir), TensorBoardOutput(self.logdir)])
        logger.config(dict(self.config))
        return logger

    def _make_tasks(self) -> None:
        from compilerdream.vec_env import VecTask

        config = self.config
        if not self.test_only:
            self.train_vec = VecTask([make_task(config, "train", i) for i in range(int(config["envs"]))])
        if config["enable_val"] and not self.test_only:
            self.val_vec = VecTask([make_task(config, "val", 1000)])
        if config["enable_test"]:
            self.test_vec = VecTask([make_task(config, "test", 2000)])
        if (self.train_vec or self.test_vec or self.val_vec) is None:
            raise SystemExit("compilerdream: nothing to do: --test_only True needs --enable_test True")

    def _make_agent(self):
        from compilerdream.agent import Agent

        first_task = (self.train_vec or self.test_vec or self.val_vec).tasks[0]
        obs_space = {k: shape for k, (shape, _dtype) in first_task.obs_space.items()}
        self.num_actions = int(first_task.num_actions)
        return Agent(obs_space, self.num_actions, self.config, self.device)

    # ------------------------------------------------------------- named steps
    def resume(self) -> None:
        """Load `--load_logdir`'s checkpoint (weights only), or this logdir's own to continue a killed run."""
        load_dir = Path(os.path.expanduser(str(self.config["load_logdir"])))
        source = find_checkpoint(load_dir) if str(load_dir) != "/dev/null" and load_dir.exists() else None
        if str(load_dir) != "/dev/null" and source is None:
            raise SystemExit(f"compilerdream: --load_logdir {load_dir} holds no checkpoint ({BEST_VAL} or {CHECKPOINT})")
        if source is not None:
            log.info("loading checkpoint %s", source)
            load_checkpoint(source, self.agent)
            self.loaded_from = source
        elif (self.logdir / CHECKPOINT).exists():
            log.info("resuming from %s", self.logdir / CHECKPOINT)
            saved = load_checkpoint(self.logdir / CHECKPOINT, self.agent)
            self.counters.update({k: v for k, v in saved.items() if k != "step"})
            self.counters["step"] = max(self.counters["step"], int(saved.get("step", 0)))
            self.resumed = True
        elif self.test_only:
            raise SystemExit("compilerdream: --test_only needs a checkpoint: pass --load_logdir DIR")

    def prefill(self) -> None:
        """Random episodes until `prefill` env steps (at least one episode), then `pretrain` updates.

        Skipped after a resume; pretraining is skipped too when weights were loaded.
        """
        config = self.config
        steps = max(0, int(config["prefill"]) - self.counters["step"])
        if steps and not self.resumed:
            log.info("prefill: %d random steps", steps)
            rng = np.random.default_rng(int(config["seed"]))
            eye = np.eye(self.num_actions, dtype=np.float32)

            def random_policy(obs, state):
                return eye[rng.integers(self.num_actions, size=len(obs["reward"]))], None

            self.runner.run(random_policy, steps=steps, on_step=self.on_step, on_episode=self.on_episode,
                            stop=self.out_of_time, while_compiling=self.run_pending_updates)
            if self.replay.num_episodes == 0:
                self.runner.run(random_policy, episodes=1, on_step=self.on_step, on_episode=self.on_episode)
            self.runner.discard_partial()
        if not self.resumed and self.loaded_from is None:
            self.pretrain()

    def pretrain(self) -> None:
        log.info("pretrain: %d updates", int(self.config["pretrain"]))
        for _ in range(int(self.config["pretrain"])):
            self.train_step()

    def train_step(self) -> None:
        """One world-model and actor-critic update on a batch sampled from the replay."""
        if self.replay.num_episodes == 0:
            return
        batch = self.replay.sample(self.batch_size, self.seq_len)
        self.carry, metrics = self.agent.train(batch, self.carry)
        self.counters["updates"] += 1
        for key, value in metrics.items():
            self.metrics[key].append(value)

    def run_pending_updates(self) -> None:
        """The updates that are due, run while the compiler workers apply the next actions."""
        while self.pending > 0:
            self.pending -= 1
            self.train_step()

    def collect(self, steps: int) -> None:
        """`steps` env steps with the agent's policy; updates are scheduled every `train_every` steps."""
        self.runner.run(self.train_policy, steps=steps, on_step=self.on_step, on_episode=self.on_episode,
                        stop=self.out_of_time, while_compiling=self.run_pending_updates)

    def train_policy(self, obs, state):
        # Fixes REFERENCE §7.4: exploration only while expl_until holds (0 = always explore, as trained).
        expl_until = int(self.config["expl_until"])
        mode = "explore" if expl_until <= 0 or self.counters["step"] < expl_until else "train"
        return self.agent.policy(obs, state, mode=mode)

    def evaluate(self) -> None:
        """Validation (keeps the best checkpoint) and, every `test_interval` evaluations, the test."""
        config, counters = self.config, self.counters
        if config["no_eval"]:
            return
        if self.val_vec is not None:
            value = run_validation(self.agent, config, self.logger, self.val_vec)
            if value > counters["best_val"]:
                counters["best_val"] = value
                self.checkpoint(BEST_VAL)
        if self.test_vec is not None and counters["eval_count"] % int(config["test_interval"]) == 0:
            if config["save_all_models"]:
                self.checkpoint(f"variables_s{counters['step']}.pt")
            self.test(final=False)
        counters["eval_count"] += 1

    def test(self, final: bool) -> None:
        self.last_test = run_test(self.agent, self.config, self.logdir, self.counters["step"], self.logger, self.test_vec)
        self.last_test_step = self.counters["step"]
        if final:
            print(f"[final test step {self.counters['step']}] reduction geomean "
                  f"{self.last_test['test_reduction_geomean']:.4f}; table: {self.logdir / 'test_results.md'}")
        else:
            print(f"[test step {self.counters['step']}] reduction geomean {self.last_test['test_reduction_geomean']:.4f} "
                  f"(raw {self.last_test['test_raw_reduction_geomean']:.4f}); table: {self.logdir / 'test_results.md'}")

    def checkpoint(self, name: str = CHECKPOINT) -> None:
        save_checkpoint(self.logdir / name, self.agent, self.counters)

    # ---------------------------------------------------------------- callbacks
    def on_episode(self, episode: dict, info: dict) -> None:
        """A finished training episode: into the replay (errored ones are counted, not replayed) and the logs."""
        summary = episode_summary(episode, info)
        self.counters["episodes"] += 1
        if summary["error"]:
            log.warning("episode on %s hit a compiler error and is not replayed: %s", summary["benchmark"], summary["error"])
        self.replay.add_episode(episode)  # filters and errored episodes are counted in replay.stats()
        self.logger.scalar("train/return", summary["score"])
        self.logger.scalar("train/reduction", summary["reduction"])
        self.logger.scalar("train/length", summary["length"])
        stats = self.replay.stats()
        for key in ("total_steps", "total_episodes", "filtered_return", "filtered_reward", "errored"):
            if key in stats:
                self.logger.scalar(f"replay/{key}", stats[key])
        self.recent_returns.append(summary["score"])
        self.recent_reductions.append(summary["reduction"])

    def on_step(self, n: int) -> None:
        """Counts env steps, schedules `train_steps` updates every `train_every` steps, logs every `log_every`."""
        config, counters = self.config, self.counters
        counters["step"] += n
        self.since_train += n
        if counters["step"] >= int(config["prefill"]) and self.since_train >= int(config["train_every"]):
            self.since_train = 0
            self.pending += int(config["train_steps"])
        if counters["step"] % int(config["log_every"]) == 0 and self.metrics:
            self.logger.add({k: float(np.mean(v)) for k, v in self.metrics.items()}, prefix="losses")
            self.metrics.clear()
            self.logger.write(fps=True)
        if self.bar is not None:
            self.bar.update(n)
            if self.recent_returns:
                self.bar.set_postfix(ret=f"{np.mean(self.recent_returns[-20:]):.3f}",
                                     red=f"{np.mean(self.recent_reductions[-20:]):.3f}", refresh=False)

    # ----------------------------------------------------------------- stopping
    def out_of_time(self) -> bool:
        minutes = float(self.config["train_minutes"])
        return self.interrupted or (minutes > 0 and time.monotonic() - self.started > minutes * 60)

    def finished(self) -> bool:
        return self.counters["step"] >= self.step_limit or self.out_of_time()

    def _on_sigint(self, signum, frame) -> None:
        if self.interrupted:
            raise KeyboardInterrupt
        self.interrupted = True
        print("\ncompilerdream: interrupted — saving a checkpoint and stopping (Ctrl-C again to abort)", file=sys.stderr)

    # ---------------------------------------------------------------------- run
    def run(self) -> dict:
        """Resume, prefill, then alternate evaluation and `eval_every` training steps; a final test and checkpoint."""
        config = self.config
        try:
            self.resume()
        except BaseException:
            self.close()
            raise
        previous_handler = signal.signal(signal.SIGINT, self._on_sigint)
        try:
            self.bar = progress_bar(total=self.step_limit, initial=self.counters["step"], desc="train", unit="step",
                                    dynamic_ncols=True, disable=self.test_only)
            if self.train_vec is not None:
                self.runner = EpisodeRunner(self.train_vec, forced_sequences=self.forced,
                                            rng=np.random.default_rng(int(config["seed"])))
                self.prefill()
            while True:
                self.evaluate()
                if self.test_only or self.train_vec is None or self.finished():
                    break
                self.collect(max(1, min(int(config["eval_every"]), self.step_limit - self.counters["step"])))
                self.checkpoint()
            if self.train_vec is not None:
                self.checkpoint()
                if self.test_vec is not None and not config["no_eval"] and self.last_test_step != self.counters["step"]:
                    self.test(final=True)  # so that the trained agent's result is always reported
        except KeyboardInterrupt:
            self.checkpoint()
            print(f"compilerdream: aborted; checkpoint saved to {self.logdir / CHECKPOINT}", file=sys.stderr)
        except Exception:
            try:
                self.checkpoint(ERROR_CHECKPOINT)
            finally:
                raise
        finally:
            signal.signal(signal.SIGINT, previous_handler)
            self.close()
        return {"counters": self.counters, "test": self.last_test, "logdir": str(self.logdir)}

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None
        self.logger.close()
        for vec in (self.train_vec, self.val_vec, self.test_vec):
            if vec is not None:
                vec.close()


def set_threads(device: str) -> None:
    """Torch's threads and allocator for training: one thread on CPU (the compiler workers need the other core).

    COMPILERDREAM_TORCH_THREADS=N overrides the count, for a machine with idle cores: more
    threads speed up the matrix products, but OpenMP threads stall badly when other
    processes share the cores (a `small` update took 15 s with two threads against 2.4 s
    with one on a crowded 2-core machine). Results under a seed repeat for a given count.
    """
    import torch

    threads = os.environ.get("COMPILERDREAM_TORCH_THREADS", "")
    if threads.strip().isdigit() and int(threads) > 0:
        torch.set_num_threads(int(threads))
    else:
        torch.set_num_threads(1 if device == "cpu" else max(1, min(os.cpu_count() or 1, 4)))
    if device == "cpu":
        keep_freed_memory()


def keep_freed_memory() -> None:
    """Let glibc keep the memory of freed tensors for the next update instead of unmapping it.

    An update of the `small` preset allocates and frees tens of MB; by default glibc hands
    the large blocks back to the kernel, which zeroes them again on first touch: about
    5,000 page faults per update, ~300 with this. The same arithmetic, less system time.
    Does nothing where the C library is not glibc.
    """
    import ctypes
    import ctypes.util

    m_trim_threshold, m_mmap_threshold = -1, -3
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        libc.mallopt(m_mmap_threshold, 256 << 20)
        libc.mallopt(m_trim_threshold, 1 << 30)
    except (OSError, AttributeError):
        pass


# ------------------------------------------------------------------------- main
def run(config, argv: Sequence[str] = ()) -> dict:
    """Train (or only test) an agent as configured. Returns the final counters and last test metrics."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    return Trainer(config, argv).run()


def main(argv: list[str] | None = None) -> int:
    """`compilerdream train` / examples/train_dreamerv2.py."""
    line_buffered_stdout()
    from compilerdream.config import main_parse

    argv = list(sys.argv[1:] if argv is None else argv)
    config = main_parse(argv, description="Train the CompilerDream agent (flags: --key value; presets: --configs a b)")
    try:
        run(config, ["train_dreamerv2.py", *argv])
    except CompilerDreamError as exc:
        print(f"compilerdream: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
