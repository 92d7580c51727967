"""Tests of `compilerdream evaluate` (compilerdream/evaluate.py) and the metrics its report states."""

from __future__ import annotations

import json
import math
import sys
import types
from pathlib import Path

import pytest
from agent_helpers import single_thread, train_checkpoint, write_file_dataset  # noqa: F401 (fixture)

import compilerdream.compiler as cc
from compilerdream import evaluate, report
from compilerdream.compiler.benchmarks import Benchmark
from compilerdream.compiler.metrics import geomean, leaderboard_reward, reduction, summarize
from compilerdream.compiler.spaces import action_space
from compilerdream.compiler.toolchain import find_tool
from compilerdream.compiler.validation import SemanticsResult

needs_llvm = pytest.mark.skipif(find_tool("clang", required=False) is None, reason="clang-19 is required")

PROGRAMS = Path(__file__).resolve().parents[1] / "examples" / "programs"
TWO_PROGRAMS = [str(PROGRAMS / "qsort.c"), str(PROGRAMS / "crc32.c")]
BUDGET = 150


# ------------------------------------------------------------------ metrics (hand-computed)
def test_geomean_hand_computed():
    assert geomean([1, 4]) == pytest.approx(2.0)
    assert geomean([2, 8, 4]) == pytest.approx(4.0)
    assert geomean([]) == 0.0 and geomean([1.0, 0.0]) == 0.0  # a failed benchmark collapses it, as in the reference


def test_leaderboard_and_reduction_hand_computed():
    # REFERENCE "Metric definitions": O0=100, Oz=50, c=45 -> leaderboard 1.100, reduction 1.111.
    assert leaderboard_reward(100, 50, 45) == pytest.approx(1.1)
    assert reduction(50, 45) == pytest.approx(50 / 45) and round(reduction(50, 45), 3) == 1.111
    assert leaderboard_reward(100, 50, 50) == reduction(50, 50) == 1.0
    assert leaderboard_reward(100, 50, 150) == 0.0  # clipped at 0
    assert leaderboard_reward(10, 10, 9) == pytest.approx(1.0)  # O0 - Oz floored at 1


def test_geomean_of_dataset_geomeans():
    rows = [{"dataset": "a", "v": 1.0}, {"dataset": "a", "v": 4.0}, {"dataset": "b", "v": 8.0}]
    s = summarize(rows, "v")
    assert s["per_dataset"] == {"a": pytest.approx(2.0), "b": pytest.approx(8.0)}
    assert s["geomean_of_datasets"] == pytest.approx(4.0)
    assert s["raw_geomean"] == pytest.approx(math.exp((math.log(4) + math.log(8)) / 3))


# ------------------------------------------------------------------ smoke
@pytest.fixture(scope="module")
def report_dir(tmp_path_factory):
    """One real evaluation: -Oz, random, greedy (and guided, which falls back: no checkpoint) on two programs."""
    root = tmp_path_factory.mktemp("evaluate")
    logdir = root / "train"
    logdir.mkdir()
    (logdir / "metrics.jsonl").write_text(
        "\n".join(json.dumps({"step": s, "train_return": s / 10, "model_loss": 1 / (1 + s)}) for s in range(5)) + "\n"
    )
    out = root / "report"
    argv = ["--benchmarks", *TWO_PROGRAMS, "--methods", "oz,random,greedy,guided", "--search-compilations", str(BUDGET)]
    code = evaluate.main([*argv, "--out", str(out), "--validate", "--logdir", str(logdir)])
    return code, out


@needs_llvm
def test_report_directory_has_every_file(report_dir):
    code, out = report_dir
    assert code == 0
    for name in ("results.json", "results.csv", "summary.md", "miscompiles.json"):
        assert (out / name).is_file(), name
    if report.matplotlib_available():
        for name in ("reduction.png", "methods.png", "training.png"):
            assert (out / name).read_bytes()[:4] == b"\x89PNG", name
    assert json.loads((out / "miscompiles.json").read_text()) == []


@needs_llvm
def test_budgets_are_honoured(report_dir):
    _, out = report_dir
    rows = json.loads((out / "results.json").read_text())
    assert len(rows) == 6 and {r["method"] for r in rows} == {"-Oz", "random", "greedy"}
    for row in rows:
        assert row["error"] is None
        assert 1 <= row["compilations"] <= (1 if row["method"] == "-Oz" else BUDGET), row
        assert row["validation"] == "ok"
    assert all(r["compilations"] == BUDGET for r in rows if r["method"] == "random")  # random spends it all


@needs_llvm
def test_summary_states_both_metrics_and_the_fallback(report_dir):
    _, out = report_dir
    text = (out / "summary.md").read_text()
    assert "CompilerDream reduction" in text and "CompilerGym leaderboard" in text
    assert "guided search not run: no checkpoint given" in text
    assert "| -Oz | **all (geomean of datasets)** | 2 | 0 | **1.0000** | **1.0000**" in text
    assert "![reduction](reduction.png)" in text or not report.matplotlib_available()


@needs_llvm
def test_miscompiles_are_reported_and_marked(tmp_path, monkeypatch):
    monkeypatch.setattr(
        evaluate,
        "validate_semantics",
        lambda *a, **k: SemanticsResult(ok=False, reason="stdout differs", expected=(0, "1"), actual=(0, "2")),
    )
    argv = [
        "--benchmarks",
        TWO_PROGRAMS[1],
        "--methods",
        "oz",
        "--search-compilations",
        "5",
        "--out",
        str(tmp_path),
        "--validate",
    ]
    assert evaluate.main(argv) == 0
    bad = json.loads((tmp_path / "miscompiles.json").read_text())
    assert len(bad) == 1 and bad[0]["method"] == "-Oz" and bad[0]["pass_sequence"] == ["default<Oz>"]
    assert bad[0]["commandline"].startswith("opt -passes=")
    assert "**MISCOMPILE**" in (tmp_path / "summary.md").read_text()
    assert json.loads((tmp_path / "results.json").read_text())[0]["validation"] == "miscompile"


@needs_llvm
@pytest.mark.usefixtures("single_thread")
def test_guided_method_runs_a_trained_checkpoint(tmp_path, capsys):
    """A debug agent trained in seconds drives guided search; its reported best sequence replays to its `final`.

    The agent acts in its own action space (the reference default, Autophase's 42 passes), so the
    row names that space, and its passes replay to `final` in an env of the 124-flag space.
    """
    data_root = tmp_path / "data"
    write_file_dataset(data_root, "progs", {"qsort": Benchmark.from_file(TWO_PROGRAMS[0]).data})
    checkpoint = train_checkpoint(tmp_path / "agent", data_root, act_space="Autophase")
    capsys.readouterr()
    argv = ["--benchmarks", TWO_PROGRAMS[1], "--methods", "guided,oz", "--checkpoint", str(checkpoint), "--device", "cpu"]
    assert evaluate.main([*argv, "--search-compilations", "4", "--out", str(tmp_path / "r")]) == 0
    rows = json.loads((tmp_path / "r" / "results.json").read_text())
    assert [r["method"] for r in rows] == ["guided", "-Oz"]
    guided = rows[0]
    assert guided["error"] is None and 1 <= guided["compilations"] <= 4
    assert guided["action_space"] == "Autophase" and guided["best_actions"]
    space = action_space("Autophase")
    assert guided["best_passes"] == [space.flags[a] for a in guided["best_actions"]]
    with cc.make("llvm-v0", benchmark=guided["benchmark"], isolation="none") as env:
        env.reset()
        assert env.observation["IrInstructionCountO0"] == guided["O0"]
        env.multistep(guided["best_passes"])
        assert env.observation["IrInstructionCount"] == guided["final"]
    assert guided["reduction"] == pytest.approx(guided["Oz"] / guided["final"])


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--benchmarks", "/no/such/file.c", "--search-compilations", "5"], "benchmark not found: /no/such/file.c"),
        (
            ["--benchmarks", TWO_PROGRAMS[0], "--methods", "oz,ppo", "--search-compilations", "5"],
            "unknown method(s) ppo",
        ),
        (["--benchmarks", TWO_PROGRAMS[0], "--search-compilations", "x"], "invalid positive integer value"),
        (["--benchmarks", TWO_PROGRAMS[0], "--search-seconds", "1", "--search-compilations", "5"], "not allowed with"),
        (["--search-compilations", "5"], "one of the arguments --benchmarks --dataset is required"),
        (["--dataset", "no-such-dataset-v9", "--search-compilations", "5"], "no-such-dataset-v9"),
        (["--benchmarks", TWO_PROGRAMS[0], "--start", "O3"], "--start must be one of o0, oz, both, got 'O3'"),
    ],
)
def test_bad_arguments_exit_2_with_one_line(tmp_path, capsys, argv, message):
    assert evaluate.main([*argv, "--out", str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err
    assert message in err and err.strip().count("\n") == 0 and "Traceback" not in err


@needs_llvm
def test_start_both_runs_searches_from_both_and_baselines_from_o0(tmp_path):
    argv = ["--benchmarks", TWO_PROGRAMS[1], "--methods", "oz,random", "--search-compilations", "20", "--start", "both"]
    assert evaluate.main([*argv, "--out", str(tmp_path)]) == 0
    rows = {r["method"]: r for r in json.loads((tmp_path / "results.json").read_text())}
    assert rows["-Oz"]["start"] == "o0" and rows["-Oz"]["compilations"] == 1
    random = rows["random"]
    assert random["start"] in ("o0", "oz") and random["compilations"] <= 20 and random["final"] <= random["Oz"]
    assert (random["best_actions"][0] == "default<Oz>") == (random["start"] == "oz")
    assert "half the budget each (both)" in (tmp_path / "summary.md").read_text()


def test_dataset_without_the_datasets_api_is_a_clear_error(tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(
        sys.modules, "compilerdream.compiler.datasets", types.ModuleType("compilerdream.compiler.datasets")
    )
    assert evaluate.main(["--dataset", "cbench-v1", "--search-compilations", "5", "--out", str(tmp_path)]) == 2
    assert "dataset_for_task" in capsys.readouterr().err


def test_an_out_path_that_is_a_file_is_refused(tmp_path, capsys):
    (tmp_path / "taken").write_text("mine")
    argv = ["--benchmarks", TWO_PROGRAMS[0], "--methods", "oz", "--search-compilations", "3"]
    assert evaluate.main([*argv, "--out", str(tmp_path / "taken")]) == 2
    assert "is a file, not a folder" in capsys.readouterr().err and (tmp_path / "taken").read_text() == "mine"


@needs_llvm
def test_coreset_and_optimize_methods_are_validated_beside_oz(tmp_path):
    """evaluate --methods coreset,optimize: optimize's own default budget when none is given; results validated."""
    argv = ["--benchmarks", TWO_PROGRAMS[0], "--methods", "oz,coreset,optimize", "--validate"]
    assert evaluate.main([*argv, "--out", str(tmp_path)]) == 0
    rows = {r["method"]: r for r in json.loads((tmp_path / "results.json").read_text())}
    assert set(rows) == {"-Oz", "coreset", "optimize"}
    assert all(r["error"] is None and r["validation"] == "ok" for r in rows.values())
    assert rows["optimize"]["final"] <= rows["coreset"]["final"]
    from compilerdream.compiler.default_optimizer import default_budget

    assert rows["optimize"]["budget"] == default_budget().describe()  # optimize's own, not evaluate's 60 s
