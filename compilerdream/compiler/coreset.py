"""Coresets of pass sequences: a small set of sequences, each tried on a program, the best prefix kept.

A coreset is a list of pass sequences, each with the state it starts from: `o0` (the
unoptimized program) or `oz` (-Oz's output, so the sequence continues after -Oz).
Applying a coreset to a program means running every sequence from its start, measuring
the instruction count after every pass, and keeping the best prefix seen; with -Oz as
the fallback the result is never worse than -Oz.

Coresets by name:
- `default` (also `llvm19`): built on LLVM 19 from the default corpus's train split by
  `compilerdream coreset build` (compilerdream/compiler/coreset_build.py); the command
  and its validation figures are stored in the file and in the README.
- `nvp50`: Coreset-NVP's 50 sequences (found on LLVM 10), from -O0, as published.
- a path to a coreset JSON file written by `compilerdream coreset build`.

Torch-free: used by `compilerdream search --methods coreset`, `optimize`, `quality.py`.
"""

from __future__ import annotations

import functools
import json
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

from .errors import CompilerDreamError
from .fileio import atomic_write
from .search import OZ_PIPELINE, STARTS, SearchContext, SearchPolicy

FORMAT = "compilerdream-coreset/1"
DATA_DIR = Path(__file__).parent / "data"
#: The shipped LLVM-19 coreset (package data), built by the command stored in it.
DEFAULT_FILE = DATA_DIR / "coreset_llvm19.json"
#: The names of the shipped LLVM-19 coreset, and all coreset names.
SHIPPED_NAMES = ("default", "llvm19")
NAMES = (*SHIPPED_NAMES, "nvp50")


def is_shipped(spec: str | os.PathLike | None) -> bool:
    """Whether a coreset spec names the shipped LLVM-19 coreset (None is the default)."""
    return str(spec or "default") in SHIPPED_NAMES


class CoresetError(CompilerDreamError, ValueError):
    """A coreset that cannot be read or is malformed (one line, naming the file)."""


@dataclass(frozen=True)
class CoresetSequence:
    """One pass sequence and where it starts: `o0` (unoptimized) or `oz` (after -Oz)."""

    start: str
    passes: tuple[str, ...]

    def actions(self) -> list[str]:
        """The actions that reproduce it from the unoptimized program (`default<Oz>` first for `oz`)."""
        return ([OZ_PIPELINE] if self.start == "oz" else []) + list(self.passes)

    def to_json(self) -> dict[str, Any]:
        return {"start": self.start, "passes": list(self.passes)}


@dataclass
class Coreset:
    """A named list of sequences plus how it was made (`meta`: command, settings, figures)."""

    name: str
    sequences: list[CoresetSequence]
    meta: dict[str, Any] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.sequences)

    @property
    def total_passes(self) -> int:
        return sum(len(s.passes) for s in self.sequences)

    def with_start(self, start: str | None) -> Coreset:
        """The same sequences from another start: `o0`, `oz`, `both` (each from both), or None (as stored)."""
        if start is None:
            return self
        if start not in (*STARTS, "both"):
            raise CoresetError(f"unknown coreset start '{start}': choose o0, oz or both")
        starts = STARTS if start == "both" else (start,)
        seqs = unique(CoresetSequence(st, s.passes) for st in starts for s in self.sequences)
        return Coreset(f"{self.name}@{start}", seqs, dict(self.meta))

    def to_json(self) -> dict[str, Any]:
        return {"format": FORMAT, "name": self.name, **self.meta, "sequences": [s.to_json() for s in self.sequences]}

    def save(self, path: str | os.PathLike) -> None:
        atomic_write(path, json.dumps(self.to_json(), indent=1) + "\n")


def _check_passes(passes: Sequence[Any], where: str) -> tuple[str, ...]:
    from .spaces import flag_to_index

    out = []
    for p in passes:
        if not isinstance(p, str) or not p.strip():
            raise CoresetError(f"{where}: a pass must be a CompilerGym flag or a pipeline string, got {p!r}")
        p = p.strip()
        if p.startswith("-"):
            try:
                flag_to_index(p)
            except Exception:
                raise CoresetError(f"{where}: unknown pass flag {p!r}") from None
        out.append(p)
    return tuple(out)


def coreset_from_json(data: Any, source: str) -> Coreset:
    """Parse a coreset JSON object; every problem is one CoresetError naming `source`."""
    if not isinstance(data, dict) or not isinstance(data.get("sequences"), list):
        raise CoresetError(f"{source}: not a coreset file (expected a JSON object with a 'sequences' list)")
    if not data["sequences"]:
        raise CoresetError(f"{source}: the coreset has no sequences")
    seqs = []
    for i, item in enumerate(data["sequences"]):
        where = f"{source}: sequence {i}"
        if not isinstance(item, dict) or not isinstance(item.get("passes"), list):
            raise CoresetError(f"{where}: expected an object with 'start' and 'passes'")
        start = item.get("start", "o0")
        if start not in STARTS:
            raise CoresetError(f"{where}: start must be o0 or oz, got {start!r}")
        seqs.append(CoresetSequence(start, _check_passes(item["passes"], where)))
    meta = {k: v for k, v in data.items() if k not in ("sequences", "name", "format")}
    return Coreset(str(data.get("name") or Path(source).stem), seqs, meta)


@functools.lru_cache(maxsize=1)
def nvp50_indices() -> tuple[tuple[int, ...], ...]:
    """Coreset-NVP's 50 sequences (REFERENCE §2.7) as NoLimit action indices, in file order."""
    with (DATA_DIR / "coreset_sequences.jsonl").open() as f:
        return tuple(tuple(int(i) for i in json.loads(line)) for line in f if line.strip())


def nvp50() -> Coreset:
    """Coreset-NVP's 50 sequences, as CompilerGym flags, from -O0 as published."""
    from .spaces import pass_flags

    flags = pass_flags()
    seqs = [CoresetSequence("o0", tuple(flags[i].flag for i in seq)) for seq in nvp50_indices()]
    return Coreset("nvp50", seqs, {"source": "Coreset-NVP (ICML 2023), 50 sequences found on LLVM 10"})


def load_coreset(spec: str | os.PathLike | Coreset | None = "default") -> Coreset:
    """A coreset by name (`default`, `llvm19`, `nvp50`) or from a JSON file; bad input is one CoresetError line."""
    if isinstance(spec, Coreset):
        return spec
    name = str(spec or "default")
    if name == "nvp50":
        return nvp50()
    shipped = is_shipped(name)
    path = DEFAULT_FILE if shipped else Path(name)
    source = "the shipped default coreset" if shipped else str(path)
    if name not in NAMES and not path.exists():
        raise CoresetError(f"coreset '{name}': no such file (names: {', '.join(NAMES)}, or a coreset JSON file)")
    if path.is_dir():
        raise CoresetError(f"coreset {path}: is a folder, not a coreset JSON file")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise CoresetError(f"{source} is missing ({path}): rebuild it with `compilerdream coreset build`") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise CoresetError(f"coreset {path}: cannot read it ({type(exc).__name__}: {exc})") from None
    return coreset_from_json(data, source)


class CoresetPolicy(SearchPolicy):
    """Try every sequence of a coreset from its start; the harness keeps the best prefix.

    Sequences run in coreset order (for a built coreset: greedy-coverage order, most
    useful first), so a budget that cuts the run keeps the most valuable ones. `start`
    overrides the stored starts (`o0`, `oz`, `both`). Each pass is one compilation;
    -Oz's output is computed once per program and reused by every `oz` sequence.
    """

    name = "coreset"
    fixed_start = "o0"  # each sequence starts where the coreset says (or `start`): not the harness's start

    def __init__(self, coreset: str | os.PathLike | Coreset | None = "default", start: str | None = None, name: str | None = None):
        self.coreset = load_coreset(coreset).with_start(start)
        if name:
            self.name = name

    def search(self, ctx: SearchContext) -> None:
        self.run(ctx)

    def run(self, ctx: SearchContext, keep: int = 0) -> list[CoresetResult]:
        """Every sequence, as `search`; returns each one's best prefix as a CoresetResult (its
        return from the unoptimized program, start, passes after the start), best first (ties:
        coreset order).

        `keep` > 0: the `keep` best results whose whole sequence ends at its best count also
        carry `fork`, a fork of the context holding that module (the whole sequence applied),
        so a caller can go on from it without replaying the prefix; the caller closes them.
        """
        found, kept = [], []
        try:
            for order, seq in enumerate(self.coreset.sequences):
                ctx.reset(start=seq.start)
                best = cumulative = ctx.cumulative  # -Oz's own reward when the sequence starts from it
                rewards, died = ctx.trace(list(seq.passes))
                length = 0
                for i, reward in enumerate([] if died else rewards):
                    cumulative += reward
                    if cumulative > best + 1e-12:
                        best, length = cumulative, i + 1
                found.append((best, order, seq.start, tuple(seq.passes[:length])))
                if keep and not died and length and abs(cumulative - best) <= 1e-12:
                    kept.append((best, order, ctx.fork()))
                    kept.sort(key=lambda t: (-t[0], t[1]))
                    while len(kept) > keep:
                        kept.pop()[2].close()
        except BaseException:
            for *_, fork in kept:
                fork.close()
            raise
        forks = {order: fork for _, order, fork in kept}
        found.sort(key=lambda t: (-t[0], t[1]))
        return [CoresetResult(best, start, prefix, forks.get(order)) for best, order, start, prefix in found]


class CoresetResult(NamedTuple):
    """One coreset sequence's best prefix on a program (`CoresetPolicy.run`)."""

    reward: float  # its return from the unoptimized program (IrInstructionCountOz rewards)
    start: str
    passes: tuple  # the best prefix, after the start
    fork: SearchContext | None = None  # with `keep`: the module after the whole sequence (same count)


def describe(coreset: Coreset) -> str:
    starts = {st: sum(1 for s in coreset.sequences if s.start == st) for st in STARTS}
    return (
        f"coreset {coreset.name}: {len(coreset)} sequences ({starts['o0']} from -O0, {starts['oz']} from -Oz), "
        f"{coreset.total_passes} passes"
    )


def unique(sequences: Iterable[CoresetSequence]) -> list[CoresetSequence]:
    return list(dict.fromkeys(sequences))
