"""Episode states written to CSV, read back, replayed with apply() and checked with validate()."""

import json

import compiler_gym
from compiler_gym import CompilerEnvStateReader, CompilerEnvStateWriter

env = compiler_gym.make("llvm-ic-v0", benchmark="benchmark://cbench-v1/crc32")
env.action_space.seed(7)
states = []
with open("states.csv", "w") as f:
    writer = CompilerEnvStateWriter(f)
    for _ in range(3):
        env.reset()
        env.multistep([env.action_space.sample() for _ in range(8)])
        states.append(env.state)
        writer.write_state(env.state, flush=True)

with open("states.csv") as f:
    read = list(CompilerEnvStateReader(f))
assert read == states, (read, states)

replayed = []
for state in read:
    env.apply(state)
    assert env.state == state
    result = env.validate(state)
    assert result.okay(), result
    replayed.append({"commandline": state.commandline, "reward": state.reward, "replayed_reward": env.episode_reward})
env.close()
print(json.dumps(replayed))
