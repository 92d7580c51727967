"""The training loop as a Trainer: named steps, seeded determinism (same weights bit for bit), resume."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from agent_helpers import single_thread, train_checkpoint, write_file_dataset  # noqa: F401  (fixture)

from compilerdream.compiler.benchmarks import Benchmark
from compilerdream.driver import Trainer

REPO = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.usefixtures("single_thread")


@pytest.fixture(scope="module")
def data_root(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("data")
    programs = {name: Benchmark.from_file(REPO / "examples" / "programs" / f"{name}.c").data for name in ("qsort", "crc32")}
    write_file_dataset(root, "progs", programs)
    return root


def weights(logdir: Path) -> dict[str, torch.Tensor]:
    payload = torch.load(logdir / "variables.pt", weights_only=False)
    flat: dict[str, torch.Tensor] = {}
    for part in ("world_model", "behavior"):
        flat.update({f"{part}.{key}": value for key, value in payload["agent"][part].items()})
    return flat


def test_the_trainer_names_its_steps():
    for step in ("resume", "prefill", "pretrain", "train_step", "collect", "evaluate", "test", "checkpoint", "run"):
        assert callable(getattr(Trainer, step)), step


def test_a_seeded_run_gives_the_same_weights_bit_for_bit(tmp_path, data_root):
    first = weights(train_checkpoint(tmp_path / "a", data_root, steps=120))
    second = weights(train_checkpoint(tmp_path / "b", data_root, steps=120))
    assert first.keys() == second.keys()
    assert all(torch.equal(first[key], second[key]) for key in first)
    other = weights(train_checkpoint(tmp_path / "c", data_root, steps=120, extra=["--seed", "1"]))
    assert not all(torch.equal(first[key], other[key]) for key in first)
