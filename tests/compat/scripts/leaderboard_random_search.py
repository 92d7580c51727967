"""The leaderboard's random-search policy, written as CompilerGym's leaderboard example writes it.

A step budget instead of a time budget, and a seed, so that the result is the same everywhere:
    python leaderboard_random_search.py --n=1 --max_benchmarks=2 --search_steps=150
"""

import random

from absl import flags
from compiler_gym.leaderboard.llvm_instcount import eval_llvm_instcount_policy

flags.DEFINE_integer("search_steps", 200, "The number of steps to search for.")
flags.DEFINE_float(
    "patience_ratio", 1.0, "Steps without improvement, as a fraction of the action space, before restarting."
)
flags.DEFINE_integer("seed", 0, "Random seed.")
FLAGS = flags.FLAGS


def random_search(env) -> None:
    rng = random.Random(FLAGS.seed)
    patience = int(env.action_space.n * FLAGS.patience_ratio)
    best_actions, best_reward = [], 0.0
    steps = 0
    while steps < FLAGS.search_steps:
        env.reset()
        actions, stale = [], 0
        while stale < patience and steps < FLAGS.search_steps:
            action = rng.randrange(env.action_space.n)
            _, _, done, _ = env.step(action)
            steps += 1
            if done:
                break
            actions.append(action)
            if env.episode_reward > best_reward:
                best_actions, best_reward, stale = list(actions), env.episode_reward, 0
            else:
                stale += 1
    env.reset()
    env.multistep(best_actions)


if __name__ == "__main__":
    eval_llvm_instcount_policy(random_search)
