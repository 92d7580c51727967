"""env.commandline(): running it with opt-19 on the benchmark file reproduces the env's module."""

from __future__ import annotations

import pytest

import compilerdream.compiler as cc

from .helpers import count_instructions, random_actions, run_commandline

SEEDS = (0, 1, 2)


def _episode_count_and_commandline(path, space: str, actions) -> tuple[int, str]:
    with cc.make("llvm-v0", benchmark=path, action_space=space, isolation="none") as env:
        env.reset()
        _, _, terminated, _, info = env.multistep(actions)
        assert not terminated, info
        return int(env.observation["IrInstructionCount"]), env.commandline()


def _check_parity(opt_tool, path, space, seed, tmp_path) -> None:
    n = cc.action_space(space).n
    count, commandline = _episode_count_and_commandline(path, space, random_actions(n, 30, seed))
    run_commandline(opt_tool, commandline, path, tmp_path / "out.bc")
    assert count_instructions(tmp_path / "out.bc") == count, f"{path.name} {space} seed {seed}: {commandline}"


@pytest.mark.parametrize("space", ["NoLimit", "SubseqAutophase"])
@pytest.mark.parametrize("program", ["qsort", "crc32", "matmul", "statemachine", "shapes", "csmith_258", "csmith_94"])
def test_commandline_reproduces_count(program, space, program_bitcode, opt_tool, tmp_path):
    """30 seeded random actions, 3 seeds: opt-19 on env.commandline() gives the env's instruction count."""
    for seed in SEEDS:
        _check_parity(opt_tool, program_bitcode[program], space, seed, tmp_path)


@pytest.mark.parametrize("space", ["NoLimit", "SubseqAutophase"])
@pytest.mark.parametrize("program", ["qsort", "crc32", "shapes", "csmith_94"])
def test_commandline_reproduces_count_with_debug_info(program, space, debug_bitcode, opt_tool, tmp_path):
    """The same on inputs compiled with `clang -g`: the command line strips debug info as the engine does."""
    for seed in (*SEEDS, 4, 13, 14):  # NoLimit seeds 4, 13, 14 include -insert-gcov-profiling
        _check_parity(opt_tool, debug_bitcode[program], space, seed, tmp_path)


def test_gcov_on_debug_input_needs_strip_debug(debug_bitcode, opt_tool, tmp_path):
    """Regression: insert-gcov-profiling instruments only modules with llvm.dbg.cu, which the engine strips.

    The printed command line must therefore carry -strip-debug for -g inputs and not otherwise.
    """
    path = debug_bitcode["crc32"]
    count, commandline = _episode_count_and_commandline(path, "NoLimit", ["-insert-gcov-profiling"])
    assert commandline.startswith("opt -strip-debug ")
    run_commandline(opt_tool, commandline, path, tmp_path / "out.bc")
    assert count_instructions(tmp_path / "out.bc") == count
    run_commandline(opt_tool, commandline.replace("-strip-debug ", ""), path, tmp_path / "unstripped.bc")
    assert count_instructions(tmp_path / "unstripped.bc") > count  # what went wrong without it


def test_steps_do_not_share_analyses(program_bitcode, opt_tool, tmp_path):
    """Regression: each step runs with fresh analyses, so the command line puts invalidate<all> between steps.

    On qsort, loop-deletion, licm, indvars in ONE opt pipeline reuse cached SCEV results and end
    with 3 fewer instructions than the same passes run one by one (as the engine runs them).
    """
    path = program_bitcode["qsort"]
    count, commandline = _episode_count_and_commandline(path, "NoLimit", ["-loop-deletion", "-licm", "-indvars"])
    assert commandline.count("invalidate<all>") == 2
    run_commandline(opt_tool, commandline, path, tmp_path / "out.bc")
    assert count_instructions(tmp_path / "out.bc") == count
    run_commandline(opt_tool, commandline.replace(",invalidate<all>", ""), path, tmp_path / "shared.bc")
    assert count_instructions(tmp_path / "shared.bc") != count  # what went wrong without it


def test_empty_episode_commandline_is_identity(program_bitcode, opt_tool, tmp_path):
    """With no actions the command line is a no-op that keeps the module's count."""
    path = program_bitcode["statemachine"]
    count, commandline = _episode_count_and_commandline(path, "NoLimit", [])
    assert "no-op-module" in commandline
    run_commandline(opt_tool, commandline, path, tmp_path / "out.bc")
    assert count_instructions(tmp_path / "out.bc") == count == count_instructions(path)


def test_commandline_with_pipeline_string_actions(program_bitcode, opt_tool, tmp_path):
    """Actions given as new-PM pipeline strings appear in the command line and reproduce too."""
    path = program_bitcode["matmul"]
    actions = ["sroa", "function(loop-mssa(licm))", "-gvn", "loop-unroll<O2>", "simplifycfg"]
    count, commandline = _episode_count_and_commandline(path, "NoLimit", actions)
    run_commandline(opt_tool, commandline, path, tmp_path / "out.bc")
    assert count_instructions(tmp_path / "out.bc") == count


@pytest.mark.slow
@pytest.mark.parametrize("program", ["csmith_333"])
def test_commandline_reproduces_count_large(program, program_bitcode, debug_bitcode, opt_tool, tmp_path):
    """The parity check on the 7k-instruction csmith program, 10 seeds per space, plain and -g."""
    for bitcode in (program_bitcode, debug_bitcode):
        for space in ("NoLimit", "SubseqAutophase", "Autophase", "SubseqSingleStep"):
            for seed in range(10):
                _check_parity(opt_tool, bitcode[program], space, seed, tmp_path)


@pytest.mark.parametrize("program", ["qsort", "crc32", "shapes", "csmith_94"])
def test_oz_and_o3_inside_an_episode_replay_with_opt(program, program_bitcode, opt_tool, tmp_path):
    """Regression: LLVM's printed expansion of default<Oz> does not replay (qsort: 154 instructions
    instead of -Oz's 143), so command lines name default<Oz>/default<O3> as they are."""
    path = program_bitcode[program]
    for actions in (["default<Oz>"], ["-sroa", "default<Oz>", "-early-cse", "default<Oz>,function(gvn<>)"],
                    ["default<O3>", "-instcombine"]):  # fmt: skip
        count, commandline = _episode_count_and_commandline(path, "NoLimit", actions)
        assert "default<O" in commandline
        run_commandline(opt_tool, commandline, path, tmp_path / "out.bc")
        assert count_instructions(tmp_path / "out.bc") == count, f"{program} {actions}: {commandline}"
