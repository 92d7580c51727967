"""CompilerGym's exception names, and the translation of compilerdream's errors into them.

User code written for CompilerGym catches `BenchmarkInitError`, `SessionNotFound`,
`ServiceError`, `LookupError` ...; our engine raises its own typed errors
(compilerdream.compiler.errors). `translated(exc)` gives an exception that is an
instance of *both* the CompilerGym class and the original one, with the same message,
so `except BenchmarkInitError` and `except MalformedInputError` both catch it.
`ValidationError` is not an exception: as in CompilerGym, it is the record of one problem that
`env.validate()` found (a type and optional data), also what validation callbacks return.
"""

from __future__ import annotations

import contextlib
import functools
from dataclasses import dataclass, field

from compilerdream.compiler.errors import (
    BenchmarkNotFoundError,
    CompileError,
    CompilerDreamError,
    EmptyModuleError,
    MalformedInputError,
    SessionError,
    ToolNotFoundError,
)


class ServiceError(Exception):
    """The compiler session failed (in CompilerGym: an error raised by the service)."""


class SessionNotFound(ServiceError):
    """No live session: the environment was not reset, or its session died."""


class ServiceOSError(ServiceError, OSError):
    """A system error while running the compiler."""


class ServiceInitError(ServiceError, OSError):
    """The compiler could not be started."""


class EnvironmentNotSupported(ServiceInitError):
    """A tool the environment needs (clang, csmith, llvm-stress) is not installed here."""


class ServiceTransportError(ServiceError, OSError):
    """Talking to the compiler worker failed."""


class ServiceIsClosed(ServiceError, TypeError):
    """The environment was used after close()."""


class BenchmarkInitError(OSError):
    """A benchmark could not be loaded: malformed bitcode, a failed compile, an empty module."""


class DatasetInitError(OSError):
    """A dataset could not be initialised."""


class DownloadFailed(OSError):
    """A download failed."""


class TooManyRequests(DownloadFailed):
    """The server refused a download because of too many requests."""


@dataclass(frozen=True)
class ValidationError:
    """One problem found by `env.validate()` or a validation callback: a short `type` (for example
    "Wrong output", "Execution timeout") and JSON-ready `data` that describes it."""

    type: str
    data: dict = field(default_factory=dict, compare=False, hash=False)

    def __lt__(self, other) -> bool:  # lists of errors sort, as in CompilerGym
        return not isinstance(other, ValidationError) or self.type < other.type

    def __str__(self) -> str:
        return self.type


def _target(exc: BaseException) -> type[BaseException] | None:
    """The CompilerGym class an error of ours is seen as, or None to leave it alone."""
    if isinstance(exc, SessionError):
        return SessionNotFound if getattr(exc, "error_type", "") == "NotReset" else ServiceError
    if isinstance(exc, ToolNotFoundError):
        return EnvironmentNotSupported
    if isinstance(exc, BenchmarkNotFoundError):  # CompilerGym: LookupError("Benchmark not found")
        return LookupError
    if isinstance(exc, (MalformedInputError, CompileError, EmptyModuleError)):
        return BenchmarkInitError
    return None


@functools.cache
def _both(cg_class: type[BaseException], ours: type[BaseException]) -> type[BaseException]:
    def __init__(self, *args):  # bypass constructors that need more than a message
        BaseException.__init__(self, *args)

    name = cg_class.__name__
    return type(name, (cg_class, ours), {"__init__": __init__, "__module__": cg_class.__module__})


def translated(exc: BaseException) -> BaseException:
    """`exc` as an instance of its CompilerGym class too (the same object when no translation applies)."""
    target = _target(exc)
    if target is None or isinstance(exc, target):
        return exc
    new = _both(target, type(exc))(str(exc))
    new.__dict__.update(getattr(exc, "__dict__", {}))
    return new


@contextlib.contextmanager
def compilergym_errors():
    """Re-raise compilerdream's errors inside the block as their CompilerGym classes."""
    try:
        yield
    except CompilerDreamError as exc:
        new = translated(exc)
        if new is exc:
            raise
        raise new.with_traceback(exc.__traceback__) from None


__all__ = [
    "BenchmarkInitError",
    "DatasetInitError",
    "DownloadFailed",
    "EnvironmentNotSupported",
    "ServiceError",
    "ServiceInitError",
    "ServiceIsClosed",
    "ServiceOSError",
    "ServiceTransportError",
    "SessionNotFound",
    "TooManyRequests",
    "ValidationError",
    "compilergym_errors",
    "translated",
]
