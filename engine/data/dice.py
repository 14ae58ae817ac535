"""The synthetic "Dice" data set of the paper (spec §8), generated on the fly, no download.

Six classes, each a pattern point-symmetric about its own *origin* (the pattern centre); the
classes generalise the faces of a die:

0. **one pip** -- a filled disk centred at the origin;
1. **two pips** -- two disks at ``p`` and ``-p``;
2. **a line** -- a segment from ``p`` to ``-p``; its ends are round (capsule), butt (the
   segment stops at ``±p``) or square (extends half a width past ``±p``), chosen uniformly;
3. **a box** -- the outline of the axis-aligned rectangle with corners ``(±a, ±b)``, i.e.
   through the point ``p = (a, b)`` and its three reflections (outline, not filled, so
   that class 4 differs from it);
4. **a box plus a centre pip** -- class 3 with a class-0 disk at the origin;
5. **two parallel lines** -- a segment of direction ``d`` and half-length ``q`` whose
   midpoint is offset by ``h`` along the normal of ``d``, plus its point reflection
   (the same segment offset by ``-h``); ends drawn like class 2.

Geometry is in *normalised coordinates*: the image spans ``[-1, 1]`` in both axes (so one
pixel is ``2 / image_size`` wide) and everything scales with ``image_size``. Random
parameters, all uniform:

- origin: image centre plus an offset in ``[-CENTER_JITTER, CENTER_JITTER]`` per axis;
- pip radius ``PIP_RADIUS_RANGE`` (classes 0, 1, 4);
- line / outline half-width ``LINE_HALF_WIDTH_RANGE`` (classes 2, 3, 4, 5);
- direction angle of ``p`` / ``d`` in ``[0, pi)`` (classes 1, 2, 5);
- ``|p|``: ``PIP_DISTANCE_RANGE`` (class 1), ``LINE_HALF_LENGTH_RANGE`` (class 2);
- box half-sides ``a``, ``b`` independently in ``BOX_HALF_SIDE_RANGE`` (classes 3, 4);
- class 5: half-length ``PARALLEL_HALF_LENGTH_RANGE``, offset ``PARALLEL_OFFSET_RANGE``;
- line ends: round, butt or square with probability 1/3 each (classes 2, 5).

With these ranges every shape stays inside the image, pips of class 1 never touch, the centre
pip of class 4 never touches the box, and the two lines of class 5 never merge.

Rendering: each image is a signed-distance field of its shapes on the pixel-centre grid,
converted to antialiased coverage ``clip(0.5 - distance_in_pixels, 0, 1)`` (foreground 1 on
background 0, grayscale, float32). Everything is vectorised over a batch of images.

Determinism: image ``i`` of split ``s`` ("train" or "test", ``N_TRAIN`` = ``N_TEST`` = 60,000,
20,000 per class, the paper's fixed split) is a pure function of ``(s, i)``: its random numbers
come from a counter-based hash (SplitMix64) of ``BASE_SEED``, the split and ``i``. Rendering a
subset of indices renders only those images, and gives the same pixels whatever else is
rendered with them. The label of index ``i`` is ``i % 6``, so every block of 6 consecutive
indices is balanced.

Normalisation (``load_train``): ``(pixel - PIXEL_MEAN) / PIXEL_STD`` with two global constants,
the mean and standard deviation of all pixels of the first 6,000 training images at 32x32
(estimated once; the tests re-estimate and check them), then flattened to ``image_size**2``.
The same two constants are used for every ``image_size``: shapes scale with the image, so the
statistics change only through antialiasing (mean/std 0.102/0.215 at 8x8, 0.092/0.279 at 64x64).
"""

from __future__ import annotations

import operator
from pathlib import Path
from typing import Callable

import numpy as np

from engine.errors import DataError

NAME = "dice"
N_TRAIN = 60_000
N_TEST = 60_000
NUM_CLASSES = 6
DEFAULT_IMAGE_SIZE = 32
MIN_IMAGE_SIZE = 8
INPUT_SHAPE: tuple[int, ...] = (DEFAULT_IMAGE_SIZE, DEFAULT_IMAGE_SIZE)
PAPER_SIZES: tuple[int, ...] = (468, 937, 1875, 3750, 7500)  # 60000 // 128 ... 60000 // 8
NEEDS_DOWNLOAD = False
DESCRIPTION = "synthetic dice patterns, 6 classes, 32x32 grayscale, generated on the fly (embedded)"
CLASS_NAMES: tuple[str, ...] = (
    "one pip",
    "two pips",
    "line",
    "box",
    "box + centre pip",
    "two parallel lines",
)
OPTIONS: tuple[str, ...] = ("image_size",)

BASE_SEED = 20_240_531
"""Fixed seed of the whole data set; changing it changes every image."""

# Parameter ranges in normalised coordinates (image = [-1, 1]^2; at 32x32 one unit = 16 px).
CENTER_JITTER = 0.08
PIP_RADIUS_RANGE = (0.12, 0.22)
LINE_HALF_WIDTH_RANGE = (0.05, 0.11)
PIP_DISTANCE_RANGE = (0.35, 0.65)
LINE_HALF_LENGTH_RANGE = (0.35, 0.65)
BOX_HALF_SIDE_RANGE = (0.38, 0.68)
PARALLEL_HALF_LENGTH_RANGE = (0.30, 0.60)
PARALLEL_OFFSET_RANGE = (0.18, 0.40)
END_TYPES: tuple[str, ...] = ("round", "butt", "square")

PIXEL_MEAN = 0.09261
PIXEL_STD = 0.26803
"""Global pixel statistics of training images 0..5999 at 32x32, used by ``load_train``."""

_SPLITS = {"train": (0, N_TRAIN), "test": (1, N_TEST)}
_N_DRAWS = 8  # uniforms per image: cx, cy, angle, size1, size2, half-width, end type, pip radius
_PIXELS_PER_BATCH = 1 << 21  # bounds the temporary memory of one rendering batch (~8 MB/array)
_GOLDEN = np.uint64(0x9E3779B97F4A7C15)


def _splitmix64(z: np.ndarray) -> np.ndarray:
    """SplitMix64 finaliser (a bijective 64-bit mixer), elementwise on a uint64 array."""
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return z ^ (z >> np.uint64(31))


def _split_key(split: str) -> np.uint64:
    """The 64-bit stream key of a split."""
    if split not in _SPLITS:
        raise DataError(f"unknown dice split {split!r}: choose one of {', '.join(_SPLITS)}")
    split_id = _SPLITS[split][0]
    return _splitmix64(np.array([BASE_SEED * 2 + split_id], dtype=np.uint64))[0]


def _uniforms(key: np.uint64, indices: np.ndarray) -> np.ndarray:
    """``(n, _N_DRAWS)`` float64 uniforms in [0, 1): draw ``k`` of image ``i`` hashes ``(key, i, k)``."""
    counter = indices.astype(np.uint64)[:, None] * np.uint64(_N_DRAWS) + np.arange(
        _N_DRAWS, dtype=np.uint64
    )
    bits = _splitmix64(key + (counter + np.uint64(1)) * _GOLDEN)  # uint64 arithmetic wraps
    return (bits >> np.uint64(11)).astype(np.float64) * (1.0 / (1 << 53))


def _lerp(bounds: tuple[float, float], u: np.ndarray) -> np.ndarray:
    """Map uniforms in [0, 1) to ``[bounds[0], bounds[1])``, shaped ``(m, 1, 1)`` for broadcasting."""
    lo, hi = bounds
    return (lo + (hi - lo) * u).astype(np.float32)[:, None, None]


class _Shapes:
    """Per-image random parameters of one batch and the pixel coordinates relative to each origin."""

    def __init__(self, u: np.ndarray, grid: np.ndarray) -> None:
        cx = _lerp((-CENTER_JITTER, CENTER_JITTER), u[:, 0])
        cy = _lerp((-CENTER_JITTER, CENTER_JITTER), u[:, 1])
        self.px = grid[None, None, :] - cx  # (m, 1, s) - (m, 1, 1): column coordinate
        self.py = grid[None, :, None] - cy  # (m, s, 1): row coordinate
        angle = np.pi * u[:, 2]
        self.cos = np.cos(angle).astype(np.float32)[:, None, None]
        self.sin = np.sin(angle).astype(np.float32)[:, None, None]
        self.u1 = u[:, 3]
        self.u2 = u[:, 4]
        self.half_width = _lerp(LINE_HALF_WIDTH_RANGE, u[:, 5])
        self.end = np.minimum((u[:, 6] * len(END_TYPES)).astype(np.int64), len(END_TYPES) - 1)[
            :, None, None
        ]
        self.pip_radius = _lerp(PIP_RADIUS_RANGE, u[:, 7])

    def local(self) -> tuple[np.ndarray, np.ndarray]:
        """Pixel coordinates along (``u``) and across (``v``) the direction angle, ``(m, s, s)`` each."""
        along = self.px * self.cos + self.py * self.sin
        across = self.py * self.cos - self.px * self.sin
        return along, across


def _box_sd(ax: np.ndarray, ay: np.ndarray, hx: np.ndarray, hy: np.ndarray) -> np.ndarray:
    """Signed distance to a centred box of half-extents ``(hx, hy)``, at ``|x|, |y|`` = ``ax, ay``."""
    qx = ax - hx
    qy = ay - hy
    outside = np.hypot(np.maximum(qx, 0.0), np.maximum(qy, 0.0))
    return outside + np.minimum(np.maximum(qx, qy), 0.0)


def _segment_sd(
    along: np.ndarray, across: np.ndarray, half_length: np.ndarray, half_width: np.ndarray,
    end: np.ndarray,
) -> np.ndarray:
    """Signed distance to a centred segment of the given half-length/half-width and end type."""
    au = np.abs(along)
    av = np.abs(across)
    capsule = np.hypot(np.maximum(au - half_length, 0.0), av) - half_width
    extension = np.where(end == END_TYPES.index("square"), half_width, 0.0).astype(np.float32)
    flat = _box_sd(au, av, half_length + extension, half_width)
    return np.where(end == END_TYPES.index("round"), capsule, flat)


def _one_pip(sh: _Shapes) -> np.ndarray:
    return np.hypot(sh.px, sh.py) - sh.pip_radius


def _two_pips(sh: _Shapes) -> np.ndarray:
    along, across = sh.local()
    dist = _lerp(PIP_DISTANCE_RANGE, sh.u1)
    # pips at (±dist, 0) in the local frame; the nearer one is at +dist for along >= 0
    return np.hypot(np.abs(along) - dist, across) - sh.pip_radius


def _line(sh: _Shapes) -> np.ndarray:
    along, across = sh.local()
    return _segment_sd(along, across, _lerp(LINE_HALF_LENGTH_RANGE, sh.u1), sh.half_width, sh.end)


def _box(sh: _Shapes) -> np.ndarray:
    a = _lerp(BOX_HALF_SIDE_RANGE, sh.u1)
    b = _lerp(BOX_HALF_SIDE_RANGE, sh.u2)
    return np.abs(_box_sd(np.abs(sh.px), np.abs(sh.py), a, b)) - sh.half_width


def _box_and_pip(sh: _Shapes) -> np.ndarray:
    return np.minimum(_box(sh), _one_pip(sh))


def _parallel_lines(sh: _Shapes) -> np.ndarray:
    along, across = sh.local()
    offset = _lerp(PARALLEL_OFFSET_RANGE, sh.u2)
    # union of the segments at across = ±offset: distance depends on ||across| - offset|
    return _segment_sd(
        along, np.abs(across) - offset, _lerp(PARALLEL_HALF_LENGTH_RANGE, sh.u1),
        sh.half_width, sh.end,
    )


_CLASS_SDF: tuple[Callable[[_Shapes], np.ndarray], ...] = (
    _one_pip, _two_pips, _line, _box, _box_and_pip, _parallel_lines,
)


def _check_image_size(image_size: object) -> int:
    """Validated image size (an int >= ``MIN_IMAGE_SIZE``)."""
    try:
        if isinstance(image_size, bool):
            raise TypeError
        size = operator.index(image_size)  # type: ignore[arg-type]
    except TypeError:
        raise DataError(f"dice image_size must be an integer, got {image_size!r}") from None
    if size < MIN_IMAGE_SIZE:
        raise DataError(f"dice image_size must be >= {MIN_IMAGE_SIZE}, got {size}")
    return size


def _check_indices(indices: np.ndarray, split: str) -> np.ndarray:
    """Indices as a 1-D int64 array inside the split."""
    idx = np.asarray(indices)
    if idx.ndim != 1 or (idx.size and not np.issubdtype(idx.dtype, np.integer)):
        raise DataError("dice indices must be a 1-D array of integers")
    idx = idx.astype(np.int64, copy=False)
    n = _SPLITS[split][1]
    if idx.size and (idx.min() < 0 or idx.max() >= n):
        raise DataError(f"dice {split} indices must lie in 0..{n - 1}")
    return idx


def render(
    indices: np.ndarray, split: str = "train", image_size: int = DEFAULT_IMAGE_SIZE
) -> tuple[np.ndarray, np.ndarray]:
    """Render images ``indices`` of ``split``: ``(float32 (n, s, s) in [0, 1], int64 (n,) labels)``."""
    key = _split_key(split)
    idx = _check_indices(indices, split)
    s = _check_image_size(image_size)
    labels = idx % NUM_CLASSES
    images = np.empty((idx.size, s, s), dtype=np.float32)
    grid = ((np.arange(s, dtype=np.float32) + 0.5) * (2.0 / s) - 1.0).astype(np.float32)
    pixels_per_unit = np.float32(s / 2.0)
    batch = max(1, _PIXELS_PER_BATCH // (s * s))
    for start in range(0, idx.size, batch):
        block = idx[start:start + batch]
        u = _uniforms(key, block)
        block_labels = labels[start:start + batch]
        out = images[start:start + batch]
        for cls, sdf in enumerate(_CLASS_SDF):
            mask = block_labels == cls
            if not mask.any():
                continue
            distance = sdf(_Shapes(u[mask], grid))
            out[mask] = np.clip(0.5 - distance * pixels_per_unit, 0.0, 1.0)
    return images, labels


def input_shape(options: dict | None = None) -> tuple[int, ...]:
    """``(image_size, image_size)`` for the given options (default 32x32)."""
    size = _check_image_size(_options(options)["image_size"])
    return (size, size)


def _options(options: dict | None) -> dict:
    """Options with defaults filled in; unknown keys raise a DataError."""
    opts = dict(options or {})
    unknown = sorted(set(opts) - set(OPTIONS))
    if unknown:
        raise DataError(
            f"unknown dice option(s) {', '.join(unknown)}: valid options are {', '.join(OPTIONS)}"
        )
    opts.setdefault("image_size", DEFAULT_IMAGE_SIZE)
    return opts


def available(data_dir: Path) -> bool:
    """Always True: Dice is generated, nothing is read from ``data_dir``."""
    return True


def load_train(data_dir: Path, indices: np.ndarray, options: dict) -> tuple[np.ndarray, np.ndarray]:
    """Training images ``indices``, normalised with ``PIXEL_MEAN``/``PIXEL_STD`` and flattened.

    Returns ``X`` float64 ``(n, image_size**2)`` and ``y`` int64 ``(n,)``. ``data_dir`` is unused.
    """
    size = input_shape(options)[0]
    images, labels = render(indices, "train", size)
    X = (images.reshape(len(labels), size * size).astype(np.float64) - PIXEL_MEAN) / PIXEL_STD
    return X, labels
