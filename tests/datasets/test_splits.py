"""Split windows (REFERENCE §2.6), chained splits and seeded sampling."""

from __future__ import annotations

import random

import numpy as np
import pytest

from compilerdream.compiler.datasets import ChainedDataset, Dataset, SeedUris, clip_window, split
from compilerdream.compiler.datasets.base import UINT_MAX
from compilerdream.compiler.datasets.splits import ALL_WINDOWS, ChainedSplit, Split


class ListOnly(Dataset):
    """A fixed dataset of `n` fake URIs (no files needed for split logic)."""

    def __init__(self, name: str, n: int, windows=None):
        super().__init__(f"benchmark://{name}")
        self._uris = [f"benchmark://{name}/{i}" for i in range(n)]
        if windows is not None:
            self.windows = windows

    def uris(self):
        return self._uris

    def benchmark(self, uri):  # pragma: no cover - not needed here
        raise NotImplementedError


class FakeGenerator(ListOnly):
    is_generator = True

    def uris(self):
        return SeedUris(self.name)


@pytest.mark.parametrize(
    "start,total,size,expected",
    [
        (0, 50, 23, (0, 23)),  # cbench test: all 23
        (50, 50, 23, (0, 23)),  # cbench val: shifted to the end -> all 23
        (100, -1, 23, (0, 23)),  # cbench train: start past the end -> all 23
        (0, 50, 122, (0, 50)),  # npb test
        (50, 50, 122, (50, 50)),  # npb val
        (100, -1, 122, (100, 22)),  # npb train: the remaining 22
        (50, 50, 70, (20, 50)),  # val runs past the end: shifted back
        (0, 50, 0, (0, 0)),
    ],
)
def test_clip_window_matches_reference(start, total, size, expected):
    assert clip_window(start, total, size) == expected


def test_cbench_like_dataset_has_all_benchmarks_in_every_split():
    cbench = ListOnly("cbench-v1", 23)
    for mode in ("train", "val", "test"):
        assert list(split(cbench, mode)) == cbench.uris()


def test_default_windows_and_overrides():
    npb = ListOnly("npb-v0", 122)
    assert split(npb, "test")[0].endswith("/0") and len(split(npb, "test")) == 50
    assert split(npb, "val")[0].endswith("/50")
    assert len(split(npb, "train")) == 22 and split(npb, "train")[0].endswith("/100")
    custom = split(npb, "test", windows={"test": (10, 5)})
    assert [u.rsplit("/", 1)[1] for u in custom] == ["10", "11", "12", "13", "14"]
    assert len(split(ListOnly("x", 30, windows=ALL_WINDOWS), "val")) == 30
    assert len(split(npb, "valid")) == 50  # reference spelling accepted
    with pytest.raises(ValueError, match="unknown split mode"):
        split(npb, "dev")


def test_generator_windows_are_seed_ranges():
    gen = FakeGenerator("csmith-v0", 0)
    test = split(gen, "test")
    assert len(test) == 50 and test[0] == "benchmark://csmith-v0/0" and test[-1] == "benchmark://csmith-v0/49"
    train = split(gen, "train")
    assert len(train) == UINT_MAX - 100 and train[0].endswith("/100")


def test_suball_like_chain_concatenates_member_windows():
    sizes = {
        "blas-v0": 300,
        "cbench-v1": 23,
        "chstone-v0": 12,
        "linux-v0": 13894,
        "mibench-v1": 40,
        "npb-v0": 122,
        "opencv-v0": 442,
        "tensorflow-v0": 1985,
    }
    chain = ChainedDataset("suball", [ListOnly(n, s) for n, s in sizes.items()])
    test = split(chain, "test")
    assert isinstance(test, ChainedSplit)
    assert len(test) == 325  # the reference's suball test split (config default test_eps is 324)
    assert (
        test[0] == "benchmark://blas-v0/0"
        and test[50] == "benchmark://cbench-v1/0"
        and test[-1] == "benchmark://tensorflow-v0/49"
    )
    assert list(test)[73] == "benchmark://chstone-v0/0"
    with pytest.raises(IndexError):
        test[325]


def test_cycle_repeats_in_order():
    s = Split(None, "test", ["a", "b", "c"])
    it = s.cycle()
    assert [next(it) for _ in range(7)] == ["a", "b", "c", "a", "b", "c", "a"]
    with pytest.raises(ValueError):
        Split(None, "test", []).cycle()


@pytest.mark.parametrize(
    "make_rng", [lambda s: np.random.default_rng(s), lambda s: np.random.RandomState(s), lambda s: random.Random(s)]
)
def test_sampling_is_deterministic_and_covers_the_split(make_rng):
    s = split(ListOnly("npb-v0", 122), "train")
    rng = make_rng(3)
    first = [s.sample(rng) for _ in range(40)]
    rng = make_rng(3)
    second = [s.sample(rng) for _ in range(40)]
    assert first == second
    assert set(first) <= set(s) and len(set(first)) > 10


def test_chained_training_samples_uniformly_over_benchmarks():
    chain = ChainedDataset("pair", [ListOnly("a", 10), ListOnly("b", 30)])
    train = split(chain, "train")  # both smaller than 100: every benchmark is in train
    rng = np.random.default_rng(0)
    draws = [train.sample(rng) for _ in range(4000)]
    share_b = sum(d.startswith("benchmark://b/") for d in draws) / len(draws)
    assert 0.70 < share_b < 0.80  # 30 of 40 benchmarks
    again = [train.sample(np.random.default_rng(0)) for _ in range(3)]
    assert again == [train.sample(np.random.default_rng(0)) for _ in range(3)]


def test_chained_sampling_gives_generators_a_finite_weight():
    chain = ChainedDataset("mix", [ListOnly("a", 100 + 50), FakeGenerator("csmith-v0", 0)])
    train = split(chain, "train")
    rng = np.random.default_rng(1)
    draws = [train.sample(rng) for _ in range(2000)]
    assert any(d.startswith("benchmark://a/") for d in draws)
    assert any(d.startswith("benchmark://csmith-v0/") for d in draws)
