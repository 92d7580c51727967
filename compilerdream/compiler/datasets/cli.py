"""`compilerdream datasets ...`: list, install, build, build-default, import-codecontests, import-formai, info."""

from __future__ import annotations

import argparse
import json
import shlex
import sys
from collections.abc import Sequence

from ..errors import CompilerDreamError
from ..executor import add_executor_args
from ..toolchain import DEFAULT_FRONTEND_FLAGS

EXIT_ERROR = 2


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="compilerdream datasets", description="Install, build and inspect benchmark datasets."
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def with_root(p: argparse.ArgumentParser) -> argparse.ArgumentParser:
        p.add_argument("--data-root", default=None, help="dataset folder (default: $COMPILERDREAM_DATA or ./data)")
        return p

    with_root(sub.add_parser("list", help="known datasets and whether they are installed"))
    p = with_root(
        sub.add_parser("install", help="install CompilerGym datasets (cbench-v1 ...) or compilerdream-data --from ZIP")
    )
    p.add_argument("names", nargs="+", metavar="NAME")
    p.add_argument("--from", dest="from_file", help="archive file to install from instead of downloading")
    p.add_argument("--manifest", help="CompilerGym manifest file (.bz2) giving the benchmark order")
    p.add_argument("--sha256", help="expected SHA-256 of the archive (default: the published one)")
    p.add_argument("--no-verify", action="store_true", help="skip the checksum check (e.g. a repacked archive)")
    p.add_argument("--no-download", action="store_true", help="never use the network")
    p.add_argument("--force", action="store_true", help="reinstall / overwrite")

    p = sub.add_parser("build", help="compile C/C++ files or folders into a bitcode dataset")
    p.add_argument("sources", nargs="+", metavar="SOURCE")
    p.add_argument("--out", required=True, help="output dataset folder, e.g. data/mycorpus")
    p.add_argument("--jobs", type=int, default=None, help="parallel compilations (default: number of CPUs)")
    p.add_argument("--link-dirs", action="store_true", help="one module per directory, linked with llvm-link")
    p.add_argument(
        "--flags",
        default=" ".join(DEFAULT_FRONTEND_FLAGS),
        help="front-end flags as one string (default: CompilerGym's '%(default)s')",
    )
    p.add_argument(
        "-I", "--include", dest="include_dirs", action="append", default=[], help="extra include folder (repeatable)"
    )
    p.add_argument("--timeout", type=float, default=120.0, help="seconds per clang run")
    p.add_argument("--max-instructions", type=int, default=None, help="drop modules larger than this (O0 instructions)")
    p.add_argument("--retry-failed", action="store_true", help="recompile files that failed in an earlier run")
    add_executor_args(p)

    p = sub.add_parser("build-default", help="build the offline default corpus from Debian source packages + csmith")
    p.add_argument("--tiny", action="store_true", help="2 small packages, a few files and csmith programs (seconds)")
    p.add_argument("--out", default="data/default")
    p.add_argument("--jobs", type=int, default=None)
    p.add_argument("--csmith", type=int, default=None, help="number of csmith programs (default from the package list)")
    p.add_argument("--workdir", default=None, help="where sources are downloaded (default: the cache folder)")
    add_executor_args(p)

    p = sub.add_parser("import-codecontests", help="compile CodeContests C++ solutions (parquet files or URLs)")
    p.add_argument("inputs", nargs="+", metavar="PARQUET")
    p.add_argument("--out", default="data/codecontest")
    p.add_argument("--max-per-problem", type=int, default=1)
    p.add_argument("--max-problems", type=int, default=None)
    p.add_argument("--jobs", type=int, default=None)

    p = sub.add_parser("import-formai", help="compile FormAI C programs (zip, 7z or JSON release)")
    p.add_argument("inputs", nargs="+", metavar="FILE")
    p.add_argument("--out", default="data/formai")
    p.add_argument("--limit", type=int, default=None, help="at most this many programs")
    p.add_argument("--jobs", type=int, default=None)

    p = with_root(sub.add_parser("info", help="details of one dataset"))
    p.add_argument("name")
    return parser


def _list(args: argparse.Namespace) -> int:
    from .registry import Datasets

    datasets = Datasets(args.data_root)
    print(f"data root: {datasets.root}")
    for dataset in datasets:
        if dataset.is_generator:
            status, size = "generator", "2^32 seeds"
        else:
            status = "installed" if dataset.installed else "not installed"
            size = f"{dataset.size:,}" if dataset.installed or hasattr(dataset, "spec") else "?"
        print(f"  {dataset.name:40s} {size:>10s}  {status}")
    return 0


def _install(args: argparse.Namespace) -> int:
    from .compilergym import install
    from .importers import install_compilerdream_zip

    for name in args.names:
        if name in ("compilerdream-data", "compilerdream"):
            if not args.from_file:
                raise CompilerDreamError(
                    "compilerdream-data has no download URL here: pass the CompilerDream data zip with --from FILE.zip"
                )
            for path in install_compilerdream_zip(args.from_file, args.data_root, force=args.force):
                print(f"installed {path}")
            continue
        dataset = install(
            name,
            args.data_root,
            from_file=args.from_file,
            manifest_file=args.manifest,
            sha256=args.sha256,
            verify=not args.no_verify,
            allow_download=not args.no_download,
            force=args.force,
        )
        print(f"installed {dataset.name}: {dataset.size:,} benchmarks in {dataset.directory}")
    return 0


def _print_report(report) -> None:
    print(report.summary())
    for entry in list(report.failures.values())[:10]:
        print(f"  failed {entry['source']}: {entry['error']}")
    if len(report.failures) > 10:
        print(f"  ... {len(report.failures) - 10} more failures listed in {report.out / 'manifest.json'}")


def _build(args: argparse.Namespace) -> int:
    from .builder import build, collect_items

    items = collect_items(args.sources, link_dirs=args.link_dirs, include_dirs=args.include_dirs)
    if not items:
        raise CompilerDreamError("no C/C++ source files found in " + ", ".join(args.sources))
    with _executor(args) as executor:
        report = build(
            items,
            args.out,
            flags=shlex.split(args.flags),
            jobs=args.jobs,
            timeout=args.timeout,
            max_instructions=args.max_instructions,
            sources_description=args.sources,
            retry_failed=args.retry_failed,
            executor=executor,
        )
    _print_report(report)
    return 0


def _executor(args: argparse.Namespace):
    """--executor ray: a Ray executor (a context manager); local: None, the builder's own process pool."""
    import contextlib

    if args.executor == "local" and not args.ray_address:
        return contextlib.nullcontext(None)
    from ..executor import make_executor

    return make_executor(args.executor, args.jobs, args.ray_address)


def _build_default(args: argparse.Namespace) -> int:
    from .default_corpus import build_default

    with _executor(args) as executor:
        report = build_default(
            args.out, tiny=args.tiny, jobs=args.jobs, workdir=args.workdir, csmith_count=args.csmith, executor=executor
        )
    _print_report(report)
    return 0


def _import_codecontests(args: argparse.Namespace) -> int:
    from .importers import import_codecontests

    report = import_codecontests(
        args.inputs, args.out, max_per_problem=args.max_per_problem, max_problems=args.max_problems, jobs=args.jobs
    )
    _print_report(report)
    return 0


def _import_formai(args: argparse.Namespace) -> int:
    from .importers import import_formai

    _print_report(import_formai(args.inputs, args.out, limit=args.limit, jobs=args.jobs))
    return 0


def _info(args: argparse.Namespace) -> int:
    from .files import FileDataset
    from .registry import Datasets
    from .splits import split

    dataset = Datasets(args.data_root)[args.name]
    if isinstance(dataset, FileDataset):
        dataset.check_installed()  # an unknown name is a folder that does not exist
    info: dict = {"name": dataset.name, "kind": type(dataset).__name__, "description": dataset.description}
    for attr in ("directory", "spec"):
        if hasattr(dataset, attr):
            info[attr] = getattr(dataset, attr) if attr == "spec" else str(getattr(dataset, attr))
    info["installed"] = dataset.installed
    if dataset.installed:
        info["size"] = dataset.size
        info["splits"] = {mode: len(split(dataset, mode)) for mode in ("train", "val", "test")}
    print(json.dumps(info, indent=1, default=str))
    return 0


COMMANDS = {
    "list": _list,
    "install": _install,
    "build": _build,
    "build-default": _build_default,
    "import-codecontests": _import_codecontests,
    "import-formai": _import_formai,
    "info": _info,
}


def main(argv: Sequence[str] | None = None) -> int:
    """Run `compilerdream datasets <argv>`; returns the exit code (2 on any error, with one message, no traceback)."""
    parser = _parser()
    try:
        args = parser.parse_args(list(sys.argv[1:] if argv is None else argv))
    except SystemExit as exc:  # argparse already printed the usage line
        return int(exc.code or 0)
    try:
        return COMMANDS[args.command](args)
    except KeyboardInterrupt:
        print("compilerdream datasets: interrupted (rerun the same command to resume)", file=sys.stderr)
        return 130
    except (CompilerDreamError, OSError, ValueError) as exc:
        lines = str(exc).splitlines() or [type(exc).__name__]
        print(f"compilerdream datasets: error: {lines[0]}", file=sys.stderr)
        for line in lines[1:]:
            print(f"  {line}", file=sys.stderr)
        return EXIT_ERROR


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
