"""Data sets (spec §8): registry, subsets, data directory and the embedded generators.

Importing this package loads no data-set module; each one (``dice``, ``digits``, ``cifar``,
``ucr``, ``sst``) is imported on first use through :func:`dataset_module`. The names below load
their module on first use too, so that ``eos-tui data ...`` commands that do not train (import,
fetch, list, the offline check of ``data embed``) start without importing torch.
"""

from __future__ import annotations

import importlib

_LAZY = {
    "DATASETS": "engine.data.registry",
    "TrainingSet": "engine.data.registry",
    "dataset_info": "engine.data.registry",
    "dataset_module": "engine.data.registry",
    "load_training_set": "engine.data.registry",
    "default_data_dir": "engine.data.paths",
    "resolve_data_dir": "engine.data.paths",
    "halving_sizes": "engine.data.subsets",
    "subset_indices": "engine.data.subsets",
}

__all__ = sorted(_LAZY)


def __getattr__(name: str):
    try:
        module = _LAZY[name]
    except KeyError:
        raise AttributeError(f"module 'engine.data' has no attribute {name!r}") from None
    return getattr(importlib.import_module(module), name)
