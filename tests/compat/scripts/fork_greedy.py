"""Greedy search with env.fork(), as CompilerGym's examples/e_greedy.py does (epsilon = 0), then validate()."""

import json

import compiler_gym
from compiler_gym.wrappers import ConstrainedCommandline

FLAGS = ["-mem2reg", "-sroa", "-instcombine", "-simplifycfg", "-gvn", "-licm", "-dce", "-reassociate"]


def select_best_action(env):
    best_action, best_reward = None, -float("inf")
    for action in range(env.action_space.n):
        with env.fork() as fkd:
            _, reward, _, _ = fkd.step(action)
            if reward > best_reward:
                best_action, best_reward = action, reward
    return best_action, best_reward


env = ConstrainedCommandline(compiler_gym.make("llvm-ic-v0", benchmark="cbench-v1/crc32"), flags=FLAGS)
env.reset()
while True:
    action, reward = select_best_action(env)
    if reward <= 0:
        break
    env.step(action)
result = env.validate()
print(
    json.dumps(
        {
            "actions": [FLAGS[a] for a in env.actions],
            "episode_reward": env.episode_reward,
            "instcount": int(env.observation["IrInstructionCount"]),
            "valid": result.okay(),
            "validation": str(result),
        }
    )
)
env.close()
