"""generator://csmith-v0 and generator://llvm-stress-v0: deterministic by seed, cached, options checked."""

from __future__ import annotations

import pytest

from compilerdream.compiler.benchmarks import resolve_benchmark
from compilerdream.compiler.datasets import CsmithDataset, Datasets, LlvmStressDataset
from compilerdream.compiler.errors import BenchmarkNotFoundError, UnknownNameError


def _count(data: bytes) -> int:
    from compilerdream.compiler._core import Module

    return Module.load(data, "m").instruction_count()


def test_csmith_same_seed_same_bytes_different_seeds_differ(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    a = resolve_benchmark("generator://csmith-v0/11")
    cold = CsmithDataset(cache_dir=tmp_path / "fresh").benchmark("generator://csmith-v0/11")  # regenerated, not cached
    assert a.data == cold.data
    assert a.data != resolve_benchmark("generator://csmith-v0/12").data
    assert _count(a.data) > 0 and a.uri == "generator://csmith-v0/11"
    assert not (tmp_path / "platform.info").exists()  # csmith ran in a temporary folder
    assert list((tmp_path / "fresh" / "csmith-v0").glob("11-*.bc"))  # cached by seed + options


def test_csmith_options_from_query_string(tmp_path):
    small = resolve_benchmark("generator://csmith-v0/11?max-funcs=1&max-block-depth=1")
    default = resolve_benchmark("generator://csmith-v0/11")
    assert small.data != default.data
    assert small.metadata["options"] == {"max-block-depth": 1, "max-funcs": 1}
    dataset = CsmithDataset(options={"max-funcs": 1, "max-block-depth": 1})
    assert dataset.uris()[11] == "generator://csmith-v0/11?max-block-depth=1&max-funcs=1"
    assert dataset.benchmark(dataset.uris()[11]).data == small.data


@pytest.mark.parametrize(
    "uri,error",
    [
        ("generator://csmith-v0/1?output=/tmp/x", UnknownNameError),
        ("generator://csmith-v0/1?max-funcs=lots", UnknownNameError),
        ("generator://csmith-v0/abc", BenchmarkNotFoundError),
        ("generator://csmith-v0/-3", BenchmarkNotFoundError),
        ("generator://csmith-v0", BenchmarkNotFoundError),
        ("generator://nosuch-v0/1", BenchmarkNotFoundError),
    ],
)
def test_bad_generator_uris_are_refused(uri, error):
    with pytest.raises(error):
        resolve_benchmark(uri)


def test_llvm_stress_is_deterministic_bitcode(tmp_path):
    a = resolve_benchmark("generator://llvm-stress-v0/5")
    assert a.data[:2] == b"BC" and a.data == LlvmStressDataset(cache_dir=tmp_path).benchmark(a.uri).data
    assert a.data != resolve_benchmark("generator://llvm-stress-v0/6").data
    bigger = resolve_benchmark("generator://llvm-stress-v0/5?size=300")
    assert _count(bigger.data) > _count(a.data)


def test_generators_are_registered_datasets():
    datasets = Datasets()
    assert datasets["generator://csmith-v0"].is_generator and datasets["csmith-v0"] is datasets["generator://csmith-v0"]
    assert datasets["llvm-stress-v0"].size == 2**32 - 1
    assert datasets.benchmark("generator://csmith-v0/11").data == resolve_benchmark("generator://csmith-v0/11").data
