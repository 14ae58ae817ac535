"""UCR/UEA AtrialFibrillation as windows of length 128 (spec §8).

Source: the UEA multivariate archive's ``AtrialFibrillation.zip`` from
timeseriesclassification.com, holding ``AtrialFibrillation_TRAIN.ts`` and
``AtrialFibrillation_TEST.ts``: two-channel ECG, 15 training and 15 test cases of length 640,
classes ``n``, ``s``, ``t``.

**Integrity.** The archive's publishers give no checksum for this file, so none can be
checked against upstream. Instead, import verifies the structure strictly (every header
field, 15 cases, 2 dimensions, length 640, no missing values, labels in the declared set
``n s t``) and records the SHA-256 of the imported files in ``manifest.json``; every later
load re-checks those hashes, so a file that changes after import is detected.

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
from collections.abc import Iterable
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
_HEADER_FLAGS = {"timestamps": "false", "missing": "false", "univariate": "false", "equallength": "true"}


def dataset_dir(data_dir: Path) -> Path:
    """Where the imported files live: ``data_dir/af``."""
    return Path(data_dir) / NAME


def input_shape(options: dict | None = None) -> tuple[int, ...]:
    """``INPUT_SHAPE``; AtrialFibrillation takes no options."""
    download.check_no_options(options, NAME)
    return INPUT_SHAPE


# --------------------------------------------------------------------------- the .ts format


@dataclass(frozen=True)
class TsFile:
    """A parsed equal-length, labelled UCR/UEA ``.ts`` file."""

    problem: str
    class_labels: tuple[str, ...]
    values: np.ndarray  # (n_cases, n_dims, length) float64
    labels: np.ndarray  # (n_cases,) int64, index into class_labels


def _bad(source: str, what: str) -> DataError:
    return DataError(f"{source} is not a valid {PROBLEM} .ts file ({what}): {MISSING}")


def _parse_header(lines: Iterable[tuple[int, str]], source: str) -> dict[str, str]:
    """Header fields (lower-case keys) up to and including ``@data``."""
    header: dict[str, str] = {}
    for number, line in lines:
        if not line.startswith("@"):
            raise _bad(source, f"line {number}: expected a header field before @data")
        key, _, value = line[1:].partition(" ")
        key = key.lower()
        if key in header:
            raise _bad(source, f"line {number}: @{key} given twice")
        header[key] = value.strip()
        if key == "data":
            return header
    raise _bad(source, "no @data line")


def _check_header(header: dict[str, str], source: str) -> tuple[str, int, int, tuple[str, ...]]:
    """``(problem, dimensions, series_length, class_labels)`` of a supported header."""
    known = {"problemname", "dimensions", "serieslength", "classlabel", "data", *_HEADER_FLAGS}
    unknown = sorted(set(header) - known)
    if unknown:
        raise _bad(source, f"unexpected header field @{unknown[0]}")
    for key, value in _HEADER_FLAGS.items():
        if header.get(key, "").lower() != value:
            raise _bad(source, f"@{key} must be {value}, got {header.get(key, 'nothing')!r}")
    if header.get("data"):
        raise _bad(source, "text after @data")
    try:
        dims, length = int(header["dimensions"]), int(header["serieslength"])
        problem = header["problemname"]
        flag, *labels = header["classlabel"].split()
    except (KeyError, ValueError):
        raise _bad(source, "@problemName, @dimensions, @seriesLength and @classLabel are required") from None
    if flag.lower() != "true" or not labels or len(set(labels)) != len(labels):
        raise _bad(source, "@classLabel must be true followed by distinct labels")
    return problem, dims, length, tuple(labels)


def parse_ts(text: str, source: str) -> TsFile:
    """Parse an equal-length, labelled, timestamp-free ``.ts`` file; ``source`` names it in errors."""
    lines = (
        (number, line.strip())
        for number, line in enumerate(text.splitlines(), start=1)
        if line.strip() and not line.lstrip().startswith("#")
    )
    problem, dims, length, class_labels = _check_header(_parse_header(lines, source), source)
    label_index = {label: i for i, label in enumerate(class_labels)}
    cases, labels = [], []
    for number, line in lines:
        parts = line.split(":")
        if len(parts) != dims + 1:
            raise _bad(source, f"line {number}: expected {dims} dimensions and a label, got {len(parts)} fields")
        if parts[-1].strip() not in label_index:
            raise _bad(source, f"line {number}: label {parts[-1].strip()!r} is not one of {' '.join(class_labels)}")
        try:
            case = [[float(v) for v in dim.split(",")] for dim in parts[:-1]]
        except ValueError:
            raise _bad(source, f"line {number}: a value is not a number") from None
        if any(len(dim) != length for dim in case):
            raise _bad(source, f"line {number}: a dimension does not have {length} values")
        cases.append(case)
        labels.append(label_index[parts[-1].strip()])
    values = np.asarray(cases, dtype=np.float64).reshape(len(cases), dims, length)
    if not np.isfinite(values).all():
        raise _bad(source, "non-finite values")
    return TsFile(problem, class_labels, values, np.asarray(labels, dtype=np.int64))


def _parse_af(raw: bytes, source: str) -> TsFile:
    """Parse ``raw`` and check it is one split of AtrialFibrillation."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise _bad(source, "not UTF-8 text") from None
    ts = parse_ts(text, source)
    if ts.problem.lower() != PROBLEM.lower():
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

    final = dataset_dir(data_dir)
    staged = download.staging_dir(final)
    files = {}
    for name, raw in found.items():
        (staged / name).write_bytes(raw)
        files[name] = {"size": len(raw), "sha256": download.file_digest(staged / name)}
    download.write_json_atomic(staged / MANIFEST, {
        "dataset": NAME,
        "format": FORMAT,
        "source": {"kind": kind, "paths": [p.name for p in paths]},
        "upstream_checksum": None,  # timeseriesclassification.com publishes none
        "files": files,
        "n_train": N_TRAIN,
    })
    download.replace_dir(staged, final)
    return final


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
