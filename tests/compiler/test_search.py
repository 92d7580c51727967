"""The search harness (compilerdream/compiler/search.py) and `compilerdream search`: real LLVM, seeded."""

from __future__ import annotations

import json
import logging

import pytest

import compilerdream.compiler as cc
from compilerdream.compiler.search import (
    PARTIAL_FILE,
    Budget,
    GreedySearch,
    PipelinePolicy,
    RandomSearch,
    SearchPolicy,
    run_search,
    search_benchmark,
)
from compilerdream.compiler.search_cli import main as search_main

from .helpers import count_instructions, run_commandline


def _replay(benchmark, passes) -> int:
    """Instruction count after replaying flags/pipelines on a fresh copy of the benchmark."""
    with cc.make("llvm-v0", benchmark=benchmark, isolation="none") as env:
        env.reset()
        if passes:
            env.multistep(list(passes))
        return int(env.observation["IrInstructionCount"])


def test_random_search_spends_its_budget_and_its_best_sequence_replays(program_bitcode):
    bench = program_bitcode["crc32"]
    result = search_benchmark(RandomSearch(), bench, Budget(compilations=60), seed=7)
    again = search_benchmark(RandomSearch(), bench, Budget(compilations=60), seed=7)
    assert result.error is None and result.compilations == 60 and result.budget == "60 compilations"
    assert result.best_actions == again.best_actions and result.final == again.final  # seeded
    assert result.action_space == "NoLimit" and len(result.best_passes) == len(result.best_actions)
    assert _replay(bench, result.best_passes) == result.final < result.O0
    assert result.reduction == pytest.approx(result.Oz / result.final)
    assert result.leaderboard == pytest.approx((result.O0 - result.final) / (result.O0 - result.Oz))


def test_greedy_search_first_takes_the_best_single_action(program_bitcode):
    """Its best sequence starts with an action of the largest immediate reward, found by brute force.

    (On crc32 -sroa and -mem2reg tie. Greedy steps with the higher index, but the harness reports
    the first sequence that reached the best count, which may be a fork's trial of the other.)
    """
    bench = program_bitcode["crc32"]
    rewards = []
    with cc.make("llvm-v0", benchmark=bench, isolation="none", reward_space="IrInstructionCountOz") as env:
        for action in range(env.action_space.n):
            env.reset()
            rewards.append(env.step(action)[1])
    # 124 forked trials + the chosen step + the next step's trials are more than 124 + 1 compilations.
    result = search_benchmark(GreedySearch(), bench, Budget(compilations=126))
    assert result.error is None and len(result.best_actions) == 1 and max(rewards) > 0
    assert rewards[result.best_actions[0]] == max(rewards)


def test_a_benchmark_that_crashes_the_compiler_is_logged_and_the_run_goes_on(program_bitcode, tmp_path, caplog):
    """Bare `instcombine` aborts LLVM on one fixture: that result keeps the unmodified program; the next benchmark runs."""
    crashing, fine = program_bitcode["instcombine_fixpoint_abort"], program_bitcode["crc32"]
    policy = PipelinePolicy("bare-instcombine", "function(instcombine)")
    with caplog.at_level(logging.WARNING, logger="compilerdream.compiler.search"):
        results = run_search([policy], [crashing, fine], Budget(compilations=1), out_dir=tmp_path, progress=False)
    first, second = results
    assert first.error is None and first.best_actions == [] and first.final == first.O0
    assert any("ended the episode" in r.getMessage() and "fixpoint" in r.getMessage() for r in caplog.records)
    assert second.error is None and second.final < second.O0
    assert [r["benchmark"] for r in json.loads((tmp_path / "results.json").read_text())] == [
        first.benchmark,
        second.benchmark,
    ]


def test_search_command_writes_one_table_and_rejects_bad_input(program_bitcode, tmp_path, capsys):
    programs = [str(program_bitcode["qsort"]), str(program_bitcode["crc32"])]
    argv = [*programs, "--methods", "oz,random", "--compilations", "20", "--out", str(tmp_path)]
    for _ in range(2):  # a second run into the same folder replaces the first one's partial results
        assert search_main(argv) == 0
    out = capsys.readouterr().out
    assert "CompilerDream reduction" in out and "CompilerGym leaderboard" in out
    rows = json.loads((tmp_path / "results.json").read_text())
    assert [(r["method"], r["compilations"]) for r in rows] == [("-Oz", 1), ("random", 20)] * 2
    assert len((tmp_path / PARTIAL_FILE).read_text().splitlines()) == 4
    assert (tmp_path / "results.csv").is_file() and (tmp_path / "summary.md").is_file()
    for bad, message in (
        (["--methods", "ppo"], "unknown search method 'ppo'"),
        (["--action-space", "Tiny"], "Tiny"),
    ):
        assert search_main([programs[0], "--compilations", "5", *bad]) == 2
        err = capsys.readouterr().err
        assert message in err and err.strip().count("\n") == 0 and "Traceback" not in err
    assert search_main([str(tmp_path / "missing.c"), "--compilations", "5"]) == 2
    assert "no benchmark matches" in capsys.readouterr().err


def test_a_benchmark_that_does_not_load_is_a_failed_row_named_under_the_table(program_bitcode, tmp_path, capsys):
    bad = tmp_path / "broken.ll"
    bad.write_text("define i32 @f( {\n")
    assert search_main([str(bad), str(program_bitcode["crc32"]), "--methods", "oz", "--out", str(tmp_path / "r")]) == 0
    out = capsys.readouterr().out
    rows = json.loads((tmp_path / "r" / "results.json").read_text())
    assert "broken.ll" in rows[0]["error"] and rows[1]["error"] is None and rows[1]["final"] == rows[1]["Oz"]
    assert f"Failed (counted as 0 in the geomeans; reasons in results.json `error`): {rows[0]['benchmark']}" in out
    assert "| -Oz | **all (geomean of datasets)** | 2 | 1 |" in out


# ---------------------------------------------------------------------------------------------
# Starting from -Oz's output (start="oz"/"both")


class _Scripted(SearchPolicy):
    """Applies a fixed list of actions after `ctx.reset()`, one list per start (a test policy, real compiler)."""

    name = "scripted"

    def __init__(self, plans: dict):
        self.plans = plans

    def search(self, ctx) -> None:
        ctx.reset()
        for action in self.plans[ctx.start]:
            ctx.step(action)


@pytest.fixture
def oz_spy(monkeypatch) -> list:
    """Every action list the envs apply (LlvmEnv.multistep still runs them): to count -Oz runs."""
    applied: list = []
    original = cc.LlvmEnv.multistep

    def spy(self, actions, *args, **kwargs):
        applied.append(list(actions))
        return original(self, actions, *args, **kwargs)

    monkeypatch.setattr(cc.LlvmEnv, "multistep", spy)
    return applied


def test_random_search_from_oz_runs_oz_once_and_replays_with_opt(program_bitcode, opt_tool, tmp_path, oz_spy):
    bench = program_bitcode["qsort"]
    result = search_benchmark(RandomSearch(), bench, Budget(compilations=40), seed=3, start="oz")
    assert result.error is None and result.start == "oz" and result.compilations <= 40
    assert result.best_actions[0] == "default<Oz>" and result.best_passes[0] == "default<Oz>"
    assert result.final <= result.Oz < result.O0
    # -Oz ran once in the search (one compilation, later episodes fork its session) and once in the replay.
    oz_runs = [actions for actions in oz_spy if "default<Oz>" in actions]
    assert len(oz_runs) == 2 and oz_runs[0] == ["default<Oz>"] and oz_runs[1] == result.best_actions
    run_commandline(opt_tool, result.commandline, bench, tmp_path / "out.bc")
    assert count_instructions(tmp_path / "out.bc") == result.final
    again = search_benchmark(RandomSearch(), bench, Budget(compilations=40), seed=3, start="oz")
    assert again.best_actions == result.best_actions  # seeded


def test_context_restores_oz_by_forking_and_forks_keep_working(program_bitcode):
    """reset("oz") charges one compilation the first time only; o0 and oz resets and forks mix freely."""
    seen: dict = {}

    class Probe(SearchPolicy):
        def search(self, ctx) -> None:
            count = lambda c: int(c.env.observation["IrInstructionCount"])  # noqa: E731
            seen["first"] = (ctx.compilations, list(ctx.trajectory), ctx.start, count(ctx))  # the harness's reset
            first_env = ctx.env
            ctx.step("-mem2reg")
            ctx.reset()  # back to -Oz's output: a fork of the cached session, free
            seen["again"] = (ctx.compilations, list(ctx.trajectory), ctx.start, count(ctx), ctx.env is first_env)
            child = ctx.fork()
            child.step("-simplifycfg")
            child.reset("oz")
            seen["child"] = (list(child.trajectory), count(child))
            child.close()
            ctx.reset("o0")
            seen["o0"] = (ctx.compilations, ctx.trajectory, ctx.start, count(ctx))
            ctx.reset("oz")
            seen["oz"] = (ctx.compilations, count(ctx))

    result = search_benchmark(Probe(), program_bitcode["crc32"], Budget(compilations=10), start="oz")
    o0, oz = result.O0, result.Oz
    assert result.error is None and result.compilations == 3
    assert seen["first"] == (1, ["default<Oz>"], "oz", oz)
    assert seen["again"] == (2, ["default<Oz>"], "oz", oz, False)
    assert seen["child"] == (["default<Oz>"], oz)
    assert seen["o0"] == (3, [], "o0", o0)
    assert seen["oz"] == (3, oz)
    assert result.best_actions[0] == "default<Oz>" and result.start == "oz"


def test_start_both_keeps_the_better_start_within_the_budget(program_bitcode):
    bench = program_bitcode["qsort"]
    better = ["default<Oz>", "-early-cse-memssa"]  # one instruction fewer than -Oz alone on this qsort
    o0_wins = search_benchmark(_Scripted({"o0": better, "oz": []}), bench, Budget(compilations=10), start="both")
    assert o0_wins.start == "o0" and o0_wins.best_actions == better and o0_wins.final < o0_wins.Oz
    assert o0_wins.compilations == 3  # 2 from -O0, 1 (-Oz itself) from -Oz
    oz_wins = search_benchmark(_Scripted({"o0": [], "oz": better[1:]}), bench, Budget(compilations=10), start="both")
    assert oz_wins.start == "oz" and oz_wins.best_actions == better and oz_wins.final == o0_wins.final
    # Random search: each half is the same search with half the budget, and the better one wins.
    both = search_benchmark(RandomSearch(), bench, Budget(compilations=41), seed=5, start="both")
    halves = [search_benchmark(RandomSearch(), bench, Budget(compilations=n), seed=5, start=s)
              for s, n in (("o0", 20), ("oz", 21))]  # fmt: skip
    assert both.compilations == sum(h.compilations for h in halves) <= 41
    winner = min(halves, key=lambda h: h.final)
    assert (both.final, both.start, both.best_actions) == (winner.final, winner.start, winner.best_actions)
    assert _replay(bench, both.best_passes) == both.final


def test_pipeline_baselines_ignore_the_start(program_bitcode):
    oz = PipelinePolicy("-Oz", "default<Oz>")
    result = search_benchmark(oz, program_bitcode["crc32"], Budget(compilations=1), start="both")
    assert result.start == "o0" and result.best_actions == ["default<Oz>"] and result.final == result.Oz
    assert result.compilations == 1


def test_a_bad_start_is_one_line_before_any_work(program_bitcode, tmp_path, capsys):
    with pytest.raises(ValueError, match=r"^start must be one of o0, oz, both, got 'O2'$"):
        search_benchmark(RandomSearch(), "/no/such/file.c", Budget(compilations=5), start="O2")
    with pytest.raises(ValueError, match="start must be one of o0, oz, both"):
        run_search([RandomSearch()], ["/no/such/file.c"], Budget(compilations=5), out_dir=tmp_path / "r", start="x")
    assert not (tmp_path / "r").exists()
    assert search_main([str(program_bitcode["crc32"]), "--compilations", "5", "--start", "x"]) == 2
    err = capsys.readouterr().err
    assert err == "compilerdream search: --start must be one of o0, oz, both, got 'x'\n"


def test_search_command_start_oz(program_bitcode, tmp_path, capsys):
    argv = [str(program_bitcode["crc32"]), "--methods", "oz,greedy", "--compilations", "30", "--start", "oz"]
    assert search_main([*argv, "--out", str(tmp_path)]) == 0
    rows = {r["method"]: r for r in json.loads((tmp_path / "results.json").read_text())}
    assert rows["-Oz"]["start"] == "o0" and rows["-Oz"]["compilations"] == 1
    assert rows["greedy"]["start"] == "oz" and rows["greedy"]["best_actions"][0] == "default<Oz>"
    assert rows["greedy"]["final"] <= rows["greedy"]["Oz"] and rows["greedy"]["compilations"] <= 30


def test_search_command_runs_coreset_and_optimize_on_one_footing(program_bitcode, tmp_path, capsys):
    """`--methods coreset,optimize`: the shipped coreset (best prefix) and optimize's default method,
    in the same table as -Oz; their sequences replay with opt-19 to the reported counts."""
    from compilerdream.compiler.coreset import load_coreset
    from compilerdream.compiler.toolchain import find_tool

    bc = program_bitcode["qsort"]
    assert search_main([str(bc), "--methods", "oz,coreset,optimize", "--out", str(tmp_path)]) == 0
    rows = {r["method"]: r for r in json.loads((tmp_path / "results.json").read_text())}
    shipped = load_coreset("default")
    oz_runs = int(any(s.start == "oz" for s in shipped.sequences))
    assert rows["coreset"]["compilations"] == shipped.total_passes + oz_runs  # every pass once, -Oz once
    assert rows["optimize"]["compilations"] >= rows["coreset"]["compilations"]  # optimize = coreset + search
    assert rows["optimize"]["final"] <= min(rows["coreset"]["final"], rows["optimize"]["O0"])
    opt = find_tool("opt")
    for method in ("coreset", "optimize"):
        out = tmp_path / f"{method}.bc"
        run_commandline(opt, rows[method]["commandline"], bc, out)
        assert count_instructions(out) == rows[method]["final"]
    # --start overrides the coreset's starts: every sequence from -O0 only
    assert search_main([str(bc), "--methods", "coreset", "--start", "o0", "--out", str(tmp_path / "o0")]) == 0
    row = json.loads((tmp_path / "o0" / "results.json").read_text())[0]
    assert row["compilations"] == shipped.total_passes and row["start"] == "o0"
    # a bad coreset is one line
    capsys.readouterr()
    assert search_main([str(bc), "--methods", "coreset", "--coreset", str(tmp_path / "nope.json")]) == 2
    err = capsys.readouterr().err.strip()
    assert "nope.json" in err and len(err.splitlines()) == 1


def test_a_pipeline_reports_its_own_result_even_when_larger_than_o0():
    """A module -Oz makes larger (an inline-heavy function): the -Oz row is -Oz's output, not the unoptimized one."""
    import compilerdream.compiler as cc

    ir = """
define internal i32 @big(i32 %x) {
  %a = mul i32 %x, %x
  %b = add i32 %a, 7
  %c = mul i32 %b, %x
  ret i32 %c
}
define i32 @f(i32 %x) {
  %1 = call i32 @big(i32 %x)
  %2 = call i32 @big(i32 %1)
  %3 = call i32 @big(i32 %2)
  ret i32 %3
}
"""
    bench = cc.Benchmark.from_bytes(ir.encode(), uri="benchmark://test/grows")
    from compilerdream.compiler.search import make_policy

    result = search_benchmark(make_policy("oz"), bench, Budget(compilations=1))
    assert result.Oz > result.O0  # inlining the three calls makes it larger
    assert result.error is None and result.final == result.Oz and result.best_actions == ["default<Oz>"]


def test_coreset_run_keeps_forks_of_the_best_whole_sequences_at_their_best_count(program_bitcode):
    """CoresetPolicy.run(keep=k): at most k results carry a fork, the best eligible ones (the whole
    sequence ends at its best count); each fork holds a module of the result's count, and its
    trajectory is the whole sequence from the result's start (what optimize outlines without replaying)."""
    from compilerdream.compiler.coreset import CoresetPolicy, load_coreset
    from compilerdream.compiler.search import OZ_PIPELINE, SearchPolicy

    sequences = {(s.start, s.passes) for s in load_coreset("default").sequences}

    class Capture(SearchPolicy):
        fixed_start = "o0"

        def search(self, ctx):
            self.results = CoresetPolicy("default").run(ctx, keep=4)
            self.forks = []
            for r in self.results:
                if r.fork is not None:
                    f = r.fork
                    self.forks.append((r, int(f.env.observation["IrInstructionCount"]), f.start, list(f.trajectory)))
                    f.close()

    program = str(program_bitcode["csmith_333"])
    policy = Capture()
    found = search_benchmark(policy, program, Budget(compilations=100_000))
    count = lambda ret: round(found.O0 - ret * (found.O0 - found.Oz))  # noqa: E731
    assert 1 <= len(policy.forks) <= 4
    for r, instructions, start, trajectory in policy.forks:
        assert instructions == count(r.reward)
        assert start == r.start
        passes = tuple(trajectory[1:] if start == "oz" else trajectory)
        assert (start, passes) in sequences and passes[: len(r.passes)] == r.passes
        assert trajectory[:1] == [OZ_PIPELINE] or start == "o0"


def test_coreset_run_reports_each_sequences_best_prefix_best_first(program_bitcode):
    """CoresetPolicy.run: one (return, start, prefix) per sequence, best first; each replays to its
    return, and the first is the harness's result (optimize outlines the best few of these)."""
    from compilerdream.compiler.coreset import CoresetPolicy, load_coreset
    from compilerdream.compiler.search import SearchPolicy

    class Capture(SearchPolicy):
        fixed_start = "o0"

        def search(self, ctx):
            self.results = CoresetPolicy("default").run(ctx)

    program = str(program_bitcode["csmith_333"])
    policy = Capture()
    found = search_benchmark(policy, program, Budget(compilations=100_000))
    results = policy.results
    assert len(results) == len(load_coreset("default"))
    returns = [r.reward for r in results]
    assert returns == sorted(returns, reverse=True)
    count = lambda ret: round(found.O0 - ret * (found.O0 - found.Oz))  # noqa: E731 - IrInstructionCountOz returns
    assert count(returns[0]) == found.final
    assert all(r.fork is None for r in results)  # none asked for
    for ret, start, passes, _ in results[:3]:
        with cc.LlvmEnv(action_space="NoLimit") as env:
            env.reset(benchmark=program)
            env.multistep((["default<Oz>"] if start == "oz" else []) + list(passes))
            assert int(env.observation["IrInstructionCount"]) == count(ret)
