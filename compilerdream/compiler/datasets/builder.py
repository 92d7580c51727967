"""Corpus builder: C/C++ sources -> a file dataset (bitcode, metadata lists, manifest.json), parallel and resumable."""

from __future__ import annotations

import concurrent.futures as cf
import hashlib
import json
import logging
import multiprocessing
import os
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import ToolNotFoundError
from ..progress import progress_bar
from ..toolchain import DEFAULT_FRONTEND_FLAGS
from .files import MANIFEST_FILE, METADATA_FILE, SPLIT_FILES, write_metadata
from .measure import compile_and_measure
from .paths import atomic_write_bytes, atomic_write_text

logger = logging.getLogger(__name__)

SOURCE_SUFFIXES = (".c", ".cc", ".cpp", ".cxx", ".c++")
MANIFEST_VERSION = 1


@dataclass
class BuildItem:
    """One output module: its name in the dataset (`pkg/dir/file.bc`), its source file(s), its split group."""

    name: str
    sources: tuple[str, ...]
    group: str
    include_dirs: tuple[str, ...] = ()
    extra_flags: tuple[str, ...] = ()

    def source_sha256(self) -> str:
        digest = hashlib.sha256()
        for src in self.sources:
            digest.update(os.path.basename(src).encode() + b"\0")
            digest.update(Path(src).read_bytes())
        digest.update(repr((self.include_dirs, self.extra_flags)).encode())
        return digest.hexdigest()


@dataclass
class BuildReport:
    """What a build produced: counts and per-file problems (also stored in manifest.json)."""

    out: Path
    modules: int = 0
    skipped_resumed: int = 0
    failures: dict[str, dict] = field(default_factory=dict)
    duplicates: dict[str, dict] = field(default_factory=dict)
    empty: dict[str, dict] = field(default_factory=dict)
    too_large: dict[str, dict] = field(default_factory=dict)
    o0_total: int = 0
    oz_total: int = 0
    seconds: float = 0.0
    split_sizes: dict[str, int] = field(default_factory=dict)

    def summary(self) -> str:
        return (
            f"{self.modules} modules ({self.o0_total:,} O0 instructions, {self.oz_total:,} after Oz) in {self.out}; "
            f"{len(self.failures)} failed, {len(self.duplicates)} duplicates, {len(self.empty)} empty, "
            f"{len(self.too_large)} too large, {self.skipped_resumed} reused; splits {self.split_sizes}; {self.seconds:.0f}s"
        )


def _is_source(path: Path) -> bool:
    return path.suffix.lower() in SOURCE_SUFFIXES and path.is_file() and not path.name.startswith(".")


def _walk_sources(root: Path) -> list[Path]:
    found = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        found += [Path(dirpath) / f for f in sorted(filenames) if _is_source(Path(dirpath) / f)]
    return found


def collect_items(
    sources: Iterable[str | os.PathLike],
    link_dirs: bool = False,
    include_dirs: Sequence[str] = (),
    group: str | None = None,
) -> list[BuildItem]:
    """Work items for `build SOURCES...`: one per file, or one per directory with `link_dirs`.

    A directory argument contributes its tree under its own name (`zlib/adler32.bc`);
    its name is also the split group unless `group` is given.
    """
    items: list[BuildItem] = []
    for source in sources:
        root = Path(source).expanduser().absolute()
        if root.is_file():
            if _is_source(root):
                items.append(
                    BuildItem(root.with_suffix(".bc").name, (str(root),), group or root.stem, tuple(include_dirs))
                )
            continue
        if not root.is_dir():
            raise FileNotFoundError(f"source not found: {root}")
        files = _walk_sources(root)
        if link_dirs:
            by_dir: dict[Path, list[str]] = {}
            for f in files:
                by_dir.setdefault(f.parent, []).append(str(f))
            for directory, members in sorted(by_dir.items()):
                rel = directory.relative_to(root).as_posix()
                name = f"{root.name}.bc" if rel == "." else f"{root.name}/{rel}.bc"
                items.append(BuildItem(name, tuple(members), group or root.name, tuple(include_dirs)))
        else:
            for f in files:
                rel = f.relative_to(root).with_suffix(".bc").as_posix()
                items.append(BuildItem(f"{root.name}/{rel}", (str(f),), group or root.name, tuple(include_dirs)))
    return _unique_names(items)


def _unique_names(items: list[BuildItem]) -> list[BuildItem]:
    seen: dict[str, int] = {}
    for item in items:
        if item.name in seen:
            seen[item.name] += 1
            stem = item.name[: -len(".bc")]
            item.name = f"{stem}.{seen[item.name]}.bc"
        else:
            seen[item.name] = 0
    return items


def assign_splits(groups: Mapping[str, int], fractions: tuple[float, float] = (0.1, 0.1)) -> dict[str, str]:
    """group -> train/val/test, whole groups only, ~`fractions` (test, val) of modules, deterministic.

    Groups are ordered by a hash of their name; test takes groups until it holds its
    share of the modules, then val, then the rest is train. With fewer than three
    groups everything is train (callers then split per file).
    """
    if len(groups) < 3:
        return {g: "train" for g in groups}
    total = sum(groups.values()) or 1
    order = sorted(groups, key=lambda g: hashlib.sha1(g.encode()).hexdigest())
    assignment, filled = {}, {"test": 0, "val": 0}
    for g in order:
        mode = "train"
        for candidate, share in (("test", fractions[0]), ("val", fractions[1])):
            if filled[candidate] < share * total:
                mode = candidate
                break
        if mode != "train":
            filled[mode] += groups[g]
        assignment[g] = mode
    return assignment


class _HeaderHashes:
    """Digests of header lists, each header file read once per build."""

    def __init__(self) -> None:
        self._files: dict[str, bytes] = {}

    def _file(self, path: str) -> bytes:
        if path not in self._files:
            try:
                self._files[path] = hashlib.sha256(Path(path).read_bytes()).digest()
            except OSError:
                self._files[path] = b"missing"
        return self._files[path]

    def digest(self, headers: Iterable[str]) -> str:
        headers = list(headers)
        if not headers:
            return ""
        digest = hashlib.sha256()
        for path in headers:
            digest.update(path.encode() + b"\0" + self._file(path))
        return digest.hexdigest()


def _load_manifest(out: Path) -> dict:
    try:
        manifest = json.loads((out / MANIFEST_FILE).read_text())
        return manifest if isinstance(manifest, dict) and manifest.get("version") == MANIFEST_VERSION else {}
    except (OSError, ValueError):
        return {}


def _pool(jobs: int) -> cf.ProcessPoolExecutor:
    # fork: forkserver/spawn would re-run a calling script that lacks a __main__ guard.
    method = "fork" if "fork" in multiprocessing.get_all_start_methods() else None
    return cf.ProcessPoolExecutor(max_workers=jobs, mp_context=multiprocessing.get_context(method))


def _run_tasks(
    tasks: list[dict],
    jobs: int,
    on_result: Callable[[dict], None],
    worker: Callable[[dict], dict] = compile_and_measure,
    executor=None,
) -> None:
    """Run `worker` (compile_and_measure) over `tasks` with a sliding window; survive dying workers.

    When a worker dies (an LLVM abort), the tasks that were in flight are re-run one
    at a time in a fresh single-worker pool, so only the culprit is marked failed.
    With an `executor` (compilerdream.compiler.executor, e.g. Ray) each task runs there; a task
    whose process died for good is marked failed and the others go on.
    """
    if executor is not None:
        for task, result, error in executor.map_unordered(worker, tasks):
            if error is not None:
                logger.warning("worker died on %s (%s): marked failed", task["name"], error)
                result = {"name": task["name"], "status": "failed", "error": f"the compiler process died ({error})"}
            on_result(result)
        return
    pending = list(reversed(tasks))
    suspects: list[dict] = []
    pool = _pool(jobs)
    try:
        while pending or suspects:
            if suspects:
                task = suspects.pop()
                with _pool(1) as solo:
                    try:
                        on_result(solo.submit(worker, task).result())
                    except cf.process.BrokenProcessPool:
                        logger.warning("worker died on %s (LLVM abort?): marked failed", task["name"])
                        on_result(
                            {
                                "name": task["name"],
                                "status": "failed",
                                "error": "the compiler process died (LLVM abort or crash)",
                            }
                        )
                continue
            in_flight: dict[cf.Future, dict] = {}
            broken = False
            while (pending or in_flight) and not broken:
                while pending and len(in_flight) < 2 * jobs:
                    task = pending.pop()
                    in_flight[pool.submit(worker, task)] = task
                done, _ = cf.wait(in_flight, return_when=cf.FIRST_COMPLETED)
                for future in done:
                    task = in_flight.pop(future)
                    try:
                        on_result(future.result())
                    except cf.process.BrokenProcessPool:
                        broken = True
                        suspects.append(task)
            if broken:
                suspects.extend(in_flight.values())
                pool.shutdown(wait=False, cancel_futures=True)
                pool = _pool(jobs)
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def build(
    items: Sequence[BuildItem],
    out: str | os.PathLike,
    flags: Sequence[str] = DEFAULT_FRONTEND_FLAGS,
    jobs: int | None = None,
    splits: Mapping[str, str] | None = None,
    timeout: float = 120.0,
    max_instructions: int | None = None,
    progress: bool = True,
    sources_description: Sequence[str] = (),
    retry_failed: bool = False,
    executor=None,
) -> BuildReport:
    """Compile `items` into the dataset folder `out`; resumable (items with an unchanged source hash are reused).

    Failed items are not retried on resume unless `retry_failed` (their source is unchanged).
    `executor` (compilerdream.compiler.executor): where files compile; None is a local pool of `jobs`.

    `splits` maps group -> train/val/test; by default whole groups are assigned by
    `assign_splits` (per file if there are fewer than three groups).
    """
    start = time.time()
    out = Path(out).expanduser().absolute()
    out.mkdir(parents=True, exist_ok=True)
    flags = list(flags)
    jobs = max(1, jobs or os.cpu_count() or 1)
    old = _load_manifest(out)
    same_flags = old.get("flags") == flags
    sections = ("benchmarks", "failures", "duplicates", "empty", "too_large")
    state: dict[str, dict] = {key: {} for key in sections}
    report = BuildReport(out=out)
    hashes = {item.name: item.source_sha256() for item in items}
    header_hashes = _HeaderHashes()
    tasks = []
    for item in items:
        previous = next((old.get(sec, {}).get(item.name) for sec in sections if item.name in old.get(sec, {})), None)
        section = next((sec for sec in sections if item.name in old.get(sec, {})), None)
        usable = (section != "benchmarks" or (out / item.name).is_file()) and not (
            retry_failed and section == "failures"
        )
        unchanged = (
            previous is not None
            and previous.get("source_sha256") == hashes[item.name]
            and previous.get("headers_sha256", "") == header_hashes.digest(previous.get("headers", ()))
        )
        if same_flags and unchanged and usable:
            state[section][item.name] = previous  # type: ignore[index]
            report.skipped_resumed += 1
            continue
        tasks.append(
            {
                "name": item.name,
                "sources": item.sources,
                "flags": [*flags, *item.extra_flags],
                "include_dirs": item.include_dirs,
                "timeout": timeout,
                "max_instructions": max_instructions,
            }
        )
    by_name = {item.name: item for item in items}
    seen_ir = {entry["ir_sha256"]: name for name, entry in state["benchmarks"].items() if entry.get("ir_sha256")}
    last_save = [time.time()]

    def save() -> None:
        benchmarks = state["benchmarks"].values()
        counts = {section: len(entries) for section, entries in state.items()}
        counts.update(o0_total=sum(b["o0"] for b in benchmarks), oz_total=sum(b["oz"] for b in benchmarks))
        payload = {
            "version": MANIFEST_VERSION,
            "flags": flags,
            "sources": list(sources_description),
            "counts": counts,
            **state,
        }
        atomic_write_text(out / MANIFEST_FILE, json.dumps(payload, indent=1, sort_keys=True) + "\n")
        last_save[0] = time.time()

    bar = progress_bar(total=len(tasks), desc=f"building {out.name}", unit="file", disable=not progress, smoothing=0.05)

    def on_result(result: dict) -> None:
        item = by_name[result["name"]]
        entry = {
            "source": item.sources[0] if len(item.sources) == 1 else list(item.sources),
            "source_sha256": hashes[item.name],
            "group": item.group,
        }
        if result.get("headers"):  # a header edit makes the item stale on resume, like a source edit
            entry["headers"] = result["headers"]
            entry["headers_sha256"] = header_hashes.digest(result["headers"])
        status = result["status"]
        if status == "failed" and "ToolNotFoundError" in result.get("error", ""):
            raise ToolNotFoundError(result["error"])
        kept = seen_ir.get(result.get("ir_sha256", ""), item.name) if status == "ok" else item.name
        if kept != item.name and kept < item.name:  # the smallest name of identical modules is kept
            state["duplicates"][item.name] = {**entry, "of": kept}
        elif status == "ok":
            if kept != item.name:  # this one sorts first: it replaces the copy kept so far
                state["duplicates"][kept] = {**state["benchmarks"].pop(kept), "of": item.name}
                (out / kept).unlink(missing_ok=True)
            atomic_write_bytes(out / item.name, result["bitcode"])
            seen_ir[result["ir_sha256"]] = item.name
            keys = ("o0", "oz", "functions", "ir_sha256")
            state["benchmarks"][item.name] = {**entry, **{k: result[k] for k in keys}}
        else:
            section = {"failed": "failures", "empty": "empty", "too_large": "too_large"}[status]
            state[section][item.name] = {**entry, "error": result.get("error", status)}
        bar.update(1)
        if time.time() - last_save[0] > 15:
            save()

    try:
        _run_tasks(tasks, jobs, on_result, executor=executor)
    finally:
        bar.close()
        save()
    _finish(out, items, state, splits, report)
    save()
    report.seconds = time.time() - start
    return report


def _finish(
    out: Path, items: Sequence[BuildItem], state: dict[str, dict], splits: Mapping[str, str] | None, report: BuildReport
) -> None:
    """Forget entries of items no longer requested, then write metadata.json and the per-split lists."""
    wanted = {item.name for item in items}
    for section in state.values():  # entries of items no longer requested stay out of the lists
        for name in [n for n in section if n not in wanted]:
            del section[name]
    names = sorted(state["benchmarks"])
    groups: dict[str, int] = {}
    for name in names:
        groups[state["benchmarks"][name]["group"]] = groups.get(state["benchmarks"][name]["group"], 0) + 1
    assignment = dict(splits) if splits is not None else assign_splits(groups)
    per_file = assign_splits({n: 1 for n in names}) if splits is None and len(groups) < 3 else None
    lists: dict[str, list[str]] = {"train": [], "val": [], "test": []}
    for name in names:
        if per_file is not None:
            mode = per_file[name]
        else:
            mode = assignment.get(state["benchmarks"][name]["group"], "train")
        state["benchmarks"][name]["split"] = mode
        lists[mode].append(name)
    write_metadata(out / METADATA_FILE, [*lists["test"], *lists["val"], *lists["train"]])
    for mode, filename in SPLIT_FILES.items():
        write_metadata(out / filename, lists[mode])
    report.modules = len(names)
    report.o0_total = sum(state["benchmarks"][n]["o0"] for n in names)
    report.oz_total = sum(state["benchmarks"][n]["oz"] for n in names)
    report.failures, report.duplicates = state["failures"], state["duplicates"]
    report.empty, report.too_large = state["empty"], state["too_large"]
    report.split_sizes = {mode: len(v) for mode, v in lists.items()}
