"""Progress bars for long work: tqdm, redrawn often on a terminal and rarely into a log file."""

from __future__ import annotations

import sys
from collections.abc import Iterable
from typing import Any

#: Seconds between redraws when stderr is a file or a pipe (a CI log, `nohup`, `> run.log 2>&1`):
#: each redraw there is a new line of text, not an update in place.
LOG_INTERVAL_S = 30.0


def progress_bar(iterable: Iterable | None = None, **kwargs: Any):
    """`tqdm(iterable, **kwargs)` with a redraw interval suited to where it writes (stderr by default).

    Pair it with `set_postfix(..., refresh=False)` / `set_postfix_str(..., refresh=False)`,
    which otherwise force a redraw each time.
    """
    from tqdm.auto import tqdm

    stream = kwargs.get("file") or sys.stderr
    interactive = hasattr(stream, "isatty") and stream.isatty()
    kwargs.setdefault("mininterval", 0.1 if interactive else LOG_INTERVAL_S)
    return tqdm(iterable, **kwargs)


def line_buffered_stdout() -> None:
    """Flush stdout at every line when it goes to a file or pipe (for command-line entry points).

    Python block-buffers a redirected stdout, so a log would show the progress bars
    (stderr) long before the messages printed between them.
    """
    stream = sys.stdout
    try:
        if not stream.isatty():
            stream.reconfigure(line_buffering=True)
    except (AttributeError, ValueError, OSError):
        pass  # a replaced stdout without these methods: leave it as it is
