"""Tests of `compilerdream optimize` (compilerdream/optimize.py): real LLVM 19, seeded, small budgets."""

from __future__ import annotations

import contextlib
import io
import json
import shlex
import subprocess
import sys
import types
from pathlib import Path

import pytest
from agent_helpers import make_checkpoint, single_thread, train_checkpoint, write_file_dataset  # noqa: F401

from compilerdream import optimize
from compilerdream.compiler.benchmarks import Benchmark
from compilerdream.compiler.env import LlvmEnv
from compilerdream.compiler.search import Budget, PipelinePolicy, search_benchmark
from compilerdream.compiler.toolchain import find_tool
from compilerdream.compiler.validation import SemanticsResult
from compilerdream.search import load_guided_policy

pytestmark = pytest.mark.skipif(
    find_tool("clang", required=False) is None or find_tool("opt", required=False) is None,
    reason="clang-19 and opt-19 are required",
)

QSORT = Path(__file__).resolve().parents[1] / "examples" / "programs" / "qsort.c"


def instruction_count(path: Path) -> int:
    with LlvmEnv() as env:
        env.reset(benchmark=Benchmark.from_file(path))
        return int(env.observation["IrInstructionCount"])


def run_json(argv: list[str], capsys) -> tuple[int, dict | None, str]:
    code = optimize.main([*argv, "--json"])
    out, err = capsys.readouterr()
    return code, (json.loads(out) if out.strip() else None), err


@pytest.fixture(scope="module")
def qsort_run(tmp_path_factory):
    """One validated run on qsort.c with 200 compilations, in its own working directory."""
    cwd = tmp_path_factory.mktemp("optimize")
    mp = pytest.MonkeyPatch()
    mp.chdir(cwd)
    out = io.StringIO()
    try:
        with contextlib.redirect_stdout(out):
            code = optimize.main([str(QSORT), "--search-compilations", "200", "--validate", "--json"])
    finally:
        mp.undo()
    return code, cwd, json.loads(out.getvalue())


def test_smoke_qsort_beats_or_matches_oz_and_reproduces(qsort_run, tmp_path, capsys):
    code, cwd, summary = qsort_run
    assert code == 0
    written = cwd / "qsort.opt.bc"
    assert written.exists() and summary["output"] == "./qsort.opt.bc"
    with LlvmEnv() as env:
        env.reset(benchmark=Benchmark.from_file(QSORT))
        oz = int(env.observation["IrInstructionCountOz"])
    assert instruction_count(written) == summary["result"] <= oz == summary["Oz"]


def test_printed_commands_reproduce_the_count(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    code, summary, _ = run_json([str(QSORT), "--search-compilations", "200"], capsys)
    assert code == 0 and summary["output"] == "./qsort.opt.bc"
    assert summary["result"] <= summary["Oz"] and summary["O0"] > summary["Oz"]
    assert summary["text_size"] > 0 and summary["text_size_oz"] > 0
    clang_line, opt_line = summary["reproduce"]
    assert clang_line.split()[0].startswith("clang") and opt_line.split()[0].startswith("opt")
    repro = tmp_path / "repro"
    repro.mkdir()
    for line in summary["reproduce"]:  # exactly what the user is told to run
        subprocess.run(line, shell=True, cwd=repro, check=True, capture_output=True)
    assert (
        instruction_count(repro / "qsort.opt.bc") == summary["result"] == instruction_count(tmp_path / "qsort.opt.bc")
    )


def test_text_output_names_counts_pipeline_and_mode(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert optimize.main([str(QSORT), "--search-compilations", "50", "-o", "out/q.bc"]) == 0
    out = capsys.readouterr().out
    assert "no checkpoint given, so the default method: the " in out and " coreset (" in out
    assert "instruction count: -O0 " in out and ", -Oz " in out and ", result " in out
    # qsort's -Oz is smaller under minsize: opt's options come before -passes, in the reproduce line too
    pipeline = next(line for line in out.splitlines() if line.startswith("pipeline: "))
    assert pipeline.startswith("pipeline: opt -force-attribute=minsize ") and ".text size: result " in out
    options = pipeline[len("pipeline: opt ") : pipeline.index("-passes=") - 1].strip("'")
    assert "'-passes=" in pipeline or "-passes='" in pipeline
    assert any(f"{opt} {options} {q}" in out for opt in ("opt-19", "opt") for q in ("'-passes=", "-passes='"))
    assert (tmp_path / "out" / "q.bc").exists()


def test_validate_passes_on_qsort(qsort_run):
    code, _, summary = qsort_run
    assert code == 0 and summary["validation"]["status"] == "ok"
    assert "miscompile_report" not in summary


def test_never_worse_than_oz(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    # --no-outline: by default the one compilation is -Oz under minsize, already smaller on qsort
    code, summary, _ = run_json([str(QSORT), "--search-compilations", "1", "--no-outline"], capsys)
    assert code == 0
    assert summary["result"] == summary["Oz"] and summary["method"] == "-Oz" and summary["passes"] == "default<Oz>"
    assert any("-Oz's output" in note for note in summary["notes"])
    code, summary, _ = run_json([str(QSORT), "--search-compilations", "1"], capsys)
    assert code == 0 and summary["result"] < summary["Oz"] and summary["passes"] == "default<Oz>"
    assert summary["options"] == ["-force-attribute=minsize"]  # the first option set: the budget ends there


def test_miscompile_falls_back_to_validated_oz(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    verdicts = [
        SemanticsResult(ok=False, reason="stdout differs at byte 9", expected=(0, "a"), actual=(0, "b")),
        SemanticsResult(ok=True, reason="match"),
    ]
    monkeypatch.setattr(optimize, "validate_semantics", lambda *a, **k: verdicts.pop(0))
    # Seed the search with a known improvement so the first candidate is not -Oz itself.
    fake = PipelinePolicy("fake", "default<Oz>,function(gvn<>)")
    monkeypatch.setattr(
        optimize,
        "default_policy",
        lambda coreset, seconds, compilations, outline=True: (
            types.SimpleNamespace(name="fake", describe=lambda: "fake", search=fake.search, fixed_start=None),
            Budget(compilations=compilations),
        ),
    )
    code, summary, _ = run_json([str(QSORT), "--search-compilations", "5", "--validate"], capsys)
    assert code == 0 and summary["method"] == "-Oz" and summary["validation"]["status"] == "ok"
    assert any("MISCOMPILE" in note for note in summary["notes"])
    report = json.loads(Path(summary["miscompile_report"]).read_text())
    assert report[0]["kind"] == "miscompile" and report[0]["pass_sequence"] and report[0]["method"] == "fake"


def test_miscompile_of_oz_too_exits_nonzero_without_output(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(
        optimize, "validate_semantics", lambda *a, **k: SemanticsResult(ok=False, reason="stdout differs")
    )
    code, summary, err = run_json([str(QSORT), "--search-compilations", "1", "--validate"], capsys)
    assert code == 1 and summary["output"] is None and "no bitcode written" in err
    assert not (tmp_path / "qsort.opt.bc").exists()


@pytest.mark.parametrize(
    "name, content, argv_extra, message",
    [
        ("missing.c", None, [], "file not found"),
        ("broken.ll", "define i32 @f( { this is not IR", [], "cannot load"),
        ("broken.c", "int main(void) { return undeclared_name; }\n", [], "clang could not compile"),
        ("ok.c", "int main(void) { return 0; }\n", ["--search-compilations", "many"], "invalid positive integer value"),
        ("ok.c", "int main(void) { return 0; }\n", ["--search-seconds", "-3"], "invalid positive number value"),
        ("notes.txt", "hello", [], "unsupported file type"),
        ("random.bc", bytes(range(255, 0, -1)) * 4, [], "is neither LLVM bitcode"),
        ("ok.c", "int main(void) { return 0; }\n", ["-o", "."], "-o . is a folder"),
    ],
)
def test_bad_input_is_one_clear_line_and_exit_2(tmp_path, monkeypatch, capsys, name, content, argv_extra, message):
    monkeypatch.chdir(tmp_path)
    if isinstance(content, bytes):
        (tmp_path / name).write_bytes(content)
    elif content is not None:
        (tmp_path / name).write_text(content)
    code = optimize.main([name, *argv_extra])
    out, err = capsys.readouterr()
    assert code == 2
    assert err.count("\n") == 1 and name in err and message in err, err
    assert "Traceback" not in err + out


def test_refuses_to_overwrite_the_input(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    bc = tmp_path / "prog.bc"
    subprocess.run(
        [find_tool("clang"), "-emit-llvm", "-c", "-O1", "-Xclang", "-disable-llvm-passes", str(QSORT), "-o", str(bc)],
        check=True,
    )
    before = bc.read_bytes()
    assert optimize.main([str(bc), "-o", str(bc), "--search-compilations", "1"]) == 2
    assert "refusing to overwrite" in capsys.readouterr().err and bc.read_bytes() == before


def test_guided_unavailable_falls_back_to_search_alone(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setitem(sys.modules, "compilerdream.search", None)  # import fails
    code, summary, _ = run_json([str(QSORT), "--checkpoint", str(tmp_path), "--search-compilations", "20"], capsys)
    assert code == 0 and "guided search is unavailable" in summary["notes"][0] and "default method" in summary["notes"][0]


@pytest.mark.usefixtures("single_thread")
def test_guided_search_with_a_trained_debug_checkpoint(tmp_path, monkeypatch, capsys):
    """A debug agent trained by the driver in seconds guides optimize; the printed pipeline reproduces the result."""
    data_root = tmp_path / "data"
    write_file_dataset(data_root, "progs", {"crc32": Benchmark.from_file(QSORT.parent / "crc32.c").data})
    checkpoint = train_checkpoint(tmp_path / "agent", data_root)
    capsys.readouterr()  # the training run's own output
    monkeypatch.chdir(tmp_path)
    code, summary, _ = run_json(
        [str(QSORT), "--checkpoint", str(checkpoint), "--device", "cpu", "--search-compilations", "40"], capsys
    )
    assert code == 0 and f"guided search with the agent in {checkpoint}" in summary["notes"][0]
    assert summary["result"] <= summary["Oz"] and instruction_count(tmp_path / "qsort.opt.bc") == summary["result"]
    opt = subprocess.run(
        [find_tool("opt"), f"-passes={summary['passes']}", str(tmp_path / "qsort.opt.bc"), "-o", "/dev/null"],
        capture_output=True, text=True,
    )  # fmt: skip
    assert opt.returncode == 0, opt.stderr  # the printed pipeline parses in opt
    assert "no value prediction" in summary["notes"][0] and "oz_continue" in summary["notes"][0]


@pytest.mark.usefixtures("single_thread")
def test_value_prediction_then_guided_search_with_an_oz_aware_checkpoint(tmp_path, monkeypatch, capsys):
    """An agent with NoLimit + the -Oz-continue action ranks the shipped coreset: its top 2 sequences, then guided search."""
    from compilerdream.compiler.coreset import load_coreset
    from compilerdream.coreset import ValuePrediction
    from compilerdream.search import load_guided_policy

    data_root = tmp_path / "data"
    write_file_dataset(data_root, "progs", {"crc32": Benchmark.from_file(QSORT.parent / "crc32.c").data})
    checkpoint = train_checkpoint(tmp_path / "agent", data_root, extra=["--compilergym.oz_continue", "True"])
    capsys.readouterr()
    monkeypatch.chdir(tmp_path)
    shipped = load_coreset("default")
    # the top 2 sequences alone: exactly their passes are compiled, -Oz's output counted once
    guided = load_guided_policy(str(checkpoint), "cpu")
    vp = ValuePrediction(guided.agent, guided.settings, "default", 2)
    benchmark = optimize.load_input(str(QSORT))
    found = search_benchmark(vp, benchmark, Budget(compilations=10_000), seed=0)
    assert sorted(vp.last_ranking) == list(range(len(shipped)))
    top = [shipped.sequences[i] for i in vp.last_ranking[:2]]
    assert found.compilations == sum(len(s.passes) for s in top) + any(s.start == "oz" for s in top)
    budget = found.compilations + 10
    code, summary, _ = run_json(
        [str(QSORT), "--checkpoint", str(checkpoint), "--device", "cpu", "--search-compilations", str(budget),
         "--top-k", "2", "--no-outline"], capsys,
    )  # fmt: skip  (--no-outline: no option sets or outliner first, so the top 2 compile as `found` did)
    assert code == 0 and summary["notes"][0].startswith("the agent's top 2 of the ")
    assert summary["result"] <= min(summary["Oz"], found.final)  # guided search only adds to what the top 2 found
    assert instruction_count(tmp_path / "qsort.opt.bc") == summary["result"]


@pytest.mark.usefixtures("single_thread")
def test_guided_result_is_replayed_in_the_agents_action_space(tmp_path):
    """A real agent acting in Autophase's 42-pass space: optimize measures exactly what guided search found.

    Its action indices mean other passes in optimize's 124-flag space, so they must cross as flags.
    """
    checkpoint = make_checkpoint(tmp_path / "agent")  # the reference default act_space: Autophase
    args = optimize.parse_args(
        [str(QSORT), "--checkpoint", str(checkpoint), "--device", "cpu", "--search-compilations", "6", "--no-outline"]
    )  # guided search alone, as `found` below runs it
    benchmark, budget = optimize.load_input(str(QSORT)), Budget(compilations=6)
    passes, method, _, options = optimize._search(args, benchmark)
    found = search_benchmark(load_guided_policy(str(checkpoint), "cpu"), benchmark, budget, seed=args.seed)
    assert method == "guided" and found.action_space == "Autophase" and passes == found.best_passes
    with LlvmEnv(action_space=args.action_space) as env:
        assert options == found.compiler_options == []  # guided search compiles without opt options
        assert optimize.measure(env, benchmark, passes, method).instructions == found.final < found.O0


def test_missing_checkpoint_directory_is_exit_2(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert optimize.main([str(QSORT), "--checkpoint", str(tmp_path / "nope"), "--search-compilations", "5"]) == 2
    assert "checkpoint directory not found" in capsys.readouterr().err


def test_guided_search_with_a_real_untrained_checkpoint(tmp_path, monkeypatch, capsys):
    torch = pytest.importorskip("torch")
    from compilerdream.agent import Agent
    from compilerdream.config import load_configs
    from compilerdream.driver import save_checkpoint
    from compilerdream.search import agent_spaces
    from compilerdream.task import TaskSettings

    config = load_configs(["compilergym", "compilergym_dv3", "debug"])
    torch.manual_seed(0)
    obs_space, num_actions = agent_spaces(TaskSettings.from_config(config))
    checkpoint = tmp_path / "agent"
    checkpoint.mkdir()
    save_checkpoint(checkpoint / "variables.pt", Agent(obs_space, num_actions, config, "cpu"), {})
    config.save(checkpoint / "config.yaml")
    monkeypatch.chdir(tmp_path)
    argv = [str(QSORT), "--checkpoint", str(checkpoint), "--device", "cpu", "--search-compilations", "30", "--validate"]
    code, summary, _ = run_json(argv, capsys)
    assert code == 0 and "guided search with the agent" in summary["notes"][0]
    assert summary["result"] <= summary["Oz"] and summary["validation"]["status"] == "ok"


@pytest.mark.parametrize("name", ["csmith_258", "csmith_94", "csmith_333"])
def test_default_is_never_worse_than_oz_on_csmith_programs(name, program_bitcode, tmp_path, monkeypatch, capsys):
    """No checkpoint, no budget flag: -Oz, the shipped coreset, then a little search; never more than -Oz."""
    monkeypatch.chdir(tmp_path)
    code, summary, _ = run_json([str(program_bitcode[name]), "-o", "out.bc"], capsys)
    assert code == 0
    assert summary["result"] <= summary["Oz"]
    assert "no checkpoint given, so the default method: the " in summary["notes"][0]
    assert summary["method"] in ("optimize", "-Oz")
    with LlvmEnv() as env:  # the reported pipeline's passes (under its opt options) rebuild the written module's count
        env.compiler_options = tuple(summary["options"])
        env.reset(benchmark=str(program_bitcode[name]))
        if summary["actions"]:
            env.multistep(summary["actions"])
        assert int(env.observation["IrInstructionCount"]) == summary["result"]


def test_default_policy_runs_the_whole_coreset_then_searches():
    from compilerdream.compiler.coreset import load_coreset

    policy, budget = optimize.default_policy()
    shipped = load_coreset("default")
    assert policy.name == "optimize" and budget.compilations is None
    found = search_benchmark(policy, str(QSORT), budget)
    oz_runs = int(any(s.start == "oz" for s in shipped.sequences))
    assert found.error is None and found.final <= found.Oz
    assert found.compilations >= shipped.total_passes + oz_runs  # the coreset always finishes
    # a compilation budget caps everything, the coreset included
    capped, budget = optimize.default_policy(search_compilations=3)
    assert search_benchmark(capped, str(QSORT), budget).compilations <= 3


def test_coreset_option_takes_names_files_and_none(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    code, summary, _ = run_json([str(QSORT), "--coreset", "nvp50", "--search-compilations", "80"], capsys)
    assert code == 0 and "the nvp50 coreset (50 sequences)" in summary["notes"][0]
    code, summary, _ = run_json([str(QSORT), "--coreset", "none", "--search-compilations", "20"], capsys)
    assert code == 0 and "coreset" not in summary["notes"][0]
    assert optimize.main([str(QSORT), "--coreset", str(tmp_path / "missing.json")]) == 2
    err = capsys.readouterr().err.strip()
    assert "missing.json" in err and len(err.splitlines()) == 1


def test_outline_is_tried_on_the_best_and_replays_with_opt(program_bitcode, opt_tool, tmp_path, monkeypatch, capsys):
    """The default tries LLVM's IR outliner on the best result; --no-outline keeps to CompilerGym's passes and -Oz.

    csmith_333 repeats code the outliner folds: with it the result is smaller, and opt-19 run
    on the printed pipeline (iroutliner included) rebuilds exactly the reported count.
    """
    monkeypatch.chdir(tmp_path)
    program = str(program_bitcode["csmith_333"])
    code, with_outline, _ = run_json([program, "-o", "outlined.bc", "--search-compilations", "900"], capsys)
    assert code == 0 and with_outline["method"] == "optimize"
    code, without, _ = run_json([program, "-o", "plain.bc", "--search-compilations", "900", "--no-outline"], capsys)
    assert code == 0 and without["method"] == "optimize-no-outline"
    assert "iroutliner" in with_outline["passes"] and "iroutliner" not in without["passes"]
    # -Oz under opt's options is smaller on csmith_333 (465; minsize 464, with -inline-threshold=-20 433):
    # the default compiles under the smaller set, --no-outline under none
    assert with_outline["options"] == ["-force-attribute=minsize", "-inline-threshold=-20"] and without["options"] == []
    assert with_outline["result"] < without["result"] <= without["Oz"]
    replayed = tmp_path / "replayed.bc"
    tokens = shlex.split(with_outline["commandline"])  # opt's own options included
    names = {"opt": opt_tool, "input.bc": program, "output.bc": str(replayed)}
    subprocess.run([names.get(t, t) for t in tokens], check=True)
    assert instruction_count(replayed) == with_outline["result"] == instruction_count(tmp_path / "outlined.bc")


def test_oz_outline_method_beats_oz_where_code_repeats(program_bitcode):
    from compilerdream.compiler.default_optimizer import OUTLINE_PIPELINES
    from compilerdream.compiler.search import make_policy

    found = search_benchmark(make_policy("oz-outline"), str(program_bitcode["csmith_333"]), Budget(compilations=10))
    assert found.error is None and found.final < found.Oz
    assert found.best_passes[0] == "default<Oz>" and found.best_passes[1] in OUTLINE_PIPELINES
    assert found.compilations == 1 + len(OUTLINE_PIPELINES)  # -Oz once, each pipeline once on a fork
    smooth = search_benchmark(make_policy("oz-outline"), str(QSORT), Budget(compilations=10))
    assert smooth.final == smooth.Oz and smooth.best_passes == ["default<Oz>"]  # nothing to outline: -Oz stays


def test_the_outliner_sees_each_distinct_module_of_the_best_coreset_results_once(program_bitcode, monkeypatch):
    """optimize outlines the best OUTLINE_TOP distinct coreset results, each module (by its IR) once;
    each module the outliner sees has the count its recorded trajectory gives (kept forks included)."""
    import compilerdream.compiler as cc
    from compilerdream.compiler import default_optimizer as do
    from compilerdream.compiler.coreset import load_coreset

    seen, later = [], []
    real_fork_each, real_search = do.Outline.fork_each, do.Outline.search

    def recording(self, ctx):
        (later if getattr(self, "_in_search", False) else seen).append(
            (str(ctx.env.observation["IrSha1"]), list(ctx.trajectory), int(ctx.env.observation["IrInstructionCount"])))
        return real_fork_each(self, ctx)

    def searching(self, ctx):  # the outliner on the best after the search (not the coreset's results)
        self._in_search = True
        try:
            return real_search(self, ctx)
        finally:
            self._in_search = False

    monkeypatch.setattr(do.Outline, "fork_each", recording)
    monkeypatch.setattr(do.Outline, "search", searching)
    policy = do.SearchAlone(Budget(seconds=0.1), coreset=load_coreset("default"), outline=True)
    program = str(program_bitcode["csmith_333"])
    result = search_benchmark(policy, program, Budget(compilations=100_000))
    assert result.error is None and result.final < result.Oz
    hashes = [digest for digest, _, _ in seen]
    assert 2 <= len(seen) <= do.OUTLINE_TOP and len(set(hashes)) == len(hashes)
    assert len(later) <= 2
    with cc.LlvmEnv(action_space="NoLimit") as env:
        for _, trajectory, count in seen:
            env.reset(benchmark=program)
            env.multistep(trajectory)
            # the count, not the IR text: from -Oz the search forks the -Oz module, and a clone's
            # passes can name or order things differently from a replay from scratch
            assert int(env.observation["IrInstructionCount"]) == count
