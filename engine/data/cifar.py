"""CIFAR-10 from the official python-pickle archive (spec §8).

Source: ``cifar-10-python.tar.gz`` from https://www.cs.toronto.edu/~kriz/cifar.html
(md5 ``c58f30108f718f92721af3b95e74349a``, the checksum published with the archive), or the
``cifar-10-batches-py/`` folder it extracts to, whose seven files are checked against their
md5s in the official archive (:data:`FILE_MD5`, the values torchvision pins).

On disk (``DATA_DIR/cifar10/``): the extracted ``data_batch_1..5``, ``test_batch`` and
``batches.meta`` plus ``manifest.json`` holding, for every file, its size and SHA-256, the
number of images of each batch and the per-channel training-set mean and standard
deviation. Import (:func:`import_archive`, or :func:`import_folder` for an extracted folder)
checks the archive's md5 (the folder's files' md5s), extracts into a staging directory,
validates every batch and writes the manifest; loading re-checks the sizes and
SHA-256 of the training batches (about 150 MB, well under a second) and raises
:class:`~engine.errors.DataError` on any mismatch or truncation.

Batches are pickles, and unpickling runs code: they are read with a restricted unpickler
that resolves only numpy's array/dtype reconstruction functions (and the latin-1 codec that
Python 3 protocol-2 pickles use for bytes), so a tampered file cannot execute anything.

Inputs: pixel values scaled to [0, 1], normalised per channel with the mean and standard
deviation over all training images (computed exactly from per-channel histograms at import,
cached in the manifest), flattened channel-major as stored in the file (3 x 32 x 32 -> 3072).
The training split is ``data_batch_1..5`` concatenated in order; sample ``i`` is the
``i``-th image of that sequence. Image counts are read from the files, so
:func:`n_train` gives the actual size (50000 for the official archive).
"""

from __future__ import annotations

import hashlib
import io
import math
import pickle
import tarfile
import zlib
from pathlib import Path
from typing import Any

import numpy as np

from engine.data import download
from engine.errors import DataError

NAME = "cifar10"
N_TRAIN = 50000
NUM_CLASSES = 10
INPUT_SHAPE = (3, 32, 32)
PAPER_SIZES = (390, 781, 1562, 3125, 6250)
NEEDS_DOWNLOAD = True
DESCRIPTION = "CIFAR-10: 32x32 colour photos in 10 classes (official archive, md5-verified)"

URL = "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"
ARCHIVE_NAME = "cifar-10-python.tar.gz"
ARCHIVE_MD5 = "c58f30108f718f92721af3b95e74349a"
ARCHIVE_DIR = "cifar-10-batches-py"
TRAIN_FILES = tuple(f"data_batch_{i}" for i in range(1, 6))
TEST_FILE = "test_batch"
META_FILE = "batches.meta"
MANIFEST = "manifest.json"
FILE_MD5 = {
    "data_batch_1": "c99cafc152244af753f735de768cd75f",
    "data_batch_2": "d4bba439e000b95fd0a9bffe97cbabec",
    "data_batch_3": "54ebc095f3ab1f0389bbae665268c751",
    "data_batch_4": "634d18415352ddfa80567beed471001a",
    "data_batch_5": "482c414d41f54cd18b22e5b47cb7c3cb",
    "test_batch": "40351d587109b95175f43aff81a1287e",
    "batches.meta": "5ff9c542aee3614f3951f8cda6e48888",
}
"""md5 of each file of the official archive's ``cifar-10-batches-py/`` (as pinned by torchvision)."""
FORMAT = 1
_PIXELS = math.prod(INPUT_SHAPE)

MISSING = (
    f"run `eos-tui data fetch {NAME}` (needs internet) or `eos-tui data import {NAME} FILE`"
)


def dataset_dir(data_dir: Path) -> Path:
    """Where the imported files live: ``data_dir/cifar10``."""
    return Path(data_dir) / NAME


def input_shape(options: dict | None = None) -> tuple[int, ...]:
    """``INPUT_SHAPE``; CIFAR-10 takes no options."""
    download.check_no_options(options, NAME)
    return INPUT_SHAPE


# --------------------------------------------------------------------------- safe unpickling


def _latin1_encode(text: str, encoding: str = "utf-8") -> bytes:
    """``_codecs.encode`` as used by protocol-2 pickles of bytes; only latin-1 allowed."""
    if encoding.lower().replace("_", "-") not in ("latin1", "latin-1"):
        raise pickle.UnpicklingError(f"pickle asks for codec {encoding!r}; only latin-1 is allowed")
    return text.encode("latin-1")


_RECONSTRUCT = np.zeros(0).__reduce__()[0]  # numpy's array reconstruction function
_ALLOWED: dict[tuple[str, str], Any] = {
    ("numpy.core.multiarray", "_reconstruct"): _RECONSTRUCT,
    ("numpy._core.multiarray", "_reconstruct"): _RECONSTRUCT,
    ("numpy", "ndarray"): np.ndarray,
    ("numpy", "dtype"): np.dtype,
    ("_codecs", "encode"): _latin1_encode,
}


class _BatchUnpickler(pickle.Unpickler):
    """Unpickler that can build numpy arrays and plain containers and nothing else."""

    def find_class(self, module: str, name: str) -> Any:
        try:
            return _ALLOWED[(module, name)]
        except KeyError:
            raise pickle.UnpicklingError(f"{module}.{name} is not allowed in a CIFAR batch") from None


def _unpickle(raw: bytes, label: str) -> dict:
    """The dict pickled in ``raw`` (a batch file called ``label`` in messages)."""
    try:
        obj = _BatchUnpickler(io.BytesIO(raw), encoding="bytes").load()
    except Exception as exc:  # any unpickling failure means a corrupt or foreign file
        raise DataError(f"CIFAR-10 file {label} is corrupt or not a CIFAR batch ({exc}): {MISSING}") from None
    if not isinstance(obj, dict):
        raise DataError(f"CIFAR-10 file {label} does not hold a dict: {MISSING}")
    return obj


def _parse_batch(raw: bytes, label: str) -> tuple[np.ndarray, np.ndarray]:
    """``(data (n, 3072) uint8, labels (n,) int64)`` of a batch pickle, validated."""
    batch = _unpickle(raw, label)
    data, labels = batch.get(b"data"), batch.get(b"labels")
    if not isinstance(data, np.ndarray) or data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != _PIXELS:
        raise DataError(f"CIFAR-10 file {label} has no (n, {_PIXELS}) uint8 image array: {MISSING}")
    if not isinstance(labels, list) or len(labels) != data.shape[0] or not all(type(v) is int for v in labels):
        raise DataError(f"CIFAR-10 file {label} has no list of {data.shape[0]} integer labels: {MISSING}")
    y = np.asarray(labels, dtype=np.int64)
    if data.shape[0] == 0 or y.min() < 0 or y.max() >= NUM_CLASSES:
        raise DataError(f"CIFAR-10 file {label} is empty or has labels outside 0..9: {MISSING}")
    return data, y


def _parse_meta(raw: bytes, label: str) -> list[str]:
    """The ten class names of ``batches.meta``."""
    names = _unpickle(raw, label).get(b"label_names")
    if not isinstance(names, list) or len(names) != NUM_CLASSES or not all(isinstance(n, (bytes, str)) for n in names):
        raise DataError(f"CIFAR-10 file {label} has no list of 10 label names: {MISSING}")
    return [n.decode("latin-1") if isinstance(n, bytes) else n for n in names]


# --------------------------------------------------------------------------- import


def _channel_histograms(data: np.ndarray) -> np.ndarray:
    """``(3, 256)`` counts of each pixel value per channel of a ``(n, 3072)`` uint8 batch."""
    per_channel = data.reshape(data.shape[0], 3, -1)
    return np.stack([np.bincount(per_channel[:, c, :].ravel(), minlength=256) for c in range(3)])


def _mean_std(hist: np.ndarray) -> tuple[list[float], list[float]]:
    """Per-channel mean and (population) standard deviation of values/255 from histograms."""
    values = np.arange(256, dtype=np.float64) / 255.0
    counts = hist.astype(np.float64)
    total = counts.sum(axis=1)
    mean = counts @ values / total
    var = counts @ values**2 / total - mean**2
    return mean.tolist(), np.sqrt(np.maximum(var, 0.0)).tolist()


def _read_members(archive: Path) -> dict[str, bytes]:
    """The bytes of every needed file in the tar.gz ``archive`` (by base name)."""
    wanted = {f"{ARCHIVE_DIR}/{name}": name for name in (*TRAIN_FILES, TEST_FILE, META_FILE)}
    found: dict[str, bytes] = {}
    try:
        with tarfile.open(archive, "r:gz") as tar:
            for member in tar:
                key = member.name[2:] if member.name.startswith("./") else member.name
                if key in wanted and member.isfile():
                    handle = tar.extractfile(member)
                    assert handle is not None  # regular files always have a handle
                    found[wanted[key]] = handle.read()
    except (tarfile.TarError, EOFError, zlib.error, OSError) as exc:
        raise DataError(
            f"{archive} is not a readable {ARCHIVE_NAME} ({exc}): download it again with "
            f"`eos-tui data fetch {NAME}`"
        ) from None
    missing = [name for name in wanted.values() if name not in found]
    if missing:
        raise DataError(
            f"{archive} lacks {', '.join(missing)}: it is not {ARCHIVE_NAME}; "
            f"run `eos-tui data fetch {NAME}`"
        )
    return found


def import_archive(data_dir: Path, archive: Path, *, expected_md5: str | None = None) -> Path:
    """Import ``archive`` (``cifar-10-python.tar.gz``) into ``data_dir/cifar10``; return that dir.

    ``expected_md5`` defaults to the official :data:`ARCHIVE_MD5`. The previous import, if any,
    is replaced only once the new one is complete and valid.
    """
    archive = Path(archive)
    expected = (expected_md5 or ARCHIVE_MD5).lower()
    if not archive.is_file():
        raise DataError(
            f"{archive} is not a file: pass the path of {ARCHIVE_NAME} to `eos-tui data import {NAME} FILE`"
        )
    actual = download.file_digest(archive, "md5")
    if actual != expected:
        raise DataError(
            f"{archive} failed its checksum (md5 {actual}, expected {expected}): it is not the "
            f"official {ARCHIVE_NAME}; run `eos-tui data fetch {NAME}` or import a verified copy"
        )
    return _import_members(data_dir, _read_members(archive), str(archive),
                           {"archive": archive.name, "md5": actual})


def import_folder(data_dir: Path, folder: Path, *, expected_md5: dict[str, str] | None = None) -> Path:
    """Import an extracted ``cifar-10-batches-py/`` folder into ``data_dir/cifar10``.

    Each of its seven files must match its md5 in the official archive (``expected_md5``,
    default :data:`FILE_MD5`); other files in the folder are ignored.
    """
    folder = Path(folder)
    expected = {name: md5.lower() for name, md5 in (expected_md5 or FILE_MD5).items()}
    missing = [name for name in expected if not (folder / name).is_file()]
    if missing:
        raise DataError(
            f"{folder} lacks {', '.join(missing)}: it is not an extracted {ARCHIVE_DIR}/ folder; "
            f"pass that folder or {ARCHIVE_NAME} to `eos-tui data import {NAME}`"
        )
    members, md5s = {}, {}
    for name, md5 in expected.items():
        raw = (folder / name).read_bytes()
        actual = hashlib.md5(raw).hexdigest()
        if actual != md5:
            raise DataError(
                f"{folder / name} failed its checksum (md5 {actual}, expected {md5}): it is not the "
                f"official CIFAR-10 {name}; run `eos-tui data fetch {NAME}` or import a verified copy"
            )
        members[name], md5s[name] = raw, actual
    return _import_members(data_dir, members, str(folder), {"folder": folder.name, "md5": md5s})


def _import_members(data_dir: Path, members: dict[str, bytes], where: str, source: dict) -> Path:
    """Validate the seven files ``members`` (from ``where``) and install them with a manifest."""
    hist = np.zeros((3, 256), dtype=np.int64)
    counts: dict[str, int] = {}
    for name in TRAIN_FILES:
        data, _ = _parse_batch(members[name], f"{where}:{name}")
        counts[name] = int(data.shape[0])
        hist += _channel_histograms(data)
    test_data, _ = _parse_batch(members[TEST_FILE], f"{where}:{TEST_FILE}")
    label_names = _parse_meta(members[META_FILE], f"{where}:{META_FILE}")
    mean, std = _mean_std(hist)
    if min(std) <= 0.0:
        raise DataError(f"{where} has a constant colour channel: it is not CIFAR-10; run `eos-tui data fetch {NAME}`")

    return download.install_files(dataset_dir(data_dir), members, {
        "dataset": NAME,
        "format": FORMAT,
        "source": source,
        "train_files": list(TRAIN_FILES),
        "counts": counts,
        "n_train": sum(counts.values()),
        "n_test": int(test_data.shape[0]),
        "channel_mean": mean,
        "channel_std": std,
        "label_names": label_names,
    })


def import_files(data_dir: Path, paths: list[Path], *, expected_md5: str | None = None) -> Path:
    """CLI entry (``eos-tui data import cifar10 PATH``): the archive, an extracted
    ``cifar-10-batches-py/`` folder, or a folder holding either."""
    if len(paths) != 1:
        raise DataError(f"`eos-tui data import {NAME}` takes one path: {ARCHIVE_NAME} or its extracted "
                        f"{ARCHIVE_DIR}/ folder")
    path = Path(paths[0])
    if path.is_dir():
        if (path / TRAIN_FILES[0]).is_file():
            return import_folder(data_dir, path)
        if (path / ARCHIVE_DIR / TRAIN_FILES[0]).is_file():
            return import_folder(data_dir, path / ARCHIVE_DIR)
        if not (path / ARCHIVE_NAME).exists():
            raise DataError(f"{path} holds neither {ARCHIVE_NAME} nor an extracted {ARCHIVE_DIR}/ folder: "
                            f"pass one of them to `eos-tui data import {NAME}`")
        path = path / ARCHIVE_NAME
    return import_archive(data_dir, path, expected_md5=expected_md5)


def fetch(data_dir: Path, *, progress: download.Progress | None = None) -> Path:
    """Download the official archive (md5-checked), import it, delete the download."""
    target = Path(data_dir) / "downloads" / ARCHIVE_NAME
    download.fetch(URL, target, expected_md5=ARCHIVE_MD5, progress=progress, name=NAME)
    final = import_archive(data_dir, target, expected_md5=ARCHIVE_MD5)
    target.unlink()
    return final


# --------------------------------------------------------------------------- loading


def _manifest(data_dir: Path) -> dict:
    """The validated manifest of the imported files (DataError if absent or malformed)."""
    manifest = download.read_manifest(dataset_dir(data_dir) / MANIFEST, NAME, "CIFAR-10", MISSING)
    try:
        ok = (
            manifest["format"] == FORMAT
            and list(manifest["train_files"]) == list(TRAIN_FILES)
            and all(
                manifest["files"][n]["size"] >= 0 and len(manifest["files"][n]["sha256"]) == 64
                for n in TRAIN_FILES
            )
            and sum(int(manifest["counts"][n]) for n in TRAIN_FILES) == int(manifest["n_train"])
            and len(manifest["channel_mean"]) == 3 and len(manifest["channel_std"]) == 3
        )
    except (KeyError, TypeError, ValueError):
        ok = False
    if not ok:
        raise DataError(f"CIFAR-10 manifest in {dataset_dir(data_dir)} is malformed: {MISSING}")
    return manifest


def _verified_bytes(data_dir: Path, manifest: dict, name: str) -> bytes:
    """The bytes of imported file ``name`` after checking its size and SHA-256."""
    return download.read_verified(dataset_dir(data_dir) / name, manifest["files"][name],
                                  "CIFAR-10 file", MISSING)


def n_train(data_dir: Path) -> int:
    """Number of training images actually imported (50000 for the official archive)."""
    return int(_manifest(data_dir)["n_train"])


def available(data_dir: Path) -> bool:
    """Whether an import is present with every training file at its recorded size (no hashing)."""
    return download.files_present(lambda: _manifest(data_dir), dataset_dir(data_dir), TRAIN_FILES)


def status(data_dir: Path) -> str:
    """One line for ``eos-tui data list``."""
    if not available(data_dir):
        return f"missing: {MISSING}"
    return f"ready: {n_train(data_dir)} training images"


def load_train(data_dir: Path, indices: np.ndarray, options: dict) -> tuple[np.ndarray, np.ndarray]:
    """Normalised, flattened training images ``indices`` (``(n, 3072)`` float64) and labels."""
    download.check_no_options(options, NAME)
    manifest = _manifest(data_dir)
    idx = download.check_indices(indices, int(manifest["n_train"]), NAME)
    bounds = np.cumsum([0] + [int(manifest["counts"][n]) for n in TRAIN_FILES])
    batch_of = np.searchsorted(bounds, idx, side="right") - 1
    X = np.empty((idx.size, _PIXELS), dtype=np.float64)
    y = np.empty(idx.size, dtype=np.int64)
    for b, name in enumerate(TRAIN_FILES):
        raw = _verified_bytes(data_dir, manifest, name)  # every batch, needed or not
        data, labels = _parse_batch(raw, str(dataset_dir(data_dir) / name))
        if data.shape[0] != manifest["counts"][name]:
            raise DataError(
                f"CIFAR-10 file {name} holds {data.shape[0]} images, "
                f"manifest says {manifest['counts'][name]}: {MISSING}"
            )
        rows = np.nonzero(batch_of == b)[0]
        local = idx[rows] - bounds[b]
        X[rows] = data[local]
        y[rows] = labels[local]
    mean = np.repeat(np.asarray(manifest["channel_mean"], dtype=np.float64), _PIXELS // 3)
    std = np.repeat(np.asarray(manifest["channel_std"], dtype=np.float64), _PIXELS // 3)
    X /= 255.0
    X -= mean
    X /= std
    return X, y
