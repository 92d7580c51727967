"""LLVM's IR outliner in `optimize`'s default method: on the unoptimized program, replayable with
opt-19, and (checked with lli on csmith programs) keeping what programs compute."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from compilerdream.compiler.default_optimizer import (
    O0_OUTLINE,
    OPTION_CANDIDATES,
    OUTLINE_PIPELINES,
    default_policy,
    outlined,
)
from compilerdream.compiler.search import OZ_PIPELINE, search_benchmark
from compilerdream.compiler.spaces import parse_commandline_options
from compilerdream.compiler.toolchain import find_tool

from .helpers import count_instructions, engine_count, run_commandline

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "benchmarks"))  # importable by name
import outline_check  # noqa: E402

needs_lli = pytest.mark.skipif(find_tool("lli", required=False) is None, reason="lli (LLVM 19) is not installed")


def test_optimize_outlines_the_unoptimized_program_and_replays_with_opt(program_bitcode, opt_tool, tmp_path):
    """unit_checks repeats one assertion on calls to a library: the outliner on the unoptimized
    program (O0_OUTLINE) beats -Oz, which it cannot do after -Oz; the default method's result is
    at most the best of those pipelines, and its printed command line rebuilds the count."""
    path = program_bitcode["unit_checks"]
    best_o0_outline = min(engine_count(path, p) for p in O0_OUTLINE)
    assert best_o0_outline < engine_count(path, OZ_PIPELINE) == min(engine_count(path, f"{OZ_PIPELINE},{p}") for p in OUTLINE_PIPELINES)
    policy, budget = default_policy(search_compilations=700)
    assert "the IR outliner on the unoptimized program" in policy.describe()
    result = search_benchmark(policy, str(path), budget)
    assert result.error is None and result.final <= best_o0_outline
    run_commandline(opt_tool, result.commandline, path, tmp_path / "out.bc")
    assert count_instructions(tmp_path / "out.bc") == result.final
    assert parse_commandline_options(result.commandline) == tuple(result.compiler_options)
    assert all(outlined([p]) for p in (*O0_OUTLINE, *OUTLINE_PIPELINES)) and not outlined([OZ_PIPELINE])
    no_outline, budget = default_policy(search_compilations=700, outline=False)
    plain = search_benchmark(no_outline, str(path), budget)
    assert not outlined(plain.best_passes) and "iroutliner" not in " ".join(plain.best_passes)
    assert plain.final > result.final


@needs_lli
def test_the_outlining_pipelines_keep_what_csmith_programs_print(program_bitcode, tmp_path):
    """benchmarks/outline_check.py on the three csmith fixtures: every shipped outlining pipeline,
    as `optimize` applies it (as it is and under each opt option set), leaves the printed checksum
    and exit status as they were."""
    programs = [str(program_bitcode[n]) for n in ("csmith_258", "csmith_94", "csmith_333")]
    out = tmp_path / "check"
    assert outline_check.main([*programs, "--out", str(out), "--no-progress"]) == 0
    data = json.loads((out / "results.json").read_text())
    shipped = [s for s in data["summary"] if not s["pipeline"].endswith(outline_check.PEER)]
    assert len(shipped) == (len(O0_OUTLINE) + len(OUTLINE_PIPELINES)) * (1 + len(OPTION_CANDIDATES))
    assert all(s["checked"] == 3 and s["same"] == 3 for s in shipped), shipped
    assert "Outputs changed: shipped pipelines 0" in (out / "summary.md").read_text()


def test_outline_check_refuses_a_missing_program_in_one_line(tmp_path, capsys):
    missing = tmp_path / "missing.bc"
    assert outline_check.main([str(missing), "--out", str(tmp_path / "out"), "--no-progress"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "missing.bc" in err
    assert not (tmp_path / "out").exists()
