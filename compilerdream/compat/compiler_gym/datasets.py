"""`env.datasets` as in CompilerGym: Benchmark, Dataset and Datasets over compilerdream's dataset registry.

Datasets are found under CompilerGym's names (`benchmark://cbench-v1`, `generator://csmith-v0`)
in compilerdream's data root ($COMPILERDREAM_DATA, else ./data); nothing is downloaded on use.
Using a dataset that is not installed raises a LookupError that names the install command.
`benchmark://cbench-v1/crc32` ships with this package, as it did in CompilerGym's wheel.
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import numpy as np

from compilerdream.compiler import datasets as native_datasets
from compilerdream.compiler.benchmarks import Benchmark as _NativeBenchmark
from compilerdream.compiler.benchmarks import resolve_benchmark
from compilerdream.compiler.errors import BenchmarkNotFoundError

from .errors import compilergym_errors, translated

BUNDLED_URIS = {"benchmark://cbench-v1/crc32": "cbench-v1/crc32.bc"}


@dataclass(frozen=True)
class Benchmark(_NativeBenchmark):
    """A program to optimize: `uri` and its bitcode (CompilerGym's Benchmark)."""

    @classmethod
    def from_file(cls, uri, path=None, **kwargs) -> Benchmark:  # type: ignore[override]
        """CompilerGym's argument order `from_file(uri, path)`; `from_file(path)` also works."""
        if path is None:
            uri, path = None, uri
        with compilergym_errors():
            native = _NativeBenchmark.from_file(path, uri=str(uri) if uri is not None else None, **kwargs)
        return cls.wrap(native)

    @classmethod
    def from_file_contents(cls, uri: str, data: bytes) -> Benchmark:
        with compilergym_errors():
            return cls.wrap(_NativeBenchmark.from_bytes(bytes(data), str(uri)))

    @classmethod
    def wrap(cls, benchmark: _NativeBenchmark) -> Benchmark:
        if isinstance(benchmark, cls):
            return benchmark
        return cls(
            uri=benchmark.uri,
            data=benchmark.data,
            source_path=benchmark.source_path,
            frontend_flags=benchmark.frontend_flags,
            metadata=benchmark.metadata,
        )

    def is_validatable(self) -> bool:
        return False  # semantic validation of CompilerGym's runtime data is not available

    def __str__(self) -> str:
        return self.uri


def bundled_benchmark(uri: str) -> Benchmark | None:
    """The benchmarks shipped with the package (cbench-v1/crc32), or None."""
    key = uri.strip()
    if "://" not in key:
        key = "benchmark://" + key
    relative = BUNDLED_URIS.get(key)
    if relative is None:
        return None
    data = (resources.files("compiler_gym") / "data" / relative).read_bytes()
    return Benchmark(uri=key, data=data)


def resolve(spec, data_root: str | os.PathLike | None = None) -> Benchmark:
    """A URI, path or Benchmark as a Benchmark: installed datasets first, then the bundled programs."""
    if isinstance(spec, _NativeBenchmark):
        return Benchmark.wrap(spec)
    spec = str(spec) if isinstance(spec, os.PathLike) else spec
    try:
        with compilergym_errors():
            return Benchmark.wrap(resolve_benchmark(spec, data_root))
    except BenchmarkNotFoundError:
        bundled = bundled_benchmark(spec) if isinstance(spec, str) else None
        if bundled is None:
            raise
        return bundled


class Dataset:
    """A CompilerGym dataset (`name`, `size`, `benchmark_uris()`, `benchmark(uri)`, `random_benchmark()`)."""

    def __init__(self, native: native_datasets.Dataset, data_root: str | os.PathLike | None = None):
        self._native = native
        self._data_root = data_root
        self.name = native.name
        self.description = native.description
        self.deprecated = False
        self.license = ""

    @property
    def protocol(self) -> str:
        return self.name.split("://", 1)[0]

    @property
    def version(self) -> int:
        tail = self.name.rsplit("-v", 1)
        return int(tail[1]) if len(tail) == 2 and tail[1].isdigit() else 0

    @property
    def installed(self) -> bool:
        return bool(self._native.installed)

    def install(self) -> None:
        """Install the dataset (CompilerGym datasets: from the network or the downloads folder)."""
        if self.installed:
            return
        with compilergym_errors():
            key = self._native.short_name
            if key not in native_datasets.compilergym_specs():
                self._native.check_installed()
            native_datasets.install_compilergym(key, self._data_root)

    def uninstall(self) -> None:
        raise NotImplementedError("remove the dataset's folder under the data root to uninstall it")

    @property
    def size(self) -> int:
        return int(self._native.size)

    def __len__(self) -> int:
        return self.size

    def benchmark_uris(self) -> Iterator[str]:
        with compilergym_errors():
            uris = self._native.uris()
        return iter(uris)

    def benchmarks(self) -> Iterator[Benchmark]:
        for uri in self.benchmark_uris():
            yield self.benchmark(uri)

    def __iter__(self) -> Iterator[Benchmark]:
        return self.benchmarks()

    def benchmark(self, uri: str | None = None) -> Benchmark:
        if uri is None:
            return self.random_benchmark()
        if "://" not in uri:
            uri = f"{self.name}/{uri}" if "/" not in uri else uri
        try:
            with compilergym_errors():
                return Benchmark.wrap(self._native.benchmark(uri))
        except BenchmarkNotFoundError:
            bundled = bundled_benchmark(uri)
            if bundled is None:
                raise
            return bundled

    def __getitem__(self, uri: str) -> Benchmark:
        return self.benchmark(uri)

    def random_benchmark(self, random_state: np.random.Generator | None = None) -> Benchmark:
        rng = random_state if random_state is not None else np.random.default_rng()
        with compilergym_errors():
            return Benchmark.wrap(self._native.random_benchmark(rng))

    def __repr__(self) -> str:
        return self.name

    def __str__(self) -> str:
        return self.name


class Datasets:
    """All datasets an environment can use, by CompilerGym name (`datasets["cbench-v1"]`)."""

    def __init__(self, data_root: str | os.PathLike | None = None):
        self._data_root = data_root
        self._native = native_datasets.Datasets(data_root)

    @property
    def root(self) -> Path:
        return self._native.root

    def dataset(self, name: str) -> Dataset:
        try:
            return Dataset(self._native[name], self._data_root)
        except LookupError as exc:  # UnknownNameError is a KeyError
            raise translated(exc) from None

    __getitem__ = dataset

    def datasets(self, with_deprecated: bool = False) -> Iterator[Dataset]:
        """Every dataset we know, installed or not; generators last, as their URIs never end."""
        everything = [Dataset(d, self._data_root) for d in self._native]
        finite = sorted((d for d in everything if not d._native.is_generator), key=lambda d: d.name)
        generators = sorted((d for d in everything if d._native.is_generator), key=lambda d: d.name)
        return iter(finite + generators)

    def __iter__(self) -> Iterator[Dataset]:
        return self.datasets()

    def __contains__(self, name: str) -> bool:
        return name in self._native

    def __len__(self) -> int:
        return sum(1 for _ in self.datasets())

    def installed_datasets(self) -> list[Dataset]:
        return [d for d in self.datasets() if d.installed]

    def benchmark(self, uri: str) -> Benchmark:
        return resolve(uri, self._data_root)

    def benchmark_uris(self, with_deprecated: bool = False) -> Iterator[str]:
        """The URIs of every installed dataset, datasets in name order, generators last (endless)."""
        return itertools.chain.from_iterable(d.benchmark_uris() for d in self.installed_datasets())

    def benchmarks(self, with_deprecated: bool = False) -> Iterator[Benchmark]:
        return (self.benchmark(uri) for uri in self.benchmark_uris())

    def random_benchmark(self, random_state: np.random.Generator | None = None, weighted: bool = False) -> Benchmark:
        """A dataset drawn uniformly among the installed ones (or by size if `weighted`), then a benchmark of it."""
        rng = random_state if random_state is not None else np.random.default_rng()
        candidates = self.installed_datasets()
        if not candidates:
            raise LookupError(
                f"no dataset is installed under {self.root}: install one with `compilerdream datasets install cbench-v1`"
            )
        if weighted:
            sizes = np.array([float(d.size) for d in candidates])
            dataset = candidates[int(rng.choice(len(candidates), p=sizes / sizes.sum()))]
        else:
            dataset = candidates[int(rng.integers(len(candidates)))]
        return dataset.random_benchmark(rng)


def dataset_names(datasets: Iterable[Dataset]) -> list[str]:
    return [d.name for d in datasets]


__all__ = ["Benchmark", "Dataset", "Datasets", "bundled_benchmark", "resolve"]
