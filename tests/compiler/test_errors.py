"""Error cases: each raises a typed error whose message names the offending input, and the env stays usable."""

from __future__ import annotations

import pytest

import compilerdream.compiler as cc
from compilerdream.compiler.errors import (
    ActionOutOfRangeError,
    BenchmarkNotFoundError,
    CompileError,
    EmptyModuleError,
    MalformedInputError,
    UnknownNameError,
)

NOT_DOMINATING_IR = """
define i32 @f() {
entry:
  %a = add i32 %b, 1
  %b = add i32 %a, 1
  ret i32 %a
}
"""


@pytest.fixture
def env(program_bitcode):
    """An in-process env reset to qsort."""
    env = cc.make("llvm-ic-v0", benchmark=program_bitcode["qsort"], isolation="none")
    env.reset()
    yield env
    env.close()


def _write(path, content) -> str:
    path.write_bytes(content if isinstance(content, bytes) else content.encode())
    return str(path)


@pytest.mark.parametrize(
    "filename, content, error, fragment",
    [
        ("missing.bc", None, BenchmarkNotFoundError, "not found"),
        ("garbage.bc", b"BC\xc0\xde\x35\x14\x00\x00 definitely not bitcode", MalformedInputError, "garbage.bc"),
        ("random.bc", bytes(range(256)) * 4, MalformedInputError, "random.bc"),
        ("syntax.ll", "define i32 @f( {\n", MalformedInputError, "syntax.ll:2"),
        ("notdominating.ll", NOT_DOMINATING_IR, MalformedInputError, "does not dominate"),
        ("broken.c", "int main(void) { return undeclared_name; }\n", CompileError, "undeclared_name"),
        ("declarations.ll", "declare i32 @puts(ptr)\ndeclare void @abort()\n", EmptyModuleError, "no instructions"),
        ("empty.bc", b"", MalformedInputError, "empty"),
        ("data.txt", "hello", MalformedInputError, "unsupported benchmark file type"),
    ],
)
def test_bad_benchmarks(env, tmp_path, filename, content, error, fragment):
    """A bad benchmark raises the right typed error naming the file; the env then works on a good one."""
    path = str(tmp_path / filename) if content is None else _write(tmp_path / filename, content)
    good = env.benchmark
    with pytest.raises(error) as info:
        env.reset(benchmark=path)
    message = str(info.value)
    assert filename in message and fragment in message, message
    env.reset(benchmark=good)
    assert env.step("-mem2reg")[2] is False


def test_compile_error_carries_clang_message(tmp_path):
    """The CompileError text is clang's own diagnostic (file:line:col: error: ...)."""
    path = _write(tmp_path / "bad.c", "int f(int x) { return x +; }\n")
    with pytest.raises(CompileError, match=r"bad\.c:1:\d+: error: expected expression"):
        cc.Benchmark.from_file(path)


def test_file_uri_to_missing_file(env, tmp_path):
    """file:// URIs resolve to paths; a missing one is a BenchmarkNotFoundError naming the path."""
    with pytest.raises(BenchmarkNotFoundError, match="nope.bc"):
        env.reset(benchmark=f"file://{tmp_path}/nope.bc")
    with pytest.raises(UnknownNameError, match="ftp://"):
        env.reset(benchmark="ftp://host/prog.bc")


@pytest.mark.parametrize(
    "action, error, fragment",
    [
        ("no-such-pass", UnknownNameError, "no-such-pass"),
        ("function(mem2reg", UnknownNameError, "function(mem2reg"),
        ("-no-such-flag", UnknownNameError, "-no-such-flag"),
        (124, ActionOutOfRangeError, "124"),
        (-1, ActionOutOfRangeError, "-1"),
        (True, ActionOutOfRangeError, "True"),
        (2.0, ActionOutOfRangeError, "2.0"),
        (None, ActionOutOfRangeError, "None"),
    ],
)
def test_bad_actions(env, action, error, fragment):
    """Unknown passes/flags and out-of-range, bool or non-integer actions raise without touching the episode."""
    env.step("-mem2reg")
    before = int(env.observation["IrInstructionCount"])
    with pytest.raises(error) as info:
        env.step(action)
    assert fragment in str(info.value), str(info.value)
    assert env.actions == ["-mem2reg"] and int(env.observation["IrInstructionCount"]) == before
    with pytest.raises(error):
        env.multistep(["-gvn", action])  # validated before anything runs
    assert env.actions == ["-mem2reg"]


def test_numpy_integer_actions_are_accepted(env):
    """numpy integers are valid action indices (agents produce them); numpy bools are not."""
    import numpy as np

    assert env.step(np.int64(103))[2] is False
    with pytest.raises(ActionOutOfRangeError):
        env.step(np.bool_(True))


@pytest.mark.parametrize(
    "use, fragment",
    [
        (lambda env: env.observation["Autofase"], "Autofase"),
        (lambda env: env.reward["IrInstructionCountOzz"], "IrInstructionCountOzz"),
        (lambda env: setattr(env, "observation_space", "InstCounts"), "InstCounts"),
        (lambda env: setattr(env, "reward_space", "Runtime"), "Runtime"),
        (lambda env: env.reset(action_space="Autophase2"), "Autophase2"),
        (lambda env: env.step(0, observation_spaces=["Nope"]), "Nope"),
        (lambda env: env.step(0, reward_spaces=["Nope"]), "Nope"),
        (lambda env: cc.make("llvm-xx-v0"), "llvm-xx-v0"),
        (lambda env: cc.action_space("NoLimits"), "NoLimits"),
    ],
)
def test_unknown_names(env, use, fragment):
    """Unknown observation/reward/action space/env names raise UnknownNameError naming them and listing choices."""
    with pytest.raises(UnknownNameError) as info:
        use(env)
    message = str(info.value)
    assert fragment in message and "choose one of" in message, message
    assert env.actions == []


def test_errors_are_also_builtin_exceptions():
    """Typed errors subclass the builtin a caller would catch (FileNotFoundError, ValueError, KeyError, IndexError)."""
    assert issubclass(BenchmarkNotFoundError, FileNotFoundError)
    assert issubclass(MalformedInputError, ValueError) and issubclass(EmptyModuleError, ValueError)
    assert issubclass(UnknownNameError, KeyError) and issubclass(ActionOutOfRangeError, IndexError)
    assert str(UnknownNameError("plain message")) == "plain message"


def test_step_before_reset_is_an_error(program_bitcode):
    """Stepping an env that was never reset raises SessionError (CompilerGym requires reset first)."""
    with cc.make("llvm-v0", benchmark=program_bitcode["qsort"], isolation="none") as env:
        with pytest.raises(cc.SessionError, match="reset"):
            env.step(0)


def test_binary_junk_in_a_worker_is_a_load_error_not_a_crash(program_bitcode):
    """LLVM quotes the offending bytes; the message crosses the worker boundary as text (no decoding crash)."""
    junk = cc.Benchmark.from_bytes(bytes(range(255, 0, -1)) * 4, uri="benchmark://user-v0/junk")
    with cc.make("llvm-ic-v0", benchmark=program_bitcode["qsort"]) as env:  # the default: a worker process
        env.reset()
        with pytest.raises(MalformedInputError, match=r"^cannot load benchmark benchmark://user-v0/junk: .*error"):
            env.reset(benchmark=junk)
        env.reset(benchmark=program_bitcode["qsort"])
        assert env.step("-mem2reg")[2] is False
