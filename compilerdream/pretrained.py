"""Agents shipped in the package, found by name: `--checkpoint default`, `--load_logdir default`.

A shipped agent is a folder under `compilerdream/pretrained/<name>/` holding what a
training run's logdir holds for loading: `config.yaml` (the agent's config) and the
weights (`variables.pt`), plus `MODEL.md` with the command that trained it and its
measured figures. A path that exists always wins over a name, so a folder called
`default` in the working directory is still used as given.

Torch-free: `compilerdream optimize` resolves names before deciding whether it needs torch.
"""

from __future__ import annotations

import os
from pathlib import Path

PRETRAINED_DIR = Path(__file__).resolve().parent / "pretrained"


def names() -> list[str]:
    """The shipped agents (folders with a config.yaml)."""
    if not PRETRAINED_DIR.is_dir():
        return []
    return sorted(p.name for p in PRETRAINED_DIR.iterdir() if (p / "config.yaml").is_file())


def resolve_checkpoint(path: str | os.PathLike) -> str:
    """`path` itself when it exists (or is not a bare name); else the shipped agent of that name.

    A bare name that is neither a path nor a shipped agent is returned unchanged, so the
    caller's "not found" message names what the user typed.
    """
    text = os.path.expanduser(str(path))
    if os.path.exists(text) or os.sep in text or not text:
        return text
    candidate = PRETRAINED_DIR / text
    return str(candidate) if (candidate / "config.yaml").is_file() else text


def describe_missing(path: str | os.PathLike) -> str:
    """One line for a checkpoint that was not found: lists the shipped names when there are any."""
    shipped = names()
    hint = f" (shipped agents: {', '.join(shipped)})" if shipped else ""
    return f"checkpoint directory not found: {path}{hint}"
