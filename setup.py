"""Build and install compilerdream.

The native engine (compilerdream/compiler/_core/engine.cpp) links against the
shared libLLVM of an installed LLVM 19-22, found through llvm-config. Set
LLVM_CONFIG to pick one explicitly; otherwise llvm-config-19, -20, -21, -22 and
plain llvm-config are tried in that order.
"""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import sys

from setuptools import find_packages, setup
from setuptools.command.build_py import build_py

HERE = os.path.dirname(os.path.abspath(__file__))


class BuildPyWithConfigs(build_py):
    """Ship the repository's configs.yaml inside the package (compilerdream/configs.yaml) for wheels."""

    def run(self) -> None:
        super().run()
        source = os.path.join(HERE, "configs.yaml")
        if os.path.exists(source) and not self.editable_mode:
            self.copy_file(source, os.path.join(self.build_lib, "compilerdream", "configs.yaml"))

SUPPORTED_LLVM = (19, 20, 21, 22)


def _fail(message: str) -> None:
    sys.stderr.write("\n" + "=" * 78 + "\ncompilerdream: " + message + "\n" + "=" * 78 + "\n\n")
    raise SystemExit(1)


def _probe_llvm_config(candidate: str) -> tuple[str, str, int]:
    """(path, version, major) of an llvm-config; LookupError says what went wrong (major -1: unreadable)."""
    path = shutil.which(candidate) or (candidate if os.path.isfile(candidate) else None)
    if not path:
        raise LookupError("no such executable")
    try:
        version = subprocess.check_output([path, "--version"], text=True).strip()
    except (OSError, subprocess.CalledProcessError) as exc:
        raise LookupError(f"running '{path} --version' failed: {exc}") from None
    head = version.split(".")[0]
    return path, version, int(head) if head.isdigit() else -1


def find_llvm_config() -> tuple[str, int]:
    chosen = os.environ.get("LLVM_CONFIG")
    if chosen:  # an explicit choice is used or refused, never silently replaced
        try:
            path, version, major = _probe_llvm_config(chosen)
        except LookupError as exc:
            _fail(f"LLVM_CONFIG={chosen}: {exc}")
        if major not in SUPPORTED_LLVM:
            _fail(f"LLVM_CONFIG={chosen} is LLVM {version}; compilerdream builds against LLVM 19-22")
        return path, major
    for candidate in [f"llvm-config-{v}" for v in SUPPORTED_LLVM] + ["llvm-config"]:
        try:
            path, _, major = _probe_llvm_config(candidate)
        except LookupError:
            continue
        if major in SUPPORTED_LLVM:
            return path, major
    _fail(
        "no LLVM 19-22 development install found (looked for llvm-config-19 ... llvm-config-22).\n"
        "On Debian/Ubuntu install it with:  sudo apt-get install llvm-19-dev clang-19\n"
        "With conda:                         conda install -c conda-forge llvmdev=19 clang=19\n"
        "or point LLVM_CONFIG at an llvm-config binary of LLVM 19-22."
    )
    raise AssertionError("unreachable")


def native_extensions():
    # Metadata-only commands (egg_info, sdist) do not need LLVM.
    if any(arg in sys.argv for arg in ("egg_info", "sdist", "--name", "--version")) and "build_ext" not in sys.argv:
        if not any(a.startswith(("bdist", "develop", "install", "editable")) for a in sys.argv):
            return []
    from pybind11.setup_helpers import Pybind11Extension

    llvm_config, major = find_llvm_config()

    def query(*args: str) -> str:
        return subprocess.check_output([llvm_config, *args], text=True).strip()

    cxxflags = shlex.split(query("--cxxflags"))
    include_dirs = [f[2:] for f in cxxflags if f.startswith("-I")]
    macros = []
    for flag in cxxflags:
        if flag.startswith("-D"):
            name, _, value = flag[2:].partition("=")
            macros.append((name, value or None))
    libdir = query("--libdir")
    # llvm-config's flags carry -fno-exceptions; pybind11 needs exceptions, so we
    # take only the include directories and macros from it.
    return [
        Pybind11Extension(
            "compilerdream.compiler._core._engine",
            ["compilerdream/compiler/_core/engine.cpp"],
            include_dirs=include_dirs,
            define_macros=macros,
            extra_compile_args=["-O2", "-fPIC", "-Wno-unused-parameter"],
            library_dirs=[libdir],
            libraries=[f"LLVM-{major}"] if os.path.exists(os.path.join(libdir, f"libLLVM-{major}.so")) else ["LLVM"],
            runtime_library_dirs=[libdir],
            cxx_std=17,
        )
    ]


setup(
    name="compilerdream",
    version="0.1.0",
    description="CompilerDream: a compiler world model for LLVM pass ordering, on LLVM 19+",
    long_description=open(os.path.join(os.path.dirname(os.path.abspath(__file__)), "README.md")).read()
    if os.path.exists(os.path.join(os.path.dirname(os.path.abspath(__file__)), "README.md"))
    else "",
    long_description_content_type="text/markdown",
    license="MIT",
    python_requires=">=3.9",
    # compiler_gym: CompilerGym's API on our engine (README, "Coming from CompilerGym"), a
    # second top-level package whose source lives in compilerdream/compat/compiler_gym.
    packages=find_packages(include=["compilerdream", "compilerdream.*"])
    + find_packages(where="compilerdream/compat", include=["compiler_gym", "compiler_gym.*"]),
    package_dir={"compiler_gym": "compilerdream/compat/compiler_gym"},
    package_data={
        "compilerdream": ["py.typed", "pretrained/*/*"],
        "compilerdream.compiler": ["data/*"],
        "compilerdream.compiler.datasets": ["data/*"],
        "compiler_gym": ["data/cbench-v1/*.bc"],
    },
    include_package_data=True,
    ext_modules=native_extensions(),
    cmdclass={"build_py": BuildPyWithConfigs},
    setup_requires=["pybind11>=2.10"],
    install_requires=[
        "numpy>=1.22",
        "gymnasium>=0.29",
        "tqdm>=4.60",
        "PyYAML>=5.4",
        "absl-py>=1.0",  # compiler_gym's command-line flags, as CompilerGym's
    ],
    extras_require={
        # torch is pinned by the README's setup commands before this is installed;
        # a bare range here would pull a multi-GB CUDA build on CPU machines.
        "agent": ["torch>=2.2", "tensorboard>=2.10", "matplotlib>=3.5"],
        "dev": ["pytest>=7", "pytest-timeout>=2", "ruff>=0.4", "pybind11>=2.10"],
        # --executor ray and --env_backend ray: Ray 2.x (tested with 2.60); its 3.x may change the API.
        "ray": ["ray>=2.9,<3"],
    },
    entry_points={"console_scripts": ["compilerdream=compilerdream.cli:main"]},
    zip_safe=False,
)
