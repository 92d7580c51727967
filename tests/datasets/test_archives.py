"""Untrusted archives: traversal, absolute paths, escaping links and device files are refused; corrupt ones leave nothing."""

from __future__ import annotations

import io
import stat
import tarfile
import zipfile

import pytest
from dataset_helpers import make_cbench_archive

from compilerdream.compiler.datasets import install_compilergym
from compilerdream.compiler.datasets.archives import ArchiveError, safe_extract


def _tar_with(path, info: tarfile.TarInfo, data: bytes = b""):
    with tarfile.open(path, "w:gz") as arc:
        ok = tarfile.TarInfo("fine.txt")
        ok.size = 2
        arc.addfile(ok, io.BytesIO(b"ok"))
        info.size = len(data)
        arc.addfile(info, io.BytesIO(data) if data else None)
    return path


def _info(name: str, kind: bytes = tarfile.REGTYPE, link: str = "") -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.linkname = link
    return info


@pytest.mark.parametrize(
    "info,data,match",
    [
        (_info("../evil.txt"), b"x", r"'\.\.'"),
        (_info("a/../../evil.txt"), b"x", r"'\.\.'"),
        (_info("/etc/evil.txt"), b"x", "absolute"),
        (_info("link", tarfile.SYMTYPE, "../../outside"), b"", "outside"),
        (_info("abs-link", tarfile.SYMTYPE, "/etc/passwd"), b"", "absolute"),
        (_info("hard", tarfile.LNKTYPE, "../outside"), b"", r"'\.\.'|outside"),
        (_info("dev", tarfile.CHRTYPE), b"", "device"),
        (_info("fifo", tarfile.FIFOTYPE), b"", "device"),
    ],
)
def test_unsafe_tar_members_are_refused(tmp_path, info, data, match):
    archive = _tar_with(tmp_path / "bad.tar.gz", info, data)
    dest = tmp_path / "out"
    dest.mkdir()
    with pytest.raises(ArchiveError, match=match):
        safe_extract(archive, dest)
    assert list(dest.iterdir()) == []  # members are checked before anything is written
    assert not (tmp_path / "evil.txt").exists()


def test_links_inside_the_target_are_allowed(tmp_path):
    archive = _tar_with(tmp_path / "ok.tar.gz", _info("sub/link", tarfile.SYMTYPE, "../fine.txt"))
    dest = tmp_path / "out"
    dest.mkdir()
    safe_extract(archive, dest)
    assert (dest / "sub" / "link").read_text() == "ok"


def _zip_with(path, name: str, data: bytes = b"x", mode: int | None = None):
    with zipfile.ZipFile(path, "w") as arc:
        arc.writestr("fine.txt", b"ok")
        info = zipfile.ZipInfo(name)
        if mode is not None:
            info.external_attr = mode << 16
        arc.writestr(info, data)
    return path


@pytest.mark.parametrize(
    "name,data,mode,match",
    [
        ("../evil.txt", b"x", None, r"'\.\.'"),
        ("/abs/evil.txt", b"x", None, "absolute"),
        ("link", b"../../outside", stat.S_IFLNK | 0o777, "outside"),
        ("pipe", b"", stat.S_IFIFO | 0o644, "device"),
    ],
)
def test_unsafe_zip_members_are_refused(tmp_path, name, data, mode, match):
    archive = _zip_with(tmp_path / "bad.zip", name, data, mode)
    dest = tmp_path / "out"
    dest.mkdir()
    with pytest.raises(ArchiveError, match=match):
        safe_extract(archive, dest)
    assert list(dest.iterdir()) == []


def test_truncated_archive_leaves_no_dataset(data_root, tmp_path):
    tar, manifest = make_cbench_archive(tmp_path)
    truncated = tmp_path / "truncated.tar.bz2"
    truncated.write_bytes(tar.read_bytes()[: len(tar.read_bytes()) // 2])
    with pytest.raises(ArchiveError, match="corrupt or truncated"):
        install_compilergym("cbench-v1", from_file=truncated, manifest_file=manifest, verify=False)
    assert not (data_root / "cbench-v1").exists()
    assert [p.name for p in data_root.iterdir()] == []  # the staging folder was removed too


def test_not_an_archive_is_a_clear_error(tmp_path):
    junk = tmp_path / "junk.bin"
    junk.write_bytes(b"\x00\x01 not an archive" * 10)
    with pytest.raises(ArchiveError, match="not a tar, zip or 7z"):
        safe_extract(junk, tmp_path)
