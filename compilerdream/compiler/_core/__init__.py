"""Loader for the native LLVM engine (built by setup.py from engine.cpp)."""

try:
    from . import _engine  # noqa: F401
    from ._engine import LLVM_VERSION, Module, canonical_pipeline, host_triple  # noqa: F401
except ImportError as exc:  # pragma: no cover - depends on the build
    raise ImportError(
        "compilerdream's native LLVM engine is not built. Run `pip install -e .` in the repository "
        "(needs llvm-19-dev: `sudo apt-get install llvm-19-dev clang-19`). Original error: " + str(exc)
    ) from exc
