"""Datasets made of others: chained members (suball, all, ...) and explicit URI lists (cbench22, coreset_nvp_*)."""

from __future__ import annotations

import itertools
from collections.abc import Callable, Sequence

from ..benchmarks import Benchmark
from ..errors import BenchmarkNotFoundError
from .base import Dataset, DatasetNotInstalledError
from .splits import ALL_WINDOWS


def _raise_missing(name: str, missing: Sequence[Dataset]) -> None:
    """One error naming every missing member, where each was looked for, and the commands."""
    places, commands = [], []
    for dataset in missing:
        try:
            dataset.check_installed()
        except DatasetNotInstalledError as exc:
            places.append(f"{exc.dataset} ({exc.directory})")
            commands.append(exc.command)
    installs = [c.rsplit(" ", 1)[-1] for c in commands if c.startswith("compilerdream datasets install ")]
    others = [c for c in commands if not c.startswith("compilerdream datasets install ")]
    command = " ; ".join(([f"compilerdream datasets install {' '.join(installs)}"] if installs else []) + others)
    raise DatasetNotInstalledError(f"{name}: {', '.join(d.short_name for d in missing)}", "; ".join(places), command)


class ChainedDataset(Dataset):
    """Members one after the other. Splits are taken per member and chained (REFERENCE §2.6)."""

    def __init__(self, name: str, members: Sequence[Dataset], description: str = ""):
        super().__init__(name, description or " + ".join(m.short_name for m in members))
        self.members = list(members)
        self.is_generator = any(m.is_generator for m in self.members)

    @property
    def short_name(self) -> str:
        return self.name

    @property
    def installed(self) -> bool:
        return all(m.installed for m in self.members)

    def check_installed(self) -> None:
        missing = [m for m in self.members if not m.installed]
        if len(missing) == 1:
            missing[0].check_installed()
        elif missing:
            _raise_missing(self.name, missing)

    @property
    def size(self) -> int:
        return sum(m.size for m in self.members)

    def uris(self) -> Sequence[str]:
        if self.is_generator:
            raise TypeError(
                f"{self.name} contains a generator: its URIs cannot be listed; use split() or member datasets"
            )
        return list(itertools.chain.from_iterable(m.uris() for m in self.members))

    def benchmark_uris(self):
        return itertools.chain.from_iterable(m.benchmark_uris() for m in self.members)

    def owns(self, uri: str) -> bool:
        return any(m.owns(uri) for m in self.members)

    def benchmark(self, uri: str) -> Benchmark:
        for member in self.members:
            if member.owns(uri):
                return member.benchmark(uri)
        raise BenchmarkNotFoundError(f"'{uri}' belongs to none of {', '.join(m.name for m in self.members)}")


class ListDataset(Dataset):
    """An explicit, ordered URI list whose benchmarks live in other datasets; every split is the whole list."""

    windows = ALL_WINDOWS

    def __init__(
        self,
        name: str,
        uris: Sequence[str],
        resolve: Callable[[str], Benchmark],
        dataset_for_uri: Callable[[str], Dataset],
        description: str = "",
    ):
        super().__init__(name, description or f"{len(uris)} listed benchmarks")
        self._uris = list(uris)
        self._resolve = resolve
        self._dataset_for_uri = dataset_for_uri

    @property
    def short_name(self) -> str:
        return self.name

    def source_datasets(self) -> list[Dataset]:
        """The datasets the listed URIs come from, in first-seen order."""
        seen: dict[str, Dataset] = {}
        for uri in self._uris:
            prefix = uri.split("?", 1)[0].rsplit("/", 1)[0]
            key = prefix.split("://", 1)[-1].split("/", 1)[0]
            if key not in seen:
                seen[key] = self._dataset_for_uri(uri)
        return list(seen.values())

    @property
    def installed(self) -> bool:
        return all(d.installed for d in self.source_datasets())

    def check_installed(self) -> None:
        missing = [d for d in self.source_datasets() if not d.installed]
        if len(missing) == 1:
            missing[0].check_installed()
        elif missing:
            _raise_missing(self.name, missing)

    def uris(self) -> Sequence[str]:
        return self._uris

    def owns(self, uri: str) -> bool:
        return uri in set(self._uris)

    def benchmark(self, uri: str) -> Benchmark:
        return self._resolve(uri)
