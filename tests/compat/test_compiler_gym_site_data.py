"""Datasets that a previous CompilerGym install left in its site data directory are found, read only.

The site data directories here are built by hand in CompilerGym 0.2.5's layout
(`$COMPILER_GYM_SITE_DATA/llvm-v0/benchmark/<name>/{.extracted, manifest-<sha256>.txt, contents/<archive folder>/...}`),
with real bitcode (the LLVM 10 crc32.bc of CompilerGym's wheel, our qsort.c compiled by our clang).
"""

from __future__ import annotations

import getpass
import itertools
from pathlib import Path

import compiler_gym
import numpy as np
import pytest
from compat_helpers import CRC32_BC, CRC32_URI, PROGRAMS, native_replay
from compiler_gym.datasets import SiteDataDataset, compiler_gym_site_data

from compilerdream.compiler import Benchmark as NativeBenchmark
from compilerdream.compiler.toolchain import compile_source

QSORT_URI = "benchmark://cbench-v1/qsort"
CBENCH_MANIFEST = "manifest-eeffd7593aeb696a160fd22e6b0c382198a65d0918b8440253ea458cfe927741.txt"
ANGHA_PREFIX = "AnghaBench-d8034ac8562b8c978376008f4b33df01b8887b19"
ANGHA_MACOS_MANIFEST = "manifest-96ead63da5f8efa07fd0370f0c6e452b59bed840828b8b19402102b1ce3ee109.txt"


def install_like_compiler_gym(
    site: Path, name: str, folder: str, files: dict[str, bytes], manifest: str | None, manifest_name: str
) -> Path:
    """What CompilerGym's TarDatasetWithManifest leaves behind once a dataset is installed."""
    dataset = site / "llvm-v0" / "benchmark" / name
    for relative, data in files.items():
        path = dataset / "contents" / folder / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    if manifest is not None:
        (dataset / manifest_name).write_text(manifest)
    (dataset / ".extracted").touch()
    return dataset


def snapshot(root: Path) -> dict:
    return {str(p): (p.stat().st_size, p.stat().st_mtime_ns) for p in sorted(root.rglob("*"))}


@pytest.fixture
def cbench_site(tmp_path, monkeypatch, qsort_bitcode) -> Path:
    """CompilerGym's cbench-v1 with crc32 and qsort; $COMPILER_GYM_SITE_DATA points at it."""
    site = tmp_path / "compiler_gym-site"
    files = {"crc32.bc": CRC32_BC.read_bytes(), "qsort.bc": qsort_bitcode}
    install_like_compiler_gym(site, "cbench-v1", "cBench-v1", files, "qsort\ncrc32", CBENCH_MANIFEST)
    monkeypatch.setenv("COMPILER_GYM_SITE_DATA", str(site))
    return site


def test_site_data_directory_is_compiler_gyms(monkeypatch, tmp_path):
    monkeypatch.setenv("COMPILER_GYM_SITE_DATA", str(tmp_path / "forced"))
    assert compiler_gym_site_data() == tmp_path / "forced"
    monkeypatch.delenv("COMPILER_GYM_SITE_DATA")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert compiler_gym_site_data() == tmp_path / "home" / ".local" / "share" / "compiler_gym"
    monkeypatch.delenv("HOME")
    assert compiler_gym_site_data() == Path(f"/tmp/compiler_gym_{getpass.getuser()}/site_data")


def test_a_dataset_compiler_gym_installed_is_found_and_steps_as_native(cbench_site, qsort_bitcode):
    before = snapshot(cbench_site)
    with compiler_gym.make("llvm-ic-v0") as env:
        # Installed now (by CompilerGym), so CompilerGym's default benchmark is used again.
        assert env.benchmark.uri == QSORT_URI and env.benchmark.data == qsort_bitcode
        cbench = env.datasets["cbench-v1"]
        assert cbench.installed and "cbench-v1" in env.datasets and len(cbench) == 2
        assert list(cbench.benchmark_uris()) == [QSORT_URI, CRC32_URI]  # the manifest's order
        assert [b.uri for b in cbench] == [QSORT_URI, CRC32_URI]
        installed = [d.name for d in env.datasets.installed_datasets()]
        assert installed == ["benchmark://cbench-v1", "generator://csmith-v0", "generator://llvm-stress-v0"]
        assert list(itertools.islice(env.datasets.benchmark_uris(), 2)) == [QSORT_URI, CRC32_URI]
        assert cbench.random_benchmark(np.random.default_rng(0)).uri in (QSORT_URI, CRC32_URI)

        flags = ["-mem2reg", "-instcombine", "-simplifycfg", "-gvn", "-licm"]
        env.reset()
        rewards = [env.step(env.action_space[flag])[1] for flag in flags]
        native = native_replay(NativeBenchmark.from_bytes(qsort_bitcode, QSORT_URI), flags)
        assert rewards == pytest.approx(native["rewards"], rel=1e-12)
        assert int(env.observation["IrInstructionCount"]) == native["instcount"]
        assert env.commandline() == native["commandline"]

        # CompilerGym's LLVM 10 crc32.bc, read from its site data: the counts of the bundled copy.
        env.reset(benchmark="cbench-v1/crc32")
        assert env.benchmark.data == CRC32_BC.read_bytes()
        assert env.benchmark.source_path.startswith(str(cbench_site))
        env.step(env.action_space["-mem2reg"])
        crc32 = native_replay(NativeBenchmark.from_bytes(CRC32_BC.read_bytes(), CRC32_URI), ["-mem2reg"])
        assert int(env.observation["IrInstructionCount"]) == crc32["instcount"]

        # A benchmark missing from CompilerGym's copy: its error, not "not installed".
        with pytest.raises(LookupError, match="not found: no file .* in the installed cbench-v1"):
            env.datasets.benchmark("benchmark://cbench-v1/nope")
        # Datasets installed nowhere still name the install command.
        with pytest.raises(LookupError, match="compilerdream datasets install npb-v0"):
            env.reset(benchmark="benchmark://npb-v0/1")
    assert snapshot(cbench_site) == before  # read only: nothing written, nothing touched


def test_our_data_root_comes_before_compiler_gyms(cbench_site, cbench_data_root, monkeypatch, qsort_bitcode):
    # CompilerGym's qsort is a different program here, so we can tell which copy was read.
    other = compile_source(PROGRAMS / "matmul.c")
    (cbench_site / "llvm-v0/benchmark/cbench-v1/contents/cBench-v1/qsort.bc").write_bytes(other)
    with compiler_gym.make("llvm-ic-v0") as env:
        assert env.datasets.benchmark(QSORT_URI).data == other
    monkeypatch.setenv("COMPILERDREAM_DATA", str(cbench_data_root))
    with compiler_gym.make("llvm-ic-v0") as env:
        assert env.benchmark.data == qsort_bitcode and env.datasets.benchmark(QSORT_URI).data == qsort_bitcode
        assert list(env.datasets["cbench-v1"].benchmark_uris()) == [CRC32_URI, QSORT_URI]  # our manifest


def test_a_source_dataset_compiler_gym_installed_is_compiled_without_writing(tmp_path, monkeypatch):
    site = tmp_path / "compiler_gym-site"
    source = (PROGRAMS / "crc32.c").read_bytes()
    # A bitcode file CompilerGym compiled (LLVM 10, its flags) is not used: we compile as our install does.
    files = {"repo/crc.c": source, "repo/crc.bc": b"not used"}
    install_like_compiler_gym(site, "anghabench-v1", ANGHA_PREFIX, files, "repo/crc", ANGHA_MACOS_MANIFEST)
    monkeypatch.setenv("COMPILER_GYM_SITE_DATA", str(site))
    before = snapshot(site)
    uri = "benchmark://anghabench-v1/repo/crc"
    with compiler_gym.make("llvm-ic-v0", benchmark=uri) as env:
        assert list(env.datasets["anghabench-v1"].benchmark_uris()) == [uri]  # another platform's manifest
        env.reset()
        native = native_replay(NativeBenchmark.from_file(PROGRAMS / "crc32.c"), ["-mem2reg", "-gvn"])
        env.multistep([env.action_space["-mem2reg"], env.action_space["-gvn"]])
        assert env.episode_reward == pytest.approx(native["episode_reward"], rel=1e-12)
        assert int(env.observation["IrInstructionCount"]) == native["instcount"]
    assert snapshot(site) == before
    assert SiteDataDataset("anghabench-v1", site).installed and not SiteDataDataset("npb-v0", site).installed


def test_a_half_installed_compiler_gym_dataset_is_not_installed(tmp_path, monkeypatch):
    site = tmp_path / "compiler_gym-site"
    dataset = install_like_compiler_gym(site, "cbench-v1", "cBench-v1", {"qsort.bc": b""}, "qsort", CBENCH_MANIFEST)
    (dataset / ".extracted").unlink()  # CompilerGym writes the marker last: the archive was not fully unpacked
    monkeypatch.setenv("COMPILER_GYM_SITE_DATA", str(site))
    with compiler_gym.make("llvm-ic-v0", benchmark=CRC32_URI) as env:
        assert not env.datasets["cbench-v1"].installed and "cbench-v1" not in env.datasets
        with pytest.raises(LookupError, match="compilerdream datasets install cbench-v1"):
            env.reset(benchmark=QSORT_URI)
