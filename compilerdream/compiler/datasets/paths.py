"""Where datasets and caches live (data root, cache root) and atomic file writes."""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

from ..fileio import atomic_write, creation_mode

#: Environment variable that overrides the data root (default: `data/` under the CWD).
DATA_ROOT_ENV = "COMPILERDREAM_DATA"
#: Environment variable that overrides the cache root (default: `~/.cache/compilerdream`).
CACHE_ROOT_ENV = "COMPILERDREAM_CACHE"


def data_root(explicit: str | os.PathLike | None = None) -> Path:
    """The directory holding installed and built datasets.

    Precedence: an explicit argument, then $COMPILERDREAM_DATA, then `data/` relative
    to the current directory (the reference's `./data`).
    """
    if explicit is not None:
        return Path(explicit).expanduser().absolute()
    env = os.environ.get(DATA_ROOT_ENV)
    if env:
        return Path(env).expanduser().absolute()
    return Path("data").absolute()


def cache_root() -> Path:
    """Root of compilerdream's caches: $COMPILERDREAM_CACHE or ~/.cache/compilerdream."""
    env = os.environ.get(CACHE_ROOT_ENV)
    if env:
        return Path(env).expanduser().absolute()
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg).expanduser() if xdg else Path.home() / ".cache"
    return base / "compilerdream"


def generator_cache_dir() -> Path:
    """Where generated programs (csmith, llvm-stress) are cached by seed and options."""
    return cache_root() / "generators"


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Write `data` to `path` so that readers see either the old file or the whole new one (no fsync:
    dataset files can be rebuilt)."""
    atomic_write(path, bytes(data), durable=False)


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    """Text version of `atomic_write_bytes` (UTF-8)."""
    atomic_write_bytes(path, text.encode("utf-8"))


@contextlib.contextmanager
def staging_dir(target: str | os.PathLike) -> Iterator[Path]:
    """A temporary directory beside `target`, renamed onto it only if the block succeeds.

    Used so that a failed install or extraction never leaves a half-written dataset:
    the temporary directory lives in the same parent (same filesystem, so the final
    rename is atomic) and is removed on error.
    """
    import shutil

    final = Path(target)
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix="." + final.name + ".partial-", dir=final.parent))
    try:
        os.chmod(tmp, creation_mode(directory=True))  # not mkdtemp's 0700: the dataset is shared
        yield tmp
        if final.exists():
            shutil.rmtree(final)
        os.replace(tmp, final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
