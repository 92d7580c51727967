"""Deterministic train/val/test splits and seeded sampling (REFERENCE §2.6)."""

from __future__ import annotations

import itertools
import random
from collections.abc import Iterator, Mapping, Sequence

from .base import MODES, Dataset

#: The reference's windows, per dataset: (start, total); total -1 means "to the end".
DEFAULT_WINDOWS: dict[str, tuple[int, int]] = {"test": (0, 50), "val": (50, 50), "train": (100, -1)}
#: Datasets whose windows cover everything in every mode (cbench22, coreset lists).
ALL_WINDOWS: dict[str, tuple[int, int]] = {mode: (0, -1) for mode in MODES}
#: Weight a generator member gets when sampling a chained split (its window is ~2^32 seeds).
GENERATOR_CHAIN_WEIGHT = 10_000

_MODE_ALIASES = {"valid": "val", "validation": "val", "eval": "val"}


def normalize_mode(mode: str) -> str:
    mode = _MODE_ALIASES.get(mode, mode)
    if mode not in MODES:
        raise ValueError(f"unknown split mode '{mode}': use one of {', '.join(MODES)}")
    return mode


def clip_window(start: int, total: int, size: int) -> tuple[int, int]:
    """(start, length) of a window clipped to a dataset of `size`, as the reference does.

    `total == -1` means "from start to the end"; if start is past the end the window
    becomes the whole dataset. A window that runs past the end is shifted back so
    that it ends at the last element (cbench's 23 benchmarks fill every split).
    """
    if size <= 0:
        return 0, 0
    if total < 0:
        if start >= size:
            return 0, size
        return start, size - start
    if start + total > size:
        start = max(0, size - total)
    return start, min(total, size - start)


def draw_index(rng, n: int) -> int:
    """A uniform index in [0, n) from a numpy Generator, a numpy RandomState, random.Random or an int seed."""
    if n <= 0:
        raise ValueError("cannot sample from an empty split")
    if isinstance(rng, int):
        rng = random.Random(rng)
    if hasattr(rng, "integers"):  # numpy.random.Generator
        return int(rng.integers(0, n))
    if hasattr(rng, "randint") and hasattr(rng, "random_sample"):  # numpy.random.RandomState
        return int(rng.randint(0, n)) if n < 2**31 else int(rng.random_sample() * n)
    if hasattr(rng, "randrange"):  # random.Random
        return int(rng.randrange(n))
    raise TypeError(f"rng must be a numpy Generator/RandomState, random.Random or an int, not {type(rng).__name__}")


def _draw_float(rng) -> float:
    if hasattr(rng, "random"):
        return float(rng.random())
    return float(rng.random_sample())


class Split:
    """The benchmarks of one dataset in one mode: `len()`, indexing, ordered `cycle()`, `sample(rng)`.

    Iterating a Split goes through it once in order; `cycle()` repeats forever, which is
    how the reference walks val/test. `sample(rng)` draws uniformly with replacement,
    which is how the reference trains.
    """

    def __init__(self, dataset: Dataset | None, mode: str, uris: Sequence[str]):
        self.dataset = dataset
        self.mode = mode
        self._uris = uris

    @property
    def name(self) -> str:
        return self.dataset.name if self.dataset is not None else "<custom>"

    def __len__(self) -> int:
        return len(self._uris)

    def __getitem__(self, index: int) -> str:
        return self._uris[index]

    def __iter__(self) -> Iterator[str]:
        for i in range(len(self)):
            yield self[i]

    def cycle(self) -> Iterator[str]:
        """The URIs in order, forever (val/test episodes)."""
        if len(self) == 0:
            raise ValueError(f"split '{self.mode}' of {self.name} is empty")
        return itertools.chain.from_iterable(itertools.repeat(self))

    def sample(self, rng) -> str:
        """One URI drawn uniformly with replacement (training)."""
        return self[draw_index(rng, len(self))]

    def benchmark(self, index_or_uri: int | str):
        """Load a benchmark of this split by position or URI."""
        uri = self[index_or_uri] if isinstance(index_or_uri, int) else index_or_uri
        if self.dataset is None:
            from .registry import resolve_benchmark

            return resolve_benchmark(uri)
        return self.dataset.benchmark(uri)

    def __repr__(self) -> str:
        return f"Split({self.name!r}, mode={self.mode!r}, len={len(self)})"


class ChainedSplit(Split):
    """Members' splits one after the other (suball, all, ...): indexing walks the chain.

    `sample(rng)` is uniform over the chained benchmarks (each member weighted by its
    length; a generator member counts as `generator_weight` benchmarks).
    """

    def __init__(
        self, dataset: Dataset | None, mode: str, parts: Sequence[Split], generator_weight: int = GENERATOR_CHAIN_WEIGHT
    ):
        self.parts = list(parts)
        self.generator_weight = generator_weight
        self._offsets = list(itertools.accumulate(len(p) for p in self.parts))
        super().__init__(dataset, mode, uris=())

    def __len__(self) -> int:
        return self._offsets[-1] if self._offsets else 0

    def __getitem__(self, index: int) -> str:
        n = len(self)
        if index < 0:
            index += n
        if not 0 <= index < n:
            raise IndexError(f"index {index} out of range for a split of {n}")
        import bisect

        k = bisect.bisect_right(self._offsets, index)
        base = self._offsets[k - 1] if k else 0
        return self.parts[k][index - base]

    def benchmark(self, index_or_uri: int | str):
        uri = self[index_or_uri] if isinstance(index_or_uri, int) else index_or_uri
        for part in self.parts:
            if part.dataset is not None and part.dataset.owns(uri):
                return part.dataset.benchmark(uri)
        return super().benchmark(uri)

    def sample(self, rng) -> str:
        weights = []
        for part in self.parts:
            is_gen = part.dataset is not None and part.dataset.is_generator
            weights.append(min(len(part), self.generator_weight) if is_gen else len(part))
        total = sum(weights)
        if total <= 0:
            raise ValueError(f"split '{self.mode}' of {self.name} is empty")
        if isinstance(rng, int):
            rng = random.Random(rng)
        # Pick the member by weight with one draw, then a uniform element of it.
        point = draw_index(rng, total) if total < 2**62 else int(_draw_float(rng) * total)
        for part, weight in zip(self.parts, weights):
            if point < weight:
                return part.sample(rng)
            point -= weight
        return self.parts[-1].sample(rng)  # unreachable; keeps type checkers calm


def split(
    dataset: Dataset,
    mode: str,
    windows: Mapping[str, tuple[int, int]] | None = None,
    limits: Mapping[str, int | None] | None = None,
) -> Split:
    """The `mode` split of `dataset` (train/val/test), following REFERENCE §2.6.

    `windows` overrides the per-mode (start, total) windows for index-based datasets;
    `limits` caps dataset-provided per-mode lists (codecontest: val 50, test 100).
    """
    mode = normalize_mode(mode)
    members = getattr(dataset, "members", None)
    if members is not None:  # a chained (multi-dataset) name: per-member windows, then chain
        parts = [split(member, mode, windows=windows, limits=limits) for member in members]
        return ChainedSplit(dataset, mode, parts)
    dataset.check_installed()
    listed = dataset.mode_uris(mode)
    if listed is not None:
        limit = (limits or {}).get(mode, getattr(dataset, "mode_limits", {}).get(mode))
        return Split(dataset, mode, listed[:limit] if limit is not None else listed)
    table = dict(DEFAULT_WINDOWS)
    table.update(dataset.windows or {})
    table.update(windows or {})
    start, total = table[mode]
    uris = dataset.uris()
    start, length = clip_window(start, total, len(uris))
    return Split(dataset, mode, uris[start : start + length])
