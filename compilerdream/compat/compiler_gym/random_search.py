"""Random search over pass sequences (CompilerGym's `compiler_gym.random_search`), reproducible by seed.

Episodes of uniformly random actions; an episode is abandoned after `patience` steps in a
row that did not improve its best cumulative reward. The best prefix of any episode wins.
The budget is wall time (`total_runtime`, as in CompilerGym) and/or a number of steps
(`max_steps`, ours: with a seed, the same steps give the same result on any machine).
Single process: `nproc` is accepted for CompilerGym's signature and ignored.
"""

from __future__ import annotations

import json
import math
import random
import time
from collections.abc import Callable
from pathlib import Path

PROGRESS_HEADER = "runtime_seconds,total_episode_count,total_step_count,num_passes,reward\n"


def random_search(
    make_env: Callable,
    outdir: str | Path | None = None,
    total_runtime: float | None = 600,
    patience: int = 0,
    nproc: int = 1,
    skip_done: bool = False,
    max_steps: int | None = None,
    seed: int | None = None,
):
    """Search, then return an environment (from `make_env()`) reset and stepped through the best actions found."""
    if total_runtime is None and max_steps is None:
        raise ValueError("give total_runtime (seconds) or max_steps, or both")
    if max_steps is not None and max_steps <= 0:
        raise ValueError(f"max_steps must be positive, got {max_steps}")
    out = Path(outdir).expanduser() if outdir is not None else None
    if out is not None:
        if skip_done and (out / "random_search.json").is_file():
            raise FileExistsError(f"{out} already holds a finished search (skip_done)")
        out.mkdir(parents=True, exist_ok=True)
    rng = random.Random(seed)
    env = make_env()
    try:
        if env.reward_space is None:
            raise ValueError(
                "the environment has no reward space: use llvm-ic-v0, or give one (--reward=IrInstructionCountOz)"
            )
        env.reset()
        n = env.action_space.n
        patience = patience if patience > 0 else n
        start = time.time()
        best_reward, best_actions = -math.inf, []
        episodes = steps = 0
        progress = []

        def exhausted() -> bool:
            if max_steps is not None and steps >= max_steps:
                return True
            return total_runtime is not None and time.time() - start >= total_runtime

        while not exhausted():
            env.reset()
            episodes += 1
            actions: list[int] = []
            episode_best, episode_best_len, stale = 0.0, 0, 0
            while stale < patience and not exhausted():
                action = rng.randrange(n)
                _, _, done, _ = env.step(action)
                steps += 1
                if done:
                    break
                actions.append(action)
                if env.episode_reward > episode_best:
                    episode_best, episode_best_len, stale = env.episode_reward, len(actions), 0
                else:
                    stale += 1
            if episode_best > best_reward:
                best_reward, best_actions = episode_best, actions[:episode_best_len]
                progress.append((time.time() - start, episodes, steps, len(best_actions), best_reward))
        env.reset()
        if best_actions:
            env.multistep(best_actions)
        if out is not None:
            with open(out / "progress.csv", "w") as f:
                f.write(PROGRESS_HEADER)
                for row in progress:
                    f.write(f"{row[0]:.3f},{row[1]},{row[2]},{row[3]},{row[4]}\n")
            (out / "best_actions.txt").write_text("".join(env.action_space.flags[a] + "\n" for a in best_actions))
            (out / "best_commandline.txt").write_text(env.commandline() + "\n")
            summary = {
                "benchmark": env.benchmark.uri,
                "reward": env.episode_reward,
                "actions": best_actions,
                "episodes": episodes,
                "steps": steps,
                "seed": seed,
            }
            (out / "random_search.json").write_text(json.dumps(summary, indent=1) + "\n")
        return env
    except BaseException:
        env.close()
        raise
