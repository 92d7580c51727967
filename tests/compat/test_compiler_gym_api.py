"""compiler_gym's API, in process: CompilerGym's semantics on top of our environment, checked against it."""

from __future__ import annotations

import importlib.metadata
import itertools
import os
import subprocess
import sys

import compiler_gym
import gymnasium
import numpy as np
import pytest
from compat_helpers import COMPAT_DIR, CRC32_URI, PROGRAMS, crc32_benchmark, native_env, native_replay, script_env
from compiler_gym.envs.llvm import (
    ClangInvocation,
    compute_observation,
    make_benchmark,
    make_benchmark_from_command_line,
)
from compiler_gym.errors import (
    BenchmarkInitError,
    EnvironmentNotSupported,
    ServiceError,
    ServiceIsClosed,
    SessionNotFound,
)
from compiler_gym.spaces import observation_spec

from compilerdream.compiler import Benchmark as NativeBenchmark
from compilerdream.compiler._core import Module
from compilerdream.compiler.errors import CompileError, EmptyModuleError, MalformedInputError, ToolNotFoundError


@pytest.fixture(scope="module")
def crc32_count() -> int:
    return native_replay(crc32_benchmark(), [])["instcount"]


@pytest.fixture
def env():
    with compiler_gym.make("llvm-autophase-ic-v0", benchmark="cbench-v1/crc32") as e:
        yield e


def test_it_is_our_package():
    assert compiler_gym.__compilerdream__ and compiler_gym.__version__ == "0.2.5"
    assert compiler_gym.__file__.startswith(str(COMPAT_DIR))


def test_old_gym_api_and_spaces_by_name(env):
    observation = env.reset()
    assert isinstance(observation, np.ndarray) and observation.shape == (56,)
    assert env.in_episode and env.actions == [] and env.episode_reward == 0.0
    mem2reg = env.action_space.flags.index("-mem2reg")
    step = env.step(mem2reg)
    assert len(step) == 4
    observation, reward, done, info = step
    assert done is False and info["action_had_no_effect"] is False and reward > 0
    assert env.actions == [mem2reg] and env.episode_reward == pytest.approx(reward)
    assert reward == pytest.approx(native_replay(crc32_benchmark(), ["-mem2reg"])["episode_reward"], rel=1e-12)

    env.observation_space = "InstCount"
    assert env.observation_space.shape == (70,) and env.observation_space_spec.id == "InstCount"
    assert env.step(mem2reg)[0].shape == (70,)
    env.observation_space = None
    env.reward_space = None
    observation, reward, done, _ = env.step(mem2reg)
    assert observation is None and reward is None and not done
    assert env.reset() is None and env.episode_reward is None

    env.reward_space = "IrInstructionCount"
    assert env.reward_space.name == "IrInstructionCount" and env.reward_space == "IrInstructionCount"
    before = int(env.observation["IrInstructionCount"])
    _, reward, _, _ = env.step(mem2reg)
    assert reward == before - int(env.observation["IrInstructionCount"])
    assert env.reward["IrInstructionCountOz"] == 0.0  # nothing changed since the last step


def test_observation_and_reward_views(env, crc32_count):
    env.reset()
    assert "Autophase" in env.observation.spaces and env.observation.spaces["Autophase"].space.shape == (56,)
    assert "IrInstructionCountOz" in env.reward.spaces
    count = env.observation["IrInstructionCount"]
    assert env.observation.IrInstructionCount() == count == crc32_count
    assert env.observation["IrInstructionCountOz"] < env.observation["IrInstructionCountO0"] == count
    # Per-step spaces, as lists; raw_step does the same without touching the episode reward.
    observations, rewards, done, _ = env.multistep(
        [0, 1], observation_spaces=["IrInstructionCount", "InstCountDict"], reward_spaces=["IrInstructionCount"]
    )
    assert isinstance(observations, list) and observations[0] == observations[1]["TotalInstsCount"]
    assert rewards == [count - observations[0]] and env.episode_reward == 0.0
    observations, rewards, _, _ = env.raw_step(
        [2], [env.observation.spaces["IrInstructionCount"]], ["IrInstructionCount"]
    )
    assert len(observations) == len(rewards) == 1 and env.actions == [0, 1, 2]


def test_action_space_strings(env):
    space = env.action_space
    assert space.n == 124 and space.flags[0] == "-add-discriminators" and len(space.names) == 124
    assert space["-mem2reg"] == space.flags.index("-mem2reg")
    env.reset()
    actions = [space["-mem2reg"], space["-instcombine"], space["-simplifycfg"]]
    env.multistep(actions)
    assert space.to_string(actions) == env.commandline()
    assert env.commandline_to_actions(env.commandline()) == actions
    # CompilerGym's own command lines (opt -flag ...) are read too.
    assert space.from_string("opt -mem2reg -instcombine -simplifycfg input.bc -o output.bc") == actions


def test_benchmark_settable_also_to_a_benchmark(env, crc32_count):
    qsort = make_benchmark(PROGRAMS / "qsort.c")
    assert qsort.uri.startswith("benchmark://user-v0/") and make_benchmark(PROGRAMS / "qsort.c").uri == qsort.uri
    env.benchmark = qsort
    env.reset()
    assert env.benchmark.uri == qsort.uri
    native = native_replay(NativeBenchmark.from_file(PROGRAMS / "qsort.c"), [])
    assert int(env.observation["IrInstructionCount"]) == native["instcount"]
    env.reset(benchmark="benchmark://cbench-v1/crc32")
    assert env.benchmark.uri == CRC32_URI and int(env.observation["IrInstructionCount"]) == crc32_count


def test_make_benchmark_inputs(tmp_path, monkeypatch):
    crc32, ll = PROGRAMS / "crc32.c", PROGRAMS / "autophase_hand.ll"

    def count(benchmark) -> int:
        return Module.load(benchmark.data, "m", strip=False).instruction_count()

    alone = count(make_benchmark(crc32))
    assert alone == count(NativeBenchmark.from_file(crc32))
    shapes = PROGRAMS / "shapes.cc"  # C++: clang++
    assert count(make_benchmark(shapes)) == count(NativeBenchmark.from_file(shapes)) > 0
    linked = make_benchmark([crc32, ll])
    assert count(linked) == alone + count(NativeBenchmark.from_file(ll))
    (tmp_path / "prog.bc").write_bytes(make_benchmark(crc32).data)
    assert count(make_benchmark(tmp_path / "prog.bc")) == alone
    # copt reaches clang; a ClangInvocation is compiled as given.
    (tmp_path / "n.c").write_text("int main(void) { int s = 0; for (int i = 0; i < N; i++) s += i; return s; }\n")
    assert count(make_benchmark(tmp_path / "n.c", copt=["-DN=7"])) > 0
    invocation = ClangInvocation.from_c_file(tmp_path / "n.c", copt=["-DN=3"])
    assert make_benchmark(invocation).data == make_benchmark(tmp_path / "n.c", copt=["-DN=3"]).data
    # A build command: the driver is replaced by clang, link flags and outputs are dropped.
    monkeypatch.chdir(tmp_path)
    command = make_benchmark_from_command_line("gcc -O2 -DN=3 n.c -o prog -lm")
    assert command.data == ClangInvocation.from_c_file("n.c", copt=["-DN=3"]).compile()
    with pytest.raises(BenchmarkInitError) as info:
        make_benchmark(tmp_path / "n.c")  # N undefined
    assert isinstance(info.value, CompileError) and "N" in str(info.value)
    with pytest.raises(ValueError, match="no C/C"):
        make_benchmark_from_command_line("gcc -o prog -lm")


def test_errors_have_compiler_gym_names(tmp_path):
    with compiler_gym.make("llvm-ic-v0", benchmark="cbench-v1/crc32") as env:
        with pytest.raises(SessionNotFound, match="reset"):
            env.step(0)
        with pytest.raises(LookupError, match="compilerdream datasets install cbench-v1"):
            env.reset(benchmark="benchmark://cbench-v1/qsort")
        (tmp_path / "bad.ll").write_text("define i32 @f( {\n")
        with pytest.raises(BenchmarkInitError) as info:
            env.reset(benchmark=str(tmp_path / "bad.ll"))
        assert isinstance(info.value, MalformedInputError) and "bad.ll" in str(info.value)
    with pytest.raises(ServiceIsClosed):
        env.reset()
    assert issubclass(SessionNotFound, ServiceError)


def test_a_crashing_pass_ends_the_episode_with_error_info():
    with compiler_gym.make("llvm-ic-v0", benchmark=str(PROGRAMS / "instcombine_fixpoint_abort.ll")) as env:
        env.reset()
        _, reward, done, info = env.step("instcombine")  # an LLVM pipeline that aborts on this module
        assert done and reward == 0.0 and info["error_type"] == "SessionCrash"
        with pytest.raises(SessionNotFound):
            env.step(0)
        env.reset()
        assert env.step(env.action_space["-mem2reg"])[2] is False


def test_fork_context_manager_state_and_apply(env):
    env.reset()
    env.multistep([env.action_space["-mem2reg"], env.action_space["-gvn"]])
    with env.fork() as fork:
        assert isinstance(fork, compiler_gym.envs.LlvmEnv) and fork.actions == env.actions
        fork.step(env.action_space["-instcombine"])
        assert len(fork.actions) == 3 and len(env.actions) == 2
        fork_count = int(fork.observation["IrInstructionCount"])
    assert not fork.in_episode and env.in_episode
    state = env.state
    assert isinstance(state, compiler_gym.CompilerEnvState) and state.benchmark == CRC32_URI
    with compiler_gym.make("llvm-autophase-ic-v0") as other:  # default benchmark: the bundled crc32 here
        other.apply(state)
        assert other.state == state and other.actions == env.actions
        other.step(env.action_space["-instcombine"])
        assert int(other.observation["IrInstructionCount"]) == fork_count
        assert other.validate().okay() and other.validate(state).okay()
    # A state written by CompilerGym (LLVM 10's opt flags) replays too.
    with compiler_gym.make("llvm-ic-v0", benchmark="cbench-v1/crc32") as other:
        other.apply(compiler_gym.CompilerEnvState(CRC32_URI, "opt -mem2reg -gvn input.bc -o output.bc", 0.0, None))
        assert other.actions == env.actions
    # fork() on an environment never reset resets it first, as CompilerGym does.
    with compiler_gym.make("llvm-ic-v0", benchmark="cbench-v1/crc32") as fresh, fresh.fork() as fork:
        assert fork.in_episode and fork.actions == []


def test_write_bitcode_and_ir(env, tmp_path):
    env.reset()
    env.step(env.action_space["-mem2reg"])
    count = int(env.observation["IrInstructionCount"])
    bitcode = env.write_bitcode(tmp_path / "out.bc")
    ir = env.write_ir(tmp_path / "out.ll")
    assert Module.load(open(bitcode, "rb").read(), "b", strip=False).instruction_count() == count
    assert "define" in open(ir).read() and env.ir_sha1 == env.observation["IrSha1"]


def test_compute_observation(tmp_path, crc32_count):
    path = tmp_path / "crc32.bc"
    path.write_bytes(crc32_benchmark().data)
    autophase = compute_observation("Autophase", path)
    with native_env(crc32_benchmark(), observation_space="Autophase") as env:
        assert autophase.tolist() == env.reset()[0].tolist()
    assert compute_observation(observation_spec("IrInstructionCount"), path) == crc32_count


def test_gymnasium_make_returns_the_environment():
    for env_id in compiler_gym.COMPILER_GYM_ENVS:
        assert env_id in gymnasium.registry
    with gymnasium.make("llvm-autophase-ic-v0", benchmark="cbench-v1/crc32") as env:
        assert isinstance(env, compiler_gym.envs.LlvmEnv)  # no wrappers: the CompilerGym API is all there
        assert env.reset().shape == (56,) and len(env.step(0)) == 4 and env.reward_space.name == "IrInstructionCountOz"
    with pytest.raises(LookupError, match="unknown environment id"):
        compiler_gym.make("llvm-nope-v0")


def test_every_environment_id_and_make_keywords():
    mem2reg = ["-mem2reg"]
    native = {
        space: native_replay(crc32_benchmark(), mem2reg, space)["rewards"][0]
        for space in ("IrInstructionCountOz", "ObjectTextSizeOz")
    }
    for env_id in compiler_gym.COMPILER_GYM_ENVS:
        spec = compiler_gym.ENV_SPECS[env_id]
        with compiler_gym.make(env_id, benchmark="cbench-v1/crc32") as env:
            observation = env.reset()
            expected = spec.get("observation_space")
            if expected is None:
                assert observation is None and env.observation_space is None, env_id
            elif expected == "Ir":
                assert isinstance(observation, str) and observation == env.observation["Ir"], env_id
            else:
                assert observation.shape == (56,) and env.observation_space_spec.id == expected, env_id
            _, reward, done, _ = env.step(env.action_space["-mem2reg"])
            assert not done
            if "reward_space" in spec:
                assert env.reward_space.name == spec["reward_space"], env_id
                assert reward == pytest.approx(native[spec["reward_space"]], rel=1e-12), env_id
            else:
                assert env.reward_space is None and reward is None, env_id
    # Keywords override the id's spaces, by name or to None.
    with compiler_gym.make(
        "llvm-v0", benchmark=CRC32_URI, observation_space="InstCount", reward_space="IrInstructionCountOz"
    ) as env:
        assert env.reset().shape == (70,)
        assert env.step(env.action_space["-mem2reg"])[1] == pytest.approx(native["IrInstructionCountOz"], rel=1e-12)
    with compiler_gym.make(
        "llvm-autophase-ic-v0", benchmark=CRC32_URI, observation_space=None, reward_space=None
    ) as env:
        assert env.reset() is None and env.step(0)[:2] == (None, None)


def test_llvm_env_constructed_directly():
    from compiler_gym.envs import LlvmEnv

    with LlvmEnv(benchmark=CRC32_URI, observation_space="Autophase", reward_space="IrInstructionCountOz") as env:
        assert isinstance(env, compiler_gym.CompilerEnv) and env.reset().shape == (56,)
        reward = env.step(env.action_space["-mem2reg"])[1]
        assert reward == pytest.approx(native_replay(crc32_benchmark(), ["-mem2reg"])["rewards"][0], rel=1e-12)


def test_spaces_set_by_spec_and_in_episode(env):
    assert not env.in_episode  # made, not reset yet
    env.observation_space = env.observation.spaces["InstCount"]
    env.reward_space = env.reward.spaces["IrInstructionCount"]
    assert env.observation_space_spec.id == "InstCount" and env.reward_space.name == "IrInstructionCount"
    assert env.reset().shape == (70,) and env.in_episode
    before = int(env.observation["IrInstructionCount"])
    observation, reward, _, _ = env.step(env.action_space["-mem2reg"])
    assert reward == before - int(env.observation["IrInstructionCount"]) and observation.shape == (70,)
    # reset() takes the spaces too (here as specs), for the new episode.
    assert env.reset(observation_space=observation_spec("Autophase"), reward_space=None).shape == (56,)
    assert env.reward_space is None and env.episode_reward is None
    env.close()
    assert not env.in_episode


def test_empty_module_and_missing_tool_have_compiler_gym_names(tmp_path, monkeypatch):
    (tmp_path / "empty.ll").write_text("declare i32 @puts(ptr)\n")
    with compiler_gym.make("llvm-ic-v0", benchmark=CRC32_URI) as env:
        with pytest.raises(BenchmarkInitError) as info:
            env.reset(benchmark=str(tmp_path / "empty.ll"))
        assert isinstance(info.value, EmptyModuleError) and "no instructions" in str(info.value)
        # csmith, looked for on PATH, is not there: CompilerGym's EnvironmentNotSupported.
        monkeypatch.setenv("PATH", str(tmp_path))
        monkeypatch.delenv("COMPILERDREAM_CSMITH", raising=False)
        with pytest.raises(EnvironmentNotSupported) as info:
            env.reset(benchmark="generator://csmith-v0/1")
        assert isinstance(info.value, ToolNotFoundError) and isinstance(info.value, ServiceError)
        assert "csmith" in str(info.value)


def test_datasets_by_compiler_gym_names(monkeypatch, cbench_data_root):
    with compiler_gym.make("llvm-v0", benchmark="cbench-v1/crc32") as env:
        names = [d.name for d in env.datasets]
        assert {
            "benchmark://cbench-v1",
            "benchmark://npb-v0",
            "generator://csmith-v0",
            "generator://llvm-stress-v0",
        } <= set(names)
        assert names[-2:] == ["generator://csmith-v0", "generator://llvm-stress-v0"]  # the endless ones last
        cbench = env.datasets["cbench-v1"]
        assert cbench.name == "benchmark://cbench-v1" and not cbench.installed
        assert env.datasets.benchmark(CRC32_URI).data == crc32_benchmark().data  # bundled
        with pytest.raises(LookupError, match="compilerdream datasets install cbench-v1"):
            list(cbench.benchmark_uris())
        stress = env.datasets.benchmark("generator://llvm-stress-v0/3")
        assert stress.uri == "generator://llvm-stress-v0/3"
        env.reset(benchmark=stress)
        assert int(env.observation["IrInstructionCount"]) == native_replay(stress, [])["instcount"]

    monkeypatch.setenv("COMPILERDREAM_DATA", str(cbench_data_root))
    with compiler_gym.make("llvm-ic-v0") as env:
        assert env.benchmark.uri == "benchmark://cbench-v1/qsort"  # CompilerGym's default, now installed
        cbench = env.datasets["benchmark://cbench-v1"]
        assert cbench.installed and len(cbench) == 2
        assert list(cbench.benchmark_uris()) == [CRC32_URI, "benchmark://cbench-v1/qsort"]
        assert list(itertools.islice(env.datasets.benchmark_uris(), 2)) == [CRC32_URI, "benchmark://cbench-v1/qsort"]
        assert cbench.random_benchmark(np.random.default_rng(0)).uri in (CRC32_URI, "benchmark://cbench-v1/qsort")
        assert env.datasets.random_benchmark(np.random.default_rng(1)).uri
        env.reset()
        assert env.benchmark.uri == "benchmark://cbench-v1/qsort"


@pytest.mark.skipif(not os.path.exists("/usr/include/csmith/csmith.h"), reason="csmith.h not installed")
def test_csmith_generator_uri():
    with compiler_gym.make("llvm-ic-v0", benchmark="generator://csmith-v0/7") as env:
        env.reset()
        assert env.benchmark.uri == "generator://csmith-v0/7" and int(env.observation["IrInstructionCount"]) > 0


def test_a_real_compiler_gym_distribution_is_reported(tmp_path):
    fake = tmp_path / "site" / "compiler_gym-0.2.5.dist-info"
    fake.mkdir(parents=True)
    (fake / "METADATA").write_text("Metadata-Version: 2.1\nName: compiler-gym\nVersion: 0.2.5\n")
    env = script_env(tmp_path)
    env.pop("COMPILERDREAM_QUIET_COMPILER_GYM")
    env["PYTHONPATH"] = os.pathsep.join([env["PYTHONPATH"], str(tmp_path / "site")])
    code = "import compiler_gym; print(compiler_gym.__compilerdream__)"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    assert proc.returncode == 0 and proc.stdout.strip() == compiler_gym.__compilerdream__
    assert "another distribution named compiler-gym (0.2.5) is installed" in proc.stderr


def skip_unless_installed_with_compiler_gym() -> None:
    try:
        top_level = (importlib.metadata.distribution("compilerdream").read_text("top_level.txt") or "").split()
    except importlib.metadata.PackageNotFoundError:
        pytest.skip("compilerdream is not installed (run scripts/setup.sh)")
    if "compiler_gym" not in top_level:
        pytest.skip("the installed compilerdream predates compiler_gym: re-run scripts/setup.sh")


def test_the_installed_distribution_maps_compiler_gym(tmp_path):
    """After scripts/setup.sh, `import compiler_gym` works from anywhere (setup.py's package_dir mapping)."""
    skip_unless_installed_with_compiler_gym()
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    code = "import compiler_gym, compiler_gym.wrappers; print(compiler_gym.__compilerdream__)"
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=tmp_path, timeout=120
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.strip() == compiler_gym.__compilerdream__


def test_a_compiler_gym_on_the_ordinary_path_wins_over_ours(tmp_path):
    """As the README says: with our editable install, Meta's package (here a stand-in on the path) is imported."""
    skip_unless_installed_with_compiler_gym()
    fake = tmp_path / "site" / "compiler_gym"
    fake.mkdir(parents=True)
    (fake / "__init__.py").write_text("__version__ = '0.2.5'\n")
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env["PYTHONPATH"] = str(tmp_path / "site")
    code = "import compiler_gym; print(hasattr(compiler_gym, '__compilerdream__'), compiler_gym.__file__)"
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=tmp_path, timeout=120
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.split() == ["False", str(fake / "__init__.py")]


def test_old_gym_registration_when_gym_is_importable(tmp_path):
    # A stand-in for the old `gym` package (not installed here): its register() records the ids.
    fake = tmp_path / "site" / "gym"
    fake.mkdir(parents=True)
    (fake / "__init__.py").write_text(
        "import types\nregistered = {}\nenvs = types.SimpleNamespace(registry=registered)\n"
        "def register(id, entry_point, kwargs):\n    registered[id] = (entry_point, kwargs)\n"
    )
    env = script_env(tmp_path)
    env["PYTHONPATH"] = os.pathsep.join([str(tmp_path / "site"), env["PYTHONPATH"]])
    code = "import compiler_gym, gym; print(sorted(gym.envs.registry)); print(gym.envs.registry['llvm-ic-v0'])"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    ids, entry = proc.stdout.strip().splitlines()
    assert ids == str(sorted(compiler_gym.COMPILER_GYM_ENVS))
    assert entry == "('compiler_gym:_gym_entry', {'env_id': 'llvm-ic-v0'})"
