"""`compiler_gym.validation_error.ValidationError`: CompilerGym's older import path of `compiler_gym.errors.ValidationError`."""

from .errors import ValidationError

__all__ = ["ValidationError"]
