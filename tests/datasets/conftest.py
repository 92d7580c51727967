"""Fixtures for dataset tests: a private data root and a per-session generator cache."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def session_cache(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("compilerdream-cache")


@pytest.fixture(autouse=True)
def hermetic_dirs(monkeypatch, tmp_path, session_cache):
    """Every test gets its own data root; generated programs are cached once per session."""
    root = tmp_path / "data"
    monkeypatch.setenv("COMPILERDREAM_DATA", str(root))
    monkeypatch.setenv("COMPILERDREAM_CACHE", str(session_cache))
    from compilerdream.compiler.datasets import registry

    registry._REGISTRIES.clear()
    yield root
    registry._REGISTRIES.clear()


@pytest.fixture
def data_root(hermetic_dirs) -> Path:
    return hermetic_dirs
