"""Atomic file writes: a temporary file in the target folder, fsync, then os.replace (nothing half-written)."""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any


def _umask() -> int:
    """The process umask, read without changing it (os.umask can only set it, racing other threads)."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def creation_mode(directory: bool = False) -> int:
    """The mode open()/mkdir() would give a new file or folder (0666/0777 less the umask).

    mkstemp/mkdtemp create private 0600/0700 ones; what we rename into place gets this instead.
    """
    return (0o777 if directory else 0o666) & ~_umask()


@contextlib.contextmanager
def atomic_open(path: str | os.PathLike, mode: str = "wb", durable: bool = True) -> Iterator[IO]:
    """Open a temporary file beside `path`; on success it replaces `path`, on error it is removed.

    The file gets the permissions a plain open() would give it (0666 less the umask),
    not mkstemp's private 0600, so shared results and datasets stay readable.
    `durable` fsyncs the data before the rename (checkpoints, results); files that can be
    rebuilt (a dataset's bitcode) skip it, which is much faster over thousands of files.
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    try:
        os.fchmod(fd, creation_mode())
        with os.fdopen(fd, mode, **({} if "b" in mode else {"encoding": "utf-8"})) as f:
            yield f
            f.flush()
            if durable:
                os.fsync(f.fileno())
        os.replace(tmp, target)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def atomic_write(path: str | os.PathLike, data: bytes | str, durable: bool = True) -> None:
    """Write bytes or text to `path` atomically."""
    with atomic_open(path, "wb" if isinstance(data, (bytes, bytearray)) else "w", durable=durable) as f:
        f.write(data)


def atomic_write_json(path: str | os.PathLike, obj: Any, indent: int | None = 1) -> None:
    atomic_write(path, json.dumps(obj, indent=indent, default=float))
