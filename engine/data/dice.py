"""The synthetic "Dice" data set of the paper (Lowell & Kastner §7.3, Table 3; spec §8).

Generated on the fly, no download. Six classes generalise the faces of a die; each is built
from one random **position** ``p = (p_x, p_y)`` and its reflections through the image centre
(the origin of the normalised coordinates, in which the image spans ``[-1, 1]`` on both axes):

0. **one pip** -- a disk centred at ``p``;
1. **two pips** -- disks at ``p`` and ``-p`` (mirrored through the origin);
2. **a line** -- a segment from ``p`` to ``-p``;
3. **a box** -- the outline of the axis-aligned rectangle through ``p`` and its three
   reflections ``(±p_x, ±p_y)``;
4. **a box plus a centre pip** -- class 3 and a disk at the origin;
5. **two parallel lines** (the "six") -- the segment from ``p`` to ``-p`` moved by ``+h`` and
   by ``-h`` along its unit normal (the six's **offset** ``h``), so the pair is symmetric.

Random parameters of every image, all independent and uniform (the table ``PARAMETERS``):

============  ======================  ==============================================
parameter     range                   used by
============  ======================  ==============================================
``p_x, p_y``  ``[-1, 1]`` each        every class (the paper's position, Table 3)
``size``      ``[0.1, 1]``            pip radius = ``size · PIP_RADIUS_UNIT`` (0, 1, 4)
``weight``    ``LINE_WEIGHT_RANGE``   half-width of lines and outlines (2, 3, 4, 5)
``end``       round / butt / square   line ends, probability 1/3 each (2, 5)
``offset``    ``SIX_OFFSET_RANGE``    the six's offset ``h`` (5)
============  ======================  ==============================================

The position and size ranges are the paper's (Table 3, as restated by the project's issue
tracker); the paper text is not in our copy, so ``PIP_RADIUS_UNIT`` (what a size of 1 means),
the line-weight and offset ranges, the image size and the seed are **[choice]**s, documented
in docs/metrics.md §5. With a uniform position a pattern can touch or leave the image edge (a
pip at ``p`` near a corner is partly outside; the six's lines can be cut), and patterns with
``p`` near the origin are small: two pips then merge into one, a line shrinks to a dot. Those
images are kept, as a generator with these ranges produces them.

Rendering: each image is a signed-distance field of its shapes on the pixel-centre grid,
converted to antialiased coverage ``clip(0.5 - distance_in_pixels, 0, 1)`` (foreground 1 on
background 0, grayscale, float32). Everything is vectorised over batches of images.

Determinism: image ``i`` of split ``s`` ("train" or "test", ``N_TRAIN`` = ``N_TEST`` = 60,000,
20,000 per class, the paper's fixed split) is a pure function of ``(s, i)``: its random numbers
come from a counter-based hash (SplitMix64) of ``BASE_SEED``, the split and ``i``. Rendering a
subset of indices renders only those images and gives the same pixels whatever else is
rendered with them; the split is the same on every call and every machine. The label of index
``i`` is ``i % 6``, so every block of 6 consecutive indices is balanced.

Normalisation (``load_train``): ``(pixel - PIXEL_MEAN) / PIXEL_STD`` with two global constants,
the mean and standard deviation of all pixels of the first 6,000 training images at 32x32
(estimated once; the tests re-estimate and check them), then flattened to ``image_size**2``.
The same two constants serve every ``image_size`` (shapes scale with the image; the statistics
change only through antialiasing).
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
"""[choice] Fixed seed of the whole data set (both splits); changing it changes every image."""

# The paper's ranges (Table 3), in normalised coordinates (image = [-1, 1]^2).
POSITION_RANGE = (-1.0, 1.0)
SIZE_RANGE = (0.1, 1.0)
# [choice]s: the paper's values are lost from our copy (docs/metrics.md §5).
PIP_RADIUS_UNIT = 0.25
"""[choice] Pip radius of ``size = 1`` (a quarter of the image's half-width; at 32x32, 4 px)."""
LINE_WEIGHT_RANGE = (0.03, 0.10)
"""[choice] Half-width of lines and box outlines (at 32x32: 0.5 to 1.6 px, lines 1 to 3.2 px wide)."""
SIX_OFFSET_RANGE = (0.15, 0.45)
"""[choice] Offset ``h`` of the six's two lines from the centre line (at 32x32: 2.4 to 7.2 px)."""
END_TYPES: tuple[str, ...] = ("round", "butt", "square")

PARAMETERS: dict[str, tuple[float, float]] = {
    "p_x": POSITION_RANGE,
    "p_y": POSITION_RANGE,
    "size": SIZE_RANGE,
    "weight": LINE_WEIGHT_RANGE,
    "end": (0, len(END_TYPES) - 1),
    "offset": SIX_OFFSET_RANGE,
}
"""Every random parameter of an image and its range (``end`` is an index into ``END_TYPES``)."""

PIXEL_MEAN = 0.07796
PIXEL_STD = 0.24487
"""Global pixel statistics of training images 0..5999 at 32x32, used by ``load_train``."""

_SPLITS = {"train": (0, N_TRAIN), "test": (1, N_TEST)}
_N_DRAWS = 6  # uniforms per image: p_x, p_y, size, weight, end type, offset
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
    lo, hi = bounds
    return lo + (hi - lo) * u


def _draw(u: np.ndarray) -> dict[str, np.ndarray]:
    """The parameters of ``PARAMETERS`` from the ``(m, _N_DRAWS)`` uniforms of ``m`` images."""
    return {
        "p_x": _lerp(POSITION_RANGE, u[:, 0]),
        "p_y": _lerp(POSITION_RANGE, u[:, 1]),
        "size": _lerp(SIZE_RANGE, u[:, 2]),
        "weight": _lerp(LINE_WEIGHT_RANGE, u[:, 3]),
        "end": np.minimum((u[:, 4] * len(END_TYPES)).astype(np.int64), len(END_TYPES) - 1),
        "offset": _lerp(SIX_OFFSET_RANGE, u[:, 5]),
    }


class _Shapes:
    """Per-image parameters of one batch, shaped ``(m, 1, 1)``, and the pixel coordinates."""

    def __init__(self, params: dict[str, np.ndarray], grid: np.ndarray) -> None:
        def col(name: str) -> np.ndarray:
            return params[name].astype(np.float32)[:, None, None]

        self.x = grid[None, None, :]  # (1, 1, s): column coordinate
        self.y = grid[None, :, None]  # (1, s, 1): row coordinate (row 0 is y = -1)
        self.p_x, self.p_y = col("p_x"), col("p_y")
        self.half_length = np.hypot(self.p_x, self.p_y)
        safe = np.where(self.half_length > 0, self.half_length, 1.0)
        self.cos = np.where(self.half_length > 0, self.p_x / safe, 1.0)  # direction of p
        self.sin = np.where(self.half_length > 0, self.p_y / safe, 0.0)
        self.pip_radius = col("size") * np.float32(PIP_RADIUS_UNIT)
        self.half_width = col("weight")
        self.end = params["end"][:, None, None]
        self.offset = col("offset")

    def local(self) -> tuple[np.ndarray, np.ndarray]:
        """Pixel coordinates along (``u``) and across (``v``) the direction of ``p``, ``(m, s, s)``."""
        along = self.x * self.cos + self.y * self.sin
        across = self.y * self.cos - self.x * self.sin
        return along, across


def _box_sd(ax: np.ndarray, ay: np.ndarray, hx: np.ndarray, hy: np.ndarray) -> np.ndarray:
    """Signed distance to a centred box of half-extents ``(hx, hy)``, at ``|x|, |y|`` = ``ax, ay``."""
    qx = ax - hx
    qy = ay - hy
    outside = np.hypot(np.maximum(qx, 0.0), np.maximum(qy, 0.0))
    return outside + np.minimum(np.maximum(qx, qy), 0.0)


def _segment_sd(along: np.ndarray, across: np.ndarray, sh: _Shapes) -> np.ndarray:
    """Signed distance to the centred segment from ``-p`` to ``p``, with its width and end type."""
    au = np.abs(along)
    av = np.abs(across)
    capsule = np.hypot(np.maximum(au - sh.half_length, 0.0), av) - sh.half_width
    extension = np.where(sh.end == END_TYPES.index("square"), sh.half_width, 0.0).astype(np.float32)
    flat = _box_sd(au, av, sh.half_length + extension, sh.half_width)
    return np.where(sh.end == END_TYPES.index("round"), capsule, flat)


def _one_pip(sh: _Shapes) -> np.ndarray:
    return np.hypot(sh.x - sh.p_x, sh.y - sh.p_y) - sh.pip_radius


def _two_pips(sh: _Shapes) -> np.ndarray:
    along, across = sh.local()
    # pips at ±p, i.e. at (±|p|, 0) in the local frame; the nearer one is at +|p| for along >= 0
    return np.hypot(np.abs(along) - sh.half_length, across) - sh.pip_radius


def _line(sh: _Shapes) -> np.ndarray:
    return _segment_sd(*sh.local(), sh)


def _box(sh: _Shapes) -> np.ndarray:
    outline = np.abs(_box_sd(np.abs(sh.x), np.abs(sh.y), np.abs(sh.p_x), np.abs(sh.p_y)))
    return outline - sh.half_width


def _box_and_pip(sh: _Shapes) -> np.ndarray:
    return np.minimum(_box(sh), np.hypot(sh.x, sh.y) - sh.pip_radius)


def _two_parallel_lines(sh: _Shapes) -> np.ndarray:
    along, across = sh.local()
    # the union of the segments at across = ±offset depends on ||across| - offset|
    return _segment_sd(along, np.abs(across) - sh.offset, sh)


_CLASS_SDF: tuple[Callable[[_Shapes], np.ndarray], ...] = (
    _one_pip, _two_pips, _line, _box, _box_and_pip, _two_parallel_lines,
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


def parameters(indices: np.ndarray, split: str = "train") -> dict[str, np.ndarray]:
    """The random parameters (``PARAMETERS``) of images ``indices`` of ``split``, plus ``label``."""
    key = _split_key(split)
    idx = _check_indices(indices, split)
    params = _draw(_uniforms(key, idx))
    params["label"] = idx % NUM_CLASSES
    return params


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
        params = _draw(_uniforms(key, idx[start:start + batch]))
        block_labels = labels[start:start + batch]
        out = images[start:start + batch]
        for cls, sdf in enumerate(_CLASS_SDF):
            mask = block_labels == cls
            if not mask.any():
                continue
            shapes = _Shapes({name: value[mask] for name, value in params.items()}, grid)
            out[mask] = np.clip(0.5 - sdf(shapes) * pixels_per_unit, 0.0, 1.0)
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
