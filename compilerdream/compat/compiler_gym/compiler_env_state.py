"""CompilerEnvState and its CSV reader and writer (CompilerGym's `benchmark,reward,walltime,commandline` files)."""

from __future__ import annotations

import csv
import io
import math
import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

from compilerdream.compiler.env import CompilerEnvState as _NativeState

CSV_FIELDS = ("benchmark", "reward", "walltime", "commandline")


@dataclass(frozen=True, eq=False)
class CompilerEnvState(_NativeState):
    """A replayable episode: benchmark URI, `opt` command line, wall time and cumulative reward.

    As in CompilerGym, two states are equal when their benchmark and command line are
    equal and their rewards agree to a relative tolerance of 1e-5; wall time is ignored.
    """

    def __post_init__(self) -> None:
        if not self.benchmark:
            raise ValueError("CompilerEnvState: benchmark must be a non-empty URI")
        if self.walltime is not None and float(self.walltime) < 0:
            raise ValueError(f"CompilerEnvState: walltime must be >= 0, got {self.walltime}")

    @property
    def has_reward(self) -> bool:
        return self.reward is not None

    def __eq__(self, other) -> bool:
        if not isinstance(other, _NativeState):
            return NotImplemented
        if (self.benchmark, self.commandline) != (other.benchmark, other.commandline):
            return False
        if self.reward is None or other.reward is None:
            return self.reward is None and other.reward is None
        return math.isclose(self.reward, other.reward, rel_tol=1e-5, abs_tol=1e-9)

    def __hash__(self) -> int:
        return hash((self.benchmark, self.commandline))

    def json(self) -> dict:
        return self.to_json()

    @classmethod
    def from_native(cls, state: _NativeState) -> CompilerEnvState:
        return cls(state.benchmark, state.commandline, float(state.walltime or 0.0), state.reward)


class CompilerEnvStateWriter:
    """Writes states as CSV rows (`benchmark,reward,walltime,commandline`), the header first.

    >>> with open("results.csv", "w") as f:
    ...     writer = CompilerEnvStateWriter(f)
    ...     writer.write_state(env.state, flush=True)
    """

    def __init__(self, f: TextIO, header: bool = True):
        self.f = f
        self.writer = csv.writer(f, lineterminator="\n")
        self.header = header

    def write_state(self, state: _NativeState, flush: bool = False) -> None:
        if self.header:
            self.writer.writerow(CSV_FIELDS)
            self.header = False
        reward = "" if state.reward is None else repr(float(state.reward))
        self.writer.writerow((state.benchmark, reward, repr(float(state.walltime or 0.0)), state.commandline))
        if flush:
            self.f.flush()

    def __enter__(self) -> CompilerEnvStateWriter:
        return self

    def __exit__(self, *exc) -> None:
        self.f.close()


class CompilerEnvStateReader:
    """Reads states from CSV written by CompilerEnvStateWriter (header optional, any column order with a header).

    >>> with open("results.csv") as f:
    ...     for state in CompilerEnvStateReader(f):
    ...         print(state)
    """

    def __init__(self, f: TextIO):
        self.f = f

    def __iter__(self) -> Iterator[CompilerEnvState]:
        yield from _read_states(self.f, getattr(self.f, "name", "<stream>"))

    @staticmethod
    def read_paths(paths: Iterable[str | os.PathLike]) -> Iterator[CompilerEnvState]:
        """The states of several CSV files, in order."""
        for path in paths:
            with open(path, newline="") as f:
                yield from _read_states(f, str(path))

    def __enter__(self) -> CompilerEnvStateReader:
        return self

    def __exit__(self, *exc) -> None:
        self.f.close()


def _read_states(f: TextIO, where: str) -> Iterator[CompilerEnvState]:
    rows = csv.reader(f)
    columns = list(CSV_FIELDS)
    for line_number, row in enumerate(rows, start=1):
        if not row or not any(cell.strip() for cell in row):
            continue
        if [c.strip() for c in row] and row[0].strip() == "benchmark" and "commandline" in [c.strip() for c in row]:
            columns = [c.strip() for c in row]
            continue
        if len(row) != len(columns):
            raise ValueError(
                f"{where}:{line_number}: expected {len(columns)} columns ({','.join(columns)}), got {len(row)}"
            )
        record = dict(zip(columns, row))
        try:
            reward = float(record["reward"]) if record.get("reward", "").strip() else None
            walltime = float(record.get("walltime") or 0.0)
        except ValueError as exc:
            raise ValueError(f"{where}:{line_number}: {exc}") from None
        yield CompilerEnvState(record["benchmark"], record["commandline"], walltime, reward)


def states_to_csv(states: Iterable[_NativeState]) -> str:
    """The CSV text of `states` (header included)."""
    buffer = io.StringIO()
    writer = CompilerEnvStateWriter(buffer)
    for state in states:
        writer.write_state(state)
    return buffer.getvalue()


def read_csv(path: str | os.PathLike) -> list[CompilerEnvState]:
    return list(CompilerEnvStateReader.read_paths([Path(path)]))
