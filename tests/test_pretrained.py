"""Loading agents: the shipped pretrained agent by name (`--checkpoint default`) and mismatched checkpoints."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from agent_helpers import make_checkpoint, single_thread  # noqa: F401 (fixture)
from compiler.helpers import count_instructions, engine_count, run_commandline

from compilerdream import optimize
from compilerdream.compiler.benchmarks import Benchmark
from compilerdream.compiler.default_optimizer import OPTION_CANDIDATES
from compilerdream.compiler.search import OZ_PIPELINE, Budget, search_benchmark
from compilerdream.config import Config
from compilerdream.pretrained import PRETRAINED_DIR, names, resolve_checkpoint
from compilerdream.search import load_agent, load_guided_policy
from compilerdream.task import TaskSettings

REPO = Path(__file__).resolve().parent.parent
QSORT = REPO / "examples" / "programs" / "qsort.c"
DEFAULT = PRETRAINED_DIR / "default"


def _rewrite_config(directory: Path, **changes) -> None:
    config = Config.load(directory / "config.yaml")
    config.update(changes).save(directory / "config.yaml")


# ------------------------------------------------------------------ mismatched checkpoints
@pytest.mark.parametrize(
    "changes, expected",
    [
        ({"compilergym.act_space": "Autophase"}, "act_space Autophase"),  # other action count: other head shapes
        ({"rssm.deter": 32}, "shape"),  # another model size
    ],
)
def test_a_checkpoint_that_does_not_fit_its_config_is_one_clear_error(tmp_path, monkeypatch, capsys, changes, expected):
    agent_dir = make_checkpoint(tmp_path / "agent", **{"compilergym.act_space": "NoLimit"})
    _rewrite_config(agent_dir, **changes)
    with pytest.raises(ValueError, match="does not fit the agent its config.yaml describes") as info:
        load_agent(agent_dir, "cpu")
    assert expected in str(info.value) and "\n" not in str(info.value)
    monkeypatch.chdir(tmp_path)
    code = optimize.main([str(QSORT), "--checkpoint", str(agent_dir), "--device", "cpu", "--search-compilations", "5"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "does not fit" in err[0] and str(agent_dir) in err[0]
    assert not (tmp_path / "qsort.opt.bc").exists()  # refused before any work


def test_a_file_that_is_not_an_agent_checkpoint_is_one_clear_error(tmp_path):
    agent_dir = make_checkpoint(tmp_path / "agent", **{"compilergym.act_space": "NoLimit"})
    import torch

    torch.save({"weights": 1}, agent_dir / "variables.pt")
    with pytest.raises(ValueError, match="not an agent checkpoint"):
        load_agent(agent_dir, "cpu")


def test_unknown_name_lists_the_shipped_agents(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert resolve_checkpoint("no-such-agent") == "no-such-agent"
    code = optimize.main([str(QSORT), "--checkpoint", "no-such-agent", "--search-compilations", "5"])
    err = capsys.readouterr().err
    assert code == 2 and "checkpoint directory not found: no-such-agent" in err
    assert all(name in err for name in names())


def test_an_existing_folder_wins_over_a_shipped_name(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "default").mkdir()
    assert resolve_checkpoint("default") == "default"


# ------------------------------------------------------------------ the shipped agent
def test_the_shipped_agent_is_small_and_documented():
    assert "default" in names() and resolve_checkpoint("default") == str(DEFAULT)
    weights = DEFAULT / "variables.pt"
    assert weights.stat().st_size <= 20 * 2**20
    card = (DEFAULT / "MODEL.md").read_text()
    assert "examples/train_dreamerv2.py" in card and "--compilergym.oz_continue True" in card  # the command that made it
    config = Config.load(DEFAULT / "config.yaml")
    assert config["compilergym.act_space"] == "NoLimit" and config["compilergym.oz_continue"] is True


def test_the_shipped_value_prediction_agent_is_small_documented_and_ranks_the_coreset():
    from compilerdream.coreset import ValuePrediction

    vp = Path(resolve_checkpoint("vp"))
    assert "vp" in names() and vp.parent == DEFAULT.parent
    assert (vp / "variables.pt").stat().st_size <= 20 * 2**20
    card = (vp / "MODEL.md").read_text()
    assert "examples/train_dreamerv2.py" in card and "coreset_train" in card  # the command that made it
    config = Config.load(vp / "config.yaml")
    assert config["coreset_mode"] is True and config["compilergym.oz_continue"] is True
    guided = load_guided_policy("vp", "cpu")
    ValuePrediction(guided.agent, guided.settings, "default", 5)  # it can rank the shipped coreset


@pytest.mark.usefixtures("single_thread")
def test_checkpoint_default_runs_a_guided_search_in_seconds():
    guided = load_guided_policy("default", "cpu")
    settings = TaskSettings.from_config(Config.load(DEFAULT / "config.yaml"))
    assert guided.settings.act_space == settings.act_space and guided.agent.num_actions == settings.oz_index + 1
    result = search_benchmark(guided, str(QSORT), Budget(compilations=40), seed=0, start=settings.start)
    assert result.error is None and 1 <= result.compilations <= 40 and result.final <= result.O0
    again = search_benchmark(guided, str(QSORT), Budget(compilations=40), seed=0, start=settings.start)
    assert again.best_actions == result.best_actions  # seeded


@pytest.mark.usefixtures("single_thread")
def test_the_agent_compiles_under_the_option_set_where_it_wins_as_optimize_does(program_bitcode, opt_tool, tmp_path):
    """`optimize --checkpoint` beyond CompilerGym's actions (outline) starts as the default method
    does: csmith_94's -Oz is smallest under the third option set (197 against 260), so the agent's
    result is compiled under it, is at most that, and replays with opt-19; within CompilerGym's
    actions (no outline) no options are chosen."""
    from compilerdream.coreset import agent_policy

    path = program_bitcode["csmith_94"]
    third = engine_count(path, OZ_PIPELINE, OPTION_CANDIDATES[2])
    guided = load_guided_policy("default", "cpu")
    policy, why_not = agent_policy(guided, "default", 2, outline=True)
    assert why_not == "" and policy.describe().startswith("the opt option set whose -Oz is smallest")
    result = search_benchmark(policy, str(path), Budget(compilations=40), seed=0, start=guided.settings.start)
    assert result.error is None and result.compiler_options == list(OPTION_CANDIDATES[2])
    assert result.final <= third < result.Oz
    run_commandline(opt_tool, result.commandline, path, tmp_path / "out.bc")
    assert count_instructions(tmp_path / "out.bc") == result.final
    plain, _ = agent_policy(guided, "default", 2, outline=False)
    within = search_benchmark(plain, str(path), Budget(compilations=20), seed=0, start=guided.settings.start)
    assert within.error is None and within.compiler_options == []


@pytest.mark.usefixtures("single_thread")
def test_optimize_and_evaluate_take_checkpoint_default(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    code = optimize.main([str(QSORT), "--checkpoint", "default", "--device", "cpu", "--search-compilations", "80",
                          "--top-k", "2", "--json"])  # fmt: skip
    summary = json.loads(capsys.readouterr().out)
    assert code == 0 and summary["result"] <= summary["Oz"]
    assert "the agent's top 2 of the " in summary["notes"][0] and str(DEFAULT) in summary["notes"][0]
    from compilerdream import evaluate

    out = tmp_path / "eval"
    argv = ["--checkpoint", "default", "--benchmarks", str(QSORT), "--methods", "oz,guided", "--search-compilations",
            "20", "--out", str(out), "--device", "cpu"]  # fmt: skip
    assert evaluate.main(argv) == 0
    rows = json.loads((out / "results.json").read_text())
    rows = rows["results"] if isinstance(rows, dict) else rows
    assert {r["method"] for r in rows} >= {"guided"}


def _file_dataset(root: Path) -> Path:
    from agent_helpers import write_file_dataset

    write_file_dataset(root, "progs", {"qsort": Benchmark.from_file(QSORT).data})
    return root


@pytest.mark.parametrize("script", ["test_guided_search.py", "test_on_coreset.py"])
def test_example_scripts_take_load_logdir_default(tmp_path, script):
    data_root = _file_dataset(tmp_path / "data")
    logdir = tmp_path / "run"
    block = "coreset_test" if script == "test_on_coreset.py" else "cbench_train"
    cmd = [sys.executable, str(REPO / "examples" / script), "--logdir", str(logdir), "--configs", "compilergym",
           "compilergym_dv3", block, "--load_logdir", "default", "--no_eval", "True", "--data_root", str(data_root),
           "--test_dataset", "file_dataset_progs", "--search.compilations", "20", "--device", "cpu"]  # fmt: skip
    proc = subprocess.run(cmd, cwd=tmp_path, capture_output=True, text=True, timeout=300,
                          env={**os.environ, "OMP_NUM_THREADS": "1"})  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    if script == "test_on_coreset.py":
        table = json.loads((logdir / "coreset" / "results.json").read_text())["k_table"]
        assert [r["k"] for r in table["rows"] if r["method"] == "model"] == [1, 3, 5, 10]
    else:
        assert (logdir / "guided_search" / "results.json").is_file()
    shutil.rmtree(logdir)
