"""ValidationResult and ValidationError as CompilerGym's `env.validate()` returns them."""

from __future__ import annotations

from dataclasses import dataclass, field

from .compiler_env_state import CompilerEnvState
from .errors import ValidationError


@dataclass
class ValidationResult:
    """Did replaying a state reproduce it? `okay()` is a method, as in CompilerGym."""

    state: CompilerEnvState
    walltime: float = 0.0
    reward_validated: bool = False
    actions_replay_failed: bool = False
    reward_validation_failed: bool = False
    actual_reward: float | None = None
    benchmark_semantics_validated: bool = False
    benchmark_semantics_validation_failed: bool = False
    errors: list[ValidationError] = field(default_factory=list)

    def okay(self) -> bool:
        return not self.errors

    def __bool__(self) -> bool:
        return self.okay()

    @property
    def error_details(self) -> str:
        return "\n".join(str(e) for e in self.errors)

    def __str__(self) -> str:
        if self.okay():
            reward = f"{self.actual_reward:.4f}" if self.actual_reward is not None else "-"
            return f"✅  {self.state.benchmark}  {reward}"
        return f"❌  {self.state.benchmark}  {self.errors[0].type}"
