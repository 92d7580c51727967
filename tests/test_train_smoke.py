"""Smoke tests of examples/train_dreamerv2.py: a short debug run writes every artefact and resumes exactly."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "examples" / "train_dreamerv2.py"


def _run(args: list[str], cache: Path, cwd: Path, timeout: int = 400) -> subprocess.CompletedProcess:
    env = dict(os.environ, COMPILERDREAM_CACHE=str(cache), PYTHONUNBUFFERED="1")
    return subprocess.run([sys.executable, str(SCRIPT), *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)


def _steps(metrics: Path) -> list[int]:
    return [json.loads(line)["step"] for line in metrics.read_text().splitlines() if line.strip()]


@pytest.fixture(scope="module")
def csmith_cache(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("csmith-cache")


def test_debug_run_writes_artefacts_and_resumes(tmp_path, csmith_cache):
    """~300 env steps on csmith with the debug preset, then resume to 400 from the checkpoint and replay."""
    logdir = tmp_path / "run"
    common = ["--logdir", str(logdir), "--configs", "compilergym", "compilergym_dv3", "debug",
              "--task", "compilergym_csmith", "--enable_test", "True", "--test_dataset", "csmith", "--test_eps", "2"]
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    first = _run([*common, "--steps", "300"], csmith_cache, cwd)
    assert first.returncode == 0, first.stderr[-3000:]
    for name in ("config.yaml", "used_config.yaml", "metrics.jsonl", "test_results.json", "test_results.md", "variables.pt"):
        assert (logdir / name).exists(), f"missing {name}"
    assert list((logdir / "train_episodes").glob("*.npz")), "no replay episodes were saved"
    assert list(logdir.glob("events.out.tfevents.*")), "no TensorBoard events"
    assert not list(cwd.iterdir()), f"the run wrote into the working directory: {list(cwd.iterdir())}"
    results = json.loads((logdir / "test_results.json").read_text())
    assert len(results["results"]) == 2 and results["metrics"]["test_reduction_geomean"] > 0
    steps_before = _steps(logdir / "metrics.jsonl")
    assert max(steps_before) >= 300
    n_episodes = len(list((logdir / "train_episodes").glob("*.npz")))

    second = _run([*common, "--steps", "400"], csmith_cache, cwd)
    assert second.returncode == 0, second.stderr[-3000:]
    assert "resuming from" in second.stderr + second.stdout
    steps_after = _steps(logdir / "metrics.jsonl")
    assert max(steps_after) >= 400 and min(steps_after[len(steps_before):]) > max(steps_before) - 1, (
        "the resumed run must continue counting from the checkpoint, not restart at 0"
    )
    assert len(list((logdir / "train_episodes").glob("*.npz"))) > n_episodes


def test_bad_flags_give_clear_errors(tmp_path):
    """Unknown presets and keys, and wrongly typed values, end with one line and exit code 2."""
    for args, needle in (
        (["--configs", "compilergym", "nosuchpreset"], "nosuchpreset"),
        (["--configs", "compilergym", "--no_such_key", "1"], "no_such_key"),
        (["--configs", "compilergym", "--seed", "abc"], "seed"),
    ):
        proc = subprocess.run([sys.executable, str(SCRIPT), "--logdir", str(tmp_path / "x"), *args],
                              capture_output=True, text=True, timeout=120)
        assert proc.returncode == 2, (args, proc.stderr)
        assert needle in proc.stderr and "Traceback" not in proc.stderr, proc.stderr


def test_help_lists_keys():
    proc = subprocess.run([sys.executable, str(SCRIPT), "--configs", "compilergym", "--help"], capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 0
    assert "replay.dreamsmooth" in proc.stdout and "compilergym.act_space" in proc.stdout


def test_coreset_mode_with_another_action_space_is_refused(tmp_path):
    """The coreset sequences index the 124 flags: coreset_mode with Autophase actions stops before any work."""
    proc = subprocess.run(
        [sys.executable, str(SCRIPT), "--logdir", str(tmp_path / "run"), "--configs", "compilergym", "compilergym_dv3",
         "coreset_train", "debug", "--task", "compilergym_csmith", "--compilergym.act_space", "Autophase"],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    assert "coreset_mode needs --compilergym.act_space NoLimit" in proc.stderr and "not Autophase" in proc.stderr
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize(
    "args, message",
    [
        (["--envs", "0"], "--envs must be at least 1, got 0"),
        (["--replay.dreamsmooth", "1.5"], "--replay.dreamsmooth must be in [0, 1), got 1.5"),
        (["--prefill", "-5"], "--prefill must not be negative, got -5"),
        (["--compilergym.start", "o3"], "compilergym.start 'o3' is not supported: use one of o0, oz"),
    ],
)
def test_settings_out_of_range_stop_before_any_work(tmp_path, args, message):
    proc = subprocess.run(
        [sys.executable, str(SCRIPT), "--logdir", str(tmp_path / "run"), "--configs", "compilergym", "compilergym_dv3",
         "debug", "--task", "compilergym_csmith", *args],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert proc.returncode == 1 and message in proc.stderr and "Traceback" not in proc.stderr
    assert not (tmp_path / "run").exists()


def test_a_logdir_that_is_a_file_is_refused(tmp_path):
    (tmp_path / "taken").write_text("mine")
    proc = subprocess.run(
        [sys.executable, str(SCRIPT), "--logdir", str(tmp_path / "taken"), "--configs", "compilergym", "compilergym_dv3",
         "debug", "--task", "compilergym_csmith"],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert proc.returncode == 1 and "is a file, not a folder" in proc.stderr and "Traceback" not in proc.stderr
    assert (tmp_path / "taken").read_text() == "mine"
