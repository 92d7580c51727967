"""The registry: task names (REFERENCE §1.2), lookups, URI resolution and the not-installed error."""

from __future__ import annotations

import pytest
from dataset_helpers import make_file_dataset

from compilerdream.compiler.benchmarks import resolve_benchmark
from compilerdream.compiler.datasets import (
    ChainedDataset,
    DatasetNotInstalledError,
    Datasets,
    ListDataset,
    dataset_for_task,
    split,
    task_names,
)
from compilerdream.compiler.errors import BenchmarkNotFoundError, UnknownNameError


def test_missing_compilergym_dataset_names_dataset_folder_and_command(data_root):
    with pytest.raises(DatasetNotInstalledError) as info:
        resolve_benchmark("benchmark://cbench-v1/qsort")
    message = str(info.value)
    assert "cbench-v1" in message and str(data_root / "cbench-v1") in message
    assert "compilerdream datasets install cbench-v1" in message
    assert isinstance(info.value, BenchmarkNotFoundError)


def test_missing_default_corpus_points_to_build_default(data_root):
    with pytest.raises(DatasetNotInstalledError, match="compilerdream datasets build-default") as info:
        dataset_for_task("compilergym_file_dataset_default")
    assert str(data_root / "default") in str(info.value)


def test_missing_chain_members_are_all_named(data_root):
    with pytest.raises(DatasetNotInstalledError) as info:
        dataset_for_task("suball")
    message = str(info.value)
    for member in ("blas-v0", "cbench-v1", "tensorflow-v0"):
        assert member in message
    assert "compilerdream datasets install blas-v0 cbench-v1" in message


def test_every_task_name_resolves_to_a_dataset():
    datasets = Datasets()
    for name in task_names():
        dataset = datasets.task("compilergym_" + name)
        assert dataset.name
    assert isinstance(datasets.task("suball"), ChainedDataset)
    assert [m.short_name for m in datasets.task("suball").members] == [
        "blas-v0", "cbench-v1", "chstone-v0", "linux-v0", "mibench-v1", "npb-v0", "opencv-v0", "tensorflow-v0",
    ]  # fmt: skip
    assert len(datasets.task("all").members) == 14
    assert [m.short_name for m in datasets.task("csmith_github_tensorflow").members] == [
        "csmith-v0",
        "github-v0",
        "tensorflow-v0",
    ]
    with pytest.raises(UnknownNameError):
        datasets.task("compilergym_nonsense")


def test_list_tasks_have_the_reference_sizes_and_whole_splits():
    datasets = Datasets()
    cbench22 = datasets.task("cbench22")
    assert isinstance(cbench22, ListDataset) and cbench22.size == 22
    assert "benchmark://cbench-v1/ghostscript" not in cbench22.uris()
    assert datasets.task("coreset_nvp_zeroshot").size == 184
    assert datasets.task("coreset_nvp_test").size == 4683
    sources = {d.short_name for d in datasets.task("coreset_nvp_zeroshot").source_datasets()}
    assert sources == {"cbench-v1", "chstone-v0", "mibench-v1", "npb-v0"}


def test_generator_tasks_need_no_installation():
    dataset = dataset_for_task("compilergym_csmith")
    assert len(split(dataset, "test")) == 50
    assert dataset_for_task("llvm_stress").name == "generator://llvm-stress-v0"


def test_data_root_from_environment_and_argument(data_root, tmp_path):
    make_file_dataset(data_root / "mine", 3)
    assert Datasets()["mine"].installed
    assert [d.short_name for d in Datasets().local_datasets()] == ["mine"]
    other = tmp_path / "elsewhere"
    make_file_dataset(other / "theirs", 2)
    assert Datasets(other)["theirs"].size == 2 and not Datasets(other)["mine"].installed
    assert len(split(dataset_for_task("file_dataset_theirs", data_root=other), "test")) == 2


def test_local_dataset_benchmark_uris(data_root):
    make_file_dataset(data_root / "mine", 2)
    a = Datasets().benchmark("benchmark://mine/b001")
    b = Datasets().benchmark("benchmark://mine/b001.bc")
    assert a.data == b.data == (data_root / "mine" / "b001.bc").read_bytes()
    with pytest.raises(BenchmarkNotFoundError):
        Datasets().benchmark("benchmark://mine/../../etc/passwd")


def test_registry_lookup_and_iteration():
    datasets = Datasets()
    assert datasets["benchmark://cbench-v1"] is datasets["cbench-v1"] is datasets["cBench-v1"]
    names = [d.name for d in datasets]
    assert names[:2] == ["generator://csmith-v0", "generator://llvm-stress-v0"]
    assert "benchmark://poj104-v1" in names and "benchmark://anghabench-v1" in names
    assert "cbench-v1" not in datasets  # known but not installed
    with pytest.raises(UnknownNameError):
        datasets["benchmark://cbench-v1/qsort"]  # a benchmark, not a dataset
