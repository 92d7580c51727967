"""`build-default`: the offline default corpus from Debian source packages (split by package) plus csmith programs."""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from ..toolchain import DEFAULT_FRONTEND_FLAGS
from .builder import BuildItem, BuildReport, _walk_sources, build
from .debian import AptError, PrivateApt, unpack_source
from .generators import CsmithDataset, csmith_include_dir
from .paths import atomic_write_text, cache_root
from .prepare import gather_headers, include_dirs, instantiate_templates

logger = logging.getLogger(__name__)

PACKAGES_FILE = Path(__file__).with_name("data") / "debian_packages.json"
#: Old C that clang 16+ rejects by default: accepted (and silenced by -w) so more real files compile.
TOLERANCE_FLAGS: tuple[str, ...] = (
    "-Wno-error=implicit-function-declaration",
    "-Wno-error=implicit-int",
    "-Wno-error=int-conversion",
    "-Wno-error=incompatible-pointer-types",
    "-Wno-error=incompatible-function-pointer-types",
)
PREPARED_MARKER = ".compilerdream-prepared"


@dataclass
class Package:
    """One entry of data/debian_packages.json."""

    name: str
    version: str
    domain: str
    split: str = "train"
    defines: list[str] = field(default_factory=list)
    exclude: list[str] = field(default_factory=list)
    max_files: int | None = None
    gather: dict[str, str] = field(default_factory=dict)
    copy: dict[str, str] = field(default_factory=dict)
    configure: dict[str, str] = field(default_factory=dict)
    include_from: list[str] = field(default_factory=list)
    tiny: bool = False
    tiny_split: str | None = None


def load_spec() -> dict:
    return json.loads(PACKAGES_FILE.read_text(encoding="utf-8"))


def load_packages(tiny: bool = False) -> list[Package]:
    """The fixed package list (only the `tiny` ones with `tiny=True`)."""
    packages = [Package(**entry) for entry in load_spec()["packages"]]
    return [p for p in packages if p.tiny] if tiny else packages


def _prepare_tree(apt: PrivateApt, package: Package, workdir: Path) -> tuple[Path, str]:
    """Fetch, unpack and prepare one package (reused if already prepared); returns its tree and version."""
    downloads = workdir / "downloads" / package.name
    dsc, version = apt.download_source(package.name, package.version, downloads)
    tree_root = workdir / "src" / f"{package.name}_{version}"
    marker = tree_root / PREPARED_MARKER
    if marker.is_file():
        return Path(marker.read_text().strip()), version
    tree = unpack_source(dsc, tree_root)
    for src, dst in package.copy.items():
        if (tree / src).is_file() and not (tree / dst).exists():
            shutil.copyfile(tree / src, tree / dst)
    gather_headers(tree, package.gather)
    upstream = version.split(":", 1)[-1].split("-", 1)[0]
    instantiate_templates(tree, package.name, upstream, package.configure)
    marker.write_text(str(tree) + "\n")
    return tree, version


def _evenly_spaced(files: list[Path], limit: int | None) -> list[Path]:
    if not limit or len(files) <= limit:
        return files
    step = len(files) / limit
    return [files[int(i * step)] for i in range(limit)]


def package_items(
    package: Package, tree: Path, extra_includes: Sequence[str] = (), max_files: int | None = None
) -> list[BuildItem]:
    """One BuildItem per source file of the package, with -I for every header folder of the tree."""
    skip = [re.compile(p) for p in package.exclude]
    files = [f for f in _walk_sources(tree) if not any(p.search(f.relative_to(tree).as_posix()) for p in skip)]
    files = _evenly_spaced(
        files, min(x for x in (package.max_files, max_files) if x) if (package.max_files or max_files) else None
    )
    includes = (*include_dirs(tree), *extra_includes)
    defines = list(package.defines)
    if any(tree.rglob("config.h")):
        defines.append("-DHAVE_CONFIG_H")
    return [
        BuildItem(
            f"{package.name}/{f.relative_to(tree).with_suffix('.bc').as_posix()}",
            (str(f),),
            package.name,
            includes,
            tuple(defines),
        )
        for f in files
    ]


def csmith_items(count: int, first_seed: int, options: dict[str, int], workdir: Path) -> list[BuildItem]:
    """C files from csmith (seeds first_seed...), written once into the work folder."""
    folder = workdir / "csmith"
    folder.mkdir(parents=True, exist_ok=True)
    generator = CsmithDataset(options=options)
    include = csmith_include_dir()
    items = []
    for seed in range(first_seed, first_seed + count):
        path = folder / f"csmith_{seed}.c"
        if not path.is_file():
            atomic_write_text(path, generator.source(seed))
        items.append(BuildItem(f"csmith/csmith_{seed}.bc", (str(path),), "csmith", (include,)))
    return items


def build_default(
    out: str | os.PathLike = "data/default",
    tiny: bool = False,
    jobs: int | None = None,
    workdir: str | os.PathLike | None = None,
    csmith_count: int | None = None,
    max_files: int | None = None,
    progress: bool = True,
    log=print,
    executor=None,
) -> BuildReport:
    """Build the default corpus into `out` (resumable: rerunning skips modules already built).

    `executor` (compilerdream.compiler.executor): where files compile; None is a local pool of `jobs`.
    """
    start = time.time()
    spec = load_spec()
    packages = load_packages(tiny)
    work = Path(workdir) if workdir else cache_root() / "debian"
    work.mkdir(parents=True, exist_ok=True)
    apt = PrivateApt(work / "apt")
    log(f"updating package lists (private apt configuration under {work / 'apt'}) ...")
    apt.update()
    trees: dict[str, tuple[Path, str]] = {}
    fetch_failures: dict[str, str] = {}
    for package in packages + [p for p in load_packages() if p.name in {d for q in packages for d in q.include_from}]:
        if package.name in trees:
            continue
        try:
            trees[package.name] = _prepare_tree(apt, package, work)
            log(f"  {package.name} {trees[package.name][1]}")
        except (AptError, OSError, ValueError) as exc:
            fetch_failures[package.name] = str(exc)
            log(f"  {package.name}: skipped ({exc})")
    if not trees:
        raise AptError(
            "no source package could be fetched: " + "; ".join(f"{k}: {v}" for k, v in fetch_failures.items())
        )
    limit = max_files if max_files is not None else (4 if tiny else None)
    items: list[BuildItem] = []
    splits: dict[str, str] = {}
    for package in packages:
        if package.name not in trees:
            continue
        extra = [d for dep in package.include_from if dep in trees for d in include_dirs(trees[dep][0])]
        items += package_items(package, trees[package.name][0], extra, limit)
        splits[package.name] = (package.tiny_split or package.split) if tiny else package.split
    cs = spec["csmith"]
    count = csmith_count if csmith_count is not None else (cs["tiny_count"] if tiny else cs["count"])
    if count:
        items += csmith_items(count, cs["first_seed"], cs["options"], work)
        splits["csmith"] = cs.get("tiny_split", cs["split"]) if tiny else cs["split"]
    log(f"compiling {len(items)} files from {len(trees)} packages and {count} csmith programs ...")
    description = [f"debian:{name}={version}" for name, (_, version) in sorted(trees.items())] + (
        [f"csmith:{count}"] if count else []
    )
    report = build(
        items,
        out,
        flags=[*DEFAULT_FRONTEND_FLAGS, *TOLERANCE_FLAGS],
        jobs=jobs,
        splits=splits,
        progress=progress,
        sources_description=description,
        executor=executor,
    )
    summary = {
        "packages": {
            name: {"version": v, "split": splits.get(name, "train")}
            for name, (_, v) in sorted(trees.items())
            if name in splits
        },
        "fetch_failures": fetch_failures,
        "csmith": {"count": count, "first_seed": cs["first_seed"], "options": cs["options"]},
        "seconds": round(time.time() - start, 1),
    }
    atomic_write_text(Path(out) / "packages.json", json.dumps(summary, indent=1) + "\n")
    report.seconds = time.time() - start
    return report
