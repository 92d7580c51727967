"""Tests of benchmarks/quality.py: one real --quick-style run on small programs, its tables and its JSON."""

from __future__ import annotations

import csv
import json
import math
import sys
from pathlib import Path

import pytest
from agent_helpers import single_thread, train_checkpoint, write_file_dataset  # noqa: F401 (fixture)

from compilerdream.compiler.benchmarks import Benchmark
from compilerdream.compiler.toolchain import find_tool

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "benchmarks"))  # importable by name, also in the pool's spawned processes
import quality  # noqa: E402

needs_llvm = pytest.mark.skipif(find_tool("clang", required=False) is None, reason="clang-19 is required")

PROGRAMS = REPO / "examples" / "programs"
THREE = [str(PROGRAMS / f"{name}.c") for name in ("qsort", "crc32", "statemachine")]
COLUMNS = (
    "method", "programs", "failed", "mean % below -Oz", "geomean Oz/final", "better than -Oz", "worse than -Oz",
    "median s/program", "p95 s/program", "mean compilations",
)  # fmt: skip
TINY_CORESET = {
    "format": "compilerdream-coreset/1",
    "name": "tiny",
    "sequences": [
        {"start": "o0", "passes": ["-mem2reg", "-instcombine", "-simplifycfg"]},
        {"start": "oz", "passes": ["-instcombine", "-simplifycfg"]},
    ],
}


def table_rows(text: str) -> dict[str, list[str]]:
    """The main table of summary.md / stdout: method -> its cells."""
    lines = [line for line in text.splitlines() if line.startswith("| ")]
    head = next(i for i, line in enumerate(lines) if line.startswith("| method |"))
    rows = {}
    for line in lines[head + 1 :]:
        cells = [c.strip() for c in line.strip("|").split("|")]
        if len(cells) != len(COLUMNS):
            break
        rows[cells[0]] = cells
    return rows


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory):
    """One real run of every available row (no agent) on three programs, with tiny budgets."""
    root = tmp_path_factory.mktemp("quality")
    coreset = root / "tiny.json"
    coreset.write_text(json.dumps(TINY_CORESET))
    out = root / "out"
    argv = [*THREE, "--quick", "--search-compilations", "20", "--coreset", str(coreset), "--out", str(out),
            "--no-progress", "--seed", "3"]  # fmt: skip
    code = quality.main(argv)
    return code, out


@needs_llvm
def test_quick_run_writes_every_output(quick_run, capsys):
    code, out = quick_run
    assert code == 0
    for name in ("results.json", "results.csv", "summary.md", "quality.png"):
        assert (out / name).is_file() and (out / name).stat().st_size > 0, name
    assert not (out / "results.partial.jsonl").exists()
    data = json.loads((out / "results.json").read_text())
    summary = (out / "summary.md").read_text()
    assert data["llvm"].startswith(("19.", "20.", "21.", "22.")) and data["llvm"] in summary
    assert "--quick" in data["command"] and data["command"] in summary and data["programs"] == 3
    with (out / "results.csv").open() as f:
        assert len(list(csv.DictReader(f))) == len(data["results"])


@needs_llvm
def test_quick_run_table_has_the_rows_and_columns(quick_run):
    _, out = quick_run
    data = json.loads((out / "results.json").read_text())
    summary = (out / "summary.md").read_text()
    assert quality.MAIN_HEADER in summary
    rows = table_rows(summary)
    assert list(rows) == data["methods"]
    # -Oz, -O3 and random always exist; the others run when their components do, else a note says why
    assert {"-Oz", "-O3", "random"} <= set(rows)
    assert "oz-outline" in rows  # needs no data file
    for key in ("coreset-nvp50", "coreset-nvp50-both", "coreset", "optimize", "optimize-no-outline"):
        assert key in rows or any(note.startswith(f"{key} not run") for note in data["notes"]), key
    assert not any(m.startswith("agent") or m == "guided" for m in rows)  # no --checkpoint
    assert any("needs --checkpoint" in note for note in data["notes"])
    for cells in rows.values():
        assert cells[1] == "3" and cells[2] == "0"
    oz = rows["-Oz"]
    assert oz[3] == "+0.00" and oz[4] == "1.0000" and oz[5] == "0%" and oz[6] == "0%" and oz[9] == "1"
    assert data["summary"]["-Oz"]["mean_percent_below_oz"] == 0.0 and data["summary"]["-Oz"]["geomean_reduction"] == 1.0
    assert "## Per package" in summary


@needs_llvm
def test_quick_run_per_program_values_are_consistent(quick_run):
    _, out = quick_run
    data = json.loads((out / "results.json").read_text())
    results = data["results"]
    assert len(results) == 3 * len(data["methods"])
    by_program: dict[str, dict[str, dict]] = {}
    for r in results:
        assert r["error"] is None, r
        by_program.setdefault(r["benchmark"], {})[r["method"]] = r
        assert r["reduction"] == pytest.approx(r["Oz"] / r["final"])
        assert r["percent_below_oz"] == pytest.approx(100 * (r["Oz"] - r["final"]) / r["Oz"])
        assert r["package"] == "programs" and r["compilations"] >= 1 and r["walltime"] >= 0
    assert len(by_program) == 3
    for rows in by_program.values():
        assert len({(r["O0"], r["Oz"]) for r in rows.values()}) == 1  # one program, one pair of baselines
        assert rows["-Oz"]["final"] == rows["-Oz"]["Oz"] and rows["-Oz"]["compilations"] == 1
        assert rows["-O3"]["compilations"] == 1
        if "coreset" in rows:  # random gets exactly the coreset row's compilations
            assert rows["random"]["compilations"] == rows["coreset"]["compilations"]
            assert rows["coreset"]["compilations"] == 3 + 2 + 1  # its passes, -Oz once for the oz sequence
        else:
            assert rows["random"]["compilations"] == 20
        if "coreset-nvp50" in rows:
            assert rows["coreset-nvp50-both"]["final"] <= rows["coreset-nvp50"]["final"]
        if "optimize" in rows:  # floored at -Oz; with --coreset FILE, the optimize rows run that coreset
            assert rows["optimize"]["final"] <= rows["optimize"]["Oz"]
            assert any("optimize rows run the coreset" in note and "tiny.json" in note for note in data["notes"])
            assert rows["optimize-no-outline"]["final"] <= rows["optimize"]["Oz"]
            assert "iroutliner" not in " ".join(rows["optimize-no-outline"]["best_passes"])
        outlined = rows["oz-outline"]  # -Oz, then each outlining pipeline once on a fork
        assert outlined["final"] <= outlined["Oz"] and outlined["compilations"] == 3
    summary = data["summary"]
    for method, s in summary.items():
        mine = [r for r in results if r["method"] == method]
        assert s["mean_percent_below_oz"] == pytest.approx(sum(r["percent_below_oz"] for r in mine) / 3)
        expected = math.exp(sum(math.log(r["reduction"]) for r in mine) / 3)
        assert s["geomean_reduction"] == pytest.approx(expected)
        assert s["better_share"] == pytest.approx(sum(r["final"] < r["Oz"] for r in mine) / 3)


@needs_llvm
def test_results_do_not_depend_on_jobs(tmp_path):
    argv = [*THREE[:2], "--methods", "oz,random", "--search-compilations", "30", "--no-progress", "--seed", "5"]
    assert quality.main([*argv, "--out", str(tmp_path / "one"), "--jobs", "1"]) == 0
    assert quality.main([*argv, "--out", str(tmp_path / "two"), "--jobs", "2"]) == 0

    def finals(name):
        rows = json.loads((tmp_path / name / "results.json").read_text())["results"]
        return [(r["benchmark"], r["method"], r["final"], r["compilations"], r["best_passes"]) for r in rows]

    assert finals("one") == finals("two")


@needs_llvm
@pytest.mark.usefixtures("single_thread")
def test_agent_rows_with_a_debug_checkpoint(tmp_path):
    """A debug agent trained in seconds: its greedy rollout, guided search and value-prediction rows run."""
    data_root = tmp_path / "data"
    write_file_dataset(data_root, "progs", {"qsort": Benchmark.from_file(THREE[0]).data})
    checkpoint = train_checkpoint(tmp_path / "agent", data_root, extra=["--compilergym.oz_continue", "True"])
    out = tmp_path / "out"
    argv = [THREE[1], "--methods", "oz,agent-rollout,guided,agent-vp", "--checkpoint", str(checkpoint),
            "--device", "cpu", "--search-compilations", "8", "--top-k", "3", "--out", str(out), "--no-progress"]  # fmt: skip
    assert quality.main(argv) == 0
    data = json.loads((out / "results.json").read_text())
    assert data["methods"] == ["-Oz", "agent-1-rollout", "guided", "agent-vp-top3"]
    rows = {r["method"]: r for r in data["results"]}
    assert all(r["error"] is None for r in rows.values())
    assert 1 <= rows["agent-1-rollout"]["compilations"] <= 45  # one episode of the debug agent at most
    assert 1 <= rows["guided"]["compilations"] <= 8
    # value prediction compiles 3 whole sequences of the shipped coreset (one compilation per pass) and keeps -Oz
    # as its fallback
    from compilerdream.compiler.coreset import load_coreset

    longest3 = sum(sorted((len(s.passes) for s in load_coreset("default").sequences), reverse=True)[:3])
    assert 3 <= rows["agent-vp-top3"]["compilations"] <= longest3 + 2
    assert rows["agent-vp-top3"]["final"] <= rows["-Oz"]["final"]
    for r in rows.values():
        assert r["reduction"] == pytest.approx(r["Oz"] / r["final"])


@needs_llvm
def test_a_program_that_does_not_load_is_counted_failed(tmp_path):
    """A benchmark URI of a dataset that is not installed: logged, counted in `failed`, the run goes on."""
    missing = "benchmark://no-such-dataset-v9/prog"
    out = tmp_path / "out"
    argv = [
        missing,
        THREE[1],
        "--methods",
        "oz,random",
        "--search-compilations",
        "5",
        "--out",
        str(out),
        "--no-progress",
    ]
    assert quality.main(argv) == 0
    data = json.loads((out / "results.json").read_text())
    bad = [r for r in data["results"] if r["benchmark"] == missing]
    assert len(bad) == 2 and all(r["error"].startswith("load: ") for r in bad)
    assert data["summary"]["-Oz"]["failed"] == 1 and data["summary"]["-Oz"]["programs"] == 2
    assert data["summary"]["-Oz"]["geomean_reduction"] == 1.0  # the figures are over the programs that ran
    assert "## Failures" in (out / "summary.md").read_text()


@pytest.mark.parametrize(
    "argv, message",
    [
        (["/no/such/file.c"], "benchmark not found: /no/such/file.c"),
        (["--methods", "oz,ppo"], "unknown method(s) ppo"),
        (["--limit", "0"], "--limit"),
        (["--dataset", "no-such-dataset-v9"], "no-such-dataset-v9"),
        ([THREE[0], "--dataset", "default"], "not both"),
        ([THREE[0], "--methods", "coreset", "--coreset", "/no/such/coreset.json"], "/no/such/coreset.json"),
        ([THREE[0], "--methods", "guided", "--checkpoint", "/no/such/agent"], "/no/such/agent"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(tmp_path, capsys, argv, message):
    out = tmp_path / "r"
    assert quality.main([*argv, "--out", str(out), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert message in err and err.strip().count("\n") == 0 and "Traceback" not in err
    assert err.startswith("quality.py: error: ")
    assert not out.exists()  # before any work


def test_spread_subset_represents_every_package():
    uris = [f"benchmark://d/{p}/f{i}.bc" for p, n in (("a", 10), ("b", 2), ("c", 30), ("d", 1)) for i in range(n)]
    chosen = quality.spread_subset(uris, 9)
    assert len(chosen) == 9 and chosen == sorted(chosen, key=uris.index)  # split order kept
    per = {p: sum(quality.package_of(u) == p for u in chosen) for p in "abcd"}
    assert per == {"a": 3, "b": 2, "c": 3, "d": 1}  # b and d give their spare slots to a and c
    assert [u for u in chosen if "/a/" in u] == [
        "benchmark://d/a/f0.bc",
        "benchmark://d/a/f3.bc",
        "benchmark://d/a/f6.bc",
    ]
    assert quality.spread_subset(uris, 9) == chosen  # deterministic
    assert quality.spread_subset(uris, 100) == uris
    two = quality.spread_subset(uris, 2)
    assert [quality.package_of(u) for u in two] == ["a", "c"]  # fewer slots than packages: evenly spaced packages


def test_package_and_seed_helpers():
    assert quality.package_of("benchmark://default/jq/src/main.bc") == "jq"
    assert quality.package_of("benchmark://default/top.bc") == "default"
    assert quality.package_of("file:///x/y/prog.c") == "y"
    assert quality.program_seed(0, "a") == quality.program_seed(0, "a") != quality.program_seed(1, "a")
    assert quality.percent_below_oz(100, 90) == 10.0 and quality.percent_below_oz(100, 110) == -10.0


def test_optimize_rows_run_the_coreset_given(tmp_path):
    """--coreset FILE: the `coreset` row and both `optimize` rows use it; the default is the shipped one."""
    coreset = tmp_path / "tiny.json"
    coreset.write_text(json.dumps(TINY_CORESET))
    keys = ("coreset", "optimize", "optimize-no-outline")
    given = quality.build_methods(quality.Settings(methods=keys, seed=0, coreset=str(coreset)))
    assert [given.policies[k].coreset.name for k in keys] == ["tiny"] * 3
    shipped = quality.build_methods(quality.Settings(methods=keys, seed=0))
    assert {shipped.policies[k].coreset.name for k in keys} == {"llvm19-default"}
