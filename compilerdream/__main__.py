"""`python -m compilerdream ...`: the same as the `compilerdream` command."""

from .cli import main

if __name__ == "__main__":
    raise SystemExit(main())
