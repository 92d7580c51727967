"""Datasets: URIs, splits, file datasets, generators, CompilerGym archives, corpus builders (issue 3).

The environment uses `Datasets` (as `env.datasets`), `resolve_benchmark(uri)`,
`dataset_for_task(name)` and `split(dataset, mode)`; the command line is
`compilerdream datasets ...` (see `cli.py`).
"""

from .base import UINT_MAX, Dataset, DatasetNotInstalledError, SeedUris
from .compilergym import CompilerGymDataset, compilergym_specs
from .compilergym import install as install_compilergym
from .composite import ChainedDataset, ListDataset
from .files import FileDataset, find_metadata, read_metadata, walk_bitcode, write_metadata
from .generators import CsmithDataset, GeneratorDataset, LlvmStressDataset
from .paths import cache_root, data_root
from .registry import Datasets, dataset_for_task, resolve_benchmark, task_names
from .splits import DEFAULT_WINDOWS, ChainedSplit, Split, clip_window, split

__all__ = [
    "DEFAULT_WINDOWS",
    "UINT_MAX",
    "ChainedDataset",
    "ChainedSplit",
    "CompilerGymDataset",
    "CsmithDataset",
    "Dataset",
    "DatasetNotInstalledError",
    "Datasets",
    "FileDataset",
    "GeneratorDataset",
    "ListDataset",
    "LlvmStressDataset",
    "SeedUris",
    "Split",
    "cache_root",
    "clip_window",
    "compilergym_specs",
    "data_root",
    "dataset_for_task",
    "find_metadata",
    "install_compilergym",
    "read_metadata",
    "resolve_benchmark",
    "split",
    "task_names",
    "walk_bitcode",
    "write_metadata",
]
