"""The Dataset interface (CompilerGym's vocabulary) and the not-installed error."""

from __future__ import annotations

import abc
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path

from ..benchmarks import Benchmark
from ..errors import BenchmarkNotFoundError

#: Generator seeds are uint32 values below this bound (CompilerGym's UINT_MAX).
UINT_MAX = 2**32 - 1

MODES = ("train", "val", "test")


class DatasetNotInstalledError(BenchmarkNotFoundError):
    """A dataset that is known but not present under the data root."""

    def __init__(self, dataset: str, directory: str | Path, command: str):
        self.dataset = dataset
        self.directory = str(directory)
        self.command = command
        super().__init__(
            f"dataset '{dataset}' is not installed: looked in {directory}. Install or build it with: {command}"
        )


class SeedUris(Sequence):
    """The URI list of a generator, `generator://name/<seed>` for seeds 0..UINT_MAX-1, computed lazily."""

    def __init__(self, prefix: str, query: str = "", start: int = 0, stop: int = UINT_MAX):
        self.prefix, self.query, self.start, self.stop = prefix, query, start, stop

    def __len__(self) -> int:
        return max(0, self.stop - self.start)

    def __getitem__(self, index):  # type: ignore[override]
        if isinstance(index, slice):
            lo, hi, step = index.indices(len(self))
            if step != 1:
                raise ValueError("SeedUris supports contiguous slices only")
            return SeedUris(self.prefix, self.query, self.start + lo, self.start + max(lo, hi))
        if index < 0:
            index += len(self)
        if not 0 <= index < len(self):
            raise IndexError(f"seed index {index} out of range [0, {len(self)})")
        seed = self.start + index
        return f"{self.prefix}/{seed}" + (f"?{self.query}" if self.query else "")


class Dataset(abc.ABC):
    """A named collection of benchmarks, addressed by URIs that start with `name + "/"`.

    Subclasses provide `uris()` (ordered; the order defines the splits) and
    `benchmark(uri)`. `mode_uris(mode)` lets a dataset ship its own per-split lists
    (metadata_small_train.json ...), which then replace the index windows.
    """

    #: True for csmith/llvm-stress: infinitely many programs, one per seed.
    is_generator: bool = False
    #: Per-dataset split windows (mode -> (start, total)); None means the reference's defaults.
    windows: Mapping[str, tuple[int, int]] | None = None

    def __init__(self, name: str, description: str = ""):
        self.name = name
        self.description = description

    # -- identity -----------------------------------------------------------------
    @property
    def short_name(self) -> str:
        """`cbench-v1` for `benchmark://cbench-v1`; the folder name for file datasets."""
        return self.name.split("://", 1)[-1].rstrip("/").rsplit("/", 1)[-1]

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.name!r})"

    # -- installation ---------------------------------------------------------------
    @property
    def installed(self) -> bool:
        return True

    def check_installed(self) -> None:
        """Raise DatasetNotInstalledError (naming the folder and the command) if absent."""
        return None  # always present unless a subclass says otherwise

    # -- contents -------------------------------------------------------------------
    @abc.abstractmethod
    def uris(self) -> Sequence[str]:
        """All benchmark URIs in the dataset's fixed order."""

    @abc.abstractmethod
    def benchmark(self, uri: str) -> Benchmark:
        """Load one benchmark by URI (raises BenchmarkNotFoundError if it is not in the dataset)."""

    def mode_uris(self, mode: str) -> Sequence[str] | None:
        """A dataset-provided list for `mode` (train/val/test), or None to use index windows."""
        return None

    @property
    def size(self) -> int:
        """Number of benchmarks (UINT_MAX for generators)."""
        return len(self.uris())

    def __len__(self) -> int:
        return self.size

    def benchmark_uris(self) -> Iterator[str]:
        return iter(self.uris())

    def benchmark_at(self, index: int) -> Benchmark:
        return self.benchmark(self.uris()[index])

    def random_benchmark(self, rng) -> Benchmark:
        """A benchmark drawn uniformly (numpy Generator/RandomState or random.Random)."""
        from .splits import draw_index

        return self.benchmark_at(draw_index(rng, self.size))

    def owns(self, uri: str) -> bool:
        """Whether `uri` names a benchmark of this dataset (by prefix)."""
        return uri.startswith(self.name.rstrip("/") + "/")
