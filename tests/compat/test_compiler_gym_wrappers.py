"""compiler_gym.wrappers and CompilerEnvState CSV files: CompilerGym's behaviour, checked on the real compiler."""

from __future__ import annotations

import io

import compiler_gym
import numpy as np
import pytest
from compat_helpers import CRC32_URI, crc32_benchmark, native_replay
from compiler_gym import CompilerEnvState, CompilerEnvStateReader, CompilerEnvStateWriter
from compiler_gym.wrappers import (
    ActionWrapper,
    CommandlineWithTerminalAction,
    ConstrainedCommandline,
    Counter,
    CycleOverBenchmarks,
    ForkOnStep,
    IterateOverBenchmarks,
    ObservationWrapper,
    RandomOrderBenchmarks,
    RewardWrapper,
    TimeLimit,
)

FLAGS = ["-mem2reg", "-instcombine", "-simplifycfg"]


@pytest.fixture
def env():
    with compiler_gym.make("llvm-ic-v0", benchmark="cbench-v1/crc32") as e:
        yield e


def test_wrappers_are_compiler_envs_and_forward(env):
    wrapped = TimeLimit(ConstrainedCommandline(env, flags=FLAGS), max_episode_steps=2)
    assert isinstance(wrapped, compiler_gym.CompilerEnv) and wrapped.unwrapped is env
    wrapped.reset()
    wrapped.reward_space = "IrInstructionCount"  # settable attributes reach the environment
    assert env.reward_space.name == "IrInstructionCount"
    assert wrapped.observation["IrInstructionCount"] == env.observation["IrInstructionCount"]
    _, _, done, info = wrapped.step(0)
    assert not done and wrapped.actions == [0] and env.actions == [env.action_space["-mem2reg"]]
    _, _, done, info = wrapped.step(1)
    assert done and info["TimeLimit.truncated"] is True
    fork = wrapped.fork()  # TimeLimit's fork keeps the count; ConstrainedCommandline's keeps the flags
    assert isinstance(fork, TimeLimit) and fork.action_space.flags == FLAGS and fork._elapsed_steps == 2
    fork.close()
    with pytest.raises(TypeError, match="wraps a compiler_gym environment"):
        TimeLimit(object())
    with pytest.raises(LookupError, match="-nope"):
        ConstrainedCommandline(env, flags=["-mem2reg", "-nope"])


def test_constrained_space_strings_and_terminal_action(env):
    wrapped = CommandlineWithTerminalAction(ConstrainedCommandline(env, flags=FLAGS))
    space = wrapped.action_space
    assert space.n == 4 and space.flags == [*FLAGS, "# end-of-episode"] and space["-simplifycfg"] == 2
    wrapped.reset()
    _, _, done, info = wrapped.multistep([0, 1, 3, 2])  # the terminal action ends it; -simplifycfg is not applied
    assert done and info["terminal_action"] and wrapped.actions == [0, 1]
    assert space.to_string([0, 1, 3]) == env.commandline()
    assert space.from_string(env.commandline()) == [0, 1]
    expected = native_replay(crc32_benchmark(), ["-mem2reg", "-instcombine"])["episode_reward"]
    assert wrapped.episode_reward == pytest.approx(expected, rel=1e-12)


def test_benchmark_iteration_wrappers(env, tmp_path):
    other = compiler_gym.envs.llvm.make_benchmark(crc32_benchmark_file(tmp_path))
    cycle = CycleOverBenchmarks(env, [CRC32_URI, other])
    seen = []
    for _ in range(3):
        cycle.reset()
        seen.append(env.benchmark.uri)
    assert seen == [CRC32_URI, other.uri, CRC32_URI]
    with pytest.raises(TypeError, match="chooses the benchmark"):
        cycle.reset(benchmark=CRC32_URI)

    once = IterateOverBenchmarks(env, [other, CRC32_URI])
    once.reset()
    once.reset()
    assert env.benchmark.uri == CRC32_URI
    with pytest.raises(StopIteration):
        once.reset()

    def order(seed: int) -> list[str]:
        wrapped = RandomOrderBenchmarks(env, [CRC32_URI, other], rng=np.random.default_rng(seed))
        out = []
        for _ in range(6):
            wrapped.reset()
            out.append(env.benchmark.uri)
        return out

    assert order(1) == order(1) == [CRC32_URI, other.uri, other.uri, other.uri, CRC32_URI, CRC32_URI]


def crc32_benchmark_file(tmp_path):
    path = tmp_path / "crc32_copy.ll"
    from compilerdream.compiler._core import Module

    path.write_text(Module.load(crc32_benchmark().data, "m", strip=False).ir())
    return path


def test_counter_and_fork_on_step(env):
    counted = Counter(env)
    counted.reset()
    counted.step(0)
    counted.step(1)
    counted.fork().close()
    assert counted.counters == {"close": 0, "reset": 1, "step": 2, "fork": 1}

    undoable = ForkOnStep(env)
    undoable.reset()
    undoable.step(env.action_space["-mem2reg"])
    count = int(undoable.observation["IrInstructionCount"])
    undoable.step(env.action_space["-instcombine"])
    assert len(undoable.stack) == 2
    undoable.undo()
    assert (
        undoable.actions == [env.action_space["-mem2reg"]] and int(undoable.observation["IrInstructionCount"]) == count
    )
    undoable.close()


def test_observation_reward_and_action_wrapper_bases(env):
    class Doubled(RewardWrapper):
        def convert_reward(self, reward):
            return 2 * reward

    class Total(ObservationWrapper):
        def convert_observation(self, observation):
            return None if observation is None else int(observation.sum())

    class Reversed(ActionWrapper):
        def action(self, action):
            return self.env.action_space.n - 1 - action

    wrapped = Reversed(Total(Doubled(env)))
    env.observation_space = "InstCount"
    assert isinstance(wrapped.reset(), int)
    mem2reg = env.action_space["-mem2reg"]
    total, reward, _, _ = wrapped.step(env.action_space.n - 1 - mem2reg)
    assert env.actions == [mem2reg] and total == int(env.observation["InstCount"].sum())
    single = native_replay(crc32_benchmark(), ["-mem2reg"])["episode_reward"]
    assert reward == pytest.approx(2 * single) and env.episode_reward == pytest.approx(2 * single)


def test_state_csv_reader_and_writer():
    states = [
        CompilerEnvState(CRC32_URI, "opt -passes='function(mem2reg)' input.bc -o output.bc", 1.5, 0.25),
        CompilerEnvState("benchmark://cbench-v1/qsort", "opt input.bc -o output.bc", 0.0, None),
    ]
    buffer = io.StringIO()
    writer = CompilerEnvStateWriter(buffer)
    for state in states:
        writer.write_state(state)
    text = buffer.getvalue()
    assert text.splitlines()[0] == "benchmark,reward,walltime,commandline"
    read = list(CompilerEnvStateReader(io.StringIO(text)))
    assert read == states and read[1].reward is None and not read[1].has_reward
    # Equality ignores wall time and tolerates tiny reward differences, as in CompilerGym.
    assert CompilerEnvState(CRC32_URI, states[0].commandline, 99.0, 0.25 * (1 + 1e-7)) == states[0]
    assert CompilerEnvState(CRC32_URI, states[0].commandline, 1.5, 0.26) != states[0]
    # Rows without a header read too; a malformed row is named by line.
    assert list(CompilerEnvStateReader(io.StringIO("\n".join(text.splitlines()[1:])))) == states
    with pytest.raises(ValueError, match=r"<stream>:2: expected 4 columns"):
        list(CompilerEnvStateReader(io.StringIO("benchmark,reward,walltime,commandline\nonly,three,cells\n")))
    with pytest.raises(ValueError, match="benchmark must be a non-empty URI"):
        CompilerEnvState("", "opt", 0.0, None)


def test_util_helpers_and_validate_states(env):
    from compiler_gym.util.shell_format import plural
    from compiler_gym.util.timer import Timer, humanize_duration

    assert [humanize_duration(s) for s in (0.25, 1.5, 200, 7500)] == ["250.0ms", "1.5s", "3m 20s", "2h 5m"]
    assert plural(1, "step", "steps") == "1 step" and plural(2, "step", "steps") == "2 steps"
    with Timer() as timer:
        pass
    assert timer.time is not None and timer.time >= 0
    env.reset()
    env.step(env.action_space["-mem2reg"])
    good = env.state
    bad = CompilerEnvState(good.benchmark, good.commandline, 0.0, good.reward + 1)
    results = list(compiler_gym.validate_states(lambda: compiler_gym.make("llvm-ic-v0"), [good, bad]))
    assert [r.okay() for r in results] == [True, False]
