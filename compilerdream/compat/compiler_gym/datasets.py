"""`env.datasets` as in CompilerGym: Benchmark, Dataset and Datasets over compilerdream's dataset registry.

Datasets are found under CompilerGym's names (`benchmark://cbench-v1`, `generator://csmith-v0`)
in compilerdream's data root ($COMPILERDREAM_DATA, else ./data), then, for a dataset not installed
there, in the site data directory of a previous CompilerGym install ($COMPILER_GYM_SITE_DATA,
else ~/.local/share/compiler_gym), which is only read; nothing is downloaded on use.
Using a dataset that is installed in neither raises a LookupError that names the install command.
`benchmark://cbench-v1/crc32` ships with this package, as it did in CompilerGym's wheel.
"""

from __future__ import annotations

import getpass
import itertools
import os
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

import numpy as np

from compilerdream.compiler import datasets as native_datasets
from compilerdream.compiler.benchmarks import Benchmark as _NativeBenchmark
from compilerdream.compiler.benchmarks import resolve_benchmark
from compilerdream.compiler.datasets.compilergym import _manifest_lines, _poj104_order, canonical_name, install_command
from compilerdream.compiler.errors import BenchmarkNotFoundError
from compilerdream.compiler.toolchain import DEFAULT_FRONTEND_FLAGS

from .errors import ValidationError, compilergym_errors
from .semantics import as_errors, default_callbacks

BUNDLED_URIS = {"benchmark://cbench-v1/crc32": "cbench-v1/crc32.bc"}


@dataclass(frozen=True)
class Benchmark(_NativeBenchmark):
    """A program to optimize: `uri` and its bitcode (CompilerGym's Benchmark), with its validation
    callbacks: functions of an environment that return ValidationErrors, run by `env.validate()`.
    generator://csmith-v0 benchmarks are made with one that runs the program (semantics.ProgramSemantics)."""

    _validation_callbacks: list = field(default_factory=list, init=False, repr=False, compare=False, hash=False)

    def __post_init__(self) -> None:
        self._validation_callbacks.extend(default_callbacks(self.uri))

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
        """Whether the benchmark has a validation callback (csmith-v0's, or one added)."""
        return bool(self._validation_callbacks)

    def validation_callbacks(self) -> list:
        return self._validation_callbacks

    def add_validation_callback(self, validation_callback: Callable) -> None:
        """Register `validation_callback(env)`, which returns zero or more ValidationErrors (an
        iterable, one, or None); it must not change the environment."""
        self._validation_callbacks.append(validation_callback)

    def ivalidate(self, env) -> Iterator[ValidationError]:
        """The errors of every validation callback on `env`, callback by callback."""
        for callback in self._validation_callbacks:
            yield from as_errors(callback(env))

    def validate(self, env) -> list[ValidationError]:
        return list(self.ivalidate(env))

    def __str__(self) -> str:
        return self.uri


def _uri(spec: str) -> str:
    """`benchmark://cbench-v1/qsort` for `cbench-v1/qsort` (CompilerGym accepts URIs without the scheme)."""
    key = spec.strip()
    return key if "://" in key else "benchmark://" + key


def bundled_benchmark(uri: str) -> Benchmark | None:
    """The benchmarks shipped with the package (cbench-v1/crc32), or None."""
    key = _uri(uri)
    relative = BUNDLED_URIS.get(key)
    if relative is None:
        return None
    data = (resources.files("compiler_gym") / "data" / relative).read_bytes()
    return Benchmark(uri=key, data=data)


# -- datasets installed by CompilerGym ------------------------------------------------------------

#: Where CompilerGym 0.2.5 keeps an installed dataset, below its site data directory:
#: `llvm-v0/<protocol>/<name>/`, holding `.extracted` once the archive is unpacked, the archive's
#: files under `contents/<the archive's folder>/` and the URI list in `manifest-<sha256>.txt`.
SITE_DATA_LLVM = "llvm-v0"
SITE_DATA_MARKER = ".extracted"


def compiler_gym_site_data() -> Path:
    """CompilerGym's site data directory: $COMPILER_GYM_SITE_DATA, else ~/.local/share/compiler_gym
    (/tmp/compiler_gym_<user>/site_data when there is no $HOME), as CompilerGym resolves it."""
    forced = os.environ.get("COMPILER_GYM_SITE_DATA")
    if forced:
        return Path(forced).expanduser()
    if os.environ.get("HOME"):
        return Path("~/.local/share/compiler_gym").expanduser()
    return Path(f"/tmp/compiler_gym_{getpass.getuser()}/site_data")


class SiteDataDataset(native_datasets.CompilerGymDataset):
    """A CompilerGym dataset as a previous CompilerGym install left it in its site data directory.

    Read only: bitcode is read where it lies; source datasets (anghabench, chstone, ...) are
    compiled on each use with our toolchain and flags, as our own install compiles them, and
    the bitcode is not cached (nothing is written there, not even CompilerGym's own .bc cache
    is used, so counts are those of our install of the same dataset).
    """

    def __init__(self, key: str, site_data: str | os.PathLike | None = None):
        super().__init__(key)
        self.site_data = Path(site_data).expanduser() if site_data is not None else compiler_gym_site_data()
        protocol, name = self.name.split("://", 1)
        self.site_path = self.site_data.absolute() / SITE_DATA_LLVM / protocol / name
        self.directory = self.site_path / "contents" / self.spec.get("strip_prefix", "")

    @property
    def installed(self) -> bool:
        return (self.site_path / SITE_DATA_MARKER).is_file() and self.directory.is_dir()

    def check_installed(self) -> None:
        if not self.installed:
            raise native_datasets.DatasetNotInstalledError(self.key, self.site_path, install_command(self.key))

    def _manifest(self) -> Path | None:
        """The manifest CompilerGym downloaded (the published one first), or None to list the files."""
        published = self.site_path / f"manifest-{self.spec.get('manifest_sha256')}.txt"
        if published.is_file():
            return published
        return next(iter(sorted(self.site_path.glob("manifest-*.txt"))), None)

    def _read_suffixes(self) -> list[str]:
        self.check_installed()
        suffixes = _manifest_lines(self._manifest(), self.spec, self.directory)
        return _poj104_order(suffixes) if self.spec.get("reorder") == "poj104" else suffixes

    def benchmark(self, uri: str) -> _NativeBenchmark:
        if self.spec["kind"] in ("bitcode", "opencl"):
            return super().benchmark(uri)  # reads the file (or refuses OpenCL); writes nothing
        self.check_installed()
        path = self.source_path(uri)
        if not path.is_file():
            raise BenchmarkNotFoundError(f"benchmark {uri} not found: no file {path} in CompilerGym's {self.key}")
        flags = (*DEFAULT_FRONTEND_FLAGS, *self.spec.get("compile_flags", ()))
        return _NativeBenchmark(uri=uri, data=self._compile(path), source_path=str(path), frontend_flags=flags)


def _site_copy(name: str) -> SiteDataDataset | None:
    """The copy of CompilerGym dataset `name` that CompilerGym installed, or None."""
    key = canonical_name(name)
    if key is None:
        return None
    site = SiteDataDataset(key)
    return site if site.installed else None


def _load(spec, load: Callable[[], _NativeBenchmark]) -> Benchmark:
    """`load()` from our data root; for a dataset not installed there, CompilerGym's installed copy;
    then the benchmarks bundled with the package. When none has it, the error of the last place
    that has the dataset stands."""
    try:
        with compilergym_errors():
            return Benchmark.wrap(load())
    except BenchmarkNotFoundError as exc:
        if not isinstance(spec, str):
            raise
        error: BenchmarkNotFoundError = exc
        site = _site_copy(exc.dataset) if isinstance(exc, native_datasets.DatasetNotInstalledError) else None
        if site is not None:
            try:
                with compilergym_errors():
                    return Benchmark.wrap(site.benchmark(_uri(spec)))
            except BenchmarkNotFoundError as site_exc:
                error = site_exc
        bundled = bundled_benchmark(spec)
        if bundled is not None:
            return bundled
        if error is exc:
            raise
        raise error from None


def resolve(spec, data_root: str | os.PathLike | None = None) -> Benchmark:
    """A URI, path or Benchmark as a Benchmark: installed datasets first (ours, then CompilerGym's),
    then the bundled programs."""
    if isinstance(spec, _NativeBenchmark):
        return Benchmark.wrap(spec)
    spec = str(spec) if isinstance(spec, os.PathLike) else spec
    return _load(spec, lambda: resolve_benchmark(spec, data_root))


class Dataset:
    """A CompilerGym dataset (`name`, `size`, `benchmark_uris()`, `benchmark(uri)`, `random_benchmark()`)."""

    def __init__(self, native: native_datasets.Dataset, data_root: str | os.PathLike | None = None):
        self._native = native
        self._data_root = data_root
        self._site: SiteDataDataset | None = None
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
    def _source(self) -> native_datasets.Dataset:
        """Ours when installed under our data root, else CompilerGym's installed copy, else ours (not installed)."""
        native = self._native
        if not isinstance(native, native_datasets.CompilerGymDataset) or native.installed:
            return native
        if self._site is None or self._site.site_data != compiler_gym_site_data():
            self._site = SiteDataDataset(native.key)
        return self._site if self._site.installed else native

    @property
    def installed(self) -> bool:
        return bool(self._source.installed)

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
        return int(self._source.size)

    def __len__(self) -> int:
        return self.size

    def benchmark_uris(self) -> Iterator[str]:
        with compilergym_errors():
            uris = self._source.uris()
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
        source = self._source
        return _load(uri, lambda: source.benchmark(uri))

    def __getitem__(self, uri: str) -> Benchmark:
        return self.benchmark(uri)

    def random_benchmark(self, random_state: np.random.Generator | None = None) -> Benchmark:
        rng = random_state if random_state is not None else np.random.default_rng()
        with compilergym_errors():
            return Benchmark.wrap(self._source.random_benchmark(rng))

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
        with compilergym_errors():  # an unknown name is our UnknownNameError, a KeyError (so a LookupError)
            return Dataset(self._native[name], self._data_root)

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
        """Whether dataset `name` is installed (ours, or CompilerGym's copy)."""
        try:
            return self.dataset(name).installed
        except LookupError:
            return False

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


__all__ = [
    "Benchmark",
    "Dataset",
    "Datasets",
    "SiteDataDataset",
    "bundled_benchmark",
    "compiler_gym_site_data",
    "resolve",
]
