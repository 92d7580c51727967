"""Wrappers that choose the benchmark of each episode: in order once, cycling, or at random."""

from __future__ import annotations

import itertools
from collections.abc import Iterable

import numpy as np

from .core import CompilerEnvWrapper


class IterateOverBenchmarks(CompilerEnvWrapper):
    """Each reset() takes the next benchmark of `benchmarks`; after the last, reset() raises StopIteration.

    Forks share the iterator when `fork_shares_iterator` is True; otherwise a fork's reset() is an error.
    """

    def __init__(self, env, benchmarks: Iterable, fork_shares_iterator: bool = False):
        super().__init__(env)
        self.benchmarks = iter(benchmarks)
        self.fork_shares_iterator = fork_shares_iterator

    def reset(self, benchmark=None, *args, **kwargs):
        if benchmark is not None:
            raise TypeError(f"{type(self).__name__} chooses the benchmark: reset() takes none")
        return self.env.reset(next(self.benchmarks), *args, **kwargs)

    def fork(self) -> IterateOverBenchmarks:
        """A fork that takes its benchmarks from the same iterator (CycleOverBenchmarks forks this way too)."""
        if not self.fork_shares_iterator:
            raise TypeError(
                "IterateOverBenchmarks cannot fork without sharing its iterator: pass fork_shares_iterator=True"
            )
        other = type(self).__new__(type(self))
        other.env, other.benchmarks, other.fork_shares_iterator = self.env.fork(), self.benchmarks, True
        return other


class CycleOverBenchmarks(IterateOverBenchmarks):
    """Each reset() takes the next benchmark of `benchmarks`, starting again after the last (forever)."""

    def __init__(self, env, benchmarks: Iterable):
        CompilerEnvWrapper.__init__(self, env)
        self.benchmarks = itertools.cycle(benchmarks)
        self.fork_shares_iterator = True


class RandomOrderBenchmarks(CompilerEnvWrapper):
    """Each reset() takes a benchmark drawn uniformly, with replacement, from `benchmarks` (a finite collection).

    `rng` is a numpy Generator; pass a seeded one for a reproducible order.
    """

    def __init__(self, env, benchmarks: Iterable, rng: np.random.Generator | None = None):
        super().__init__(env)
        self.benchmarks = tuple(benchmarks)
        if not self.benchmarks:
            raise ValueError("RandomOrderBenchmarks: no benchmarks given")
        self.rng = rng if rng is not None else np.random.default_rng()

    def reset(self, benchmark=None, *args, **kwargs):
        if benchmark is not None:
            raise TypeError(f"{type(self).__name__} chooses the benchmark: reset() takes none")
        chosen = self.benchmarks[int(self.rng.integers(len(self.benchmarks)))]
        return self.env.reset(chosen, *args, **kwargs)

    def fork(self) -> RandomOrderBenchmarks:
        return RandomOrderBenchmarks(self.env.fork(), self.benchmarks, rng=self.rng)
