"""compiler_gym.wrappers: CompilerGym's environment wrappers (old gym API, fork-aware)."""

from .commandline import CommandlineWithTerminalAction, ConstrainedCommandline
from .core import ActionWrapper, CompilerEnvWrapper, ObservationWrapper, RewardWrapper
from .counter import Counter, ForkOnStep
from .datasets import CycleOverBenchmarks, IterateOverBenchmarks, RandomOrderBenchmarks
from .time_limit import TimeLimit

__all__ = [
    "ActionWrapper",
    "CommandlineWithTerminalAction",
    "CompilerEnvWrapper",
    "ConstrainedCommandline",
    "Counter",
    "CycleOverBenchmarks",
    "ForkOnStep",
    "IterateOverBenchmarks",
    "ObservationWrapper",
    "RandomOrderBenchmarks",
    "RewardWrapper",
    "TimeLimit",
]
