"""Data sets (spec §8): registry, subsets, data directory and the embedded generators.

Importing this package loads no data-set module; each one (``dice``, ``digits``, ``cifar``,
``ucr``, ``sst``) is imported on first use through :func:`dataset_module`.
"""

from engine.data.paths import default_data_dir, resolve_data_dir
from engine.data.registry import (
    DATASETS,
    TrainingSet,
    dataset_info,
    dataset_module,
    load_training_set,
)
from engine.data.subsets import halving_sizes, subset_indices

__all__ = [
    "DATASETS",
    "TrainingSet",
    "dataset_info",
    "dataset_module",
    "default_data_dir",
    "halving_sizes",
    "load_training_set",
    "resolve_data_dir",
    "subset_indices",
]
