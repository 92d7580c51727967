"""Metric logging to the terminal, logdir/metrics.jsonl and TensorBoard (REFERENCE.md §1.3 "Logging outputs")."""

from __future__ import annotations

import json
import logging
import math
import os
import re
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol, TextIO

__all__ = ["JSONLOutput", "Logger", "Output", "TensorBoardOutput", "TerminalOutput", "config_markdown"]

log = logging.getLogger(__name__)


class Output(Protocol):
    """Receives the scalars of one `Logger.write()`; may also accept text."""

    def write(self, step: int, scalars: Mapping[str, float]) -> None: ...


def _format_number(value: float) -> str:
    if math.isfinite(value) and value == int(value) and abs(value) < 1e15:
        return str(int(value))
    return f"{value:.4g}"


class TerminalOutput:
    """Prints `[step] name value / name value` lines (only names matching `pattern`, if given).

    Lines go through tqdm.write when tqdm is importable, so progress bars stay intact.
    """

    def __init__(self, stream: TextIO | None = None, pattern: str | None = None) -> None:
        self._stream = stream
        self._pattern = re.compile(pattern) if pattern else None

    def write(self, step: int, scalars: Mapping[str, float]) -> None:
        if self._pattern is not None:
            scalars = {k: v for k, v in scalars.items() if self._pattern.search(k)}
        if not scalars:
            return
        body = " / ".join(f"{name} {_format_number(value)}" for name, value in scalars.items())
        line = f"[{step}] {body}"
        try:
            from tqdm import tqdm

            tqdm.write(line, file=self._stream or sys.stdout)
        except ImportError:
            print(line, file=self._stream or sys.stdout, flush=True)


class JSONLOutput:
    """Appends `{"step": s, name: value, ...}` lines to `logdir/metrics.jsonl`."""

    def __init__(self, logdir: str | os.PathLike[str], filename: str = "metrics.jsonl") -> None:
        self.path = Path(logdir) / filename

    def write(self, step: int, scalars: Mapping[str, float]) -> None:
        if not scalars:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.path, "a", encoding="utf-8") as f:
            f.write(json.dumps({"step": step, **scalars}) + "\n")


class TensorBoardOutput:
    """Writes scalars (and text) with torch's SummaryWriter; a no-op if it cannot be imported.

    Tags that contain no '/' are grouped under `scalars/`; `charts/fps`, `losses/...`, `test/...`
    are kept as given.
    """

    def __init__(self, logdir: str | os.PathLike[str]) -> None:
        self.logdir = Path(logdir)
        self._writer: Any = None
        self._unavailable = False

    def _get_writer(self) -> Any:
        if self._writer is None and not self._unavailable:
            try:
                from torch.utils.tensorboard import SummaryWriter  # lazy: torch and tensorboard are heavy
            except ImportError as e:
                log.warning("TensorBoard output disabled: %s", e)
                self._unavailable = True
                return None
            self._writer = SummaryWriter(log_dir=str(self.logdir))
        return self._writer

    def write(self, step: int, scalars: Mapping[str, float]) -> None:
        writer = self._get_writer()
        if writer is None or not scalars:
            return
        for name, value in scalars.items():
            writer.add_scalar(name if "/" in name else f"scalars/{name}", value, step)
        writer.flush()

    def write_text(self, step: int, name: str, text: str) -> None:
        writer = self._get_writer()
        if writer is not None:
            writer.add_text(name, text, step)
            writer.flush()

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
            self._writer = None


def config_markdown(config: Mapping[str, Any]) -> str:
    """Hyper-parameters as a Markdown table (TensorBoard renders it in the Text tab)."""
    rows = "\n".join(f"|{key}|{value}|" for key, value in config.items())
    return "|param|value|\n|-|-|\n" + rows


def _to_float(name: str, value: Any) -> float:
    try:
        return float(value)  # numpy and torch scalars included
    except (TypeError, ValueError):
        raise TypeError(f"Logger.scalar('{name}') needs a number, got {type(value).__name__} {value!r}") from None


class Logger:
    """Collects scalars and writes them, averaged per name, to every output at `write()`.

    `step_fn` returns the current environment step (an int is also accepted). Repeated calls of
    `scalar(name, ...)` between two writes are averaged.
    """

    def __init__(
        self,
        logdir: str | os.PathLike[str],
        step_fn: Callable[[], int] | int,
        outputs: Sequence[Output] | None = None,
    ) -> None:
        self.logdir = Path(logdir)
        self._step_fn = step_fn
        self.outputs = list(outputs) if outputs is not None else [
            TerminalOutput(),
            JSONLOutput(self.logdir),
            TensorBoardOutput(self.logdir),
        ]  # fmt: skip
        self._sums: dict[str, float] = {}
        self._counts: dict[str, int] = {}
        self._last: tuple[int, float] | None = None  # (step, time) of the previous fps measurement
        self._config_written = False

    @property
    def step(self) -> int:
        return int(self._step_fn() if callable(self._step_fn) else self._step_fn)

    def scalar(self, name: str, value: Any) -> None:
        value = _to_float(name, value)
        self._sums[name] = self._sums.get(name, 0.0) + value
        self._counts[name] = self._counts.get(name, 0) + 1

    def add(self, metrics: Mapping[str, Any], prefix: str | None = None) -> None:
        """`scalar()` for each item, names prefixed `prefix/` when a prefix is given."""
        for name, value in metrics.items():
            self.scalar(f"{prefix}/{name}" if prefix else name, value)

    def _fps(self, step: int) -> float | None:
        now = time.perf_counter()
        last, self._last = self._last, (step, now)
        if last is None or now <= last[1]:
            return None
        return (step - last[0]) / (now - last[1])

    def write(self, fps: bool = False) -> None:
        """Send the averaged scalars to every output and clear them; optionally add `fps`."""
        step = self.step
        if fps:
            value = self._fps(step)
            if value is not None:
                self.scalar("fps", value)
        scalars = {name: self._sums[name] / self._counts[name] for name in self._sums}
        self._sums.clear()
        self._counts.clear()
        for output in self.outputs:
            output.write(step, scalars)

    def text(self, name: str, text: str) -> None:
        """Write text to the outputs that accept it (TensorBoard)."""
        for output in self.outputs:
            write_text = getattr(output, "write_text", None)
            if write_text is not None:
                write_text(self.step, name, text)

    def config(self, config: Mapping[str, Any]) -> None:
        """Write the hyper-parameters once as a `config` text entry."""
        if not self._config_written:
            self.text("config", config_markdown(config))
            self._config_written = True

    def close(self) -> None:
        for output in self.outputs:
            close = getattr(output, "close", None)
            if close is not None:
                close()
