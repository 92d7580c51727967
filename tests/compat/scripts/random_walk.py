"""A random walk, as CompilerGym's examples/random_walk.py writes it (seeded, 20 steps)."""

import json

import compiler_gym

env = compiler_gym.make("llvm-autophase-ic-v0", benchmark="cbench-v1/crc32")
env.action_space.seed(204)
observation = env.reset()
rewards = []
for _ in range(20):
    action = env.action_space.sample()
    observation, reward, done, info = env.step(action)
    rewards.append(reward)
    if done:
        break

print(f"Actions: {env.action_space.to_string(env.actions)}")
print(
    json.dumps(
        {
            "actions": [int(a) for a in env.actions],
            "rewards": rewards,
            "episode_reward": env.episode_reward,
            "instcount": int(env.observation["IrInstructionCount"]),
            "autophase": observation.tolist(),
        }
    )
)
env.close()
