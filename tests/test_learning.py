"""The agent learns: with the `small` preset and a fixed seed, training on a fixed program set beats random.

Slow (about 10-15 minutes on 2 cores): run with `python -m pytest -m slow tests/test_learning.py`.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from agent_helpers import write_file_dataset

from compilerdream.compiler.metrics import geomean
from compilerdream.compiler.toolchain import compile_source

REPO = Path(__file__).resolve().parents[1]
PROGRAMS = sorted((REPO / "examples" / "programs").glob("*.c"))


def make_file_dataset(root: Path) -> Path:
    """The sample programs as a file dataset in the reference layout: .bc files + metadata.json."""
    return write_file_dataset(root, "progs", {source.stem: compile_source(source) for source in PROGRAMS})


def random_policy_reduction(benchmarks: list[str], episodes: int, seed: int) -> float:
    """Geomean test reduction of a uniform-random policy (45 steps, the task's action space)."""
    from compilerdream.config import load_configs
    from compilerdream.task import CompilerTask

    config = load_configs(["compilergym", "compilergym_dv3", "small"])
    task = CompilerTask("progs", "test", config, seed=seed, benchmarks=benchmarks)
    rng = np.random.default_rng(seed)
    reductions = []
    try:
        for _ in range(episodes):
            obs = task.reset()
            while not obs["is_last"]:
                obs = task.step(int(rng.integers(task.num_actions)))
            reductions.append(float(obs["reduction"]))
    finally:
        task.close()
    return geomean(reductions)


@pytest.mark.slow
def test_small_preset_beats_random_policy(tmp_path):
    data_root = tmp_path / "data"
    folder = make_file_dataset(data_root)
    logdir = tmp_path / "run"
    cmd = [sys.executable, str(REPO / "examples" / "train_dreamerv2.py"), "--logdir", str(logdir),
           "--configs", "compilergym", "compilergym_dv3", "small", "--task", "compilergym_file_dataset_progs",
           "--data_root", str(data_root), "--enable_test", "True", "--test_dataset", "file_dataset_progs",
           "--test_eps", str(len(PROGRAMS)), "--steps", "4000", "--eval_every", "500", "--test_interval", "1000",
           "--seed", "0", "--device", "cpu"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=3600, cwd=tmp_path,
                          env=dict(os.environ, PYTHONUNBUFFERED="1"))
    assert proc.returncode == 0, proc.stderr[-3000:]
    trained = json.loads((logdir / "test_results.json").read_text())["metrics"]["test_reduction_geomean"]
    random = random_policy_reduction(sorted(str(p) for p in folder.glob("*.bc")), episodes=40, seed=0)
    print(f"trained agent {trained:.4f} vs uniform random policy {random:.4f}")
    assert trained > random, f"the trained agent ({trained:.4f}) does not beat a random policy ({random:.4f})"
