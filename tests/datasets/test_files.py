"""File datasets in the reference layout: metadata lists, parent search, no writes into the user's folder."""

from __future__ import annotations

import json
import logging

import pytest
from dataset_helpers import make_bitcode, make_file_dataset

from compilerdream.compiler.datasets import (
    FileDataset,
    dataset_for_task,
    find_metadata,
    read_metadata,
    split,
    write_metadata,
)
from compilerdream.compiler.errors import MalformedInputError


def test_metadata_round_trip(tmp_path):
    names = ["a.bc", "sub/b.bc", "c.bc"]
    write_metadata(tmp_path / "metadata.json", names)
    assert read_metadata(tmp_path / "metadata.json") == names
    assert json.loads((tmp_path / "metadata.json").read_text()) == names


def test_metadata_skips_non_bitcode_entries_with_a_warning(tmp_path, caplog):
    (tmp_path / "m.json").write_text(json.dumps(["a.bc", "notes.txt", 3, "../escape.bc", "/abs.bc", "b.bc"]))
    with caplog.at_level(logging.WARNING):
        assert read_metadata(tmp_path / "m.json") == ["a.bc", "b.bc"]
    assert "skipped 4 entries" in caplog.text
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(MalformedInputError):
        read_metadata(tmp_path / "bad.json")


def test_metadata_is_searched_in_parent_folders(tmp_path):
    write_metadata(tmp_path / "metadata.json", ["x.bc"])
    (tmp_path / "corpus" / "inner").mkdir(parents=True)
    assert find_metadata(tmp_path / "corpus" / "inner", "metadata.json") == tmp_path / "metadata.json"
    dataset = FileDataset(tmp_path / "corpus" / "inner")
    assert dataset.uris() == ["file://" + str(tmp_path / "corpus" / "inner" / "x.bc")]


def test_folder_without_metadata_is_walked_and_left_untouched(tmp_path, caplog):
    folder = tmp_path / "plain"
    make_file_dataset(folder / "z", 2, metadata=False)
    make_file_dataset(folder, 2, metadata=False, prefix="a")
    before = sorted(p.name for p in folder.rglob("*"))
    with caplog.at_level(logging.WARNING):
        uris = FileDataset(folder).uris()
    assert [u.rsplit(str(folder) + "/", 1)[1] for u in uris] == ["a000.bc", "a001.bc", "z/b000.bc", "z/b001.bc"]
    assert "reading every .bc file" in caplog.text
    assert sorted(p.name for p in folder.rglob("*")) == before  # nothing written (the reference wrote metadata.json)


def test_file_uris_are_absolute_and_load(tmp_path):
    names = make_file_dataset(tmp_path / "ds", 3)
    dataset = FileDataset(tmp_path / "ds")
    uri = dataset.uris()[1]
    assert uri == "file://" + str(tmp_path / "ds" / names[1])
    benchmark = dataset.benchmark(uri)
    assert benchmark.data == make_bitcode(1) and benchmark.uri == uri
    from compilerdream.compiler.benchmarks import resolve_benchmark

    assert resolve_benchmark(uri).data == benchmark.data


def test_builder_split_lists_are_preferred_over_windows(tmp_path):
    names = make_file_dataset(tmp_path / "ds", 6)
    write_metadata(tmp_path / "ds" / "metadata_train.json", names[:4])
    write_metadata(tmp_path / "ds" / "metadata_valid.json", names[4:5])
    write_metadata(tmp_path / "ds" / "metadata_test.json", names[5:])
    dataset = FileDataset(tmp_path / "ds")
    assert [len(split(dataset, m)) for m in ("train", "val", "test")] == [4, 1, 1]


def test_codecontest_layout_uses_small_lists_with_reference_caps(data_root):
    folder = data_root / "codecontest"
    names = make_file_dataset(folder, 3, metadata=False)
    write_metadata(folder / "metadata_small_train.json", names * 50)  # 150 entries: all used
    write_metadata(folder / "metadata_small_valid.json", names * 30)  # 90 entries: first 50
    write_metadata(folder / "metadata_small_test.json", names * 40)  # 120 entries: first 100
    dataset = dataset_for_task("compilergym_file_dataset_codecontest")
    assert [len(split(dataset, m)) for m in ("train", "val", "test")] == [150, 50, 100]


def test_other_file_datasets_use_metadata_windows(data_root):
    make_file_dataset(data_root / "formai", 120)
    dataset = dataset_for_task("file_dataset_formai")
    assert [len(split(dataset, m)) for m in ("train", "val", "test")] == [20, 50, 50]
    assert split(dataset, "train")[0].endswith("b100.bc")
