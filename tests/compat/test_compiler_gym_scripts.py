"""Scripts written the way CompilerGym's documentation and examples write them run unchanged on `compiler_gym`,
and every count they report equals what our own environment (compilerdream.compiler) gives for the same actions.

The scripts live in tests/compat/scripts and run as separate programs, as a user would run them.
"""

from __future__ import annotations

import csv
import itertools
import shutil

import numpy as np
import pytest
from compat_helpers import (
    CRC32_URI,
    PROGRAMS,
    SCRIPTS,
    crc32_benchmark,
    native_env,
    native_replay,
    run_python,
    run_script,
)

from compilerdream.compiler import Benchmark


def test_random_walk_matches_native(run):
    walk = run("random_walk.py")
    assert len(walk["actions"]) == 20
    native = native_replay(crc32_benchmark(), walk["actions"])
    assert walk["rewards"] == pytest.approx(native["rewards"], rel=1e-12)
    assert walk["episode_reward"] == pytest.approx(native["episode_reward"], rel=1e-12)
    assert walk["instcount"] == native["instcount"]
    with native_env(crc32_benchmark(), observation_space="Autophase") as env:
        env.reset()
        obs, *_ = env.multistep(walk["actions"])
        assert walk["autophase"] == obs.tolist()


def test_brute_force_matches_native(run, tmp_path):
    shutil.copy(PROGRAMS / "qsort.c", tmp_path / "qsort.c")
    result = run("brute_force.py", str(tmp_path / "qsort.c"))
    flags = ["-mem2reg", "-instcombine", "-simplifycfg", "-gvn", "-loop-rotate"]
    assert len(result["rewards"]) == len(flags) ** 2
    with native_env(Benchmark.from_file(tmp_path / "qsort.c")) as env:
        for pair in itertools.product(flags, repeat=2):
            env.reset()
            env.multistep(list(pair))
            assert result["rewards"][" ".join(pair)] == pytest.approx(env.episode_reward, rel=1e-12), pair
    best = max(result["rewards"].values())
    assert result["best_reward"] == best and result["rewards"][" ".join(result["best"])] == best


def test_leaderboard_random_search_policy(cbench_data_root, tmp_path):
    from compiler_gym import CompilerEnvStateReader

    from compilerdream.compiler.datasets import Datasets

    args = ["--n=1", "--max_benchmarks=2", "--search_steps=120", "--seed=3"]
    proc = run_python([str(SCRIPTS / "leaderboard_random_search.py"), *args], cbench_data_root, tmp_path)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    assert "Codesize reduction (geomean):" in proc.stdout and "validation failed" not in proc.stderr
    with open(tmp_path / "llvm_instcount-results.csv") as f:
        states = list(CompilerEnvStateReader(f))
    # cbench-v1 is installed under CompilerGym's name: its benchmarks, in the manifest's order.
    assert [s.benchmark for s in states] == [CRC32_URI, "benchmark://cbench-v1/qsort"]
    datasets = Datasets(cbench_data_root)
    for state in states:
        assert state.reward > 0 and state.walltime >= 0
        with native_env(datasets.benchmark(state.benchmark), data_root=cbench_data_root) as env:
            env.apply(state)
            assert env.episode_reward == pytest.approx(state.reward, rel=1e-9)
    rows = list(csv.reader(open(tmp_path / "llvm_instcount-results.csv")))
    assert rows[0] == ["benchmark", "reward", "walltime", "commandline"]

    # A second run refuses to overwrite the results; --resume finds them complete and adds nothing.
    again = run_python([str(SCRIPTS / "leaderboard_random_search.py"), *args], cbench_data_root, tmp_path)
    assert again.returncode == 2 and "pass --resume" in again.stderr
    resumed = run_python(
        [str(SCRIPTS / "leaderboard_random_search.py"), *args, "--resume"],
        cbench_data_root,
        tmp_path,
    )
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert len(list(csv.reader(open(tmp_path / "llvm_instcount-results.csv")))) == 3


def test_leaderboard_flags_results_logfile_and_validate(cbench_data_root, tmp_path):
    script = str(SCRIPTS / "leaderboard_fixed_policy.py")
    args = ["--test_dataset=benchmark://cbench-v1", "--max_benchmarks=1"]
    proc = run_python(
        [script, *args, "--n=2", "--leaderboard_results=out/results.csv", "--leaderboard_logfile=out/run.log"],
        cbench_data_root,
        tmp_path,
    )
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    from compiler_gym import CompilerEnvStateReader

    with open(tmp_path / "out" / "results.csv") as f:
        states = list(CompilerEnvStateReader(f))
    native = native_replay(crc32_benchmark(), ["-mem2reg", "-gvn"])
    assert [s.benchmark for s in states] == [CRC32_URI, CRC32_URI]  # --n runs of the first benchmark
    for state in states:
        assert state.reward == pytest.approx(native["episode_reward"], rel=1e-12)
        assert state.commandline == native["commandline"]
    log = (tmp_path / "out" / "run.log").read_text()  # the harness's log goes to --leaderboard_logfile
    assert log.count(f"{CRC32_URI} run") == 2 and not (tmp_path / "llvm_instcount-results.csv").exists()

    # A reward the replay does not reproduce: --validate (the default) reports it and fails the run.
    cheat = run_python(
        [script, *args, "--n=1", "--cheat", "--leaderboard_results=cheat.csv"], cbench_data_root, tmp_path
    )
    assert cheat.returncode == 1 and "validation failed" in cheat.stderr and "Expected reward" in cheat.stderr
    unchecked = [script, *args, "--n=1", "--cheat", "--novalidate", "--leaderboard_results=unchecked.csv"]
    unchecked_run = run_python(unchecked, cbench_data_root, tmp_path)
    assert unchecked_run.returncode == 0 and "validation failed" not in unchecked_run.stderr


def test_wrappers_chain_matches_native(run, tmp_path):
    shutil.copy(PROGRAMS / "qsort.c", tmp_path / "qsort.c")
    episodes = run("wrappers_chain.py")
    qsort = Benchmark.from_file(tmp_path / "qsort.c")
    assert [e["benchmark"] == CRC32_URI for e in episodes] == [True, False, True]  # CycleOverBenchmarks
    for episode in episodes:
        terminal = len(episode["flags"]) - 1
        assert episode["flags"][-1] == "# end-of-episode"
        taken = episode["actions"]
        assert episode["terminal"] == (taken[-1] == terminal)
        assert episode["truncated"] == (not episode["terminal"] and len(taken) == 6)
        assert episode["applied"] == [episode["flags"][a] for a in taken if a != terminal]
        native = native_replay(crc32_benchmark() if episode["benchmark"] == CRC32_URI else qsort, episode["applied"])
        assert episode["episode_reward"] == pytest.approx(native["episode_reward"], rel=1e-12)
        assert episode["instcount"] == native["instcount"]
        assert episode["commandline"] == native["commandline"]


def test_state_roundtrip_through_csv_and_bin_validate(run, tmp_path, empty_data_root):
    replayed = run("state_roundtrip.py")
    assert len(replayed) == 3
    for entry in replayed:
        assert entry["replayed_reward"] == pytest.approx(entry["reward"], rel=1e-9)
        with native_env(crc32_benchmark()) as env:
            env.reset()
            env.multistep(env.action_space.from_string(entry["commandline"]))
            assert env.episode_reward == pytest.approx(entry["reward"], rel=1e-9)

    ok = run_python(["-m", "compiler_gym.bin.validate", "--env=llvm-ic-v0", "states.csv"], empty_data_root, tmp_path)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert "Number of validated results: 3 of 3" in ok.stdout
    # The same rows with one reward changed: that state fails, the exit status says so.
    rows = (tmp_path / "states.csv").read_text().splitlines()
    fields = rows[2].split(",", 3)
    fields[1] = str(float(fields[1]) + 0.5)
    rows[2] = ",".join(fields)
    (tmp_path / "tampered.csv").write_text("\n".join(rows) + "\n")
    bad = run_python(["-m", "compiler_gym.bin.validate", "--env=llvm-ic-v0", "tampered.csv"], empty_data_root, tmp_path)
    assert bad.returncode == 1 and "Number of validated results: 2 of 3" in bad.stdout
    assert "Expected reward" in bad.stdout


def test_fork_greedy_search_matches_native(run):
    result = run("fork_greedy.py")
    assert result["valid"] and result["actions"]
    flags = ["-mem2reg", "-sroa", "-instcombine", "-simplifycfg", "-gvn", "-licm", "-dce", "-reassociate"]
    # The same greedy search, written against our own environment.
    with native_env(crc32_benchmark()) as env:
        env.reset()
        chosen = []
        while True:
            rewards = []
            for flag in flags:
                fork = env.fork()
                rewards.append(fork.step(flag)[1])
                fork.close()
            best = int(np.argmax(rewards))
            if rewards[best] <= 0:
                break
            env.step(flags[best])
            chosen.append(flags[best])
        assert result["actions"] == chosen
        assert result["episode_reward"] == pytest.approx(env.episode_reward, rel=1e-12)
        assert result["instcount"] == int(env.observation["IrInstructionCount"])


def test_bin_random_search_is_reproducible_and_matches_native(tmp_path, empty_data_root):
    args = ["-m", "compiler_gym.bin.random_search", "--env=llvm-ic-v0", "--benchmark=cbench-v1/crc32"]
    args += ["--max_steps=150", "--seed=5", "--output_dir=out"]
    first = run_python(args, empty_data_root, tmp_path)
    assert first.returncode == 0, first.stdout + first.stderr
    summary = (tmp_path / "out" / "random_search.json").read_text()
    commandline = (tmp_path / "out" / "best_commandline.txt").read_text().strip()
    args[-1] = "--output_dir=again"
    second = run_python(args, empty_data_root, tmp_path)
    assert second.returncode == 0 and (tmp_path / "again" / "random_search.json").read_text() == summary

    import json

    result = json.loads(summary)
    assert result["steps"] == 150 and result["reward"] > 0
    native = native_replay(crc32_benchmark(), result["actions"])
    assert native["episode_reward"] == pytest.approx(result["reward"], rel=1e-12)
    assert native["commandline"] == commandline
    flags = (tmp_path / "out" / "best_actions.txt").read_text().split()
    assert len(flags) == len(result["actions"])


def test_run_script_reports_a_failing_script(tmp_path, empty_data_root):
    # The runner must not hide a script's failure (a guard for the tests above).
    script = tmp_path / "broken.py"
    script.write_text("import compiler_gym\ncompiler_gym.make('llvm-v0', benchmark='cbench-v1/nope').reset()\n")
    proc = run_python([str(script)], empty_data_root, tmp_path)
    assert proc.returncode == 1
    assert "LookupError" in proc.stderr and "compilerdream datasets install cbench-v1" in proc.stderr
    with pytest.raises(AssertionError):
        run_script(str(script), empty_data_root, tmp_path)  # an absolute path is taken as it is
