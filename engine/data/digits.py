"""scikit-learn's bundled handwritten digits (UCI optical digits): 8x8, 10 classes, offline.

A small, download-free real data set for quick experiments. All 1,797 bundled samples form
the training split (``N_TRAIN = 1797``; there is no test split), in scikit-learn's fixed order.

Normalisation: pixels (integers 0..16) are scaled to [0, 1] by dividing by 16, then each pixel
is standardised with its mean and standard deviation over the full 1,797-sample set (pixels
that are constant over the set -- a few always-blank border pixels -- have their std replaced
by 1, so they become 0). Using full-set statistics makes a sample's features independent of
which subset it is drawn into.

Subset sizes (``PAPER_SIZES``; digits is not in the paper) halve from the full set:
``1797 // 8, 1797 // 4, 1797 // 2, 1797`` = 224, 449, 898, 1797.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import numpy as np

from engine.data.subsets import halving_sizes
from engine.errors import DataError

NAME = "digits"
N_TRAIN = 1797
NUM_CLASSES = 10
INPUT_SHAPE: tuple[int, ...] = (8, 8)
PAPER_SIZES: tuple[int, ...] = tuple(halving_sizes(N_TRAIN, 8, 1))
NEEDS_DOWNLOAD = False
DESCRIPTION = "scikit-learn handwritten digits, 10 classes, 8x8 grayscale, bundled (offline)"


@lru_cache(maxsize=1)
def _standardized() -> tuple[np.ndarray, np.ndarray]:
    """The full set, standardised per pixel: ``(float64 (1797, 64), int64 (1797,))`` (read-only)."""
    try:
        from sklearn.datasets import load_digits
    except ImportError:
        raise DataError(
            "scikit-learn is needed for the digits data set: pip install scikit-learn"
        ) from None
    pixels, labels = load_digits(return_X_y=True)
    X = np.asarray(pixels, dtype=np.float64) / 16.0
    if X.shape != (N_TRAIN, 64):
        raise DataError(f"unexpected shape {X.shape} of scikit-learn's digits data set")
    mean = X.mean(axis=0)
    std = X.std(axis=0)
    std[std < 1e-12] = 1.0
    X = (X - mean) / std
    y = np.asarray(labels, dtype=np.int64)
    X.flags.writeable = False
    y.flags.writeable = False
    return X, y


def input_shape(options: dict | None = None) -> tuple[int, ...]:
    """``INPUT_SHAPE``; digits accepts no options."""
    _check_options(options)
    return INPUT_SHAPE


def _check_options(options: dict | None) -> None:
    """Raise a DataError for any option (digits has none)."""
    if options:
        raise DataError(f"the digits data set takes no options, got {', '.join(sorted(options))}")


def available(data_dir: Path) -> bool:
    """Always True: the data ships with scikit-learn, nothing is read from ``data_dir``."""
    return True


def load_train(data_dir: Path, indices: np.ndarray, options: dict) -> tuple[np.ndarray, np.ndarray]:
    """Samples ``indices``: ``X`` float64 ``(n, 64)`` standardised, ``y`` int64 ``(n,)``.

    ``data_dir`` is unused.
    """
    _check_options(options)
    idx = np.asarray(indices)
    if idx.ndim != 1 or (idx.size and not np.issubdtype(idx.dtype, np.integer)):
        raise DataError("digits indices must be a 1-D array of integers")
    if idx.size and (idx.min() < 0 or idx.max() >= N_TRAIN):
        raise DataError(f"digits indices must lie in 0..{N_TRAIN - 1}")
    X, y = _standardized()
    return X[idx], y[idx]
