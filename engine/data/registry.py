"""Data-set registry: names, lazy module loading and the training tensors of a run.

Every data set is a module ``engine.data.<module>`` following the *dataset-module protocol*::

    NAME: str; N_TRAIN: int; NUM_CLASSES: int; INPUT_SHAPE: tuple[int, ...]
    PAPER_SIZES: tuple[int, ...]   # ascending subset sizes
    NEEDS_DOWNLOAD: bool; DESCRIPTION: str
    available(data_dir) -> bool
    load_train(data_dir, indices, options) -> (X float64 (n, prod(shape)), y int64 (n,))
    input_shape(options) -> tuple[int, ...]   # optional; defaults to INPUT_SHAPE

Modules are imported on first use (``importlib``), so a data set whose module or optional
dependency is missing fails only when it is asked for, never for the others.
"""

from __future__ import annotations

import importlib
import math
import operator
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

import numpy as np
import torch

from engine.data.paths import resolve_data_dir
from engine.data.subsets import subset_indices
from engine.errors import DataError

DATASETS: tuple[str, ...] = ("dice", "digits", "cifar10", "af", "sst")

_MODULES: dict[str, str] = {
    "dice": "engine.data.dice",
    "digits": "engine.data.digits",
    "cifar10": "engine.data.cifar",
    "af": "engine.data.ucr",
    "sst": "engine.data.sst",
}

_REQUIRED = (
    "NAME", "N_TRAIN", "NUM_CLASSES", "INPUT_SHAPE", "PAPER_SIZES", "NEEDS_DOWNLOAD",
    "DESCRIPTION", "available", "load_train",
)


def dataset_module(name: str) -> ModuleType:
    """The module implementing data set ``name`` (imported lazily).

    Raises :class:`DataError` for an unknown name (listing the valid ones), a module missing
    from this installation, or a missing third-party dependency of the module.
    """
    if name not in _MODULES:
        raise DataError(f"unknown data set {name!r}: choose one of {', '.join(DATASETS)}")
    module_name = _MODULES[name]
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name == module_name:
            raise DataError(
                f"data set {name!r} is not available in this installation ({module_name} is missing)"
            ) from None
        missing = (exc.name or str(exc)).split(".")[0]
        raise DataError(
            f"data set {name!r} needs the Python package {missing!r}: pip install {missing}"
        ) from None
    absent = [attr for attr in _REQUIRED if not hasattr(module, attr)]
    if absent:
        raise RuntimeError(f"{module_name} does not follow the dataset protocol: missing {absent}")
    return module


def _input_shape(module: ModuleType, options: dict) -> tuple[int, ...]:
    """The module's input shape for ``options`` (``INPUT_SHAPE`` if it has no ``input_shape``)."""
    if hasattr(module, "input_shape"):
        return tuple(int(d) for d in module.input_shape(options))
    return tuple(int(d) for d in module.INPUT_SHAPE)


@dataclass
class TrainingSet:
    """The exact training tensors of a run and what they are."""

    name: str
    X: torch.Tensor  # (n, d0) flattened, normalised inputs
    y: torch.Tensor  # (n,) int64 class indices
    indices: torch.Tensor  # (n,) int64 indices into the full training split (sorted)
    n_total: int  # size of the full training split
    num_classes: int
    input_shape: tuple[int, ...]  # shape of one input before flattening
    description: str

    @property
    def n(self) -> int:
        """Number of training samples."""
        return int(self.X.shape[0])

    @property
    def input_dim(self) -> int:
        """Flattened input dimension ``d0``."""
        return int(self.X.shape[1])


def full_size(module, root: Path) -> int:
    """Size of the full training split actually present (``n_train``), else ``N_TRAIN``.

    Downloaded data sets report the count of the files imported (which raises the
    "not found, run ..." error when they are missing); embedded ones use the constant.
    """
    if hasattr(module, "n_train"):
        return int(module.n_train(root))
    return int(module.N_TRAIN)


def load_training_set(
    name: str,
    *,
    size: int | None,
    subset_seed: int,
    data_dir: str | Path | None = None,
    dtype: torch.dtype = torch.float64,
    device: str | torch.device = "cpu",
    options: dict | None = None,
) -> TrainingSet:
    """Load the ``size``-sample subset of data set ``name`` chosen by ``subset_seed``.

    ``size=None`` takes the smallest paper size. ``data_dir=None`` resolves through
    ``EOS_TUI_DATA`` and the user cache directory. Raises :class:`DataError` for an unknown
    data set, a size outside ``1..N_TRAIN``, bad options or missing data.
    """
    module = dataset_module(name)
    opts = dict(options or {})
    root = resolve_data_dir(data_dir)
    n_total = full_size(module, root)
    if size is None:
        size = int(module.PAPER_SIZES[0])
    else:
        try:
            if isinstance(size, bool):
                raise TypeError
            size = operator.index(size)
        except TypeError:
            raise DataError(f"subset size must be an integer, got {size!r}") from None
    if not 1 <= size <= n_total:
        sizes = ", ".join(str(s) for s in module.PAPER_SIZES)
        raise DataError(
            f"subset size {size} out of range for {name}: choose 1..{n_total} (paper sizes: {sizes})"
        )
    shape = _input_shape(module, opts)
    idx = subset_indices(n_total, size, subset_seed)
    X, y = module.load_train(root, idx, opts)
    X = np.asarray(X)
    y = np.asarray(y)
    d0 = math.prod(shape)
    if X.shape != (size, d0) or y.shape != (size,):
        raise RuntimeError(
            f"{module.__name__}.load_train returned X {X.shape}, y {y.shape}; expected ({size}, {d0}), ({size},)"
        )
    if not np.isfinite(X).all():
        raise DataError(f"data set {name} contains non-finite values: its files may be corrupt")
    if y.size and (y.min() < 0 or y.max() >= module.NUM_CLASSES):
        raise DataError(f"data set {name} has labels outside 0..{module.NUM_CLASSES - 1}")
    return TrainingSet(
        name=name,
        X=torch.as_tensor(X, dtype=dtype).to(device),
        y=torch.as_tensor(y.astype(np.int64, copy=False)).to(device),
        indices=torch.as_tensor(idx, dtype=torch.int64).to(device),
        n_total=n_total,
        num_classes=int(module.NUM_CLASSES),
        input_shape=shape,
        description=str(module.DESCRIPTION),
    )


def dataset_info(name: str, data_dir: str | Path | None = None) -> dict:
    """Summary of data set ``name`` for listings (``eos-tui presets``), with default options.

    Keys: name, n_total, num_classes, input_dim, paper_sizes, needs_download, available,
    description.
    """
    module = dataset_module(name)
    return {
        "name": name,
        "n_total": int(module.N_TRAIN),
        "num_classes": int(module.NUM_CLASSES),
        "input_dim": math.prod(_input_shape(module, {})),
        "paper_sizes": [int(s) for s in module.PAPER_SIZES],
        "needs_download": bool(module.NEEDS_DOWNLOAD),
        "available": bool(module.available(resolve_data_dir(data_dir))),
        "description": str(module.DESCRIPTION),
    }
