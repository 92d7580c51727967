"""Timer and humanize_duration, as CompilerGym's examples use them (`with Timer("Step") as t: ...`)."""

from __future__ import annotations

import time


def humanize_duration(seconds: float) -> str:
    """`1.5s`, `250.0ms`, `3m 20s`, `2h 5m`."""
    if seconds < 0:
        return "-" + humanize_duration(-seconds)
    if seconds < 1e-3:
        return f"{seconds * 1e6:.1f}us"
    if seconds < 1:
        return f"{seconds * 1e3:.1f}ms"
    if seconds < 60:
        return f"{seconds:.1f}s"
    if seconds < 3600:
        return f"{int(seconds // 60)}m {int(seconds % 60)}s"
    return f"{int(seconds // 3600)}h {int(seconds % 3600 // 60)}m"


class Timer:
    """Measures the time inside `with Timer(label) as t:`; `t.time` is seconds, str(t) is humanized."""

    def __init__(self, label: str | None = None, print_fn=print):
        self.label = label
        self.print_fn = print_fn
        self.time: float | None = None
        self._start: float | None = None

    def reset(self) -> Timer:
        self._start = time.time()
        return self

    def __enter__(self) -> Timer:
        return self.reset()

    def __exit__(self, *exc) -> None:
        self.time = time.time() - (self._start or time.time())
        if self.label:
            self.print_fn(f"{self.label} in {self}")

    def __str__(self) -> str:
        return humanize_duration(self.time if self.time is not None else time.time() - (self._start or time.time()))
