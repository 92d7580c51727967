"""Loaders for published corpora: the CompilerDream data zip, CodeContests (parquet), FormAI (zip/7z/JSON)."""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path

from ..errors import CompilerDreamError
from .archives import download, safe_extract
from .builder import BuildItem, BuildReport, _unique_names, _walk_sources, build
from .files import CODECONTEST_SPLIT_FILES, SPLIT_FILES, read_metadata, walk_bitcode
from .paths import data_root, staging_dir

logger = logging.getLogger(__name__)

CDREAM_FOLDERS = ("codecontest", "formai", "angha")
#: CodeContests' language enum: 2 is C++ (0 unknown, 1 Python 2, 3 Python 3, 4 Java).
CODECONTESTS_CPP = 2
_SPLIT_WORDS = {"train": "train", "valid": "val", "validation": "val", "val": "val", "test": "test"}


class CorpusFormatError(CompilerDreamError, ValueError):
    """An input that is not in the expected layout or format."""


def _safe_name(text: str, limit: int = 80) -> str:
    cleaned = re.sub(r"[^A-Za-z0-9_.-]+", "_", text).strip("._")
    return (cleaned or "item")[:limit]


# -- CompilerDream's data zip -------------------------------------------------------------------------------


def install_compilerdream_zip(
    archive: str | os.PathLike, data_root_dir: str | os.PathLike | None = None, force: bool = False
) -> list[Path]:
    """Unpack CompilerDream's data zip (codecontest/, formai/, angha/ with metadata lists) under the data root.

    Each folder is checked (bitcode and a metadata list), then renamed into place;
    a corrupt archive or a bad layout leaves nothing behind.
    """
    root = data_root(data_root_dir)
    root.mkdir(parents=True, exist_ok=True)
    installed = []
    with tempfile.TemporaryDirectory(prefix=".compilerdream-zip-", dir=root) as tmp:
        safe_extract(archive, tmp)
        found = {}
        for dirpath, dirnames, _ in os.walk(tmp):
            for name in dirnames:
                if name in CDREAM_FOLDERS and name not in found:
                    found[name] = Path(dirpath) / name
        if not found:
            raise CorpusFormatError(
                f"{archive} holds none of the folders {', '.join(CDREAM_FOLDERS)}: not a CompilerDream data archive"
            )
        for name, folder in sorted(found.items()):
            lists = sorted(folder.glob("metadata*.json"))
            if not lists and not walk_bitcode(folder):
                raise CorpusFormatError(f"{archive}: folder {name}/ has neither .bc files nor metadata*.json")
            for listed in lists:
                read_metadata(listed)  # raises on malformed lists
            target = root / name
            if target.exists() and not force:
                raise CorpusFormatError(f"{target} already exists: remove it or pass --force")
            with staging_dir(target) as stage:
                for child in folder.iterdir():
                    shutil.move(str(child), str(stage / child.name))
            installed.append(target)
    return installed


# -- CodeContests -------------------------------------------------------------------------------------------


def _split_of_file(path: str) -> str | None:
    words = re.split(r"[^a-z]+", os.path.basename(path).lower())
    return next((_SPLIT_WORDS[w] for w in words if w in _SPLIT_WORDS), None)


def codecontests_solutions(
    parquet: str | os.PathLike, max_per_problem: int | None = None
) -> Iterator[tuple[str, int, str]]:
    """(problem name, index, C++ source) of every C++ solution in a CodeContests parquet file."""
    try:
        import pyarrow.parquet as pq
    except ImportError:
        raise CorpusFormatError("reading CodeContests parquet files needs pyarrow: pip install pyarrow") from None
    table = pq.read_table(str(parquet), columns=["name", "solutions"])
    for row in table.to_pylist():
        solutions = row.get("solutions") or {}
        languages, sources = solutions.get("language") or [], solutions.get("solution") or []
        kept = 0
        for i, (language, source) in enumerate(zip(languages, sources)):
            if language == CODECONTESTS_CPP and source:
                yield str(row.get("name") or "problem"), i, source
                kept += 1
                if max_per_problem and kept >= max_per_problem:
                    break


def import_codecontests(
    inputs: Sequence[str],
    out: str | os.PathLike,
    workdir: str | os.PathLike | None = None,
    max_per_problem: int | None = 1,
    max_problems: int | None = None,
    jobs: int | None = None,
    progress: bool = True,
) -> BuildReport:
    """Compile CodeContests' C++ solutions (local parquet files or URLs) into a file dataset.

    Splits follow the release's files (train/valid/test in the file name; otherwise
    whole problems are assigned by hash). The lists are also written under the
    names CompilerDream's codecontest folder uses (metadata_small_*.json).
    """
    work = Path(workdir) if workdir else Path(tempfile.mkdtemp(prefix="compilerdream-codecontests-"))
    items: list[BuildItem] = []
    splits: dict[str, str] = {}
    problems = 0
    for source in inputs:
        path = source
        if re.match(r"^https?://", source):
            path = str(download(source, work / "downloads" / os.path.basename(source.split("?", 1)[0])))
        if not os.path.isfile(path):
            raise CorpusFormatError(f"CodeContests input not found: {path}")
        mode = _split_of_file(path)
        seen: set[str] = set()
        for problem, index, text in codecontests_solutions(path, max_per_problem):
            if problem not in seen:
                seen.add(problem)
                problems += 1
                if max_problems and problems > max_problems:
                    break
            folder = _safe_name(problem)
            file = work / "src" / folder / f"solution_{index}.cc"
            file.parent.mkdir(parents=True, exist_ok=True)
            file.write_text(text, encoding="utf-8")
            items.append(BuildItem(f"{folder}/solution_{index}.bc", (str(file),), folder))
            if mode:
                splits[folder] = mode
    if not items:
        raise CorpusFormatError("no C++ solutions found in " + ", ".join(inputs))
    report = build(items, out, jobs=jobs, splits=splits or None, progress=progress, sources_description=list(inputs))
    _write_codecontest_lists(Path(out))
    return report


def _write_codecontest_lists(out: Path) -> None:
    for mode, ours in SPLIT_FILES.items():
        if (out / ours).is_file():
            shutil.copyfile(out / ours, out / CODECONTEST_SPLIT_FILES[mode])


# -- FormAI -------------------------------------------------------------------------------------------------

_CODE_KEYS = ("code", "source_code", "source", "content", "c_code", "program")
_NAME_KEYS = ("file_name", "filename", "name", "id")


def _json_records(path: Path) -> list[dict]:
    text = path.read_text(encoding="utf-8", errors="replace").strip()
    try:
        data = json.loads(text)
    except json.JSONDecodeError:
        try:
            data = [json.loads(line) for line in text.splitlines() if line.strip()]
        except json.JSONDecodeError as exc:
            raise CorpusFormatError(f"{path} is neither JSON nor JSON lines: {exc}") from exc
    if isinstance(data, dict):
        data = next((v for v in data.values() if isinstance(v, list)), [data])
    if not isinstance(data, list):
        raise CorpusFormatError(f"{path}: expected a list of records with C code")
    return [r for r in data if isinstance(r, dict)]


def formai_sources(inputs: Sequence[str], work: Path) -> list[Path]:
    """C files from FormAI releases: zip or 7z archives of .c files, or JSON/JSONL records with a code field."""
    files: list[Path] = []
    for n, source in enumerate(inputs):
        path = Path(source)
        if not path.is_file():
            raise CorpusFormatError(f"FormAI input not found: {path}")
        if path.suffix.lower() in (".json", ".jsonl"):
            target = work / f"json{n}"
            target.mkdir(parents=True, exist_ok=True)
            for i, record in enumerate(_json_records(path)):
                code = next((record[k] for k in _CODE_KEYS if isinstance(record.get(k), str)), None)
                if not code:
                    continue
                name = next((str(record[k]) for k in _NAME_KEYS if record.get(k) is not None), f"sample_{i}")
                file = target / (_safe_name(Path(name).stem) + f"_{i}.c")
                file.write_text(code, encoding="utf-8")
                files.append(file)
        else:
            target = work / f"archive{n}"
            target.mkdir(parents=True, exist_ok=True)
            safe_extract(path, target)
            files += [f for f in _walk_sources(target) if f.suffix == ".c"]
    return files


def import_formai(
    inputs: Sequence[str],
    out: str | os.PathLike,
    workdir: str | os.PathLike | None = None,
    limit: int | None = None,
    jobs: int | None = None,
    progress: bool = True,
) -> BuildReport:
    """Compile FormAI's C programs into a file dataset (split per file, deterministically)."""
    work = Path(workdir) if workdir else Path(tempfile.mkdtemp(prefix="compilerdream-formai-"))
    files = sorted(formai_sources(inputs, work))[: limit or None]
    if not files:
        raise CorpusFormatError("no C files found in " + ", ".join(inputs))
    items = []
    for f in files:
        rel = f.relative_to(work).with_suffix(".bc").as_posix()
        items.append(BuildItem(rel.split("/", 1)[-1] if "/" in rel else rel, (str(f),), f.stem))
    return build(_unique_names(items), out, jobs=jobs, progress=progress, sources_description=list(inputs))
