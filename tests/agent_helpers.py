"""Shared by the guided-search, coreset and learning tests: debug checkpoints and small file datasets."""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path

import pytest
import torch

from compilerdream.agent import Agent
from compilerdream.config import Config, load_configs
from compilerdream.driver import save_checkpoint
from compilerdream.search import agent_spaces
from compilerdream.task import TaskSettings


def debug_config(**overrides) -> Config:
    return load_configs(["compilergym", "compilergym_dv3", "debug"]).update(overrides)


def make_checkpoint(directory: Path, seed: int = 0, **overrides) -> Path:
    """An untrained `debug` agent saved as the driver does (variables.pt + config.yaml)."""
    config = debug_config(**overrides)
    directory.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(seed)
    obs_space, num_actions = agent_spaces(TaskSettings.from_config(config))
    save_checkpoint(directory / "variables.pt", Agent(obs_space, num_actions, config, "cpu"), {})
    config.save(directory / "config.yaml")
    return directory


def train_checkpoint(
    logdir: Path, data_root: Path, dataset: str = "progs", steps: int = 120, act_space: str = "NoLimit",
    extra: Sequence[str] = (),
) -> Path:
    """A `debug` agent trained by the real driver for `steps` env steps on a file dataset (about 2 s).

    NoLimit actions by default, so the same checkpoint serves guided search and the
    coreset (which needs the 124-flag space).
    """
    from compilerdream.driver import main

    args = ["--logdir", str(logdir), "--configs", "compilergym", "compilergym_dv3", "debug",
            "--task", f"compilergym_file_dataset_{dataset}", "--data_root", str(data_root), "--steps", str(steps),
            "--compilergym.act_space", act_space, "--enable_test", "False", "--seed", "0", *extra]  # fmt: skip
    assert main(args) == 0
    assert (logdir / "variables.pt").is_file() and (logdir / "config.yaml").is_file()
    return logdir


def write_file_dataset(root: Path, name: str, bitcode: Mapping[str, bytes]) -> Path:
    """A file dataset in the reference layout: `root/name/*.bc` plus metadata.json in that order."""
    folder = root / name
    folder.mkdir(parents=True, exist_ok=True)
    for stem, data in bitcode.items():
        (folder / f"{stem}.bc").write_bytes(data)
    (folder / "metadata.json").write_text(json.dumps([f"{stem}.bc" for stem in bitcode]))
    return folder


@pytest.fixture
def single_thread() -> Iterator[None]:
    """Tiny nets are fastest on one thread; two fight the compiler worker on a 2-core machine."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
