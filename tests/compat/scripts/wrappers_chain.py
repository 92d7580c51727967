"""A chain of CompilerGym wrappers: benchmarks in a cycle, a few flags, a terminal action, a step limit."""

import json

import compiler_gym
import numpy as np
from compiler_gym.wrappers import CommandlineWithTerminalAction, ConstrainedCommandline, CycleOverBenchmarks, TimeLimit

FLAGS = ["-mem2reg", "-instcombine", "-simplifycfg", "-gvn", "-sroa", "-early-cse"]

env = compiler_gym.make("llvm-autophase-ic-v0")
benchmarks = ["benchmark://cbench-v1/crc32", env.make_benchmark("qsort.c")]
env = CycleOverBenchmarks(env, benchmarks)
env = ConstrainedCommandline(env, flags=FLAGS)
env = CommandlineWithTerminalAction(env)
env = TimeLimit(env, max_episode_steps=6)

rng = np.random.default_rng(3)
episodes = []
for _ in range(3):
    observation = env.reset()
    actions, rewards, info = [], [], {}
    done = False
    while not done:
        # The terminal action (the last one) is drawn rarely, so episodes mostly hit the time limit.
        action = int(rng.integers(env.action_space.n)) if rng.random() > 0.1 else env.action_space.n - 1
        observation, reward, done, info = env.step(action)
        actions.append(action)
        rewards.append(reward)
    episodes.append(
        {
            "benchmark": env.benchmark.uri,
            "actions": actions,
            "flags": env.action_space.flags,
            "applied": [FLAGS[a] for a in env.actions],
            "rewards": rewards,
            "episode_reward": env.episode_reward,
            "truncated": info.get("TimeLimit.truncated", False),
            "terminal": info.get("terminal_action", False),
            "instcount": int(env.observation["IrInstructionCount"]),
            "commandline": env.commandline(),
        }
    )
env.close()
print(json.dumps(episodes))
