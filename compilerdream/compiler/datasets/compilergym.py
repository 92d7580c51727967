"""CompilerGym's published datasets (cbench-v1, npb-v0, ...): the archive table, the installed layout, install."""

from __future__ import annotations

import functools
import json
import logging
import os
import shutil
import tempfile
from collections.abc import Sequence
from pathlib import Path, PurePosixPath

from ..benchmarks import Benchmark
from ..errors import BenchmarkNotFoundError, CompileError, CompilerDreamError, UnknownNameError
from ..toolchain import DEFAULT_FRONTEND_FLAGS, compile_source
from .archives import ArchiveError, DownloadError, decompress_bytes, download, safe_extract, verify_sha256
from .base import Dataset, DatasetNotInstalledError
from .paths import atomic_write_bytes, atomic_write_text, data_root, staging_dir

logger = logging.getLogger(__name__)

TABLE_PATH = Path(__file__).with_name("data") / "compilergym_datasets.json"
INSTALL_MARKER = ".compilerdream-install.json"
MANIFEST_NAME = "compilergym-manifest.txt"
DOWNLOADS = "downloads"


@functools.cache
def _table() -> dict:
    return json.loads(TABLE_PATH.read_text(encoding="utf-8"))


def compilergym_specs() -> dict[str, dict]:
    """name (`cbench-v1`) -> archive spec (URL, SHA-256, layout) of every CompilerGym dataset we know."""
    return _table()["datasets"]


def canonical_name(name: str) -> str | None:
    """`cbench-v1` for `benchmark://cbench-v1`, `cBench-v1` or `cbench`; None if unknown."""
    key = name.split("://", 1)[-1].strip("/")
    specs = compilergym_specs()
    if key in specs:
        return key
    return _table()["aliases"].get(key)


def install_command(key: str) -> str:
    return f"compilerdream datasets install {key}"


def _poj104_order(suffixes: list[str]) -> list[str]:
    """Problems 1-50 (first solution each), then 51-100, then the rest (REFERENCE §2.6)."""
    first: dict[str, int] = {}
    for i, line in enumerate(suffixes):
        first.setdefault(line.split("/", 1)[0], i)
    picked = []
    for lo, hi in ((1, 50), (51, 100)):
        picked += [first[str(p)] for p in range(lo, hi + 1) if str(p) in first]
    chosen = set(picked)
    return [suffixes[i] for i in picked] + [s for i, s in enumerate(suffixes) if i not in chosen]


class CompilerGymDataset(Dataset):
    """An installed CompilerGym dataset: `<data_root>/<name>/` holding the archive's files and its manifest.

    Bitcode archives (LLVM 10 .bc, which LLVM 19 reads) are served directly; source
    archives (chstone, anghabench, jotaibench, poj104) are compiled on first use and
    the bitcode cached under `.bitcode/` in the dataset folder.
    """

    def __init__(self, key: str, data_root_dir: str | os.PathLike | None = None):
        canonical = canonical_name(key)
        if canonical is None:
            raise UnknownNameError(
                f"unknown CompilerGym dataset '{key}': known are {', '.join(sorted(compilergym_specs()))}"
            )
        self.key = canonical
        self.spec = compilergym_specs()[canonical]
        super().__init__("benchmark://" + canonical, self.spec.get("description", ""))
        self.directory = data_root(data_root_dir) / canonical
        self._suffixes: list[str] | None = None

    @property
    def installed(self) -> bool:
        return (self.directory / INSTALL_MARKER).is_file()

    def check_installed(self) -> None:
        if not self.installed:
            raise DatasetNotInstalledError(self.key, self.directory, install_command(self.key))

    @property
    def size(self) -> int:
        return len(self.uris()) if self.installed else int(self.spec.get("size", 0))

    def _read_suffixes(self) -> list[str]:
        self.check_installed()
        lines = (self.directory / MANIFEST_NAME).read_text(encoding="utf-8").splitlines()
        suffixes = [ln.strip() for ln in lines if ln.strip()]
        if self.spec.get("reorder") == "poj104":
            suffixes = _poj104_order(suffixes)
        return suffixes

    def uris(self) -> Sequence[str]:
        if self._suffixes is None:
            self._suffixes = self._read_suffixes()
        return [f"{self.name}/{s}" for s in self._suffixes]

    def _relative(self, uri: str) -> PurePosixPath:
        if not self.owns(uri):
            raise BenchmarkNotFoundError(f"'{uri}' is not a benchmark of {self.name}")
        rel = PurePosixPath(uri[len(self.name) + 1 :].split("?", 1)[0])
        if not rel.parts or rel.is_absolute() or ".." in rel.parts:
            raise BenchmarkNotFoundError(f"malformed benchmark URI '{uri}'")
        return rel

    def source_path(self, uri: str) -> Path:
        rel = self._relative(uri)
        sources = self.spec.get("sources")
        if sources:
            pattern = sources.get(str(rel), sources.get("*", "{name}"))
            return self.directory / pattern.format(name=str(rel))
        return self.directory / (str(rel) + self.spec["suffix"])

    def benchmark(self, uri: str) -> Benchmark:
        self.check_installed()
        path = self.source_path(uri)
        if not path.is_file():
            raise BenchmarkNotFoundError(f"benchmark {uri} not found: no file {path} in the installed {self.key}")
        kind = self.spec["kind"]
        if kind == "bitcode":
            return Benchmark(uri=uri, data=path.read_bytes(), source_path=str(path))
        if kind == "opencl":
            raise CompilerDreamError(f"{self.key} holds OpenCL kernels; compiling them (libclc) is not supported")
        cached = self.directory / ".bitcode" / (str(self._relative(uri)) + ".bc")
        if cached.is_file():
            data = cached.read_bytes()
        else:
            data = self._compile(path)
            try:
                atomic_write_bytes(cached, data)
            except OSError:
                pass
        flags = tuple(DEFAULT_FRONTEND_FLAGS) + tuple(self.spec.get("compile_flags", ()))
        return Benchmark(uri=uri, data=data, source_path=str(path), frontend_flags=flags)

    def _compile(self, path: Path) -> bytes:
        flags = [*DEFAULT_FRONTEND_FLAGS, *self.spec.get("compile_flags", ())]
        prelude, fix_main = self.spec.get("prelude"), self.spec.get("fix_main")
        if not prelude and not fix_main:
            return compile_source(path, flags=flags, include_dirs=[str(path.parent)])
        text = path.read_text(encoding="utf-8", errors="replace")
        if fix_main:  # POJ-104 solutions often declare `main` without int or as void
            text = text.replace("void main", "int main").replace("\nmain", "\nint main")
            text = "int " + text if text.startswith("main") else text
        with tempfile.TemporaryDirectory(prefix="compilerdream-cg-") as tmp:
            src = Path(tmp) / ("source.cc" if self.spec["kind"] == "c++" else "source.c")
            src.write_text((prelude or "") + text, encoding="utf-8")
            try:
                return compile_source(src, flags=flags, include_dirs=[str(path.parent)])
            except CompileError as exc:
                raise CompileError(f"{path}: {exc}") from exc


# -- installation -----------------------------------------------------------------------------


def _manual_instructions(key: str, spec: dict, root: Path, reason: str) -> str:
    downloads = root / DOWNLOADS
    lines = [f"could not download {key} ({reason}). Download it by hand:"]
    lines.append(f"  archive URL:  {spec['tar_url']}")
    lines.append(f"  SHA-256:      {spec['tar_sha256'] or 'not published'}")
    lines.append(f"  place it at:  {downloads / os.path.basename(spec['tar_url'])}   (or pass --from FILE)")
    if spec.get("manifest_url"):
        lines.append(f"  manifest URL: {spec['manifest_url']} (SHA-256 {spec['manifest_sha256']})")
        lines.append(
            f"  place it at:  {downloads / os.path.basename(spec['manifest_url'])}   (or pass --manifest FILE)"
        )
    lines.append(f"then run: {install_command(key)}")
    return "\n".join(lines)


def _locate(
    url: str | None, given: str | os.PathLike | None, root: Path, allow_download: bool, sha256: str | None
) -> Path | None:
    if given is not None:
        path = Path(given).expanduser()
        if not path.is_file():
            raise BenchmarkNotFoundError(f"file not found: {path}")
        return path
    if not url:
        return None
    cached = root / DOWNLOADS / os.path.basename(url)
    if cached.is_file():
        return cached
    if not allow_download:
        return None
    return download(url, cached, sha256=sha256)


def _manifest_lines(manifest: Path | None, spec: dict, files_root: Path) -> list[str]:
    if spec.get("uris"):
        return list(spec["uris"])
    if manifest is not None:
        raw = manifest.read_bytes()
        text = raw if not manifest.name.endswith(".bz2") else decompress_bytes(raw, "bz2")
        return [ln.strip() for ln in text.decode("utf-8").splitlines() if ln.strip()]
    logger.warning("no manifest for this dataset: listing its files in sorted order (CompilerGym's order may differ)")
    suffix = spec["suffix"]
    found = sorted(p.relative_to(files_root).as_posix() for p in files_root.rglob("*" + suffix) if p.is_file())
    return [name[: -len(suffix)] for name in found]


def install(
    key: str,
    data_root_dir: str | os.PathLike | None = None,
    from_file: str | os.PathLike | None = None,
    manifest_file: str | os.PathLike | None = None,
    sha256: str | None = None,
    verify: bool = True,
    allow_download: bool = True,
    force: bool = False,
) -> CompilerGymDataset:
    """Install CompilerGym dataset `key` under the data root from a file, the downloads folder, or the network.

    The archive's SHA-256 is checked against the published value (or `sha256`)
    unless `verify` is False. Extraction happens in a staging folder renamed into
    place at the end, so a failure leaves nothing behind.
    """
    dataset = CompilerGymDataset(key, data_root_dir)
    if dataset.installed and not force:
        return dataset
    spec, root = dataset.spec, dataset.directory.parent
    expected = sha256 or (spec["tar_sha256"] if verify else None)
    try:
        archive = _locate(spec["tar_url"], from_file, root, allow_download, expected)
    except DownloadError as exc:
        raise DownloadError(_manual_instructions(dataset.key, spec, root, str(exc))) from exc
    if archive is None:
        raise DownloadError(_manual_instructions(dataset.key, spec, root, "downloads disabled"))
    if expected:
        verify_sha256(archive, expected)
    manifest = None
    if spec.get("manifest_url") or manifest_file is not None:
        try:
            manifest = _locate(
                spec.get("manifest_url"),
                manifest_file,
                root,
                allow_download,
                spec.get("manifest_sha256") if verify and manifest_file is None else None,
            )
        except DownloadError as exc:
            logger.warning("manifest of %s unavailable (%s): the order will be the sorted file list", dataset.key, exc)
    with staging_dir(dataset.directory) as stage:
        raw = stage / ".raw"
        raw.mkdir()
        safe_extract(archive, raw)
        contents = raw / spec.get("strip_prefix", "") if spec.get("strip_prefix") else raw
        if not contents.is_dir():
            raise ArchiveError(f"{archive} has no folder '{spec['strip_prefix']}': not a {dataset.key} archive")
        for child in contents.iterdir():
            shutil.move(str(child), str(stage / child.name))
        shutil.rmtree(raw)
        lines = _manifest_lines(manifest, spec, stage)
        if not lines:
            raise ArchiveError(f"{archive} holds no {spec['suffix']} files for {dataset.key}")
        atomic_write_text(stage / MANIFEST_NAME, "\n".join(lines) + "\n")
        marker = {
            "name": dataset.name,
            "archive": os.path.basename(str(archive)),
            "sha256": verify_sha256(archive, None),
            "verified": bool(expected),
            "count": len(lines),
        }
        atomic_write_text(stage / INSTALL_MARKER, json.dumps(marker, indent=1) + "\n")
    return CompilerGymDataset(dataset.key, data_root_dir)
