"""Tests of compilerdream/coreset.py: value prediction on the coreset with a tiny agent and real LLVM (REFERENCE §4.3)."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from agent_helpers import (
    make_checkpoint,
    single_thread,  # noqa: F401  (fixture, used through pytestmark)
    train_checkpoint,
    write_file_dataset,
)

import compilerdream.coreset as coreset
from compilerdream.compiler.benchmarks import Benchmark
from compilerdream.compiler.env import LlvmEnv
from compilerdream.coreset import (
    TOP_K,
    BenchmarkReport,
    Candidate,
    Pick,
    SequenceRun,
    average_ranks,
    build_candidates,
    check_coreset_agent,
    k_table,
    main_coreset,
    pick_by_model,
    rank_candidates,
    run_coreset,
    spearman,
)
from compilerdream.search import BenchmarkRef, load_agent
from compilerdream.task import TaskSettings, coreset_action_sequences, load_coreset_sequences

REPO = Path(__file__).resolve().parent.parent
PROGRAMS = REPO / "examples" / "programs"
NAMES = ("qsort", "crc32")






@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory) -> Path:
    return make_checkpoint(tmp_path_factory.mktemp("agent"), **{"compilergym.act_space": "NoLimit"})


@pytest.fixture(scope="module")
def programs() -> dict[str, Benchmark]:
    return {name: Benchmark.from_file(PROGRAMS / f"{name}.c") for name in NAMES}


@pytest.fixture(scope="module")
def data_root(tmp_path_factory, programs) -> Path:
    """A data root holding the file dataset `progs` (the two sample programs as bitcode)."""
    root = tmp_path_factory.mktemp("data")
    write_file_dataset(root, "progs", {name: bench.data for name, bench in programs.items()})
    return root


@pytest.fixture(scope="module")
def coreset_run(checkpoint, programs, tmp_path_factory) -> tuple[Path, dict]:
    """run_coreset on the two sample programs with all 50 sequences (about 1 s per program)."""
    agent, config = load_agent(checkpoint, "cpu")
    out = tmp_path_factory.mktemp("coreset")
    refs = [BenchmarkRef(b.uri, lambda b=b: b) for b in programs.values()]
    data = run_coreset(agent, refs, TaskSettings.from_config(config), out, progress=False, sequences=load_coreset_sequences())
    return out, data


pytestmark = pytest.mark.usefixtures("single_thread")

# ---------------------------------------------------------------------------------------------
# Spearman (hand-computed)


def test_average_ranks_share_ties():
    np.testing.assert_array_equal(average_ranks([10, 20, 20, 5]), [2.0, 3.5, 3.5, 1.0])
    np.testing.assert_array_equal(average_ranks([3, 3, 3]), [2.0, 2.0, 2.0])


def test_spearman_hand_computed():
    # ranks x: 1..5; ranks y of [5, 6, 7, 8, 7]: [1, 2, 3.5, 5, 3.5]. Centred: [-2,-1,0,1,2] and [-2,-1,.5,2,.5];
    # Σ products = 4 + 1 + 0 + 2 + 1 = 8; Σ squares 10 and 9.5 -> rho = 8 / sqrt(95).
    assert spearman([1, 2, 3, 4, 5], [5, 6, 7, 8, 7]) == pytest.approx(8 / math.sqrt(95))
    assert spearman([1, 2, 3], [10, 20, 30]) == pytest.approx(1.0)
    assert spearman([1, 2, 3], [0.3, 0.2, 0.1]) == pytest.approx(-1.0)
    assert math.isnan(spearman([1, 2, 3], [4, 4, 4]))  # undefined for a constant side
    assert math.isnan(spearman([1], [2]))
    with pytest.raises(ValueError):
        spearman([1, 2], [1, 2, 3])


# ---------------------------------------------------------------------------------------------
# Candidates and ranking (synthetic)


def synthetic_runs() -> list[SequenceRun]:
    return [
        SequenceRun(0, [7, 8], predicted=[0.5, -0.25], counts=[100, 90, 95], real=[0.1, -0.05]),
        SequenceRun(1, [7, 9, 4], predicted=[0.5, 0.5, 0.0], counts=[100, 90], real=[0.1], error="crash"),
    ]


def test_candidates_are_every_prefix_once():
    candidates = build_candidates(synthetic_runs())
    assert [c.actions for c in candidates] == [(), (7,), (7, 8), (7, 9), (7, 9, 4)]
    assert [c.predicted_return for c in candidates] == [0.0, 0.5, 0.25, 1.0, 1.0]
    # Prefixes past a crash never ran: no real return.
    assert [c.count for c in candidates] == [100, 90, 95, None, None]
    assert candidates[2].real_return == pytest.approx(0.05)
    assert len(build_candidates(synthetic_runs(), dedupe=False)) == 3 + 4  # the reference's Σ(len + 1)


def test_ranking_is_stable_and_descending():
    ranked = rank_candidates(build_candidates(synthetic_runs()))
    assert [c.actions for c in ranked] == [(7, 9), (7, 9, 4), (7,), (7, 8), ()]


def test_pick_compiles_exactly_the_top_k(programs, monkeypatch):
    compiled: list[tuple] = []
    real_compile = coreset.compile_prefix

    def counting(env, actions):
        compiled.append(tuple(actions))
        return real_compile(env, actions)

    monkeypatch.setattr(coreset, "compile_prefix", counting)
    sequences = load_coreset_sequences()[:3]
    candidates = [
        Candidate(k, n, tuple(s[:n]), float(-n), None, None) for k, s in enumerate(sequences) for n in range(len(s) + 1)
    ]
    env = LlvmEnv(action_space="NoLimit")
    try:
        env.reset(benchmark=programs["qsort"])
        o0, oz = int(env.observation["IrInstructionCountO0"]), int(env.observation["IrInstructionCountOz"])
        pick, _ = pick_by_model(env, rank_candidates(candidates), 5, o0, oz)
        assert pick.compilations == 5 and len(compiled) == 5
        compiled.clear()
        pick, _ = pick_by_model(env, rank_candidates(candidates), 1000, o0, oz)
        assert pick.compilations == len(candidates) == len(compiled)
        assert pick.final <= o0 and pick.rank is not None
    finally:
        env.close()


# ---------------------------------------------------------------------------------------------
# The whole test on two programs


def test_coreset_writes_every_output(coreset_run):
    out, data = coreset_run
    for name in ("test_detail.jsonl", "results.json", "results.csv", "summary.md"):
        assert (out / name).is_file(), name
    detail = [json.loads(line) for line in (out / "test_detail.jsonl").read_text().splitlines()]
    assert len(detail) == len(NAMES) * 50
    assert all(len(d["predicted_rewards"]) == len(d["actions"]) for d in detail)
    assert json.loads((out / "results.json").read_text())["top_k"] == TOP_K
    summary = (out / "summary.md").read_text()
    for label in ("model pick", "oracle", "best fixed sequence", "-Oz", "CompilerGym leaderboard", "Spearman",
                  "Compiling only the top k sequences", "coreset order"):  # fmt: skip
        assert label in summary
    k_rows = (out / "k_table.csv").read_text().splitlines()
    assert k_rows[0].startswith("method,k,mean_percent_below_oz") and len(k_rows) == 1 + 2 * 4 + 3


def _report(oz: int, runs: list[tuple[list[float], list[int]]]) -> BenchmarkReport:
    """A benchmark measured by hand: per sequence (predicted rewards, counts after 0..n passes)."""
    seqs = [SequenceRun(index=i, actions=list(range(len(c) - 1)), predicted=p, counts=c, real=[]) for i, (p, c) in enumerate(runs)]
    none = Pick(actions=[], final=oz)
    return BenchmarkReport(uri=f"file:///p{oz}", dataset="d", O0=runs[0][1][0], Oz=oz, runs=seqs, candidates=[],
                           model=none, oracle=none, oz=none, reward_mse=0.0, spearman=0.0, walltime=0.0)  # fmt: skip


def test_k_table_by_hand():
    """Two programs, three sequences: the model, coreset order, oracle, best fixed and -Oz rows, worked out by hand."""
    # program A (Oz 100): seq0 best prefix 110 (worse than Oz), seq1 best 90, seq2 best 95; the model ranks 2 > 1 > 0
    a = _report(100, [([0.1, 0.0], [200, 110, 120]), ([0.2, -0.3], [200, 150, 90]), ([0.5, 0.1], [200, 95, 97])])
    # program B (Oz 50): seq0 best 40, seq1 best 60, seq2 best 55; the model ranks 0 > 2 > 1 (a perfect ranking)
    b = _report(50, [([0.9], [80, 40]), ([0.1], [80, 60]), ([0.3], [80, 55])])
    table = k_table([a, b], ks=(1, 2))
    rows = {(r["method"], r["k"]): r for r in table["rows"]}
    # k=1: model compiles seq2 on A (95) and seq0 on B (40): (5% + 20%) / 2
    assert rows["model", 1]["finals"] == [95, 40]
    assert rows["model", 1]["mean_percent_below_oz"] == pytest.approx(12.5)
    assert rows["model", 1]["geomean_reduction"] == pytest.approx(math.sqrt(100 / 95 * 50 / 40))
    # coreset order k=1 compiles seq0: A falls back to -Oz (100), B gets 40
    assert rows["coreset order", 1]["finals"] == [100, 40]
    # k=2: model {2, 1} on A -> 90; {0, 2} on B -> 40
    assert rows["model", 2]["finals"] == [90, 40] and rows["model", 2]["sequences"] == 2
    assert rows["oracle", 3]["finals"] == [90, 40]
    assert rows["model", 2]["share_of_oracle"] == pytest.approx(1.0)
    # best fixed: seq0 = (0 + 20) / 2 = 10%; seq1 = (10 + 0) / 2 = 5%; seq2 = (5 + 0) / 2 = 2.5%
    assert table["best_fixed_sequence"] == 0 and rows["best fixed", 1]["finals"] == [100, 40]
    assert rows["-Oz", 0]["finals"] == [100, 50] and rows["-Oz", 0]["mean_percent_below_oz"] == 0.0
    assert all(r["worse"] == 0.0 for r in table["rows"])  # -Oz is every method's fallback
    assert rows["model", 1]["passes"] == pytest.approx((2 + 1) / 2)
    # rank correlation: B is perfect (1.0); A ranks 2 > 1 > 0 against real 1 > 2 > 0: rho = 0.5
    assert table["rank_correlation"] == pytest.approx((1.0 + 0.5) / 2)
    with pytest.raises(ValueError, match="at least one"):
        k_table([])


def test_coreset_results_are_consistent(coreset_run):
    _, data = coreset_run
    assert len(data["benchmarks"]) == len(NAMES)
    for b in data["benchmarks"]:
        assert math.isfinite(b["reward_mse"]) and math.isfinite(b["spearman"])
        assert b["model"]["reduction"] <= b["oracle"]["reduction"] + 1e-12
        assert b["fixed"]["reduction"] <= b["oracle"]["reduction"] + 1e-12
        assert b["model"]["compilations"] == min(TOP_K, b["candidates"])
        assert b["-Oz"]["compilations"] == b["fixed"]["compilations"] == 1
        assert b["oracle"]["compilations"] >= b["candidates"]
        assert b["-Oz"]["reduction"] == pytest.approx(1.0)
        assert b["mismatches"] == 0  # recompiling a prefix measures what enumerating it did
        assert b["candidates"] <= 675
    prediction = data["prediction"]["all"]
    assert math.isfinite(prediction["reward_mse"]) and math.isfinite(prediction["spearman"])
    assert 0 <= data["best_fixed_sequence"] < 50
    # the k-table: nested top-k sets never lose, nothing beats the oracle, nothing is worse than -Oz
    rows = data["k_table"]["rows"]
    model = [r for r in rows if r["method"] == "model"]
    oracle = next(r for r in rows if r["method"] == "oracle")
    assert [r["k"] for r in model] == [1, 3, 5, 10] and oracle["k"] == 50
    for small, large in zip(model, model[1:]):
        assert all(b <= a for a, b in zip(small["finals"], large["finals"]))
    for r in rows:
        assert all(f >= o for f, o in zip(r["finals"], oracle["finals"]))
        assert r["worse"] == 0.0
    for b, final in zip(data["benchmarks"], oracle["finals"]):
        assert final == min(b["Oz"], b["oracle"]["final"])  # the best prefix over every sequence, or -Oz


def test_default_coreset_runs_with_an_oz_continue_agent(tmp_path, programs):
    """The shipped coreset's sequences from -Oz begin with the -Oz-continue action (index 124), run as default<Oz>."""
    from compilerdream.compiler.coreset import load_coreset

    ckpt = make_checkpoint(tmp_path / "oz", **{"compilergym.act_space": "NoLimit", "compilergym.oz_continue": True})
    agent, config = load_agent(ckpt, "cpu")
    settings = TaskSettings.from_config(config)
    check_coreset_agent(agent, settings)
    shipped = load_coreset("default")
    sequences = coreset_action_sequences("default", settings)
    assert len(sequences) == len(shipped)
    for seq, indices in zip(shipped.sequences, sequences):
        assert (indices[0] == 124) == (seq.start == "oz") and len(indices) == len(seq.passes) + (seq.start == "oz")
    refs = [BenchmarkRef(programs["qsort"].uri, lambda: programs["qsort"])]
    data = run_coreset(agent, refs, settings, tmp_path / "out", progress=False)
    detail = [json.loads(line) for line in (tmp_path / "out" / "test_detail.jsonl").read_text().splitlines()]
    assert len(detail) == len(shipped)
    bench = data["benchmarks"][0]
    for line, seq in zip(detail, shipped.sequences):
        if seq.start == "oz" and line.get("counts"):
            assert line["counts"][1] == bench["Oz"]  # after the first action: -Oz's output
    assert bench["oracle"]["reduction"] >= 1.0 - 1e-12  # a sequence from -Oz includes -Oz itself
    # nvp50 stays selectable and needs no -Oz action; the default coreset without oz_continue is one clear error
    assert coreset_action_sequences("nvp50", settings) == load_coreset_sequences()
    plain = TaskSettings.from_config({**config, "compilergym.oz_continue": False})
    if any(s.start == "oz" for s in shipped.sequences):
        with pytest.raises(ValueError, match="oz_continue True"):
            coreset_action_sequences("default", plain)


def test_coreset_needs_a_nolimit_agent(tmp_path, data_root):
    autophase = make_checkpoint(tmp_path / "autophase", **{"compilergym.act_space": "Autophase"})
    agent, config = load_agent(autophase, "cpu")
    with pytest.raises(ValueError, match="NoLimit"):
        check_coreset_agent(agent, TaskSettings.from_config(config))
    argv = ["--configs", "compilergym", "compilergym_dv3", "coreset_test", "debug", "--logdir", str(tmp_path / "out"),
            "--load_logdir", str(autophase), "--data_root", str(data_root), "--test_dataset", "file_dataset_progs"]  # fmt: skip
    with pytest.raises(SystemExit, match="needs an agent trained with compilergym.act_space NoLimit"):
        main_coreset(argv)


# ---------------------------------------------------------------------------------------------
# The example script


@pytest.fixture(scope="module")
def trained(tmp_path_factory, data_root) -> Path:
    return train_checkpoint(tmp_path_factory.mktemp("trained"), data_root, extra=["--compilergym.oz_continue", "True"])


def test_example_script_runs(trained, data_root, tmp_path):
    """examples/test_on_coreset.py on a debug checkpoint trained by the driver a moment before (with the
    -Oz-continue action, so the shipped coreset's sequences from -Oz can be imagined)."""
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    logdir = tmp_path / "run"
    cmd = [sys.executable, str(REPO / "examples" / "test_on_coreset.py"), "--logdir", str(logdir),
           "--configs", "compilergym", "compilergym_dv3", "coreset_test", "debug", "--task", "compilergym_cbench",
           "--load_logdir", str(trained), "--no_eval", "True", "--data_root", str(data_root),
           "--test_dataset", "file_dataset_progs"]  # fmt: skip
    proc = subprocess.run(
        cmd, cwd=cwd, capture_output=True, text=True, timeout=120, env={**os.environ, "OMP_NUM_THREADS": "1"}
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    data = json.loads((logdir / "coreset" / "results.json").read_text())
    assert len(data["benchmarks"]) == 2
    assert "Reward prediction" in proc.stdout
    assert os.listdir(cwd) == []  # nothing written outside --logdir
