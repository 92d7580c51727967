"""File datasets in the reference layout: a folder of .bc files plus metadata JSON lists (REFERENCE §2.6)."""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

from ..benchmarks import Benchmark
from ..errors import BenchmarkNotFoundError, MalformedInputError
from ..toolchain import DEFAULT_FRONTEND_FLAGS
from .base import MODES, Dataset, DatasetNotInstalledError
from .paths import atomic_write_text

logger = logging.getLogger(__name__)

METADATA_FILE = "metadata.json"
MANIFEST_FILE = "manifest.json"
#: Per-split lists written by our builder (train/val/test -> file name).
SPLIT_FILES: dict[str, str] = {
    "train": "metadata_train.json",
    "val": "metadata_valid.json",
    "test": "metadata_test.json",
}
#: The CompilerDream codecontest layout: per-mode lists and the reference's per-mode caps.
CODECONTEST_SPLIT_FILES: dict[str, str] = {
    "train": "metadata_small_train.json",
    "val": "metadata_small_valid.json",
    "test": "metadata_small_test.json",
}
CODECONTEST_LIMITS: dict[str, int | None] = {"train": None, "val": 50, "test": 100}


def read_metadata(path: str | os.PathLike) -> list[str]:
    """Names listed in a metadata JSON file; entries that are not .bc files are skipped with a warning."""
    p = Path(path)
    try:
        entries = json.loads(p.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise MalformedInputError(f"cannot read metadata list {p}: {exc}") from exc
    if not isinstance(entries, list):
        raise MalformedInputError(
            f"metadata file {p} must hold a JSON list of file names, not {type(entries).__name__}"
        )
    names, skipped = [], []
    for entry in entries:
        if not isinstance(entry, str) or not entry.endswith(".bc"):
            skipped.append(entry)
        elif os.path.isabs(entry) or ".." in Path(entry).parts:
            skipped.append(entry)
        else:
            names.append(entry)
    if skipped:
        logger.warning(
            "%s: skipped %d entries that are not relative .bc names (first: %r)", p, len(skipped), skipped[0]
        )
    return names


def write_metadata(path: str | os.PathLike, names: Iterable[str]) -> None:
    """Write a metadata list (JSON list of relative names) atomically."""
    atomic_write_text(path, json.dumps(list(names), indent=0) + "\n")


def find_metadata(directory: str | os.PathLike, filename: str) -> Path | None:
    """`filename` in `directory`, else in its nearest parent that has it (the reference's search)."""
    here = Path(directory).absolute()
    for candidate_dir in (here, *here.parents):
        candidate = candidate_dir / filename
        if candidate.is_file():
            return candidate
    return None


def walk_bitcode(directory: str | os.PathLike) -> list[str]:
    """Relative paths of every .bc file under `directory` (hidden folders skipped), sorted."""
    root = Path(directory)
    found = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        for filename in filenames:
            if filename.endswith(".bc") and not filename.startswith("."):
                found.append((Path(dirpath) / filename).relative_to(root).as_posix())
    return sorted(found)


class FileDataset(Dataset):
    """A folder of .bc files; order from metadata.json (or a sorted walk), URIs `file://<abs path>`.

    Nothing is ever written into the folder: a folder without metadata is read with
    a warning instead of getting a metadata.json as in the reference.
    """

    def __init__(
        self,
        directory: str | os.PathLike,
        split_files: Mapping[str, str] | None = None,
        mode_limits: Mapping[str, int | None] | None = None,
        metadata_file: str = METADATA_FILE,
        install_command: str | None = None,
        label: str | None = None,
    ):
        self.directory = Path(directory).expanduser().absolute()
        super().__init__("file://" + str(self.directory), description=f"bitcode files under {self.directory}")
        self.split_files = dict(SPLIT_FILES if split_files is None else split_files)
        self.mode_limits = dict(mode_limits or {})
        self.metadata_file = metadata_file
        self.label = label or self.directory.name
        self.install_command = install_command or f"compilerdream datasets build SOURCES... --out {self.directory}"
        self._uris: list[str] | None = None
        self._mode_uris: dict[str, list[str] | None] = {}

    @property
    def short_name(self) -> str:
        return self.label

    @property
    def installed(self) -> bool:
        return self.directory.is_dir()

    def check_installed(self) -> None:
        if not self.installed:
            raise DatasetNotInstalledError(self.label, self.directory, self.install_command)

    def _uri(self, name: str) -> str:
        return "file://" + os.path.normpath(os.path.join(str(self.directory), name))

    def uris(self) -> Sequence[str]:
        if self._uris is None:
            self.check_installed()
            metadata = find_metadata(self.directory, self.metadata_file)
            if metadata is not None:
                names = read_metadata(metadata)
            else:
                logger.warning(
                    "%s has no %s (here or in a parent folder): reading every .bc file, sorted",
                    self.directory,
                    self.metadata_file,
                )
                names = walk_bitcode(self.directory)
            self._uris = [self._uri(name) for name in names]
        return self._uris

    def mode_uris(self, mode: str) -> Sequence[str] | None:
        if mode not in self._mode_uris:
            self.check_installed()
            filename = self.split_files.get(mode)
            path = find_metadata(self.directory, filename) if filename else None
            self._mode_uris[mode] = [self._uri(n) for n in read_metadata(path)] if path else None
        return self._mode_uris[mode]

    def has_split_lists(self) -> bool:
        return all(self.mode_uris(mode) is not None for mode in MODES)

    def owns(self, uri: str) -> bool:
        return uri.startswith(self.name.rstrip("/") + "/")

    def frontend_flags(self) -> tuple[str, ...]:
        """Front-end flags recorded by the builder in manifest.json (CompilerGym's by default)."""
        try:
            manifest = json.loads((self.directory / MANIFEST_FILE).read_text())
            return tuple(manifest.get("flags") or DEFAULT_FRONTEND_FLAGS)
        except (OSError, ValueError, AttributeError):
            return DEFAULT_FRONTEND_FLAGS

    def benchmark(self, uri: str) -> Benchmark:
        if not self.owns(uri):
            raise BenchmarkNotFoundError(f"'{uri}' is not in the file dataset {self.directory}")
        path = uri[len("file://") :]
        if not os.path.isfile(path):
            raise BenchmarkNotFoundError(f"benchmark file not found: {path} (listed by the dataset {self.directory})")
        return Benchmark.from_file(path, uri=uri, frontend_flags=self.frontend_flags())


def codecontest_dataset(directory: str | os.PathLike, install_command: str | None = None) -> FileDataset:
    """`file_dataset_codecontest`: per-mode metadata_small_* lists, val capped at 50 and test at 100."""
    return FileDataset(
        directory, split_files=CODECONTEST_SPLIT_FILES, mode_limits=CODECONTEST_LIMITS, install_command=install_command
    )
