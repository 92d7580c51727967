"""opt's own command-line options (e.g. -force-attribute=minsize): in the engine, the env, the
search harness and `optimize`'s default method, always replayable with opt-19."""

from __future__ import annotations

import subprocess

import pytest

import compilerdream.compiler as cc
from compilerdream.compiler import _core
from compilerdream.compiler.default_optimizer import (
    ATTRIBUTOR_OPTIONS,
    FINISH,
    MINSIZE_OPTIONS,
    MINSIZE_PREPARE,
    NO_INLINING_OPTIONS,
    NO_LFTR_OPTIONS,
    NO_PRE_OPTIONS,
    O0_OUTLINE,
    O0_OUTLINE_ALSO,
    OPTION_CANDIDATES,
    OUTLINE_PIPELINES,
    SIMPLIFYCFG_OPTIONS,
    Outline,
    SearchAlone,
    default_policy,
    finish,
    from_best,
    prelude,
)
from compilerdream.compiler.search import OZ_PIPELINE, Budget, SearchPolicy, search_benchmark
from compilerdream.compiler.spaces import commandline_steps, parse_commandline_options, pass_flags

from .helpers import count_instructions, engine_count, random_actions, run_commandline

MINSIZE = "-force-attribute=minsize"


def _oz_count(path, options=()) -> int:
    return engine_count(path, OZ_PIPELINE, options)


def test_engine_options_act_like_opts_and_last_one_run(program_bitcode, opt_tool, tmp_path):
    """matmul: -Oz with every function minsize is smaller, as opt-19 with the same option gives;
    the option is gone after the run (the next plain -Oz is -Oz again)."""
    path = program_bitcode["matmul"]
    plain, minsize = _oz_count(path), _oz_count(path, [MINSIZE])
    assert minsize < plain
    assert _oz_count(path) == plain
    out = tmp_path / "ms.bc"
    subprocess.run([opt_tool, MINSIZE, f"-passes={OZ_PIPELINE}", str(path), "-o", str(out)], check=True)
    assert count_instructions(out) == minsize


@pytest.mark.parametrize(
    "bad, says",
    [("force-attribute=minsize", "does not start with '-'"), ("-no-such-option=1", "unknown opt option"),
     ("-inline-threshold=abc", "bad value")],
)  # fmt: skip
def test_a_bad_engine_option_is_one_line_and_changes_nothing(bad, says, program_bitcode):
    path = program_bitcode["matmul"]
    module = _core.Module.load(path.read_bytes(), str(path))
    with pytest.raises(ValueError, match=says) as info:
        module.apply(OZ_PIPELINE, [MINSIZE, bad])  # the good one before it is reset too
    assert len(str(info.value).splitlines()) == 1 and bad in str(info.value)
    assert _oz_count(path) > _oz_count(path, [MINSIZE])  # still -Oz without the attribute


def test_env_options_are_in_the_command_line_kept_by_fork_and_replay_with_opt(program_bitcode, opt_tool, tmp_path):
    """Random NoLimit actions after forceattrs under -force-attribute=minsize: opt-19 on
    env.commandline() gives the env's count; a fork and env.apply(state) keep the options."""
    path = program_bitcode["qsort"]
    n = cc.action_space("NoLimit").n
    with cc.LlvmEnv(benchmark=path, reward_space="IrInstructionCountOz") as env:
        env.compiler_options = (MINSIZE,)
        env.reset()
        env.multistep(["forceattrs", *random_actions(n, 25, seed=3), OZ_PIPELINE])
        count, commandline = int(env.observation["IrInstructionCount"]), env.commandline()
        assert commandline.startswith(f"opt {MINSIZE} -passes=") and parse_commandline_options(commandline) == (MINSIZE,)
        run_commandline(opt_tool, commandline, path, tmp_path / "out.bc")
        assert count_instructions(tmp_path / "out.bc") == count
        fork = env.fork()
        assert fork.compiler_options == (MINSIZE,) and fork.commandline() == commandline
        fork.close()
        state = env.state
    with cc.LlvmEnv(reward_space="IrInstructionCountOz") as replay:
        replay.apply(state)
        assert replay.compiler_options == (MINSIZE,) and int(replay.observation["IrInstructionCount"]) == count
    assert commandline_steps(commandline)[0] == "forceattrs"


class _MinsizeThenCount(SearchPolicy):
    """try_options, then one step from the "o0" start and one from the "oz" start."""

    name = "minsize-probe"
    fixed_start = "o0"

    def __init__(self):
        self.used: bool | None = None
        self.o0_trajectory: list = []

    def search(self, ctx) -> None:
        self.used = ctx.try_options(MINSIZE_OPTIONS, MINSIZE_PREPARE)
        self.o0_trajectory = list(ctx.trajectory)
        ctx.step("function(instcombine<no-verify-fixpoint>)")
        ctx.reset("oz")
        ctx.step("function(simplifycfg)")


@pytest.mark.parametrize("name, used", [("matmul", True), ("crc32", False)])
def test_try_options_keeps_them_only_where_oz_under_them_is_smaller(name, used, program_bitcode, opt_tool, tmp_path):
    """matmul's -Oz is smaller with minsize, crc32's is not: the search compiles under the option
    only for matmul; either way its result replays with opt-19 from its command line."""
    path = program_bitcode[name]
    policy = _MinsizeThenCount()
    result = search_benchmark(policy, str(path), Budget(compilations=50))
    assert result.error is None and policy.used is used
    assert result.compiler_options == (list(MINSIZE_OPTIONS) if used else [])
    assert policy.o0_trajectory == (list(MINSIZE_PREPARE) if used else [])
    # -Oz under the option, the preparation, the two steps (+ -Oz once on the plain program when unused)
    assert result.compilations == (1 + len(MINSIZE_PREPARE) + 2 if used else 1 + 1 + 2)
    if used:
        assert result.final < _oz_count(path) and result.final <= _oz_count(path, MINSIZE_OPTIONS)
        assert result.commandline.startswith(f"opt {MINSIZE} ")
    else:
        assert MINSIZE not in result.commandline
    run_commandline(opt_tool, result.commandline, path, tmp_path / "out.bc")
    assert count_instructions(tmp_path / "out.bc") == result.final


def test_try_options_spends_the_budget_and_its_smaller_oz_is_a_result(program_bitcode, opt_tool, tmp_path):
    """One compilation: -Oz under the option, which is kept as the result; nothing is left to prepare."""

    class Probe(SearchPolicy):
        name, fixed_start = "probe", "o0"

        def search(self, ctx) -> None:
            ctx.try_options(MINSIZE_OPTIONS, MINSIZE_PREPARE)
            raise AssertionError("a budget of 1 compilation cannot also prepare the program")

    path = program_bitcode["matmul"]
    result = search_benchmark(Probe(), str(path), Budget(compilations=1))
    assert result.error is None and result.compilations == 1
    assert result.best_actions == [OZ_PIPELINE] and result.start == "oz"
    assert result.final == _oz_count(path, MINSIZE_OPTIONS) < result.Oz
    run_commandline(opt_tool, result.commandline, path, tmp_path / "out.bc")
    assert count_instructions(tmp_path / "out.bc") == result.final


def test_choose_options_keeps_the_set_with_the_smallest_oz(program_bitcode, opt_tool, tmp_path):
    """csmith_258: -Oz 101, with minsize 101, with minsize and -inline-threshold=-20 61: that set is
    kept (one compilation each), and the search's result replays with opt-19 under it."""
    candidates = [MINSIZE_OPTIONS, (*MINSIZE_OPTIONS, "-inline-threshold=-20")]
    chosen: list = []

    class Choose(SearchPolicy):
        name, fixed_start = "choose", "o0"

        def search(self, ctx) -> None:
            chosen.append(ctx.choose_options(candidates, MINSIZE_PREPARE))
            ctx.step("function(instcombine<no-verify-fixpoint>)")

    path = program_bitcode["csmith_258"]
    result = search_benchmark(Choose(), str(path), Budget(compilations=20))
    assert chosen == [candidates[1]] and result.compiler_options == list(candidates[1])
    assert result.compilations == len(candidates) + len(MINSIZE_PREPARE) + 1
    assert result.final <= _oz_count(path, candidates[1]) < _oz_count(path, candidates[0]) == result.Oz
    run_commandline(opt_tool, result.commandline, path, tmp_path / "out.bc")
    assert count_instructions(tmp_path / "out.bc") == result.final
    chosen.clear()
    plain = search_benchmark(Choose(), str(program_bitcode["crc32"]), Budget(compilations=20))
    assert chosen == [None] and plain.compiler_options == [] and plain.compilations == len(candidates) + 1


@pytest.mark.parametrize(
    "program, index, marks",
    [
        ("csmith_94", 2, ATTRIBUTOR_OPTIONS),  # -Oz 260; the second set 229, the third (and fourth) 197
        ("qsort", 3, (*SIMPLIFYCFG_OPTIONS, *NO_PRE_OPTIONS, *NO_LFTR_OPTIONS)),  # -Oz 143; the sets 141, 140, 140, 136
    ],
)
def test_a_later_set_wins_where_it_is_smallest_and_replays(program_bitcode, opt_tool, tmp_path, program, index, marks):
    """Where -Oz under one of OPTION_CANDIDATES (the Attributor's third, the SimplifyCFG and
    no-PRE fourth) is smaller than -Oz under every earlier set (a tie keeps the earlier),
    `optimize`'s default compiles under it, and its result replays with opt-19, the options included."""
    path = program_bitcode[program]
    counts = [_oz_count(path, options) for options in OPTION_CANDIDATES]
    assert counts[index] < min(counts[:index]) and counts[index] <= min(counts) and counts[index] < _oz_count(path)
    assert set(marks) <= set(OPTION_CANDIDATES[index])
    policy, budget = default_policy(search_compilations=60)
    result = search_benchmark(policy, str(path), budget)
    assert result.error is None and result.compiler_options == list(OPTION_CANDIDATES[index])
    assert result.final <= counts[index] < result.Oz
    assert parse_commandline_options(result.commandline) == OPTION_CANDIDATES[index]
    run_commandline(opt_tool, result.commandline, path, tmp_path / "out.bc")
    assert count_instructions(tmp_path / "out.bc") == result.final


class TwoWays(SearchPolicy):
    """-Oz, then -Oz on a context forked onto the program under the second option set, then
    `then(ctx)`; `seen` records the fork's count, the options of the context and of the best."""

    name, fixed_start = "two-ways", "o0"

    def __init__(self, then) -> None:
        self.then, self.seen = then, {}

    def search(self, ctx) -> None:
        ctx.reset("oz")
        other = ctx.fork_with_options(NO_INLINING_OPTIONS, MINSIZE_PREPARE)
        other.step(OZ_PIPELINE)
        self.seen["other"] = int(other.env.observation["IrInstructionCount"])
        other.close()
        self.seen["parent"], self.seen["best"] = ctx.env.compiler_options, ctx.best_options
        self.then(ctx)
        self.seen["after"], self.seen["options"] = list(ctx.trajectory), ctx.env.compiler_options


@pytest.mark.parametrize("program, wins", [("csmith_258", True), ("crc32", False)])
def test_fork_with_options_keeps_each_result_with_its_options(program_bitcode, opt_tool, tmp_path, program, wins):
    """-Oz, then -Oz on a context forked onto the program under minsize and -inline-threshold=-20
    (csmith_258: 101 -> 61; crc32: 43 either way). The parent's options stay as they were; the
    result is the smaller, replayed with opt-19 under the options it was compiled under (a tie
    keeps the first); from_best then starts from -Oz's output where the best has other options."""
    policy = TwoWays(from_best)
    seen = policy.seen
    path = program_bitcode[program]
    result = search_benchmark(policy, str(path), Budget(compilations=10))
    assert result.error is None and result.compilations == 1 + len(MINSIZE_PREPARE) + 1
    assert seen["parent"] == () and seen["other"] == _oz_count(path, NO_INLINING_OPTIONS)
    if wins:
        assert result.final == seen["other"] < result.Oz
        assert result.compiler_options == list(NO_INLINING_OPTIONS) == list(seen["best"])
        assert result.best_actions == [*MINSIZE_PREPARE, OZ_PIPELINE] and result.start == "o0"
        assert seen["after"] == [OZ_PIPELINE]  # the best's options are not the context's
    else:
        assert result.final == result.Oz <= seen["other"]
        assert result.compiler_options == [] and seen["best"] == () and MINSIZE not in result.commandline
        assert seen["after"] == [OZ_PIPELINE]  # the best is -Oz's output itself
    run_commandline(opt_tool, result.commandline, path, tmp_path / "out.bc")
    assert count_instructions(tmp_path / "out.bc") == result.final


@pytest.mark.parametrize(
    "program, chosen",
    [("crc32", None), ("csmith_94", 2), ("qsort", 3)],  # -Oz's count chooses no set, the third, the fourth
)
def test_prelude_also_outlines_the_program_under_the_fourth_set(program_bitcode, opt_tool, tmp_path, program, chosen):
    """`prelude`: -Oz under each set (one compilation each), the chosen set's preparation, the
    outliner's two -O0 pipelines, and the same pipelines on the program prepared under each set
    of O0_OUTLINE_ALSO that was not chosen; its best replays with opt-19."""
    assert O0_OUTLINE_ALSO == (OPTION_CANDIDATES[3],)
    seen: dict = {}

    class Prelude(SearchPolicy):
        name, fixed_start = "prelude", "o0"

        def search(self, ctx) -> None:
            prelude(ctx, OPTION_CANDIDATES, Outline(O0_OUTLINE))
            seen["options"] = ctx.env.compiler_options

    path = program_bitcode[program]
    result = search_benchmark(Prelude(), str(path), Budget(compilations=100))
    expected = () if chosen is None else OPTION_CANDIDATES[chosen]
    assert result.error is None and seen["options"] == expected
    prepare = 0 if chosen is None else len(MINSIZE_PREPARE)
    also = 0 if chosen == 3 else len(MINSIZE_PREPARE) + len(O0_OUTLINE)
    assert result.compilations == len(OPTION_CANDIDATES) + prepare + len(O0_OUTLINE) + also
    # the result is the smallest of what was compiled: -Oz (under the chosen set), and each -O0
    # outlining pipeline on the program prepared under the chosen set and under the fourth
    head = ",".join(MINSIZE_PREPARE) + ","
    outlined = [engine_count(path, (head if expected else "") + p, expected) for p in O0_OUTLINE]
    outlined += [engine_count(path, head + p, OPTION_CANDIDATES[3]) for p in O0_OUTLINE] if also else []
    assert result.final == min([_oz_count(path, expected), *outlined]) <= result.Oz
    run_commandline(opt_tool, result.commandline, path, tmp_path / "out.bc")
    assert count_instructions(tmp_path / "out.bc") == result.final


def _prefix_counts(path, steps, options=()) -> list[int]:
    """The engine's instruction count after each of `steps` (actions: flags or pipelines), one at a time."""
    pipelines = {f.flag: f.pipeline for f in pass_flags()}
    module = _core.Module.load(path.read_bytes(), str(path))
    counts = []
    for step in steps:
        module.apply(pipelines.get(step, step), list(options))
        counts.append(module.instruction_count())
    return counts


@pytest.mark.parametrize("program, wins", [("csmith_258", True), ("qsort", True), ("crc32", False)])
def test_finish_goes_on_from_the_best_under_its_options(program_bitcode, opt_tool, tmp_path, program, wins):
    """`finish`: -Oz, then -Oz on a fork under the second option set (csmith_258: 101 -> 61, the
    best; qsort: 143 -> 140; crc32: not better), then FINISH's passes once from the best result, under the
    options it was compiled under (replayed on a fork under them) or from -Oz's output. The result is
    the best prefix of all that, and it replays with opt-19."""
    policy = TwoWays(lambda ctx: finish(ctx, FINISH))
    seen = policy.seen
    path = program_bitcode[program]
    result = search_benchmark(policy, str(path), Budget(compilations=100))
    assert result.error is None and seen["options"] == ()
    other_oz = seen["other"]
    assert other_oz == _oz_count(path, NO_INLINING_OPTIONS)
    assert (seen["best"] == NO_INLINING_OPTIONS) == wins == (other_oz < result.Oz)
    options = NO_INLINING_OPTIONS if wins else ()
    head = [*MINSIZE_PREPARE, OZ_PIPELINE] if wins else [OZ_PIPELINE]
    # -Oz, the prepared program, -Oz on it, then FINISH from the best: where that is the fork's, on a
    # new fork (prepared again, -Oz replayed); else from -Oz's output, which costs nothing to return to
    replay = len(MINSIZE_PREPARE) + 1 if wins else 0
    assert result.compilations == 1 + len(MINSIZE_PREPARE) + 1 + replay + len(FINISH)
    counts = _prefix_counts(path, head + list(FINISH), options)[len(head) - 1 :]
    assert result.final == min(min(counts), result.Oz, other_oz)
    assert (result.final < min(result.Oz, other_oz)) == (program == "qsort")  # qsort: GVN, GVNHoist 140 -> 138
    if program == "qsort":  # FINISH found something: its best prefix is kept, with the fork's options
        k = counts.index(result.final)
        assert result.best_actions == head + list(FINISH[:k]) and list(result.compiler_options) == list(options)
    run_commandline(opt_tool, result.commandline, path, tmp_path / "out.bc")
    assert count_instructions(tmp_path / "out.bc") == result.final


def test_outline_again_goes_on_from_an_outlined_best(program_bitcode, opt_tool, tmp_path):
    """`SearchAlone._outline` on csmith_94, whose best is the outliner's -O0 pipeline (256
    instructions, -Oz 260): nothing where the best holds an outlining pipeline already; with `again`
    each of OUTLINE_PIPELINES once on it (the best replayed first); never twice on one best."""
    search = SearchAlone(Budget(compilations=100), outline=True)
    spent: list[int] = []

    class Outlined(SearchPolicy):
        name, fixed_start = "outlined", "o0"

        def search(self, ctx) -> None:
            ctx.reset("o0")
            ctx.step(O0_OUTLINE[0])
            tried: set = set()
            for again in (False, True, True):
                before = ctx.compilations
                search._outline(ctx, tried, again=again)
                spent.append(ctx.compilations - before)

    path = program_bitcode["csmith_94"]
    result = search_benchmark(Outlined(), str(path), Budget(compilations=100))
    outlined = engine_count(path, O0_OUTLINE[0])
    assert result.error is None and outlined < result.Oz
    assert spent == [0, 1 + len(OUTLINE_PIPELINES), 0]
    again = [engine_count(path, f"{O0_OUTLINE[0]},invalidate<all>,{p}") for p in OUTLINE_PIPELINES]
    assert result.final == min(outlined, *again)
    run_commandline(opt_tool, result.commandline, path, tmp_path / "out.bc")
    assert count_instructions(tmp_path / "out.bc") == result.final
