"""Brute force over every sequence of two flags of a small set, as CompilerGym's examples/brute_force.py does.

Usage: python brute_force.py PROGRAM.c
"""

import itertools
import json
import sys

import compiler_gym
from compiler_gym.wrappers import ConstrainedCommandline

FLAGS = ["-mem2reg", "-instcombine", "-simplifycfg", "-gvn", "-loop-rotate"]
EPISODE_LENGTH = 2

with compiler_gym.make("llvm-ic-v0") as env:
    env.reset(benchmark=env.make_benchmark(sys.argv[1]))
    env = ConstrainedCommandline(env, flags=FLAGS)
    rewards = {}
    best_reward, best_actions = -float("inf"), None
    for actions in itertools.product(range(env.action_space.n), repeat=EPISODE_LENGTH):
        env.reset()
        _, _, done, info = env.multistep(actions)
        assert not done, info
        rewards[" ".join(FLAGS[a] for a in actions)] = env.episode_reward
        if env.episode_reward > best_reward:
            best_reward, best_actions = env.episode_reward, actions
    print(f"Best: {[FLAGS[a] for a in best_actions]} reward {best_reward:.4f}")
    print(json.dumps({"rewards": rewards, "best": [FLAGS[a] for a in best_actions], "best_reward": best_reward}))
