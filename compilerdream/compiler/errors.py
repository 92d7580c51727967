"""Typed errors of the compiler environment: each names the input and the problem."""

from __future__ import annotations


class CompilerDreamError(Exception):
    """Base class of every error compilerdream raises on purpose."""


class BenchmarkNotFoundError(CompilerDreamError, FileNotFoundError):
    """A benchmark file, URI or dataset entry does not exist."""


class MalformedInputError(CompilerDreamError, ValueError):
    """Bitcode or IR that LLVM cannot parse or that fails verification."""


class CompileError(CompilerDreamError, RuntimeError):
    """A C/C++ source that clang could not compile (clang's message included)."""


class EmptyModuleError(CompilerDreamError, ValueError):
    """A module with no instructions: nothing to optimize."""


class UnknownNameError(CompilerDreamError, KeyError):
    """An unknown pass, action, observation, reward, action space or environment name."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""


class ActionOutOfRangeError(CompilerDreamError, IndexError):
    """An action index outside the action space."""


class ToolNotFoundError(CompilerDreamError, FileNotFoundError):
    """A required executable (clang, opt, csmith, llvm-stress) is not installed."""


class SessionError(CompilerDreamError, RuntimeError):
    """The compiler session died (LLVM abort, segfault) or timed out."""

    def __init__(self, message: str, error_type: str = "SessionError", details: str = ""):
        super().__init__(message)
        self.error_type = error_type
        self.details = details or message
