"""compiler_gym.envs: CompilerGym's environment classes (LLVM only)."""

from .llvm import LlvmEnv
from .llvm.llvm_env import CompilerEnv

__all__ = ["CompilerEnv", "LlvmEnv"]
