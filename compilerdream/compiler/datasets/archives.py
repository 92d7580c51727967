"""Untrusted archives: checksums, downloads, and extraction that refuses escaping or special members."""

from __future__ import annotations

import bz2
import hashlib
import lzma
import os
import shutil
import stat
import tarfile
import urllib.error
import urllib.request
import zipfile
import zlib
from pathlib import Path, PurePosixPath

from ..errors import CompilerDreamError


class ArchiveError(CompilerDreamError, ValueError):
    """An archive that is corrupt, truncated, fails its checksum or holds unsafe members."""


class DownloadError(CompilerDreamError, OSError):
    """A file that could not be downloaded (the message says how to place it by hand)."""


def sha256_file(path: str | os.PathLike) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def verify_sha256(path: str | os.PathLike, expected: str | None) -> str:
    """The file's SHA-256; raises ArchiveError if `expected` is given and differs."""
    actual = sha256_file(path)
    if expected and actual.lower() != expected.lower():
        raise ArchiveError(f"checksum mismatch for {path}: expected SHA-256 {expected}, got {actual}")
    return actual


def download(url: str, dest: str | os.PathLike, sha256: str | None = None, timeout: float = 60.0) -> Path:
    """Fetch `url` to `dest` (via a temporary file beside it) and verify its SHA-256."""
    target = Path(dest)
    partial = target.with_name(target.name + ".part")
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            target.parent.mkdir(parents=True, exist_ok=True)  # only once the server answered
            with open(partial, "wb") as out:
                shutil.copyfileobj(response, out, 1 << 20)
    except (urllib.error.URLError, OSError, ValueError) as exc:
        partial.unlink(missing_ok=True)
        raise DownloadError(f"could not download {url}: {getattr(exc, 'reason', exc)}") from exc
    try:
        verify_sha256(partial, sha256)
    except ArchiveError:
        partial.unlink(missing_ok=True)
        raise
    os.replace(partial, target)
    return target


def _check_name(name: str, archive: str) -> PurePosixPath:
    path = PurePosixPath(name.replace("\\", "/"))
    if name.startswith(("/", "\\")) or path.is_absolute() or (len(name) > 1 and name[1] == ":"):
        raise ArchiveError(f"refusing archive {archive}: member '{name}' has an absolute path")
    if ".." in path.parts:
        raise ArchiveError(f"refusing archive {archive}: member '{name}' contains '..'")
    return path


def _inside(base: Path, target: PurePosixPath) -> bool:
    resolved = os.path.normpath(os.path.join(str(base), str(target)))
    return resolved == str(base) or resolved.startswith(str(base) + os.sep)


def _check_tar(arc: tarfile.TarFile, dest: Path, archive: str) -> None:
    for member in arc.getmembers():
        path = _check_name(member.name, archive)
        if member.isdev() or member.ischr() or member.isblk() or member.isfifo():
            raise ArchiveError(f"refusing archive {archive}: member '{member.name}' is a device or FIFO")
        if member.issym() or member.islnk():
            link = member.linkname
            if os.path.isabs(link):
                raise ArchiveError(
                    f"refusing archive {archive}: link '{member.name}' points to the absolute path '{link}'"
                )
            base = path.parent if member.issym() else PurePosixPath()
            if not _inside(dest, base / link):
                raise ArchiveError(
                    f"refusing archive {archive}: link '{member.name}' -> '{link}' points outside the target folder"
                )
        elif not (member.isfile() or member.isdir()):
            raise ArchiveError(f"refusing archive {archive}: member '{member.name}' has an unsupported type")


def _check_zip(arc: zipfile.ZipFile, dest: Path, archive: str) -> None:
    for info in arc.infolist():
        path = _check_name(info.filename, archive)
        mode = info.external_attr >> 16
        if stat.S_ISLNK(mode):
            link = arc.read(info).decode("utf-8", "replace")
            if os.path.isabs(link) or not _inside(dest, path.parent / link):
                raise ArchiveError(
                    f"refusing archive {archive}: link '{info.filename}' -> '{link}' points outside the target folder"
                )
        elif stat.S_ISCHR(mode) or stat.S_ISBLK(mode) or stat.S_ISFIFO(mode) or stat.S_ISSOCK(mode):
            raise ArchiveError(f"refusing archive {archive}: member '{info.filename}' is a device or FIFO")


_CORRUPT = (tarfile.TarError, EOFError, zlib.error, OSError, zipfile.BadZipFile, lzma.LZMAError, ValueError)


def archive_format(path: str | os.PathLike) -> str:
    """'tar', 'zip' or '7z', from the file's content (not its name)."""
    with open(path, "rb") as f:
        head = f.read(8)
    if head.startswith(b"PK\x03\x04") or head.startswith(b"PK\x05\x06"):
        return "zip"
    if head.startswith(b"7z\xbc\xaf\x27\x1c"):
        return "7z"
    if head.startswith((b"BZh", b"\x1f\x8b", b"\xfd7zXZ", b"\x28\xb5\x2f\xfd")) or _looks_like_tar(path):
        return "tar"
    raise ArchiveError(f"{path} is not a tar, zip or 7z archive (or it is corrupt)")


def _looks_like_tar(path: str | os.PathLike) -> bool:
    try:
        return tarfile.is_tarfile(path)
    except OSError:
        return False


def safe_extract(archive: str | os.PathLike, dest: str | os.PathLike) -> list[str]:
    """Extract `archive` (tar of any compression, zip or 7z) into the existing folder `dest`.

    Every member is checked first: absolute paths, '..' components, links that leave
    `dest` and device files are refused with ArchiveError. Tar extraction also uses
    the stdlib 'data' filter where available. Returns the member names. A corrupt or
    truncated archive raises ArchiveError; callers extract into a staging folder so
    that nothing half-written survives.
    """
    src, base = str(archive), Path(dest).absolute()
    kind = archive_format(src)
    try:
        if kind == "zip":
            with zipfile.ZipFile(src) as arc:
                _check_zip(arc, base, src)
                bad = arc.testzip()
                if bad is not None:
                    raise ArchiveError(f"archive {src} is corrupt: CRC error in member '{bad}'")
                arc.extractall(base)
                return arc.namelist()
        if kind == "7z":
            return _extract_7z(src, base)
        with tarfile.open(src, mode="r:*") as arc:
            _check_tar(arc, base, src)
            if hasattr(tarfile, "data_filter"):
                arc.extractall(base, filter="data")
            else:  # pragma: no cover - Python < 3.11.4; members were checked above
                arc.extractall(base)
            return arc.getnames()
    except ArchiveError:
        raise
    except _CORRUPT as exc:
        raise ArchiveError(f"archive {src} is corrupt or truncated: {exc}") from exc


def _extract_7z(src: str, base: Path) -> list[str]:
    try:
        import py7zr
    except ImportError:
        raise ArchiveError(f"{src} is a 7z archive; reading it needs py7zr: pip install py7zr") from None
    with py7zr.SevenZipFile(src, mode="r") as arc:
        names = arc.getnames()
        for name in names:
            _check_name(name, src)
        for info in arc.list():
            if getattr(info, "is_symlink", False):
                raise ArchiveError(f"refusing archive {src}: member '{info.filename}' is a link")
        arc.extractall(path=base)
        return names


def decompress_bytes(data: bytes, compression: str) -> bytes:
    """Decompress a bz2/gz/xz blob (CompilerGym manifests are bz2)."""
    import gzip

    try:
        if compression == "bz2":
            return bz2.decompress(data)
        if compression == "gz":
            return gzip.decompress(data)
        if compression == "xz":
            return lzma.decompress(data)
    except (OSError, EOFError, lzma.LZMAError, ValueError) as exc:
        raise ArchiveError(f"corrupt {compression} data: {exc}") from exc
    raise ArchiveError(f"unknown compression '{compression}'")
