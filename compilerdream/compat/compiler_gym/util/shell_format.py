"""Terminal text helpers used by CompilerGym's examples: emph() and plural()."""

from __future__ import annotations

import sys


def emph(text) -> str:
    """Bold on a terminal, plain otherwise."""
    return f"\033[1m{text}\033[0m" if sys.stdout.isatty() else str(text)


def plural(quantity: int, singular: str, plural_form: str) -> str:
    return f"{quantity:,d} {singular if quantity == 1 else plural_form}"
