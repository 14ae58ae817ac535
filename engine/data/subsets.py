"""Training subsets: which samples of a data set a run trains on (spec §8).

A subset is chosen by its own *subset seed*, separate from the initialisation seed (paper:
4 init seeds x 4 subset seeds per size). The generator is seeded with ``(SUBSET_SALT, seed)``
so the subset stream never coincides with another numpy stream seeded with the bare seed.

Subsets of one seed are **nested**: the indices are the first ``size`` entries of one
seeded permutation of ``range(n_total)`` (returned sorted), so the size-468 subset of seed 0
is contained in its size-937 subset, and so on.
"""

from __future__ import annotations

import operator

import numpy as np

from engine.errors import DataError

SUBSET_SALT = 0x5EB5E7
"""Mixed into every subset seed so subset draws are independent of other seeded streams."""


def _as_int(value: object, what: str) -> int:
    """``value`` as a Python int (bools and non-integers rejected with a DataError)."""
    if isinstance(value, bool):
        raise DataError(f"{what} must be an integer, got {value!r}")
    try:
        return operator.index(value)  # type: ignore[arg-type]
    except TypeError:
        raise DataError(f"{what} must be an integer, got {value!r}") from None


def subset_indices(n_total: int, size: int, seed: int) -> np.ndarray:
    """Sorted int64 indices of ``size`` distinct samples out of ``n_total``, a pure function of ``seed``.

    Raises :class:`DataError` if ``size`` is not in ``1..n_total`` or ``seed`` is negative.
    """
    n_total = _as_int(n_total, "n_total")
    size = _as_int(size, "subset size")
    seed = _as_int(seed, "subset seed")
    if n_total <= 0:
        raise DataError(f"data set has no samples (n_total={n_total})")
    if not 1 <= size <= n_total:
        raise DataError(f"subset size {size} out of range: choose 1..{n_total}")
    if seed < 0:
        raise DataError(f"subset seed must be >= 0, got {seed}")
    rng = np.random.default_rng([SUBSET_SALT, seed])
    chosen = rng.permutation(n_total)[:size]
    return np.sort(chosen).astype(np.int64, copy=False)


def halving_sizes(
    n_total: int, largest_divisor: int = 128, smallest_divisor: int = 8
) -> list[int]:
    """Subset sizes ``n_total // 2**j`` for the divisors from ``largest_divisor`` down to ``smallest_divisor``, ascending.

    ``halving_sizes(60000) == [468, 937, 1875, 3750, 7500]`` (paper: Dice),
    ``halving_sizes(50000) == [390, 781, 1562, 3125, 6250]`` (paper: CIFAR-10).
    Both divisors must be powers of two with ``smallest_divisor <= largest_divisor``.
    """
    n_total = _as_int(n_total, "n_total")
    hi = _as_int(largest_divisor, "largest_divisor")
    lo = _as_int(smallest_divisor, "smallest_divisor")
    for d in (hi, lo):
        if d < 1 or d & (d - 1):
            raise DataError(f"divisors must be powers of two, got {d}")
    if lo > hi:
        raise DataError(f"smallest_divisor {lo} exceeds largest_divisor {hi}")
    if n_total < hi:
        raise DataError(f"n_total {n_total} is smaller than the largest divisor {hi}")
    return [n_total // (1 << j) for j in range(hi.bit_length() - 1, lo.bit_length() - 2, -1)]
