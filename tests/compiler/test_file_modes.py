"""Files and folders that compilerdream writes atomically get the usual permissions, not mkstemp's 0600."""

from __future__ import annotations

import os
import stat

import pytest

from compilerdream.compiler.datasets.paths import atomic_write_bytes, staging_dir
from compilerdream.compiler.fileio import atomic_write_json


@pytest.fixture
def umask_022():
    old = os.umask(0o022)
    yield
    os.umask(old)


def _mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


@pytest.mark.usefixtures("umask_022")
def test_atomic_writes_follow_the_umask(tmp_path):
    atomic_write_json(tmp_path / "results.json", {"a": 1})
    atomic_write_bytes(tmp_path / "prog.bc", b"BC")
    with staging_dir(tmp_path / "dataset") as staged:
        (staged / "x.bc").write_bytes(b"BC")
    assert _mode(tmp_path / "results.json") == _mode(tmp_path / "prog.bc") == 0o644
    assert _mode(tmp_path / "dataset") == 0o755 and (tmp_path / "dataset" / "x.bc").exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temporary left behind


def test_a_private_umask_is_respected(tmp_path):
    old = os.umask(0o077)
    try:
        atomic_write_json(tmp_path / "results.json", {})
    finally:
        os.umask(old)
    assert _mode(tmp_path / "results.json") == 0o600
