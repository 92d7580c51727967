"""Grouping of benchmarks into datasets for per-dataset geomeans (fixes REFERENCE §7.12 for file:// URIs)."""

import json

import pytest

from compilerdream.compiler.metrics import dataset_of, summarize


def test_uri_datasets():
    assert dataset_of("benchmark://cbench-v1/qsort") == "cbench-v1"
    assert dataset_of("generator://csmith-v0/12") == "csmith-v0"


def test_file_uris_group_by_dataset_folder(tmp_path):
    root = tmp_path / "mycorpus"
    (root / "zlib" / "src").mkdir(parents=True)
    (root / "metadata.json").write_text(json.dumps(["zlib/src/a.bc"]))
    assert dataset_of(f"file://{root}/zlib/src/a.bc") == "mycorpus"
    loose = tmp_path / "loose"
    loose.mkdir()
    assert dataset_of(f"file://{loose}/x.bc") == "loose"


def test_summarize_weights_datasets_equally():
    rows = [{"dataset": "a", "r": 1.0}, {"dataset": "a", "r": 4.0}, {"dataset": "b", "r": 8.0}]
    out = summarize(rows, "r")
    assert out["per_dataset"] == pytest.approx({"a": 2.0, "b": 8.0})
    assert abs(out["geomean_of_datasets"] - 4.0) < 1e-12  # sqrt(2 * 8)
    assert abs(out["raw_geomean"] - 32 ** (1 / 3)) < 1e-12
