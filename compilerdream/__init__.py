"""compilerdream: a compiler world model for LLVM pass ordering (CompilerDream, KDD 2025), on LLVM 19+."""

__version__ = "0.1.0"
