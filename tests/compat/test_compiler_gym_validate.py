"""env.validate()'s semantics validation, as CompilerGym runs it: validation callbacks on the replayed
environment. csmith-v0 benchmarks come with one that runs the program (real csmith, clang and LLVM 19);
user benchmarks get theirs with add_validation_callback. The miscompiles below are real: LLVM 19's
passes exploit the signed-overflow UB of small C programs whose -O0 build runs fine."""

from __future__ import annotations

import compiler_gym
import pytest
from compat_helpers import CRC32_URI
from compiler_gym.envs.llvm import make_benchmark
from compiler_gym.errors import ValidationError
from compiler_gym.semantics import ProgramSemantics

from compilerdream.compiler.toolchain import find_tool

needs_clang = pytest.mark.skipif(find_tool("clang", required=False) is None, reason="clang-19 is not installed")

PASSES = ["-mem2reg", "-instcombine", "-simplifycfg", "-gvn"]
#: Signed overflow: at -O0 `x + 1 > x` is 0 for INT_MAX; instcombine folds it to 1.
WRONG_OUTPUT = """#include <limits.h>
#include <stdio.h>
static int bigger(int x) { return x + 1 > x; }
int main(void) { volatile int v = INT_MAX; printf("%d\\n", bigger(v)); return 0; }
"""
#: At -O0 the loop ends when `i` wraps; with nsw, indvars proves `i > 0` forever.
LOOP = "for (int i = start; i > 0; i++)"
ENDLESS = f"""#include <limits.h>
#include <stdio.h>
int main(void) {{ volatile int start = INT_MAX - 2; int n = 0; {LOOP} n++; printf("%d\\n", n); return 0; }}
"""
CRASH = f"""#include <limits.h>
#include <stdio.h>
static char buf[3];
int main(void) {{ volatile int start = INT_MAX - 2; char *p = buf; {LOOP} *p++ = 1; printf("%d\\n", buf[0] + buf[2]); return 0; }}
"""
UB_PASSES = ["-mem2reg", "-instcombine", "-indvars"]


def _csmith_available() -> bool:
    from compilerdream.compiler.datasets.generators import csmith_include_dir

    try:
        return find_tool("csmith", required=False) is not None and bool(csmith_include_dir())
    except Exception:
        return False


def _benchmark(tmp_path, source: str, name: str):
    path = tmp_path / f"{name}.c"
    path.write_text(source)
    return make_benchmark(path)


def _validate_after(benchmark, flags):
    with compiler_gym.make("llvm-ic-v0", benchmark=benchmark) as env:
        env.reset()
        env.multistep([env.action_space[f] for f in flags])
        return env.state, env.validate()


@needs_clang
@pytest.mark.skipif(not _csmith_available(), reason="csmith (and csmith.h) is not installed")
def test_csmith_benchmark_semantics_are_validated():
    # A csmith program whose unoptimized run does not finish within the run timeout is not judged;
    # most finish in well under a second.
    for seed in (2, 4, 5, 8):
        state, result = _validate_after(f"generator://csmith-v0/{seed}", PASSES)
        if result.benchmark_semantics_validated:
            break
    assert result.okay(), result.errors
    assert result.benchmark_semantics_validated and not result.benchmark_semantics_validation_failed
    assert result.reward_validated and not result.reward_validation_failed and not result.actions_replay_failed
    # The state alone (a URI, no Benchmark object) validates the same way in another environment.
    with compiler_gym.make("llvm-ic-v0") as other:
        again = other.validate(state)
        assert again.okay() and again.benchmark_semantics_validated
        benchmark = other.datasets.benchmark(state.benchmark)
    assert benchmark.is_validatable() and [type(c) for c in benchmark.validation_callbacks()] == [ProgramSemantics]


def test_only_runnable_benchmarks_are_validatable():
    # CompilerGym: a benchmark made by the user has no validation callback until one is added.
    with compiler_gym.make("llvm-ic-v0", benchmark="cbench-v1/crc32") as env:
        assert not env.benchmark.is_validatable() and env.benchmark.validation_callbacks() == []
        env.reset()
        result = env.validate()
        assert result.okay() and not result.benchmark_semantics_validated
    assert compiler_gym.datasets.resolve(CRC32_URI).validation_callbacks() == []
    assert not compiler_gym.datasets.Benchmark(uri="generator://llvm-stress-v0/1", data=b"").is_validatable()
    assert compiler_gym.datasets.Benchmark(uri="generator://csmith-v0/1", data=b"").is_validatable()


@needs_clang
def test_a_user_callback_error_is_reported_failed(tmp_path):
    benchmark = _benchmark(tmp_path, "int main(void) { return 0; }\n", "ok")
    assert not benchmark.is_validatable()
    seen = []

    def looks(env):
        seen.append(list(env.actions))  # the replayed environment; returning None is no error

    def complains(env):
        yield ValidationError(type="Wrong output", data={"expected": "1", "actual": "2"})

    benchmark.add_validation_callback(looks)
    benchmark.add_validation_callback(complains)
    assert benchmark.is_validatable() and benchmark.validation_callbacks() == [looks, complains]
    state, result = _validate_after(benchmark, ["-mem2reg"])
    assert not result.okay() and not result.reward_validation_failed
    assert result.benchmark_semantics_validated and result.benchmark_semantics_validation_failed
    assert result.errors == [ValidationError("Wrong output")] and result.errors[0].data["actual"] == "2"
    assert str(result).startswith("❌") and "Wrong output" in str(result)
    assert len(seen) == 1 and len(seen[0]) == 1
    # The API of CompilerGym's Benchmark, and its older import path of ValidationError.
    with compiler_gym.make("llvm-ic-v0", benchmark=benchmark) as env:
        env.reset()
        assert benchmark.validate(env) == [ValidationError("Wrong output")] and seen[-1] == []
    assert compiler_gym.ValidationError is ValidationError
    from compiler_gym.validation_error import ValidationError as OldName

    assert OldName is ValidationError


@needs_clang
def test_a_raising_callback_is_an_error_not_an_exception(tmp_path):
    benchmark = _benchmark(tmp_path, "int main(void) { return 0; }\n", "raises")

    def broken(env):
        raise RuntimeError("the checker broke")

    benchmark.add_validation_callback(broken)
    _, result = _validate_after(benchmark, ["-mem2reg"])
    assert not result.okay() and result.benchmark_semantics_validation_failed
    assert result.errors[0].type == "RuntimeError: the checker broke"


@needs_clang
@pytest.mark.parametrize(
    ("source", "error"),
    [(WRONG_OUTPUT, "Wrong output"), (ENDLESS, "Execution timeout"), (CRASH, "Segmentation fault")],
    ids=["wrong-output", "hang", "crash"],
)
def test_a_program_that_changed_is_a_validation_error(tmp_path, source, error):
    benchmark = _benchmark(tmp_path, source, "ub")
    benchmark.add_validation_callback(ProgramSemantics(timeout=1))
    _, unoptimized = _validate_after(benchmark, [])
    assert unoptimized.okay() and unoptimized.benchmark_semantics_validated
    state, result = _validate_after(benchmark, UB_PASSES)
    assert not result.okay() and result.reward_validated and not result.reward_validation_failed
    assert result.benchmark_semantics_validated and result.benchmark_semantics_validation_failed
    assert [e.type for e in result.errors] == [error]
    report = result.errors[0].data  # what to run to reproduce it
    assert report["benchmark"] == state.benchmark and report["commandline"].startswith("opt ")
    assert report["expected"]["exit_code"] == 0 and report["reason"]


@needs_clang
def test_a_program_that_does_not_finish_unoptimized_is_not_judged(tmp_path):
    endless = "int main(void) { volatile int x = 0; for (;;) x++; }\n"
    benchmark = _benchmark(tmp_path, endless, "endless")
    benchmark.add_validation_callback(ProgramSemantics(timeout=0.5))
    _, result = _validate_after(benchmark, ["-mem2reg"])
    assert result.okay() and not result.benchmark_semantics_validated
    assert not result.benchmark_semantics_validation_failed
