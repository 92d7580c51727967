"""The `compilerdream` command: one entry point, one subcommand per job."""

from __future__ import annotations

import importlib
import sys

from compilerdream.compiler.progress import line_buffered_stdout

# subcommand -> (module, help). Modules are imported lazily so `compilerdream datasets`
# never imports torch and a broken optional dependency only affects its own command.
COMMANDS: dict[str, tuple[str, str]] = {
    "demo": ("compilerdream.demo", "the README's main job: corpus, training, evaluation on an embedded default"),
    "search": ("compilerdream.compiler.search_cli", "run baseline searches (-Oz, -O3, random, greedy) on programs"),
    "optimize": ("compilerdream.optimize", "optimize a C/C++/LLVM IR file; writes bitcode and prints the opt pipeline"),
    "evaluate": ("compilerdream.evaluate", "evaluate a checkpoint and the baselines; writes a report directory"),
    "train": ("compilerdream.driver", "train the agent (same flags as examples/train_dreamerv2.py)"),
    "coreset": ("compilerdream.compiler.coreset_build", "build a coreset of pass sequences on LLVM 19 (build), or print one (show)"),
    "datasets": ("compilerdream.compiler.datasets.cli", "list, build, install and import program datasets"),
}


def usage() -> str:
    lines = ["usage: compilerdream COMMAND [ARGS...]", "", "commands:"]
    lines += [f"  {name:<10} {help_}" for name, (_, help_) in COMMANDS.items()]
    lines += ["", "Run `compilerdream COMMAND --help` for a command's options."]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    line_buffered_stdout()
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help", "help"):
        print(usage())
        return 0
    name, rest = argv[0], argv[1:]
    if name in ("--version", "version"):
        from compilerdream import __version__

        print(f"compilerdream {__version__}")
        return 0
    if name not in COMMANDS:
        print(f"compilerdream: unknown command '{name}'\n\n{usage()}", file=sys.stderr)
        return 2
    module = importlib.import_module(COMMANDS[name][0])
    return int(module.main(rest) or 0)


if __name__ == "__main__":
    sys.exit(main())
