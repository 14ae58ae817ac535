"""Tests of engine/data/cifar.py on small archives in the official format (tests/datafiles.py)."""

from __future__ import annotations

import json
import os
import pickle
from pathlib import Path

import numpy as np
import pytest

from datafiles import FakeCifar, RangeServer, py2_pickle, write_cifar_archive
from engine.data import cifar
from engine.errors import DataError

FIX = "run `eos-tui data fetch cifar10` (needs internet) or `eos-tui data import cifar10 FILE`"


@pytest.fixture(scope="module")
def fake(tmp_path_factory: pytest.TempPathFactory) -> FakeCifar:
    return write_cifar_archive(tmp_path_factory.mktemp("src") / "cifar-10-python.tar.gz")


@pytest.fixture
def imported(tmp_path: Path, fake: FakeCifar) -> Path:
    cifar.import_archive(tmp_path, fake.path, expected_md5=fake.md5)
    return tmp_path


def _expected(fake: FakeCifar, idx: np.ndarray) -> np.ndarray:
    """Independent per-channel normalisation of the generated images."""
    pixels = fake.data.reshape(-1, 3, 1024) / 255.0
    mean = pixels.mean(axis=(0, 2))
    std = pixels.std(axis=(0, 2))
    return ((pixels[idx] - mean[:, None]) / std[:, None]).reshape(len(idx), 3072)


def test_protocol_constants() -> None:
    assert (cifar.NAME, cifar.N_TRAIN, cifar.NUM_CLASSES) == ("cifar10", 50000, 10)
    assert cifar.INPUT_SHAPE == (3, 32, 32) and cifar.input_shape({}) == (3, 32, 32)
    assert cifar.PAPER_SIZES == (390, 781, 1562, 3125, 6250) and cifar.NEEDS_DOWNLOAD
    assert cifar.ARCHIVE_MD5 == "c58f30108f718f92721af3b95e74349a"
    assert cifar.DESCRIPTION and "\n" not in cifar.DESCRIPTION


def test_import_then_load(imported: Path, fake: FakeCifar) -> None:
    assert cifar.available(imported) and cifar.n_train(imported) == 100
    manifest = json.loads((imported / "cifar10" / "manifest.json").read_text())
    assert manifest["counts"] == {f"data_batch_{i}": 20 for i in range(1, 6)}
    assert manifest["label_names"][0] == "airplane" and manifest["n_test"] == 20
    assert sorted(p.name for p in (imported / "cifar10").iterdir()) == sorted(
        [*cifar.TRAIN_FILES, "test_batch", "batches.meta", "manifest.json"])
    idx = np.array([0, 19, 20, 57, 99], dtype=np.int64)
    X, y = cifar.load_train(imported, idx, {})
    assert X.shape == (5, 3072) and X.dtype == np.float64 and y.dtype == np.int64
    np.testing.assert_allclose(X, _expected(fake, idx), rtol=0, atol=1e-12)
    assert np.array_equal(y, fake.labels[idx])


def test_full_split_is_standardised_per_channel(imported: Path) -> None:
    X, _ = cifar.load_train(imported, np.arange(100), {})
    per_channel = X.reshape(100, 3, 1024)
    np.testing.assert_allclose(per_channel.mean(axis=(0, 2)), 0.0, atol=1e-12)
    np.testing.assert_allclose(per_channel.std(axis=(0, 2)), 1.0, atol=1e-12)


def test_official_checksum_rejects_other_archive(tmp_path: Path, fake: FakeCifar) -> None:
    with pytest.raises(DataError) as info:
        cifar.import_archive(tmp_path, fake.path)
    message = str(info.value)
    assert f"md5 {fake.md5}, expected c58f30108f718f92721af3b95e74349a" in message
    assert "`eos-tui data fetch cifar10`" in message and "\n" not in message
    assert not (tmp_path / "cifar10").exists()


def test_missing_data_names_the_commands(tmp_path: Path) -> None:
    assert not cifar.available(tmp_path)
    with pytest.raises(DataError) as info:
        cifar.load_train(tmp_path, np.arange(3), {})
    assert str(info.value) == f"CIFAR-10 not found in {tmp_path}: {FIX}"
    with pytest.raises(DataError, match="not found"):
        cifar.n_train(tmp_path)
    assert cifar.status(tmp_path).startswith("missing: run `eos-tui data fetch cifar10`")


def test_corrupt_batch_detected_on_load(imported: Path) -> None:
    path = imported / "cifar10" / "data_batch_3"
    raw = bytearray(path.read_bytes())
    raw[len(raw) // 2] ^= 0xFF
    path.write_bytes(bytes(raw))
    assert cifar.available(imported)  # same size: only the hash can tell
    with pytest.raises(DataError) as info:
        cifar.load_train(imported, np.arange(3), {})
    assert "data_batch_3" in str(info.value) and "SHA-256" in str(info.value)
    assert str(info.value).endswith(FIX)


def test_truncated_or_deleted_batch_detected(imported: Path) -> None:
    path = imported / "cifar10" / "data_batch_2"
    path.write_bytes(path.read_bytes()[:-100])
    assert not cifar.available(imported)
    with pytest.raises(DataError, match="truncated.*eos-tui data fetch cifar10"):
        cifar.load_train(imported, np.arange(3), {})
    path.unlink()
    with pytest.raises(DataError, match="missing.*eos-tui data import cifar10"):
        cifar.load_train(imported, np.arange(3), {})


def test_malformed_manifest(imported: Path) -> None:
    manifest = imported / "cifar10" / "manifest.json"
    payload = json.loads(manifest.read_text())
    del payload["channel_std"]
    manifest.write_text(json.dumps(payload))
    with pytest.raises(DataError, match="malformed.*eos-tui data fetch cifar10"):
        cifar.load_train(imported, np.arange(3), {})
    manifest.write_text("{")
    with pytest.raises(DataError, match="unreadable"):
        cifar.load_train(imported, np.arange(3), {})


def test_truncated_archive(tmp_path: Path, fake: FakeCifar) -> None:
    cut = tmp_path / "cut.tar.gz"
    cut.write_bytes(fake.path.read_bytes()[: fake.path.stat().st_size // 2])
    from datafiles import md5_of

    with pytest.raises(DataError, match="not a readable cifar-10-python.tar.gz.*eos-tui data fetch cifar10"):
        cifar.import_archive(tmp_path / "data", cut, expected_md5=md5_of(cut))
    assert not (tmp_path / "data" / "cifar10").exists()


def test_archive_missing_a_batch(tmp_path: Path) -> None:
    fake = write_cifar_archive(tmp_path / "a.tar.gz", members={"data_batch_5": b""})
    with pytest.raises(DataError, match="lacks data_batch_5"):
        cifar.import_archive(tmp_path / "data", fake.path, expected_md5=fake.md5)


def test_pickle_cannot_run_code(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"

    class Evil:
        def __reduce__(self) -> tuple:
            return (os.system, (f"touch {marker}",))

    evil = pickle.dumps({b"data": Evil()}, protocol=2)
    fake = write_cifar_archive(tmp_path / "a.tar.gz", members={"data_batch_1": evil})
    with pytest.raises(DataError, match="not allowed in a CIFAR batch"):
        cifar.import_archive(tmp_path / "data", fake.path, expected_md5=fake.md5)
    assert not marker.exists()


@pytest.mark.parametrize("batch", [
    {b"data": np.zeros((4, 3072), np.uint8), b"labels": [0, 1, 2, 10]},  # label out of range
    {b"data": np.zeros((4, 100), np.uint8), b"labels": [0, 1, 2, 3]},  # wrong image size
    {b"data": np.zeros((4, 3072), np.float32), b"labels": [0, 1, 2, 3]},  # wrong dtype
    {b"data": np.zeros((4, 3072), np.uint8), b"labels": [0, 1]},  # too few labels
    [1, 2, 3],  # not a dict
])
def test_invalid_batch_contents(tmp_path: Path, batch: object) -> None:
    fake = write_cifar_archive(tmp_path / "a.tar.gz", members={"data_batch_2": py2_pickle(batch)})
    with pytest.raises(DataError, match="data_batch_2"):
        cifar.import_archive(tmp_path / "data", fake.path, expected_md5=fake.md5)


def test_python3_pickles_are_read_too(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    members = {}
    for i in range(1, 6):
        batch = {b"data": rng.integers(0, 256, (3, 3072), dtype=np.uint8), b"labels": [1, 2, 3]}
        members[f"data_batch_{i}"] = pickle.dumps(batch, protocol=2 if i % 2 else 4)
    fake = write_cifar_archive(tmp_path / "a.tar.gz", members=members)
    cifar.import_archive(tmp_path / "data", fake.path, expected_md5=fake.md5)
    X, y = cifar.load_train(tmp_path / "data", np.arange(15), {})
    assert X.shape == (15, 3072) and y.tolist() == [1, 2, 3] * 5


def test_reimport_replaces_and_failed_import_keeps_previous(imported: Path, tmp_path: Path) -> None:
    other = write_cifar_archive(tmp_path / "other.tar.gz", per_batch=7, seed=5)
    cifar.import_archive(imported, other.path, expected_md5=other.md5)
    assert cifar.n_train(imported) == 35
    with pytest.raises(DataError):
        cifar.import_archive(imported, other.path)  # official md5: rejected
    assert cifar.n_train(imported) == 35
    assert [p.name for p in imported.iterdir() if p.name.startswith(".")] == []


def test_bad_arguments(imported: Path) -> None:
    with pytest.raises(DataError, match="out of range"):
        cifar.load_train(imported, np.array([100]), {})
    with pytest.raises(DataError, match="takes no options"):
        cifar.load_train(imported, np.arange(2), {"normalise": False})
    with pytest.raises(DataError, match="takes one path"):
        cifar.import_files(imported, [])


def test_import_files_accepts_folder(tmp_path: Path, fake: FakeCifar) -> None:
    cifar.import_files(tmp_path, [fake.path.parent], expected_md5=fake.md5)
    assert cifar.n_train(tmp_path) == 100


def _extract(fake: FakeCifar, where: Path) -> Path:
    """The archive extracted as `tar xzf` does: ``where/cifar-10-batches-py/``."""
    import tarfile

    with tarfile.open(fake.path) as tar:
        tar.extractall(where, filter="data")
    return where / cifar.ARCHIVE_DIR


def _official(folder: Path) -> dict[str, str]:
    """The small test files' md5s, standing in for the official ones."""
    import hashlib

    return {name: hashlib.md5((folder / name).read_bytes()).hexdigest() for name in cifar.FILE_MD5}


def test_official_file_checksums_are_pinned() -> None:
    assert set(cifar.FILE_MD5) == {*cifar.TRAIN_FILES, cifar.TEST_FILE, cifar.META_FILE}
    assert cifar.FILE_MD5["data_batch_1"] == "c99cafc152244af753f735de768cd75f"
    assert all(len(v) == 32 for v in cifar.FILE_MD5.values())


@pytest.mark.parametrize("give", ["folder", "parent"])
def test_extracted_folder_is_imported_after_its_checksums(tmp_path: Path, fake: FakeCifar,
                                                          monkeypatch: pytest.MonkeyPatch, give: str) -> None:
    folder = _extract(fake, tmp_path / "src")
    with pytest.raises(DataError, match="data_batch_1 failed its checksum .*expected c99cafc152244af753f735de768cd75f"):
        cifar.import_files(tmp_path / "d", [folder])  # the official md5s reject the small files
    assert not (tmp_path / "d" / "cifar10").exists()
    monkeypatch.setattr(cifar, "FILE_MD5", _official(folder))
    root = cifar.import_files(tmp_path / "d", [folder if give == "folder" else folder.parent])
    assert cifar.n_train(tmp_path / "d") == 100
    manifest = json.loads((root / "manifest.json").read_text())
    assert manifest["source"]["folder"] == cifar.ARCHIVE_DIR and len(manifest["source"]["md5"]) == 7
    X, y = cifar.load_train(tmp_path / "d", np.arange(5), {})
    np.testing.assert_allclose(X, _expected(fake, np.arange(5)))
    np.testing.assert_array_equal(y, fake.labels[:5])


def test_extracted_folder_with_an_altered_or_missing_batch(tmp_path: Path, fake: FakeCifar,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    folder = _extract(fake, tmp_path / "src")
    monkeypatch.setattr(cifar, "FILE_MD5", _official(folder))
    raw = bytearray((folder / "data_batch_3").read_bytes())
    raw[-100] ^= 0xFF
    (folder / "data_batch_3").write_bytes(bytes(raw))
    with pytest.raises(DataError, match="data_batch_3 failed its checksum") as info:
        cifar.import_files(tmp_path / "d", [folder])
    assert "\n" not in str(info.value)
    (folder / "data_batch_3").unlink()
    with pytest.raises(DataError, match="lacks data_batch_3"):
        cifar.import_files(tmp_path / "d", [folder])
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="holds neither"):
        cifar.import_files(tmp_path / "d", [tmp_path / "empty"])
    assert not (tmp_path / "d" / "cifar10").exists()


def test_fetch_from_local_server(tmp_path: Path, fake: FakeCifar, monkeypatch: pytest.MonkeyPatch) -> None:
    with RangeServer({"/cifar-10-python.tar.gz": fake.path.read_bytes()}) as server:
        monkeypatch.setattr(cifar, "URL", server.url("/cifar-10-python.tar.gz"))
        with pytest.raises(DataError, match="failed its checksum"):
            cifar.fetch(tmp_path)  # the official md5 rejects the small archive
        monkeypatch.setattr(cifar, "ARCHIVE_MD5", fake.md5)
        assert cifar.fetch(tmp_path) == tmp_path / "cifar10"
    assert cifar.n_train(tmp_path) == 100
    assert not (tmp_path / "downloads" / "cifar-10-python.tar.gz").exists()


def test_registry_loads_a_subset_of_the_imported_files(imported: Path, fake: FakeCifar) -> None:
    """The registry sizes subsets by the files actually imported, not the official 50000."""
    from engine.data import load_training_set

    n = cifar.n_train(imported)
    ts = load_training_set("cifar10", size=n // 2, subset_seed=3, data_dir=imported)
    assert ts.n_total == n and ts.X.shape == (n // 2, 3072)
    with pytest.raises(DataError, match="out of range"):
        load_training_set("cifar10", size=n + 1, subset_seed=0, data_dir=imported)
