"""The dataset registry (`env.datasets`), `--task compilergym_<name>` names (REFERENCE §1.2) and URI resolution."""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from pathlib import Path

from ..benchmarks import Benchmark
from ..errors import BenchmarkNotFoundError, UnknownNameError
from .base import Dataset, DatasetNotInstalledError
from .compilergym import INSTALL_MARKER, CompilerGymDataset, canonical_name, compilergym_specs
from .composite import ChainedDataset, ListDataset
from .files import CODECONTEST_LIMITS, CODECONTEST_SPLIT_FILES, MANIFEST_FILE, METADATA_FILE, FileDataset
from .generators import CsmithDataset, GeneratorDataset, LlvmStressDataset
from .paths import data_root as resolve_data_root

GENERATORS = {"csmith-v0": CsmithDataset, "llvm-stress-v0": LlvmStressDataset}

#: Single-dataset task names -> dataset (REFERENCE §1.2).
TASK_DATASETS: dict[str, str] = {
    "csmith": "csmith-v0",
    "llvm_stress": "llvm-stress-v0",
    "github": "github-v0",
    "tensorflow": "tensorflow-v0",
    "linux": "linux-v0",
    "poj": "poj104-v1",
    "cbench": "cbench-v1",
    "anghabench": "anghabench-v1",
    "blas": "blas-v0",
    "chstone": "chstone-v0",
    "clgen": "clgen-v0",
    "mibench": "mibench-v1",
    "npb": "npb-v0",
    "opencv": "opencv-v0",
    "jotaibench": "jotaibench-v0",
}
SUBALL = ("blas-v0", "cbench-v1", "chstone-v0", "linux-v0", "mibench-v1", "npb-v0", "opencv-v0", "tensorflow-v0")
#: Multi-dataset task names -> members, in the reference's order.
TASK_CHAINS: dict[str, tuple[str, ...]] = {
    "suball": SUBALL,
    "all": (
        "anghabench-v1", "blas-v0", "cbench-v1", "chstone-v0", "clgen-v0", "csmith-v0", "github-v0",
        "linux-v0", "llvm-stress-v0", "mibench-v1", "npb-v0", "opencv-v0", "poj104-v1", "tensorflow-v0",
    ),
    "csmith_github_tensorflow": ("csmith-v0", "github-v0", "tensorflow-v0"),
}  # fmt: skip
#: suball_extend's extra folder (the reference's spelling), then the corrected one.
SUBALL_EXTEND_DIRS = ("fromai_and_angha_testset", "formai_and_angha_testset")
CBENCH_22 = (
    "adpcm", "bitcount", "blowfish", "bzip2", "crc32", "dijkstra", "gsm", "ispell", "jpeg-c", "jpeg-d", "lame",
    "patricia", "qsort", "rijndael", "sha", "stringsearch", "stringsearch2", "susan", "tiff2bw", "tiff2rgba",
    "tiffdither", "tiffmedian",
)  # fmt: skip
CORESET_LISTS = {
    "coreset_nvp_test": "coreset_nvp_test_4683.txt",
    "coreset_nvp_zeroshot": "coreset_nvp_zeroshot_184.txt",
}
_CORESET_DIR = Path(__file__).resolve().parent.parent / "data"
_CDREAM_ZIP = "compilerdream datasets install compilerdream-data --from FILE.zip"
FILE_DATASET_COMMANDS = {
    "default": "compilerdream datasets build-default",
    "codecontest": f"{_CDREAM_ZIP} (or compilerdream datasets import-codecontests PARQUET... --out DIR)",
    "formai": f"{_CDREAM_ZIP} (or compilerdream datasets import-formai FILE --out DIR)",
    "angha": _CDREAM_ZIP,
}


def task_names() -> list[str]:
    """Every `compilergym_<name>` dataset name accepted (file_dataset_<name> aside)."""
    return sorted([*TASK_DATASETS, *TASK_CHAINS, "suball_extend", "cbench22", *CORESET_LISTS])


class Datasets:
    """All datasets reachable from one data root: `datasets["cbench-v1"]`, `datasets.benchmark(uri)`.

    Generators are always available; CompilerGym datasets are listed whether or not
    they are installed (using one that is not raises DatasetNotInstalledError);
    any folder under the data root is a file dataset.
    """

    def __init__(
        self,
        data_root: str | os.PathLike | None = None,
        generator_options: Mapping[str, Mapping[str, int]] | None = None,
    ):
        self.root = resolve_data_root(data_root)
        self._generator_options = {k: dict(v) for k, v in (generator_options or {}).items()}
        self._cache: dict[str, Dataset] = {}

    # -- lookup -----------------------------------------------------------------------
    def _generator(self, key: str) -> GeneratorDataset:
        if key not in self._cache:
            self._cache[key] = GENERATORS[key](options=self._generator_options.get(key))
        return self._cache[key]  # type: ignore[return-value]

    def _compilergym(self, key: str) -> CompilerGymDataset:
        if key not in self._cache:
            self._cache[key] = CompilerGymDataset(key, self.root)
        return self._cache[key]  # type: ignore[return-value]

    def file_dataset(self, name: str) -> FileDataset:
        """`<data_root>/<name>` as a file dataset (codecontest gets its per-mode lists and caps)."""
        key = "file:" + name
        if key not in self._cache:
            directory = self.root / name
            command = FILE_DATASET_COMMANDS.get(name, f"compilerdream datasets build SOURCES... --out {directory}")
            if name == "codecontest":
                dataset = FileDataset(
                    directory,
                    split_files=CODECONTEST_SPLIT_FILES,
                    mode_limits=CODECONTEST_LIMITS,
                    install_command=command,
                )
            else:
                dataset = FileDataset(directory, install_command=command)
            self._cache[key] = dataset
        return self._cache[key]  # type: ignore[return-value]

    def __getitem__(self, name: str) -> Dataset:
        text = name.strip().rstrip("/")
        if text.startswith("file://"):
            return FileDataset(text[len("file://") :])
        key = text.split("://", 1)[-1]
        if key in GENERATORS:
            return self._generator(key)
        canonical = canonical_name(key)
        if canonical is not None and ("://" not in text or text.startswith("benchmark://")):
            return self._compilergym(canonical)
        if "://" not in text and (key in task_names() or key.startswith("file_dataset_")):
            return self.task(key)
        if "/" not in key and key:
            return self.file_dataset(key)
        raise UnknownNameError(
            f"unknown dataset '{name}': use a CompilerGym name (cbench-v1), a generator, a task name or a folder under {self.root}"
        )

    def __contains__(self, name: str) -> bool:
        try:
            return self[name].installed
        except (UnknownNameError, BenchmarkNotFoundError):
            return False

    def __iter__(self) -> Iterator[Dataset]:
        for key in GENERATORS:
            yield self._generator(key)
        for key in compilergym_specs():
            yield self._compilergym(key)
        yield from self.local_datasets()

    def local_datasets(self) -> list[FileDataset]:
        """Folders under the data root that look like file datasets (metadata, manifest or .bc files)."""
        if not self.root.is_dir():
            return []
        found = []
        for child in sorted(self.root.iterdir()):
            if (
                not child.is_dir()
                or child.name.startswith(".")
                or child.name in compilergym_specs()
                or (child / INSTALL_MARKER).exists()
            ):
                continue
            if (child / METADATA_FILE).is_file() or (child / MANIFEST_FILE).is_file() or any(child.glob("*.bc")):
                found.append(self.file_dataset(child.name))
        return found

    def dataset_for_uri(self, uri: str) -> Dataset:
        """The dataset a benchmark URI belongs to."""
        if uri.startswith("file://"):
            return FileDataset(os.path.dirname(uri[len("file://") :]))
        scheme, _, rest = uri.partition("://")
        if scheme not in ("benchmark", "generator") or not rest:
            raise UnknownNameError(f"unknown benchmark URI '{uri}': use benchmark://, generator:// or file://")
        return self[f"{scheme}://{rest.split('/', 1)[0]}"]

    def benchmark(self, uri: str) -> Benchmark:
        """Load the benchmark named by a `benchmark://`, `generator://` or `file://` URI."""
        if uri.startswith("file://"):
            return Benchmark.from_file(uri[len("file://") :], uri=uri)
        if "://" not in uri:  # CompilerGym accepts `cbench-v1/qsort`
            uri = "benchmark://" + uri
        dataset = self.dataset_for_uri(uri)
        if isinstance(dataset, FileDataset):  # benchmark://<folder>/<relative path> for local datasets
            dataset.check_installed()
            rel = uri.split("://", 1)[1].split("/", 1)[1] if "/" in uri.split("://", 1)[1] else ""
            if not rel or ".." in Path(rel).parts:
                raise BenchmarkNotFoundError(f"malformed benchmark URI '{uri}'")
            path = dataset.directory / (rel if rel.endswith(".bc") else rel + ".bc")
            if not path.is_file():
                raise BenchmarkNotFoundError(f"benchmark {uri} not found: no file {path}")
            return Benchmark.from_file(path, uri=uri, frontend_flags=dataset.frontend_flags())
        return dataset.benchmark(uri)

    resolve_benchmark = benchmark

    # -- task names -------------------------------------------------------------------
    def task(self, name: str) -> Dataset:
        """The dataset for `--task compilergym_<name>` (the `compilergym_` prefix is optional)."""
        key = name[len("compilergym_") :] if name.startswith("compilergym_") else name
        if key.startswith("file_dataset_"):
            return self.file_dataset(key[len("file_dataset_") :])
        if key in TASK_DATASETS:
            return self[TASK_DATASETS[key]]
        if key in TASK_CHAINS:
            return ChainedDataset(key, [self[m] for m in TASK_CHAINS[key]])
        if key == "suball_extend":
            extra = next((d for d in SUBALL_EXTEND_DIRS if (self.root / d).is_dir()), SUBALL_EXTEND_DIRS[0])
            return ChainedDataset(key, [*(self[m] for m in SUBALL), self.file_dataset(extra)])
        if key == "cbench22":
            uris = [f"benchmark://cbench-v1/{b}" for b in CBENCH_22]
            return ListDataset(key, uris, self.benchmark, self.dataset_for_uri, "cbench-v1 without ghostscript")
        if key in CORESET_LISTS:
            lines = (_CORESET_DIR / CORESET_LISTS[key]).read_text(encoding="utf-8").splitlines()
            return ListDataset(key, [ln.strip() for ln in lines if ln.strip()], self.benchmark, self.dataset_for_uri)
        raise UnknownNameError(
            f"unknown task dataset '{name}': use one of {', '.join(task_names())} or file_dataset_<folder>"
        )


_REGISTRIES: dict[str, Datasets] = {}


def _registry(data_root: str | os.PathLike | None) -> Datasets:
    root = str(resolve_data_root(data_root))
    if root not in _REGISTRIES:
        _REGISTRIES[root] = Datasets(root)
    return _REGISTRIES[root]


def resolve_benchmark(uri: str, data_root: str | os.PathLike | None = None) -> Benchmark:
    """Load a `benchmark://` or `generator://` URI (the seam compilerdream.compiler.benchmarks calls)."""
    return _registry(data_root).benchmark(uri)


def dataset_for_task(name: str, data_root: str | os.PathLike | None = None, require_installed: bool = True) -> Dataset:
    """The dataset of `--task compilergym_<name>`; raises DatasetNotInstalledError if it is missing."""
    dataset = Datasets(data_root).task(name)
    if require_installed:
        dataset.check_installed()
    return dataset


__all__ = ["Datasets", "DatasetNotInstalledError", "dataset_for_task", "resolve_benchmark", "task_names"]
