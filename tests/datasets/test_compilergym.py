"""CompilerGym archives: the published table, install from a file in CompilerGym's layout, LLVM 10 bitcode."""

from __future__ import annotations

import re

import pytest
from dataset_helpers import CRC32_BC, make_cbench_archive, make_tar

from compilerdream.compiler.datasets import Datasets, compilergym_specs, dataset_for_task, install_compilergym, split
from compilerdream.compiler.datasets.archives import ArchiveError, DownloadError, sha256_file

EXPECTED = {"cbench-v1", "chstone-v0", "mibench-v1", "npb-v0", "blas-v0", "opencv-v0", "tensorflow-v0", "linux-v0",
            "github-v0", "poj104-v1", "anghabench-v1", "jotaibench-v0", "clgen-v0"}  # fmt: skip


def test_table_lists_every_dataset_with_url_and_sha256():
    specs = compilergym_specs()
    assert set(specs) == EXPECTED
    for name, spec in specs.items():
        assert spec["tar_url"].startswith("https://"), name
        assert re.fullmatch(r"[0-9a-f]{64}", spec["tar_sha256"]), name
        if spec["manifest_url"]:
            assert re.fullmatch(r"[0-9a-f]{64}", spec["manifest_sha256"]), name
    assert specs["cbench-v1"]["tar_sha256"] == "601fff3944c866f6617e653b6eb5c1521382c935f56ca1f36a9f5cf1a49f3de5"


def test_install_from_file_reads_llvm10_bitcode(data_root, tmp_path):
    tar, manifest = make_cbench_archive(tmp_path)
    with pytest.raises(ArchiveError, match="checksum mismatch"):  # not the published archive
        install_compilergym("cbench-v1", from_file=tar, manifest_file=manifest, allow_download=False)
    assert not (data_root / "cbench-v1").exists()
    dataset = install_compilergym("cbench-v1", from_file=tar, manifest_file=manifest, sha256=sha256_file(tar))
    assert dataset.installed and dataset.uris() == ["benchmark://cbench-v1/qsort", "benchmark://cbench-v1/crc32"]
    crc32 = Datasets().benchmark("benchmark://cbench-v1/crc32")
    assert crc32.data == CRC32_BC.read_bytes()
    from compilerdream.compiler._core import Module

    module = Module.load(crc32.data, "crc32")  # LLVM 10 bitcode read by LLVM 19
    assert module.instruction_count() == 242
    module.apply("default<Oz>")
    assert module.instruction_count() == 111
    assert [len(split(dataset_for_task("cbench"), m)) for m in ("train", "val", "test")] == [2, 2, 2]


def test_install_without_manifest_lists_files_sorted(data_root, tmp_path):
    tar, _ = make_cbench_archive(tmp_path)
    dataset = install_compilergym("cbench-v1", from_file=tar, verify=False, allow_download=False)
    assert dataset.uris() == ["benchmark://cbench-v1/crc32", "benchmark://cbench-v1/qsort"]


def test_offline_install_explains_how_to_place_the_file(data_root):
    with pytest.raises(DownloadError) as info:
        install_compilergym("npb-v0", allow_download=False)
    message = str(info.value)
    assert "llvm_bitcodes-10.0.0-npb-v0.tar.bz2" in message
    assert compilergym_specs()["npb-v0"]["tar_sha256"] in message
    assert str(data_root / "downloads") in message


def test_archive_without_the_expected_folder_is_refused(data_root, tmp_path):
    tar = make_tar(tmp_path / "wrong.tar.bz2", {"other/crc32.bc": CRC32_BC.read_bytes()})
    with pytest.raises(ArchiveError, match="cBench-v1"):
        install_compilergym("cbench-v1", from_file=tar, verify=False)
    assert not (data_root / "cbench-v1").exists()
    assert [p.name for p in data_root.iterdir()] == []  # no staging folder left behind


def test_source_datasets_compile_on_demand(data_root, tmp_path):
    prefix = "patmos_HLS-e62d878ceb91e5a18007ca2e0a9602ee44ff7d59/benchmarks/CHStone"
    source = b"int adpcm(int x) { int s = 0; for (int i = 0; i < x; i++) s += i; return s; }\nint main(void) { return adpcm(3); }\n"
    tar = make_tar(tmp_path / "chstone.tar.gz", {f"{prefix}/adpcm/adpcm.c": source}, mode="w:gz")
    dataset = install_compilergym("chstone-v0", from_file=tar, verify=False)
    assert dataset.size == 12 and dataset.uris()[0] == "benchmark://chstone-v0/adpcm"
    benchmark = dataset.benchmark("benchmark://chstone-v0/adpcm")
    assert benchmark.data[:2] == b"BC" and (data_root / "chstone-v0" / ".bitcode" / "adpcm.bc").is_file()
    with pytest.raises(FileNotFoundError, match="aes"):
        dataset.benchmark("benchmark://chstone-v0/aes")
