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


# ------------------------------------------------------------------------- main
def run(config, argv: Sequence[str] = ()) -> dict:
    """Train (or only test) an agent as configured. Returns the final counters and last test metrics."""
    from compilerdream.agent import Agent
    from compilerdream.logger import Logger
    from compilerdream.replay import Replay
    from compilerdream.task import TaskSettings, coreset_action_sequences
    from compilerdream.vec_env import VecTask

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    check_settings(config)
    if config["coreset_mode"] and str(config["compilergym.act_space"]) != "NoLimit":
        raise SystemExit(
            "compilerdream: coreset_mode needs --compilergym.act_space NoLimit (the 50 coreset sequences index "
            f"the 124 flags), not {config['compilergym.act_space']}"
        )
    try:  # the coreset is read (and checked against the action space) before any work starts
        forced = coreset_action_sequences(str(config["coreset"]), TaskSettings.from_config(config)) if config["coreset_mode"] else None
    except ValueError as exc:
        raise SystemExit(f"compilerdream: {exc}") from None
    logdir = prepare_logdir(config, argv)
    device = resolve_device(str(config["device"]))
    seed_everything(int(config["seed"]))
    import torch

    torch.set_num_threads(1 if device == "cpu" else max(1, min(os.cpu_count() or 1, 4)))

    replay = Replay.from_config(logdir / "train_episodes", config)
    counters = {"step": replay.stats().get("total_steps", replay.num_steps), "updates": 0, "eval_count": 0,
                "best_val": -1.0, "episodes": replay.stats().get("total_episodes", replay.num_episodes)}
    from compilerdream.logger import JSONLOutput, TensorBoardOutput, TerminalOutput

    terminal = TerminalOutput(pattern=r"^(train/(return|reduction)|losses/(model_loss|reward_loss|actor_ent|critic_loss)|fps|val/val_reduction_geomean|test/test_reduction_geomean)$")
    logger = Logger(logdir, lambda: counters["step"], outputs=[terminal, JSONLOutput(logdir), TensorBoardOutput(logdir)])
    logger.config(dict(config))

    test_only = bool(config["test_only"])
    train_vec = VecTask([make_task(config, "train", i) for i in range(int(config["envs"]))]) if not test_only else None
    val_vec = VecTask([make_task(config, "val", 1000)]) if config["enable_val"] and not test_only else None
    test_vec = VecTask([make_task(config, "test", 2000)]) if config["enable_test"] else None
    probe = (train_vec or test_vec or val_vec)
    if probe is None:
        raise SystemExit("compilerdream: nothing to do: --test_only True needs --enable_test True")
    first_task = probe.tasks[0]
    obs_space = {k: shape for k, (shape, _dtype) in first_task.obs_space.items()}
    num_actions = int(first_task.num_actions)
    agent = Agent(obs_space, num_actions, config, device)

    # ---------------------------------------------------------- checkpoints
    load_dir = Path(os.path.expanduser(str(config["load_logdir"])))
    source = find_checkpoint(load_dir) if str(load_dir) != "/dev/null" and load_dir.exists() else None
    if str(load_dir) != "/dev/null" and source is None:
        raise SystemExit(f"compilerdream: --load_logdir {load_dir} holds no checkpoint ({BEST_VAL} or {CHECKPOINT})")
    resumed = False
    if source is not None:
        log.info("loading checkpoint %s", source)
        load_checkpoint(source, agent)
    elif (logdir / CHECKPOINT).exists():
        log.info("resuming from %s", logdir / CHECKPOINT)
        saved = load_checkpoint(logdir / CHECKPOINT, agent)
        counters.update({k: v for k, v in saved.items() if k != "step"})
        counters["step"] = max(counters["step"], int(saved.get("step", 0)))
        resumed = True
    elif test_only:
        raise SystemExit("compilerdream: --test_only needs a checkpoint: pass --load_logdir DIR")

    def save(path=CHECKPOINT):
        save_checkpoint(logdir / path, agent, counters)

    # ------------------------------------------------------------ collectors
    metrics_acc: dict[str, list[float]] = defaultdict(list)
    train_state = {"carry": None, "since_train": 0, "pending": 0}
    batch_size, seq_len = int(config["dataset.batch"]), int(config["dataset.length"])

    def on_train_episode(episode, info):
        s = episode_summary(episode, info)
        counters["episodes"] += 1
        if s["error"]:
            log.warning("episode on %s hit a compiler error and is not replayed: %s", s["benchmark"], s["error"])
        replay.add_episode(episode)  # filters and errored episodes are counted in replay.stats()
        logger.scalar("train/return", s["score"])
        logger.scalar("train/reduction", s["reduction"])
        logger.scalar("train/length", s["length"])
        stats = replay.stats()
        for key in ("total_steps", "total_episodes", "filtered_return", "filtered_reward", "errored"):
            if key in stats:
                logger.scalar(f"replay/{key}", stats[key])
        recent_returns.append(s["score"])
        recent_reductions.append(s["reduction"])

    recent_returns: list[float] = []
    recent_reductions: list[float] = []

    def run_pending_updates():
        """The updates that are due, run while the compiler workers apply the next actions."""
        while train_state["pending"] > 0:
            train_state["pending"] -= 1
            train_update()

    def train_update():
        if replay.num_episodes == 0:
            return
        batch = replay.sample(batch_size, seq_len)
        train_state["carry"], mets = agent.train(batch, train_state["carry"])
        counters["updates"] += 1
        for k, v in mets.items():
            metrics_acc[k].append(v)

    def on_train_step(n):
        counters["step"] += n
        train_state["since_train"] += n
        if counters["step"] >= int(config["prefill"]) and train_state["since_train"] >= int(config["train_every"]):
            train_state["since_train"] = 0
            train_state["pending"] += int(config["train_steps"])
        if counters["step"] % int(config["log_every"]) == 0 and metrics_acc:
            logger.add({k: float(np.mean(v)) for k, v in metrics_acc.items()}, prefix="losses")
            metrics_acc.clear()
            logger.write(fps=True)
        if bar is not None:
            bar.update(n)
            if recent_returns:
                bar.set_postfix(ret=f"{np.mean(recent_returns[-20:]):.3f}", red=f"{np.mean(recent_reductions[-20:]):.3f}",
                               refresh=False)

    # --------------------------------------------------------------- stopping
    started = time.monotonic()
    minutes = float(config["train_minutes"])
    interrupted = {"flag": False}

    def out_of_time() -> bool:
        return interrupted["flag"] or (minutes > 0 and time.monotonic() - started > minutes * 60)

    def on_sigint(signum, frame):
        if interrupted["flag"]:
            raise KeyboardInterrupt
        interrupted["flag"] = True
        print("\ncompilerdream: interrupted — saving a checkpoint and stopping (Ctrl-C again to abort)", file=sys.stderr)

    previous_handler = signal.signal(signal.SIGINT, on_sigint)
    bar = None
    last_test: dict[str, float] = {}
    last_test_step = -1
    try:
        stop_steps = int(config["stop_steps"])
        total = min(int(config["steps"]), stop_steps if stop_steps > 0 else int(config["steps"]))
        bar = progress_bar(total=total, initial=counters["step"], desc="train", unit="step", dynamic_ncols=True,
                   disable=test_only)
        if train_vec is not None:
            runner = EpisodeRunner(train_vec, forced_sequences=forced,
                                   rng=np.random.default_rng(int(config["seed"])))
            prefill = max(0, int(config["prefill"]) - counters["step"])
            if prefill and not resumed:
                log.info("prefill: %d random steps", prefill)
                rng = np.random.default_rng(int(config["seed"]))

                def random_policy(obs, state):
                    n = len(obs["reward"])
                    return np.eye(num_actions, dtype=np.float32)[rng.integers(num_actions, size=n)], None

                runner.run(random_policy, steps=prefill, on_step=on_train_step, on_episode=on_train_episode, stop=out_of_time,
                           while_compiling=run_pending_updates)
                if replay.num_episodes == 0:
                    runner.run(random_policy, episodes=1, on_step=on_train_step, on_episode=on_train_episode)
                runner.discard_partial()
            if not resumed and source is None:
                log.info("pretrain: %d updates", int(config["pretrain"]))
                for _ in range(int(config["pretrain"])):
                    train_update()
            # Fixes REFERENCE §7.4: exploration only while expl_until holds (0 = always explore, as trained).
            expl_until = int(config["expl_until"])

            def train_policy(obs, state):
                mode = "explore" if expl_until <= 0 or counters["step"] < expl_until else "train"
                return agent.policy(obs, state, mode=mode)

        while True:
            if not config["no_eval"]:
                if val_vec is not None:
                    vg = run_validation(agent, config, logger, val_vec)
                    if vg > counters["best_val"]:
                        counters["best_val"] = vg
                        save(BEST_VAL)
                if test_vec is not None and counters["eval_count"] % int(config["test_interval"]) == 0:
                    if config["save_all_models"]:
                        save(f"variables_s{counters['step']}.pt")
                    last_test = run_test(agent, config, logdir, counters["step"], logger, test_vec)
                    last_test_step = counters["step"]
                    print(f"[test step {counters['step']}] reduction geomean {last_test['test_reduction_geomean']:.4f} "
                          f"(raw {last_test['test_raw_reduction_geomean']:.4f}); table: {logdir / 'test_results.md'}")
                counters["eval_count"] += 1
            if test_only or train_vec is None:
                break
            if (stop_steps > 0 and counters["step"] >= stop_steps) or counters["step"] >= int(config["steps"]) or out_of_time():
                break
            limit = min(int(config["steps"]), stop_steps if stop_steps > 0 else int(config["steps"]))
            runner.run(train_policy, steps=max(1, min(int(config["eval_every"]), limit - counters["step"])), on_step=on_train_step,
                       on_episode=on_train_episode, stop=out_of_time, while_compiling=run_pending_updates)
            save()
        if train_vec is not None:
            save()
            if test_vec is not None and not config["no_eval"] and last_test_step != counters["step"]:
                # A final test, so the trained agent's result is always reported.
                last_test = run_test(agent, config, logdir, counters["step"], logger, test_vec)
                print(f"[final test step {counters['step']}] reduction geomean {last_test['test_reduction_geomean']:.4f}; "
                      f"table: {logdir / 'test_results.md'}")
    except KeyboardInterrupt:
        save()
        print(f"compilerdream: aborted; checkpoint saved to {logdir / CHECKPOINT}", file=sys.stderr)
    except Exception:
        try:
            save(ERROR_CHECKPOINT)
        finally:
            raise
    finally:
        signal.signal(signal.SIGINT, previous_handler)
        if bar is not None:
            bar.close()
        logger.close()
        for vec in (train_vec, val_vec, test_vec):
            if vec is not None:
                vec.close()
    return {"counters": counters, "test": last_test, "logdir": str(logdir)}


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
