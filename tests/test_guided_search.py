"""Tests of compilerdream/search.py: guided search as a harness policy, with a tiny agent and real LLVM (REFERENCE §3, §1.4)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from agent_helpers import (
    debug_config,
    make_checkpoint,
    single_thread,  # noqa: F401  (fixture, used through pytestmark)
    train_checkpoint,
    write_file_dataset,
)

from compilerdream.compiler.benchmarks import Benchmark
from compilerdream.compiler.env import LlvmEnv
from compilerdream.compiler.search import Budget, SearchContext, search_benchmark
from compilerdream.search import (
    AgentObserver,
    BenchmarkRef,
    agent_spaces,
    load_guided_policy,
    main_guided,
    run_guided,
    safe_name,
    search_budget,
    search_start,
)
from compilerdream.task import CompilerTask, TaskSettings

REPO = Path(__file__).resolve().parent.parent
PROGRAMS = REPO / "examples" / "programs"
NAMES = ("qsort", "crc32")
#: A function no pass can shrink: O0 = Oz = 1 instruction.
MINIMAL_IR = "define i32 @identity(i32 %x) {\n  ret i32 %x\n}\n"







@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory) -> Path:
    return make_checkpoint(tmp_path_factory.mktemp("agent"))


@pytest.fixture(scope="module")
def programs() -> dict[str, Benchmark]:
    return {name: Benchmark.from_file(PROGRAMS / f"{name}.c") for name in NAMES}


@pytest.fixture(scope="module")
def data_root(tmp_path_factory, programs) -> Path:
    """A data root holding the file dataset `progs` (two sample programs as bitcode)."""
    root = tmp_path_factory.mktemp("data")
    write_file_dataset(root, "progs", {name: bench.data for name, bench in programs.items()})
    return root


pytestmark = pytest.mark.usefixtures("single_thread")

# ---------------------------------------------------------------------------------------------
# The agent's observation equals the task's


@pytest.mark.parametrize(
    "overrides",
    [
        {},
        {"compilergym.act_space": "NoLimit", "compilergym.abs_inst_obs": True, "compilergym.rel_inst_obs": True},
        {"compilergym.null_act": True, "compilergym.oz_act": True, "compilergym.instc_list_obs": True},
        {"compilergym.null_act": True, "compilergym.oz_continue": True, "compilergym.start": "oz"},
    ],
)
def test_agent_spaces_equal_the_tasks(programs, overrides):
    config = debug_config(**overrides)
    task = CompilerTask("progs", "test", config, benchmarks=[programs["qsort"]])
    try:
        expected = {key: shape for key, (shape, _) in task.obs_space.items()}
        obs_space, num_actions = agent_spaces(TaskSettings.from_config(config))
        assert list(obs_space.items()) == list(expected.items())  # order too: the encoder concatenates in it
        assert num_actions == task.num_actions
    finally:
        task.close()


def test_observer_builds_the_tasks_observations(programs):
    config = debug_config(**{"compilergym.act_space": "NoLimit", "compilergym.abs_inst_obs": True,
                             "compilergym.rel_inst_obs": True})  # fmt: skip
    settings = TaskSettings.from_config(config)
    task = CompilerTask("progs", "test", config, benchmarks=[programs["qsort"]])
    env = LlvmEnv(action_space="NoLimit")  # a separate env, stepped by someone else, as in the harness
    try:
        expected = [task.reset()]
        env.reset(benchmark=programs["qsort"])
        observer = AgentObserver(settings, task.num_actions)
        seen = [observer.start(env)]
        for action in (103, 10, 111, 30):  # -mem2reg, -simplifycfg, -sroa, -early-cse (NoLimit indices)
            expected.append(task.step(action))
            env.step(action)
            seen.append(observer.step(env, action))
        for want, got in zip(expected, seen):
            for key in ("autophase", "action_histogram", "instcount", "reward", "is_first", "reduction"):
                np.testing.assert_allclose(np.asarray(got[key], np.float64), np.asarray(want[key], np.float64),
                                           rtol=1e-6, err_msg=key)  # fmt: skip
        assert seen[1]["reward"] > 0  # -mem2reg shrinks qsort: the comparison is not all zeros
    finally:
        task.close()
        env.close()


# ---------------------------------------------------------------------------------------------
# The policy in the harness


def test_guided_search_honours_the_budget_and_is_deterministic(checkpoint, programs):
    policy = load_guided_policy(checkpoint, "cpu")
    assert policy.name == "guided" and policy.p_random == pytest.approx(0.05)
    first = search_benchmark(policy, programs["qsort"], Budget(compilations=100), action_space="Autophase", seed=3)
    again = search_benchmark(policy, programs["qsort"], Budget(compilations=100), action_space="Autophase", seed=3)
    assert first.error is None
    assert first.compilations <= 100
    assert first.best_actions == again.best_actions and first.final == again.final
    assert first.final <= first.O0  # the best prefix never makes the program bigger than unoptimized
    assert first.reduction == pytest.approx(first.Oz / first.final) and first.reduction > 0


def test_guided_search_from_oz_starts_its_rollouts_at_the_oz_module(checkpoint, programs, monkeypatch):
    """start="oz": the agent's first observation is -Oz's module; the result begins with default<Oz>."""
    policy = load_guided_policy(checkpoint, "cpu")
    firsts = []
    original = AgentObserver.start

    def start(self, env):  # the observer reads the real env; we only keep what it returned
        obs = original(self, env)
        firsts.append((obs, int(env.observation["IrInstructionCount"])))
        return obs

    monkeypatch.setattr(AgentObserver, "start", start)
    result = search_benchmark(policy, programs["qsort"], Budget(compilations=30), action_space="Autophase", seed=3,
                              start="oz")  # fmt: skip
    assert result.error is None and result.compilations <= 30
    assert result.start == "oz" and result.best_actions[0] == "default<Oz>" and result.final <= result.Oz
    assert len(firsts) == 1
    first, count = firsts[0]
    assert count == result.Oz and first["reduction"] == 1.0 and first["is_first"]


def test_the_oz_continue_action_lets_the_rollout_go_on(tmp_path, programs):
    """An agent with compilergym.oz_continue: its -Oz action is one step of a rollout, not its end."""
    checkpoint = make_checkpoint(tmp_path / "agent", **{"compilergym.oz_continue": True})
    policy = load_guided_policy(checkpoint, "cpu", p_random=1.0)  # uniform actions: the -Oz one comes up
    assert policy.num_actions == 43 and policy.oz_action == 42 and not policy.oz_ends_episode
    trajectories = []
    original = SearchContext.step

    def step(self, action):  # the real step; we keep the trajectory it leaves
        out = original(self, action)
        trajectories.append(list(self.trajectory))
        return out

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(SearchContext, "step", step)
        result = search_benchmark(policy, programs["crc32"], Budget(compilations=120), action_space="Autophase", seed=1)
    assert result.error is None
    went_on = [b for a, b in zip(trajectories, trajectories[1:]) if a and a[-1] == "default<Oz>" and b[:-1] == a]
    assert went_on  # a step after the -Oz action extended the same rollout


def test_search_start_is_checked_before_any_work(checkpoint, tmp_path):
    assert search_start({"search.start": "both"}) == "both" and search_start({}) == "o0"
    with pytest.raises(SystemExit, match=r"^compilerdream: --search.start must be one of o0, oz, both, got 'oz3'$"):
        search_start({"search.start": "oz3"})
    out = tmp_path / "out"
    with pytest.raises(SystemExit, match="--search.start must be one of"):
        main_guided(["--configs", "compilergym", "compilergym_dv3", "debug", "--logdir", str(out),
                     "--load_logdir", str(checkpoint), "--search.start", "x"])  # fmt: skip
    assert not out.exists()


def test_nothing_improves_gives_the_unoptimized_program(checkpoint, tmp_path):
    path = tmp_path / "identity.ll"
    path.write_text(MINIMAL_IR)
    policy = load_guided_policy(checkpoint, "cpu")
    result = search_benchmark(policy, path, Budget(compilations=20), action_space="Autophase")
    assert result.error is None and result.compilations == 20
    assert result.best_actions == [] and result.final == result.O0
    assert result.reduction == pytest.approx(result.Oz / result.O0) and result.reduction > 0  # not the reference's 0


def test_run_guided_writes_every_output(checkpoint, programs, tmp_path):
    policy = load_guided_policy(checkpoint, "cpu", p_random=0.5, temperature=2.0)
    assert policy.agent.behavior.acting_actor().temp == 2.0
    refs = [BenchmarkRef(b.uri, lambda b=b: b) for b in programs.values()]
    refs.append(BenchmarkRef("file:///no/such/file.bc", lambda: Benchmark.from_file("/no/such/file.bc")))
    results = run_guided(policy, refs, Budget(compilations=30), tmp_path, progress=False)
    assert [r.error is None for r in results] == [True, True, False]  # a broken benchmark fails alone
    for name in ("results.json", "results.csv", "summary.md"):
        assert (tmp_path / name).is_file()
    for ref in refs:
        record = json.loads((tmp_path / f"{safe_name(ref.uri)}.json").read_text())
        assert record["compilations"] <= 30 and record["p_random"] == 0.5
    assert "CompilerGym leaderboard" in (tmp_path / "summary.md").read_text()


def test_loading_errors_are_clear(checkpoint, tmp_path):
    with pytest.raises(FileNotFoundError, match="no checkpoint"):
        load_guided_policy(tmp_path, "cpu")
    bare = tmp_path / "bare"
    bare.mkdir()
    (bare / "variables.pt").write_bytes((checkpoint / "variables.pt").read_bytes())
    with pytest.raises(FileNotFoundError, match="config.yaml"):
        load_guided_policy(bare, "cpu")
    wrong = debug_config(**{"compilergym.act_space": "NoLimit"})
    with pytest.raises(ValueError, match="NoLimit"):
        load_guided_policy(checkpoint, "cpu", config=wrong)
    (tmp_path / "empty").mkdir()
    with pytest.raises(SystemExit, match="no checkpoint"):
        main_guided(["--configs", "compilergym", "compilergym_dv3", "debug", "--logdir", str(tmp_path / "out"),
                     "--load_logdir", str(tmp_path / "empty")])  # fmt: skip


def test_search_budget_prefers_compilations():
    assert search_budget({"search.compilations": 0, "search.seconds": 60.0}) == Budget(seconds=60.0)
    assert search_budget({"search.compilations": 7, "search.seconds": 60.0}) == Budget(compilations=7)
    for compilations, seconds, message in ((-4, 60.0, "--search.compilations must be positive"),
                                           (0, -1.0, "--search.seconds must be positive, got -1.0")):  # fmt: skip
        with pytest.raises(SystemExit, match=message):
            search_budget({"search.compilations": compilations, "search.seconds": seconds})


def test_safe_name():
    assert safe_name("benchmark://cbench-v1/qsort") == "cbench-v1_qsort"
    long = safe_name("file:///" + "x" * 300 + ".bc")
    assert len(long) <= 130 and long.endswith(long[-8:])


# ---------------------------------------------------------------------------------------------
# The example script


@pytest.fixture(scope="module")
def trained(tmp_path_factory, data_root) -> Path:
    return train_checkpoint(tmp_path_factory.mktemp("trained"), data_root)


def test_example_script_runs(trained, data_root, tmp_path):
    """examples/test_guided_search.py on a debug checkpoint trained by the driver a moment before."""
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    logdir = tmp_path / "run"
    cmd = [sys.executable, str(REPO / "examples" / "test_guided_search.py"), "--logdir", str(logdir),
           "--configs", "compilergym", "compilergym_dv3", "cbench_train", "debug", "--task", "compilergym_cbench",
           "--load_logdir", str(trained), "--no_eval", "True", "--data_root", str(data_root),
           "--test_dataset", "file_dataset_progs", "--search.compilations", "25",
           "--search.start", "oz"]  # fmt: skip
    proc = subprocess.run(
        cmd, cwd=cwd, capture_output=True, text=True, timeout=120, env={**os.environ, "OMP_NUM_THREADS": "1"}
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = logdir / "guided_search"
    rows = json.loads((out / "results.json").read_text())
    assert [Path(r["benchmark"]).name for r in rows] == ["qsort.bc", "crc32.bc"]
    assert all(r["compilations"] <= 25 and r["reduction"] > 0 for r in rows)
    assert all(r["start"] == "oz" and r["best_actions"][0] == "default<Oz>" for r in rows)  # --search.start oz
    assert (out / "summary.md").is_file() and (out / "results.csv").is_file() and (logdir / "config.yaml").is_file()
    assert "CompilerDream reduction" in proc.stdout
    assert os.listdir(cwd) == []  # nothing written outside --logdir
