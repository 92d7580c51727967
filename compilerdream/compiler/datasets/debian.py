"""Debian source packages through a private apt configuration (the system's apt state is never touched)."""

from __future__ import annotations

import functools
import glob
import os
import re
import shutil
import subprocess
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from ..errors import CompilerDreamError
from .archives import safe_extract

SYSTEM_SOURCES = ("/etc/apt/sources.list", "/etc/apt/sources.list.d")


class AptError(CompilerDreamError, RuntimeError):
    """apt could not update or fetch a source package (no network, no sources configured...)."""


@dataclass
class AptSource:
    """One repository from the system's configuration: where it is and which suites/components."""

    uri: str
    suites: tuple[str, ...]
    components: tuple[str, ...]
    signed_by: str | None = None


def _parse_deb822(text: str) -> list[AptSource]:
    sources = []
    for stanza in re.split(r"\n\s*\n", text):
        fields: dict[str, str] = {}
        key = None
        for line in stanza.splitlines():
            if not line.strip() or line.lstrip().startswith("#"):
                continue
            if line[0].isspace() and key:
                fields[key] += " " + line.strip()
                continue
            key, _, value = line.partition(":")
            key = key.strip().lower()
            fields[key] = value.strip()
        if "deb" not in fields.get("types", "").split() or fields.get("enabled", "yes").lower() == "no":
            continue
        for uri in fields.get("uris", "").split():
            sources.append(
                AptSource(
                    uri,
                    tuple(fields.get("suites", "").split()),
                    tuple(fields.get("components", "").split()),
                    fields.get("signed-by"),
                )
            )
    return sources


def _parse_one_line(text: str) -> list[AptSource]:
    sources = []
    for line in text.splitlines():
        line = line.split("#", 1)[0].strip()
        if not line.startswith("deb "):
            continue
        line = re.sub(r"\[([^\]]*)\]", "", line[4:]).split()  # options such as [arch=amd64] are dropped
        if len(line) >= 2:
            sources.append(AptSource(line[0], (line[1],), tuple(line[2:])))
    return sources


def system_sources(paths: tuple[str, ...] = SYSTEM_SOURCES) -> list[AptSource]:
    """The Debian/Ubuntu repositories the system's apt uses (deb822 .sources and one-line .list files)."""
    files: list[str] = []
    for path in paths:
        if os.path.isdir(path):
            files += sorted(glob.glob(os.path.join(path, "*.sources")) + glob.glob(os.path.join(path, "*.list")))
        elif os.path.isfile(path):
            files.append(path)
    found: list[AptSource] = []
    for file in files:
        try:
            text = Path(file).read_text(encoding="utf-8", errors="replace")
        except OSError:
            continue
        found += _parse_deb822(text) if file.endswith(".sources") else _parse_one_line(text)
    return [s for s in found if s.suites and s.uri.startswith(("http://", "https://", "file:", "ftp://"))]


class PrivateApt:
    """apt-get with its own sources file, package lists and cache under `workdir`.

    The sources mirror the system's repositories with `Types: deb deb-src`, so no
    host is hard-coded and the system's apt lists are left alone.
    """

    def __init__(self, workdir: str | os.PathLike, sources: list[AptSource] | None = None, timeout: float = 300.0):
        self.workdir = Path(workdir).absolute()
        self.sources = sources if sources is not None else system_sources()
        self.timeout = timeout
        if not self.sources:
            raise AptError(
                "no apt repositories are configured on this system (looked in /etc/apt/sources.list and /etc/apt/sources.list.d)"
            )
        if shutil.which("apt-get") is None:
            raise AptError("apt-get is not installed: the default corpus needs a Debian or Ubuntu system")
        self.sources_file = self.workdir / "sources.sources"
        self.lists, self.cache = self.workdir / "lists", self.workdir / "cache"
        for folder in (self.lists / "partial", self.cache / "archives" / "partial"):
            folder.mkdir(parents=True, exist_ok=True)
        stanzas = []
        for s in self.sources:
            stanza = [
                "Types: deb deb-src",
                f"URIs: {s.uri}",
                f"Suites: {' '.join(s.suites)}",
                f"Components: {' '.join(s.components)}",
            ]
            if s.signed_by:
                stanza.append(f"Signed-By: {s.signed_by}")
            stanzas.append("\n".join(stanza))
        self.sources_file.write_text("\n\n".join(stanzas) + "\n")

    def options(self) -> list[str]:
        return [
            "-o", f"Dir::Etc::sourcelist={self.sources_file}",
            "-o", "Dir::Etc::sourceparts=-",
            "-o", f"Dir::State::Lists={self.lists}",
            "-o", f"Dir::Cache={self.cache}",
            "-o", "Debug::NoLocking=1",
            "-o", "APT::Get::List-Cleanup=0",
        ]  # fmt: skip

    def _run(self, args: list[str], cwd: Path | None = None) -> subprocess.CompletedProcess:
        try:
            proc = subprocess.run(
                ["apt-get", "-q", *self.options(), *args], capture_output=True, text=True, timeout=self.timeout, cwd=cwd
            )
        except subprocess.TimeoutExpired as exc:
            raise AptError(f"apt-get {args[0]} timed out after {self.timeout:.0f}s") from exc
        return proc

    def update(self) -> None:
        proc = self._run(["update"])
        if proc.returncode != 0 or re.search(r"^(E:|Err:)", proc.stdout + proc.stderr, re.M):
            lines = [ln for ln in (proc.stderr + proc.stdout).splitlines() if ln.startswith(("E:", "Err:", "W:"))]
            raise AptError("apt-get update failed (no network or repository?): " + " | ".join(lines[:3]))

    def source_versions(self, package: str) -> list[str]:
        """Versions of source package `package` the repositories list, newest first."""
        try:
            proc = subprocess.run(
                ["apt-cache", *self.options(), "showsrc", package], capture_output=True, text=True, timeout=self.timeout
            )
        except subprocess.TimeoutExpired:
            return []
        versions, current = [], None
        for line in proc.stdout.splitlines():
            if line.startswith("Package:"):
                current = line.split(":", 1)[1].strip()
            elif line.startswith("Version:") and current == package:
                version = line.split(":", 1)[1].strip()
                if version not in versions:
                    versions.append(version)
        return sorted(versions, key=functools.cmp_to_key(_compare_versions), reverse=True)

    def download_source(self, package: str, version: str | None, dest: str | os.PathLike) -> tuple[Path, str]:
        """`apt-get source --download-only` into `dest`; returns the .dsc path and the version fetched.

        The pinned version is tried first, then the others the repositories list
        (newest first); the manifest records which one was used. A fetch counts as
        done when the .dsc and its upstream tarball arrived with the checksums the
        .dsc states (mirrors sometimes lack only the debian/ packaging tarball).
        """
        target = Path(dest)
        target.mkdir(parents=True, exist_ok=True)
        candidates = [version] if version else []
        candidates += [v for v in self.source_versions(package) if v != version]
        errors = []
        for candidate in candidates or [None]:
            spec = f"{package}={candidate}" if candidate else package
            proc = self._run(["source", "--download-only", spec], cwd=target)
            plain = (candidate or "").split(":", 1)[-1]
            dscs = [target / f"{package}_{plain}.dsc"] if candidate else sorted(target.glob(f"{package}_*.dsc"))
            for dsc in dscs:
                if dsc.is_file() and _tarballs_complete(dsc):
                    return dsc, dsc.name[len(package) + 1 : -len(".dsc")]
            errors.append(((proc.stderr or proc.stdout).strip().splitlines() or ["?"])[-1])
        raise AptError(f"apt-get source {package}: {' / '.join(errors[:3])}")


def _compare_versions(a: str, b: str) -> int:
    if subprocess.run(["dpkg", "--compare-versions", a, "lt", b]).returncode == 0:
        return -1
    return 0 if a == b else 1


def _tarballs_complete(dsc: Path) -> bool:
    """Whether the upstream tarballs of `dsc` are present with the SHA-256 the .dsc lists."""
    from .archives import sha256_file

    sums: dict[str, str] = {}
    section = False
    for line in dsc.read_text(errors="replace").splitlines():
        if line.startswith("Checksums-Sha256:"):
            section = True
        elif section and line.startswith(" "):
            digest, _, name = line.split()
            sums[name] = digest
        elif section:
            break
    tarballs = dsc_tarballs(dsc)
    return bool(tarballs) and all(t.is_file() and sums.get(t.name, sha256_file(t)) == sha256_file(t) for t in tarballs)


def dsc_tarballs(dsc: Path) -> list[Path]:
    """The upstream tarballs a .dsc lists (orig or native), without the debian/ packaging tarball."""
    names = []
    in_files = False
    for line in dsc.read_text(errors="replace").splitlines():
        if re.match(r"^(Files|Checksums-Sha256):", line):
            in_files = True
            continue
        if in_files and line.startswith(" "):
            name = line.split()[-1]
            if ".tar." in name and ".debian.tar." not in name and name not in names:
                names.append(name)
        elif in_files:
            in_files = False
    main = [n for n in names if ".orig-" not in n]
    return [dsc.parent / n for n in main or names]


def unpack_source(dsc: Path, dest: str | os.PathLike) -> Path:
    """Extract the upstream tarball of `dsc` (safely) into `dest`; returns the source tree's top folder."""
    tarballs = dsc_tarballs(dsc)
    if not tarballs or not tarballs[0].is_file():
        raise AptError(f"{dsc.name} lists no upstream tarball that was downloaded")
    out = Path(dest)
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    safe_extract(tarballs[0], out)
    children = [c for c in out.iterdir() if not c.name.startswith(".")]
    return children[0] if len(children) == 1 and children[0].is_dir() else out


def probe_sources(timeout: float = 5.0) -> bool:
    """Quick check that a configured repository answers (for tests that need `apt-get source`)."""
    if shutil.which("apt-get") is None or shutil.which("dpkg-source") is None and shutil.which("tar") is None:
        return False
    for source in system_sources():
        if not source.uri.startswith(("http://", "https://")):
            continue
        url = f"{source.uri.rstrip('/')}/dists/{source.suites[0]}/Release"
        try:
            with urllib.request.urlopen(urllib.request.Request(url, method="HEAD"), timeout=timeout) as response:
                if response.status == 200:
                    return True
        except (OSError, ValueError):
            continue
    return False
