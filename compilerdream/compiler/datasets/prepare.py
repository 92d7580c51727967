"""Preparing an unpacked source tree for file-by-file compilation: configure-style headers and -I lists.

Real packages expect `configure` to have run: config.h, version.h and friends are
generated from templates. We instantiate those templates with what is true on a
64-bit glibc system (headers that exist, common libc functions, LP64 sizes) so
that most files compile with plain -I flags. Only our own work copy is modified.
"""

from __future__ import annotations

import glob
import os
import re
import shutil
from collections.abc import Iterable, Mapping
from pathlib import Path

#: Header names of the C library: a package folder holding one of these would shadow it.
STANDARD_HEADERS = frozenset(
    "assert.h complex.h ctype.h errno.h fenv.h float.h inttypes.h iso646.h limits.h locale.h math.h setjmp.h "
    "signal.h stdalign.h stdarg.h stdatomic.h stdbool.h stddef.h stdint.h stdio.h stdlib.h stdnoreturn.h string.h "
    "tgmath.h threads.h time.h uchar.h wchar.h wctype.h unistd.h fcntl.h types.h".split()
)
SIZES = {"CHAR": 1, "SHORT": 2, "INT": 4, "LONG": 8, "LONG_LONG": 8, "SIZE_T": 8, "VOID_P": 8, "OFF_T": 8, "FLOAT": 4,
         "DOUBLE": 8, "LONG_DOUBLE": 16, "WCHAR_T": 4, "INTMAX_T": 8, "UINTMAX_T": 8, "TIME_T": 8, "PTRDIFF_T": 8,
         "UNSIGNED_INT": 4, "UNSIGNED_LONG": 8, "UNSIGNED_LONG_LONG": 8, "UNSIGNED_SHORT": 2, "UNSIGNED_CHAR": 1,
         "INT8_T": 1, "INT16_T": 2, "INT32_T": 4, "INT64_T": 8, "UINT8_T": 1, "UINT16_T": 2, "UINT32_T": 4, "UINT64_T": 8,
         "__INT64": 0, "SSIZE_T": 8, "UINTPTR_T": 8, "INTPTR_T": 8}  # fmt: skip
#: libc functions a configure script finds on glibc (HAVE_<NAME> -> 1).
LIBC_FUNCTIONS = frozenset(
    "access alarm aligned_alloc asprintf atexit bcopy bzero btowc clock clock_gettime dup2 fchmod fcntl fdopen fileno "
    "floor fmod fork fseeko fstat fsync ftello ftruncate getcwd getdelim getenv gethostname getline getopt getopt_long "
    "getpagesize getpid getrlimit gettimeofday getuid gmtime_r isascii isatty isblank iswcntrl iswctype iswprint "
    "localeconv localtime_r lstat mblen mbrlen mbrtowc mbsinit mbsrtowcs mbstowcs memchr memcmp memcpy memmove "
    "memrchr memset mkdir mkstemp mktime mmap munmap nanosleep nl_langinfo open pipe poll popen posix_memalign "
    "putenv qsort raise readlink realpath rename rmdir select setenv setlocale setlinebuf setvbuf sigaction "
    "sigprocmask signal sleep snprintf stat stpcpy strcasecmp strchr strcoll strcspn strdup strerror strftime "
    "strncasecmp strndup strnlen strpbrk strrchr strsignal strspn strstr strtod strtof strtol strtold strtoll "
    "strtoul strtoull strtoumax strtoimax strxfrm sysconf tcgetattr tcsetattr time towlower towupper tzset uname "
    "unsetenv usleep utime utimes vasprintf vfprintf vprintf vsnprintf vsprintf waitpid wcrtomb wcscoll wcslen "
    "wctomb wcwidth wmemchr wmemcpy dlopen log1p expm1 hypot acosh asinh atanh ldexp frexp isnan isinf finite round "
    "lround trunc rint lrint cbrt exp2 log2 fma copysign sqrt pow erf erfc lgamma tgamma "
    "builtin_expect long_long long_double c99_vsnprintf".split()
)
_INCLUDE_ROOTS = ("/usr/include", "/usr/include/x86_64-linux-gnu", "/usr/local/include")


def _header_exists(name: str) -> bool:
    """Does HAVE_<NAME> (e.g. SYS_STAT_H) name a header this system has?"""
    stem = name[: -len("_H")].lower()
    if stem + ".h" in STANDARD_HEADERS:  # includes the compiler's own (stdbool.h, stddef.h, ...)
        return True
    candidates = {stem + ".h", stem.replace("_", "/", 1) + ".h", stem.replace("_", "/") + ".h"}
    return any(os.path.isfile(os.path.join(root, c)) for root in _INCLUDE_ROOTS for c in candidates)


def configure_value(name: str, package: str, version: str, extra: Mapping[str, str] | None = None) -> str | None:
    """What `configure` would define NAME as on x86-64 glibc, or None to leave it undefined."""
    if extra and name in extra:
        return extra[name]
    if name in ("PACKAGE", "PACKAGE_NAME", "PACKAGE_TARNAME"):
        return f'"{package}"'
    if name in ("VERSION", "PACKAGE_VERSION"):
        return f'"{version}"'
    if name == "PACKAGE_STRING":
        return f'"{package} {version}"'
    if name in ("PACKAGE_BUGREPORT", "PACKAGE_URL"):
        return '""'
    if name in (
        "STDC_HEADERS",
        "HAVE_STDC_HEADERS",
        "HAVE__BOOL",
        "_GNU_SOURCE",
        "_ALL_SOURCE",
        "__EXTENSIONS__",
        "HAVE_PROTOTYPES",
        "PROTOTYPES",
    ):
        return "1"
    if name.startswith("SIZEOF_") and name.endswith("_CODE"):  # CMake's CheckTypeSize: a whole #define line
        size = configure_value(name[: -len("_CODE")], package, version, extra)
        return f"#define {name[: -len('_CODE')]} {size}" if size else ""
    if name.startswith("SIZEOF_"):
        size = SIZES.get(name[len("SIZEOF_") :])
        return str(size) if size else None
    if name.startswith("HAVE_DECL_"):
        return "1"
    if name.startswith("HAVE_") and name.endswith("_H"):
        return "1" if _header_exists(name[len("HAVE_") :]) else None
    if name.startswith("HAVE_") and name[len("HAVE_") :].lower() in LIBC_FUNCTIONS:
        return "1"
    return None


def _render_template(text: str, package: str, version: str, extra: Mapping[str, str] | None) -> str:
    def define(name: str, rest: str = "") -> str:
        value = configure_value(name, package, version, extra)
        return f"#define {name} {value}" if value is not None else f"/* #undef {name} */"

    out = []
    for line in text.splitlines():
        m = re.match(r"^\s*#\s*undef\s+(\w+)\s*$", line)
        c = re.match(r"^\s*#\s*cmakedefine(01)?\s+(\w+)(.*)$", line)
        if m:
            line = define(m.group(1))
        elif c and c.group(1):
            line = f"#define {c.group(2)} {1 if configure_value(c.group(2), package, version, extra) else 0}"
        elif c:
            value = configure_value(c.group(2), package, version, extra)
            line = f"#define {c.group(2)}{c.group(3)}" if value is not None else f"/* #undef {c.group(2)} */"
        out.append(line)
    rendered = "\n".join(out) + "\n"

    def substitute(match: re.Match) -> str:
        value = configure_value(match.group(1), package, version, extra)
        return value.strip('"') if value is not None else "0"

    def whole_line(match: re.Match) -> str:  # a line that is only a placeholder holds optional code
        value = configure_value(match.group(1), package, version, extra)
        return value if value is not None else ""

    rendered = re.sub(r"^[ \t]*@(\w+)@[ \t]*$", whole_line, rendered, flags=re.M)
    rendered = re.sub(r"@(\w+)@", substitute, rendered)
    return re.sub(r"\$\{(\w+)\}", substitute, rendered)


def instantiate_templates(
    tree: str | os.PathLike, package: str, version: str, extra: Mapping[str, str] | None = None
) -> list[str]:
    """Write X.h from X.h.in / X.h.cmake / X.h.generic templates where X.h is missing; returns the paths written."""
    written = []
    for path in sorted(Path(tree).rglob("*")):
        name = path.name
        for suffix in (".h.in", ".h.cmake", ".h.cmakein", ".h.generic", ".h.dist"):
            if name.endswith(suffix) and path.is_file():
                target = path.with_name(name[: -len(suffix)] + ".h")
                if target.exists():
                    break
                text = path.read_text(encoding="utf-8", errors="replace")
                target.write_text(text if suffix == ".h.generic" else _render_template(text, package, version, extra))
                written.append(str(target))
                break
    return written


def gather_headers(tree: str | os.PathLike, gathers: Mapping[str, str]) -> None:
    """Copy headers matching a glob into a folder of the tree (gsl's build puts every gsl_*.h under gsl/)."""
    root = Path(tree)
    for dest, pattern in gathers.items():
        target = root / dest
        target.mkdir(parents=True, exist_ok=True)
        for header in sorted(glob.glob(str(root / pattern), recursive=True)):
            if Path(header).parent != target and not (target / Path(header).name).exists():
                shutil.copyfile(header, target / Path(header).name)


def include_dirs(tree: str | os.PathLike, skip: Iterable[str] = ()) -> list[str]:
    """-I folders for a tree: every folder with headers and its parents, except ones that shadow libc headers.

    The tree root and `include` folders come first so that public headers win.
    """
    root = Path(tree).absolute()
    skipped = [re.compile(p) for p in skip]
    with_headers: set[Path] = set()
    shadowing: set[Path] = set()
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = [d for d in dirnames if not d.startswith(".")]
        headers = [f for f in filenames if f.endswith((".h", ".hpp", ".hh", ".inc", ".def"))]
        if headers:
            with_headers.add(Path(dirpath))
            if any(h in STANDARD_HEADERS for h in headers):
                shadowing.add(Path(dirpath))
    dirs: set[Path] = set()
    for d in with_headers:
        dirs.add(d)
        for parent in d.parents:
            if parent == root or root not in parent.parents:
                break
            dirs.add(parent)
    dirs.add(root)
    chosen = [d for d in dirs - shadowing if not any(p.search(d.relative_to(root).as_posix()) for p in skipped)]

    def rank(d: Path) -> tuple:
        rel = d.relative_to(root).as_posix()
        return (0 if rel == "." else 1 if d.name.startswith("include") else 2, len(d.parts), rel)

    return [str(d) for d in sorted(chosen, key=rank)]
