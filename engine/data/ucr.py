"""UCR/UEA AtrialFibrillation as windows of length 128 (spec §8).

Source: the UEA multivariate archive's ``AtrialFibrillation.zip`` from
timeseriesclassification.com, holding ``AtrialFibrillation_TRAIN.ts`` and
``AtrialFibrillation_TEST.ts``: two-channel ECG, 15 training and 15 test cases of length 640,
classes ``n``, ``s``, ``t``.

**Integrity.** The archive's publishers give no checksum for this file, so none can be
checked against upstream. Instead, import parses both files by the ``.ts`` format's spec (see
:func:`parse_ts`) and checks what AtrialFibrillation must be (15 cases, 2 dimensions, length
640, no missing values, labels in the declared set ``n s t``), and records the SHA-256 of the
imported files in ``manifest.json``; every later load re-checks those hashes, so a file that
changes after import is detected.

**Samples** [choice, spec §8]: every window of length 128 with stride 1 starting at
0..511 of each training case, 15 x 512 = 7680 windows; window ``i`` is case ``i // 512``
from time ``i % 512``, and keeps its case's label (n=0, s=1, t=2, the declared order). The
test split is stored but never mixed into training windows.

**Normalisation** [choice]: per channel, with the mean and (population) standard deviation
of all 15 x 640 training samples of that channel (whole series rather than windows, since
overlapping windows would weight the middle of each series more). Windows are flattened
channel-major: (2, 128) -> 256.
"""

from __future__ import annotations

import math
import zipfile
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from engine.data import download
from engine.errors import DataError

NAME = "af"
PROBLEM = "AtrialFibrillation"
N_CASES = 15
N_DIMS = 2
SERIES_LENGTH = 640
CLASS_LABELS = ("n", "s", "t")
WINDOW = 128
N_STARTS = SERIES_LENGTH - WINDOW  # starts 0..511 (spec §8)

N_TRAIN = N_CASES * N_STARTS  # 7680
NUM_CLASSES = len(CLASS_LABELS)
INPUT_SHAPE = (N_DIMS, WINDOW)
PAPER_SIZES = (60, 120, 240, 480, 960)
NEEDS_DOWNLOAD = True
DESCRIPTION = "UCR/UEA AtrialFibrillation: 2-lead ECG windows of 128 steps, 3 classes"

URLS = (
    "https://timeseriesclassification.com/aeon-toolkit/AtrialFibrillation.zip",
    "https://www.timeseriesclassification.com/ClassificationDownloads/AtrialFibrillation.zip",
)
ZIP_NAME = "AtrialFibrillation.zip"
TRAIN_FILE = f"{PROBLEM}_TRAIN.ts"
TEST_FILE = f"{PROBLEM}_TEST.ts"
MANIFEST = "manifest.json"
FORMAT = 1

MISSING = f"run `eos-tui data fetch {NAME}` (needs internet) or `eos-tui data import {NAME} FILE`"


def dataset_dir(data_dir: Path) -> Path:
    """Where the imported files live: ``data_dir/af``."""
    return Path(data_dir) / NAME


def input_shape(options: dict | None = None) -> tuple[int, ...]:
    """``INPUT_SHAPE``; AtrialFibrillation takes no options."""
    download.check_no_options(options, NAME)
    return INPUT_SHAPE


# --------------------------------------------------------------------------- the .ts format
#
# The sktime/aeon ``.ts`` format (sktime's "ts File Format v1.0", whose loaders aeon and sktime
# share): UTF-8 text; an optional description block of ``#`` lines; a metadata block of
# ``@<identifier> <value>`` lines in any order, identifiers case-insensitive (``@problemName``
# and ``@problemname`` alike), separated from their value by whitespace (a space or a tab),
# ending with ``@data``; then one case per line, dimensions separated by ``:``, values by ``,``,
# the class label last. Identifiers: ``@problemName``, ``@timeStamps``, ``@missing``,
# ``@univariate``, ``@dimension`` (``@dimensions`` in many archive files), ``@equalLength``,
# ``@seriesLength``, ``@classLabel true <labels>`` / ``@targetLabel``. Every one but ``@data``
# is optional (defaults: no timestamps, no missing values, equal length; the dimensions and
# the length are then read from the data), and loaders ignore identifiers they do not know.
# Missing values are written ``?``.
#
# This reader accepts exactly that, plus a UTF-8 byte-order mark and CRLF line ends, which
# files of the archive have; it refuses what the training data cannot use, each with one line:
# timestamps, unequal lengths, regression targets, and missing values (``?`` or ``NaN``).

_BOOLEAN_KEYS = ("timestamps", "missing", "univariate", "equallength", "targetlabel")
_KEY_ALIASES = {"dimensions": "dimension"}


@dataclass(frozen=True)
class TsFile:
    """A parsed equal-length, labelled UCR/UEA ``.ts`` file."""

    problem: str | None
    class_labels: tuple[str, ...]
    values: np.ndarray  # (n_cases, n_dims, length) float64
    labels: np.ndarray  # (n_cases,) int64, index into class_labels


def _bad(source: str, what: str) -> DataError:
    return DataError(f"{source} is not a valid {PROBLEM} .ts file ({what}): {MISSING}")


def _parse_header(lines: Iterator[tuple[int, str]], source: str) -> dict[str, list[str]]:
    """The metadata block up to ``@data``: lower-case identifier (aliases resolved) -> its
    whitespace-separated value tokens. ``#`` lines before it are the description block."""
    header: dict[str, list[str]] = {}
    for number, line in lines:
        if line.startswith("#"):
            continue
        if not line.startswith("@"):
            raise _bad(source, f"line {number}: expected an @identifier or a # comment before @data")
        tokens = line[1:].split()
        if not tokens or line[1].isspace():
            raise _bad(source, f"line {number}: '@' without an identifier")
        key, value = _KEY_ALIASES.get(tokens[0].lower(), tokens[0].lower()), tokens[1:]
        if key in header:
            raise _bad(source, f"line {number}: @{key} given twice")
        header[key] = value
        if key == "data":
            if value:
                raise _bad(source, f"line {number}: text after @data")
            return header
    raise _bad(source, "no @data line")


def _flag(header: dict[str, list[str]], key: str, default: bool | None, source: str) -> bool | None:
    if key not in header:
        return default
    value = [v.lower() for v in header[key]]
    if value not in (["true"], ["false"]):
        raise _bad(source, f"@{key} must be true or false, got {' '.join(header[key]) or 'nothing'!r}")
    return value == ["true"]


def _positive(header: dict[str, list[str]], key: str, source: str) -> int | None:
    if key not in header:
        return None
    try:
        (value,) = header[key]
        number = int(value)
    except ValueError:
        number = 0
    if number <= 0:
        raise _bad(source, f"@{key} must be a positive integer, got {' '.join(header[key]) or 'nothing'!r}")
    return number


@dataclass(frozen=True)
class _Header:
    problem: str | None
    dims: int | None
    length: int | None
    class_labels: tuple[str, ...]


def _check_header(header: dict[str, list[str]], source: str) -> _Header:
    """The supported subset of a metadata block: labelled, equal-length, no timestamps."""
    flags = {key: _flag(header, key, None, source) for key in _BOOLEAN_KEYS}
    if flags["timestamps"]:
        raise _bad(source, "@timeStamps true: series with timestamps are not supported")
    if flags["equallength"] is False:
        raise _bad(source, "@equalLength false: series of unequal length are not supported")
    if flags["targetlabel"]:
        raise _bad(source, "@targetLabel true: a regression file, not a classification one")
    dims, length = _positive(header, "dimension", source), _positive(header, "serieslength", source)
    if flags["univariate"] and dims not in (None, 1):
        raise _bad(source, f"@univariate true but @dimension {dims}")
    if flags["univariate"] is True:
        dims = 1
    flag, *labels = header.get("classlabel") or ["missing"]
    if flag.lower() != "true" or not labels:
        raise _bad(source, "@classLabel must be true followed by the class labels")
    if len(set(labels)) != len(labels):
        raise _bad(source, "@classLabel declares a label twice")
    problem = header.get("problemname")
    return _Header(" ".join(problem) if problem else None, dims, length, tuple(labels))


def _parse_case(line: str, number: int, head: _Header, dims: int | None, source: str) -> tuple[list[list[float]], str]:
    """One data line: its dimensions' values and its label."""
    *channels, label = line.split(":")
    label = label.strip()
    if dims is not None and len(channels) != dims:
        raise _bad(source, f"line {number}: expected {dims} dimensions and a label, got {len(channels) + 1} fields")
    if not channels:
        raise _bad(source, f"line {number}: expected values and a label separated by ':'")
    if label not in head.class_labels:
        raise _bad(source, f"line {number}: label {label!r} is not one of {' '.join(head.class_labels)}")
    case = []
    for d, channel in enumerate(channels, start=1):
        values = []
        for position, text in enumerate(channel.split(","), start=1):
            text = text.strip()
            if text == "?" or text.lower() == "nan":
                raise _bad(source, f"line {number}: missing value {text!r} in dimension {d} at position "
                                   f"{position}; {PROBLEM} must have none")
            try:
                value = float(text)
            except ValueError:
                raise _bad(source, f"line {number}: value {text[:20]!r} in dimension {d} is not a number") from None
            if not math.isfinite(value):
                raise _bad(source, f"line {number}: non-finite value {text!r} in dimension {d}")
            values.append(value)
        case.append(values)
    return case, label


def parse_ts(text: str | bytes, source: str) -> TsFile:
    """Parse an equal-length, labelled, timestamp-free ``.ts`` file (``bytes`` are decoded as
    UTF-8, a byte-order mark dropped); ``source`` names it in errors."""
    if isinstance(text, bytes):
        try:
            text = text.decode("utf-8-sig")
        except UnicodeDecodeError:
            raise _bad(source, "not UTF-8 text") from None
    text = text.removeprefix("\ufeff")
    lines = ((number, line.strip()) for number, line in enumerate(text.splitlines(), start=1) if line.strip())
    head = _check_header(_parse_header(lines, source), source)
    label_index = {label: i for i, label in enumerate(head.class_labels)}
    dims, length = head.dims, head.length
    cases, labels = [], []
    for number, line in lines:
        case, label = _parse_case(line, number, head, dims, source)
        dims = len(case)
        for values in case:
            if length is None:
                length = len(values)
            if len(values) != length:
                raise _bad(source, f"line {number}: a dimension has {len(values)} values, expected {length}")
        cases.append(case)
        labels.append(label_index[label])
    if not cases:
        raise _bad(source, "no cases after @data")
    values = np.asarray(cases, dtype=np.float64).reshape(len(cases), dims, length)
    return TsFile(head.problem, head.class_labels, values, np.asarray(labels, dtype=np.int64))


def _parse_af(raw: bytes, source: str) -> TsFile:
    """Parse ``raw`` and check it is one split of AtrialFibrillation."""
    ts = parse_ts(raw, source)
    if ts.problem is not None and ts.problem.lower() != PROBLEM.lower():
        raise _bad(source, f"@problemName is {ts.problem!r}")
    if ts.class_labels != CLASS_LABELS:
        raise _bad(source, f"@classLabel declares {' '.join(ts.class_labels)}, expected {' '.join(CLASS_LABELS)}")
    if ts.values.shape != (N_CASES, N_DIMS, SERIES_LENGTH):
        found = f"{ts.values.shape[0]} cases of {ts.values.shape[1:]}"
        raise _bad(source, f"{found}, expected {N_CASES} of ({N_DIMS}, {SERIES_LENGTH})")
    return ts


# --------------------------------------------------------------------------- import


def _from_zip(path: Path) -> dict[str, bytes]:
    """The TRAIN and TEST ``.ts`` bytes inside the zip at ``path`` (matched by base name)."""
    found: dict[str, bytes] = {}
    try:
        with zipfile.ZipFile(path) as zf:
            for info in zf.infolist():
                base = info.filename.rsplit("/", 1)[-1]
                if base in (TRAIN_FILE, TEST_FILE) and not info.is_dir():
                    found[base] = zf.read(info)
    except (zipfile.BadZipFile, zlib.error, OSError, EOFError) as exc:
        raise DataError(f"{path} is not a readable zip ({exc}): {MISSING}") from None
    return found


def _from_paths(paths: list[Path]) -> tuple[dict[str, bytes], str]:
    """The TRAIN/TEST bytes from a zip, a folder or the two files, and the source's kind."""
    if len(paths) == 1 and paths[0].is_file() and zipfile.is_zipfile(paths[0]):
        return _from_zip(paths[0]), "zip"
    if len(paths) == 1 and paths[0].is_dir():
        files = [p for name in (TRAIN_FILE, TEST_FILE) for p in sorted(paths[0].rglob(name))[:1]]
        return {p.name: p.read_bytes() for p in files}, "folder"
    found: dict[str, bytes] = {}
    for path in paths:
        if path.name not in (TRAIN_FILE, TEST_FILE) or not path.is_file():
            raise DataError(
                f"{path} is not {TRAIN_FILE} or {TEST_FILE}: pass {ZIP_NAME}, a folder holding "
                f"both files, or both files to `eos-tui data import {NAME}`"
            )
        found[path.name] = path.read_bytes()
    return found, "files"


def import_files(data_dir: Path, paths: list[Path]) -> Path:
    """Import AtrialFibrillation from ``paths`` into ``data_dir/af``; return that directory.

    ``paths``: ``AtrialFibrillation.zip``, a folder holding both ``.ts`` files, or the two
    files. Both splits are validated before anything is written.
    """
    paths = [Path(p) for p in paths]
    for path in paths:
        if not path.exists():
            raise DataError(
                f"{path} does not exist: pass {ZIP_NAME} or the two .ts files to `eos-tui data import {NAME}`"
            )
    found, kind = _from_paths(paths)
    missing = [name for name in (TRAIN_FILE, TEST_FILE) if name not in found]
    if missing:
        raise DataError(f"{' and '.join(missing)} not found in {', '.join(map(str, paths))}: {MISSING}")
    train = _parse_af(found[TRAIN_FILE], TRAIN_FILE)
    _parse_af(found[TEST_FILE], TEST_FILE)
    if min(_channel_stats(train.values)[1]) <= 0.0:
        raise _bad(TRAIN_FILE, "a channel is constant")

    return download.install_files(dataset_dir(data_dir), found, {
        "dataset": NAME,
        "format": FORMAT,
        "source": {"kind": kind, "paths": [p.name for p in paths]},
        "upstream_checksum": None,  # timeseriesclassification.com publishes none
        "n_train": N_TRAIN,
    })


def fetch(data_dir: Path, *, progress: download.Progress | None = None) -> Path:
    """Download ``AtrialFibrillation.zip`` (trying each of :data:`URLS`), import it, delete it."""
    target = Path(data_dir) / "downloads" / ZIP_NAME
    errors: list[DataError] = []
    for url in URLS:
        try:
            download.fetch(url, target, progress=progress, name=NAME)
            break
        except DataError as exc:
            errors.append(exc)
    else:
        raise errors[0]
    final = import_files(data_dir, [target])
    target.unlink()
    return final


# --------------------------------------------------------------------------- loading


def _channel_stats(values: np.ndarray) -> tuple[list[float], list[float]]:
    """Per-channel mean and population std over all cases and time steps."""
    return values.mean(axis=(0, 2)).tolist(), values.std(axis=(0, 2)).tolist()


def _manifest(data_dir: Path) -> dict:
    """The validated manifest of the import (DataError if absent or malformed)."""
    manifest = download.read_manifest(dataset_dir(data_dir) / MANIFEST, NAME, PROBLEM, MISSING)
    try:
        entry = manifest["files"][TRAIN_FILE]
        ok = (
            manifest["format"] == FORMAT and manifest["n_train"] == N_TRAIN
            and isinstance(entry["size"], int) and len(entry["sha256"]) == 64
        )
    except (KeyError, TypeError):
        ok = False
    if not ok:
        raise DataError(f"{PROBLEM} manifest in {dataset_dir(data_dir)} is malformed: {MISSING}")
    return manifest


def _training_cases(data_dir: Path) -> TsFile:
    """The training split, after checking its size and SHA-256 against the manifest."""
    path = dataset_dir(data_dir) / TRAIN_FILE
    raw = download.read_verified(path, _manifest(data_dir)["files"][TRAIN_FILE], "AtrialFibrillation file",
                                 MISSING)
    return _parse_af(raw, str(path))


def n_train(data_dir: Path) -> int:
    """Number of training windows (always :data:`N_TRAIN` once imported)."""
    return int(_manifest(data_dir)["n_train"])


def available(data_dir: Path) -> bool:
    """Whether an import is present with the training file at its recorded size (no hashing)."""
    return download.files_present(lambda: _manifest(data_dir), dataset_dir(data_dir), [TRAIN_FILE])


def status(data_dir: Path) -> str:
    """One line for ``eos-tui data list``."""
    if not available(data_dir):
        return f"missing: {MISSING}"
    return f"ready: {N_TRAIN} windows from {N_CASES} training cases"


def load_train(data_dir: Path, indices: np.ndarray, options: dict) -> tuple[np.ndarray, np.ndarray]:
    """Normalised windows ``indices`` flattened to ``(n, 256)`` float64, and their labels."""
    download.check_no_options(options, NAME)
    idx = download.check_indices(indices, N_TRAIN, NAME)
    ts = _training_cases(data_dir)
    mean, std = _channel_stats(ts.values)
    values = (ts.values - np.asarray(mean)[None, :, None]) / np.asarray(std)[None, :, None]
    case, start = np.divmod(idx, N_STARTS)
    steps = start[:, None] + np.arange(WINDOW)  # (n, WINDOW)
    windows = values[case[:, None, None], np.arange(N_DIMS)[None, :, None], steps[:, None, :]]
    return windows.reshape(idx.size, math.prod(INPUT_SHAPE)), ts.labels[case]
