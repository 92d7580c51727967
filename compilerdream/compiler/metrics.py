"""Code-size metrics of CompilerDream and CompilerGym (REFERENCE.md "Metric definitions")."""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from functools import lru_cache
from pathlib import Path


def geomean(values: Iterable[float]) -> float:
    """Geometric mean; 0.0 for no values or when any value is <= 0 (a failed benchmark counts as 0)."""
    vals = [float(v) for v in values]
    if not vals or any(v <= 0 or math.isnan(v) for v in vals):
        return 0.0
    return math.exp(sum(math.log(v) for v in vals) / len(vals))


def reduction(oz: float, final: float) -> float:
    """CompilerDream's reduction: Oz instruction count / final count (> 1 beats -Oz)."""
    return float(oz) / max(1.0, float(final))


def percent_below_oz(oz: float, final: float) -> float:
    """GRACE's metric of one program: 100 * (Oz - final) / Oz (> 0 is smaller than -Oz, negative when larger)."""
    return 100.0 * (float(oz) - float(final)) / max(1.0, float(oz))


def leaderboard_reward(o0: float, oz: float, final: float) -> float:
    """CompilerGym's leaderboard score of one run: (O0 - final) / max(O0 - Oz, 1), clipped at 0."""
    return max(0.0, (float(o0) - float(final)) / max(float(o0) - float(oz), 1.0))


def dataset_of(uri: str) -> str:
    """Dataset a benchmark URI belongs to: `cbench-v1` for benchmark://cbench-v1/qsort.

    For file:// URIs (which the reference grouped one file per "dataset") it is the name
    of the nearest enclosing folder that holds dataset metadata (metadata*.json or
    manifest.json), else the parent folder's name, so a folder of programs is one group.
    """
    if uri.startswith("file://"):
        return _file_dataset_name(uri[len("file://") :])
    rest = uri.split("://", 1)[-1]
    return rest.split("/", 1)[0]


def summarize(rows: Sequence[Mapping], value_key: str, group_key: str = "dataset") -> dict:
    """Per-group geomeans of `value_key`, their geomean (each group weighted equally) and the raw geomean."""
    groups: dict[str, list[float]] = defaultdict(list)
    for row in rows:
        groups[str(row[group_key])].append(float(row[value_key]))
    per_group = {g: geomean(v) for g, v in sorted(groups.items())}
    return {
        "per_dataset": per_group,
        "count": {g: len(v) for g, v in sorted(groups.items())},
        "geomean_of_datasets": geomean(per_group.values()),
        "raw_geomean": geomean(float(r[value_key]) for r in rows),
    }


@lru_cache(maxsize=4096)
def _dataset_folder(directory: str) -> str | None:
    """Nearest folder at or above `directory` that holds dataset metadata, if any."""
    path = Path(directory)
    for folder in (path, *path.parents):
        if (folder / "metadata.json").exists() or (folder / "manifest.json").exists() or any(folder.glob("metadata_*.json")):
            return folder.name
    return None


def _file_dataset_name(path: str) -> str:
    parent = Path(path.rstrip("/")).parent
    return _dataset_folder(str(parent)) or parent.name or "file"
