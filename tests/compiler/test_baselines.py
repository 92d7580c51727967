"""Baselines: IrInstructionCountO0/Oz/O3 equal what opt-19 produces on the same input."""

from __future__ import annotations

import pytest

import compilerdream.compiler as cc

from .helpers import count_instructions, opt_instruction_count


@pytest.mark.parametrize("program", ["qsort", "crc32", "statemachine", "shapes", "csmith_94", "csmith_333"])
def test_baselines_match_opt(program, program_bitcode, opt_tool, tmp_path):
    """O0 is the loaded module's count; Oz/O3 equal `opt-19 -passes='default<Oz>'`/`default<O3>` counted by the engine."""
    path = program_bitcode[program]
    with cc.make("llvm-v0", benchmark=path, isolation="none") as env:
        env.reset()
        o0, oz, o3 = (int(env.observation[f"IrInstructionCount{level}"]) for level in ("O0", "Oz", "O3"))
        assert o0 == int(env.observation["IrInstructionCount"]) == count_instructions(path)
    assert oz == opt_instruction_count(opt_tool, "default<Oz>", path, tmp_path / "oz.bc")
    assert o3 == opt_instruction_count(opt_tool, "default<O3>", path, tmp_path / "o3.bc")
    assert oz < o0


def test_baselines_of_debug_build_match_opt(debug_bitcode, program_bitcode, opt_tool, tmp_path):
    """With debug info, Oz equals opt's on the -g file and the baselines equal those of the plain build."""
    plain = {}
    for name, path in (("g", debug_bitcode["qsort"]), ("plain", program_bitcode["qsort"])):
        with cc.make("llvm-v0", benchmark=path, isolation="none") as env:
            env.reset()
            plain[name] = [int(env.observation[f"IrInstructionCount{level}"]) for level in ("O0", "Oz", "O3")]
    assert plain["g"] == plain["plain"]
    assert plain["g"][1] == opt_instruction_count(opt_tool, "default<Oz>", debug_bitcode["qsort"], tmp_path / "oz.bc")


def test_baselines_are_of_the_original_program(program_bitcode):
    """Baselines do not move when the module changes, and hold in the process worker and in a fork."""
    with cc.make("llvm-v0", benchmark=program_bitcode["matmul"]) as env:
        env.reset()
        before = [int(env.observation[f"IrInstructionCount{level}"]) for level in ("O0", "Oz", "O3")]
        env.multistep(["-mem2reg", "-gvn", "-simplifycfg"])
        fork = env.fork()
        fork.step("-loop-unroll")
        for e in (env, fork):
            assert [int(e.observation[f"IrInstructionCount{level}"]) for level in ("O0", "Oz", "O3")] == before
        fork.close()


def test_object_text_size_observations(program_bitcode):
    """ObjectTextSize*: positive .text sizes; Oz's is smaller than O0's; the current size is O0's at reset."""
    with cc.make("llvm-v0", benchmark=program_bitcode["crc32"], isolation="none") as env:
        env.reset()
        sizes = {
            k: int(env.observation[k])
            for k in ("ObjectTextSizeBytes", "ObjectTextSizeO0", "ObjectTextSizeOz", "ObjectTextSizeO3")
        }
        assert all(v > 0 for v in sizes.values()), sizes
        assert sizes["ObjectTextSizeBytes"] == sizes["ObjectTextSizeO0"]
        assert sizes["ObjectTextSizeOz"] < sizes["ObjectTextSizeO0"]


@pytest.mark.parametrize("family", ["IrInstructionCount", "ObjectTextSize"])
def test_the_o3_baseline_is_computed_only_when_asked(program_bitcode, family):
    """Reading a family's -Oz baseline computes -O0's with it but not -O3's (as costly as -Oz's, for
    .text with a code generation too, and few callers read it); asking for -O3 computes it then."""
    from compilerdream.compiler import env as env_module

    with cc.make("llvm-v0", benchmark=program_bitcode["qsort"], isolation="none") as env:
        env.reset()
        env_module._BASELINE_CACHE.pop(env.benchmark.sha1, None)  # nothing computed yet, whatever ran before
        oz = int(env.observation[f"{family}Oz"])
        cached = env_module._cached_baselines(env.benchmark.sha1)
        assert {f"{family}O0", f"{family}Oz"} <= set(cached) and f"{family}O3" not in cached
        o3 = int(env.observation[f"{family}O3"])
        assert cached[f"{family}O3"] == o3 > 0 and oz > 0 and cached[f"{family}Oz"] == oz


def test_tools_match_engine_llvm_version(opt_tool):
    """opt and clang found by the toolchain are the engine's LLVM major version (parity tests depend on it)."""
    import re
    import subprocess

    from compilerdream.compiler._core import LLVM_VERSION
    from compilerdream.compiler.toolchain import find_tool

    major = str(LLVM_VERSION).split(".")[0]
    for tool in (opt_tool, find_tool("clang")):
        version = subprocess.run([tool, "--version"], capture_output=True, text=True, check=True).stdout
        assert re.search(rf"version {major}\.", version), (tool, version)
