"""Every data set is written with the modes of ordinary files: 0666 / 0777 less the umask
(0644 / 0755 with the usual 022), whatever temporary files its import went through."""

from __future__ import annotations

import os
import stat
import tarfile
from pathlib import Path

import pytest

from datafiles import RangeServer, fake_embedder, md5_of, sst_rows, sst_tsv, write_af_zip, write_cifar_archive
from engine.data import cifar, download, sst, ucr


@pytest.fixture(params=[0o022, 0o077, 0o002], ids=["022", "077", "002"])
def umask(request):
    old = os.umask(request.param)
    try:
        yield request.param
    finally:
        os.umask(old)


def _modes(root: Path) -> dict[str, str]:
    """Relative path -> octal mode of ``root`` and everything under it."""
    out = {".": oct(stat.S_IMODE(root.stat().st_mode))}
    for path in root.rglob("*"):
        out[str(path.relative_to(root))] = oct(stat.S_IMODE(path.lstat().st_mode))
    return out


def _expect(root: Path, mask: int) -> None:
    wrong = {}
    for rel, mode in _modes(root).items():
        want = 0o777 & ~mask if (root / rel).is_dir() else 0o666 & ~mask
        if mode != oct(want):
            wrong[rel] = f"{mode}, expected {oct(want)}"
    assert not wrong, wrong


def test_umask_is_read_without_changing_it(umask: int) -> None:
    assert download.current_umask() == umask
    assert download.current_umask() == umask


def test_every_data_set_gets_ordinary_modes(tmp_path: Path, umask: int, monkeypatch: pytest.MonkeyPatch) -> None:
    data = tmp_path / "data"
    src = tmp_path / "src"
    src.mkdir()
    fake = write_cifar_archive(src / "cifar-10-python.tar.gz", per_batch=4)
    cifar.import_archive(data, fake.path, expected_md5=fake.md5)
    _expect(data / "cifar10", umask)

    # an extracted folder (its files keep whatever modes they had; the import's are ordinary)
    with tarfile.open(fake.path) as tar:
        tar.extractall(src / "x", filter="data")
    folder = src / "x" / cifar.ARCHIVE_DIR
    for p in folder.iterdir():
        p.chmod(0o600)
    monkeypatch.setattr(cifar, "FILE_MD5", {n: md5_of(folder / n) for n in cifar.FILE_MD5})
    cifar.import_files(tmp_path / "data2", [folder])
    _expect(tmp_path / "data2" / "cifar10", umask)

    write_af_zip(src / "AtrialFibrillation.zip")
    ucr.import_files(data, [src / "AtrialFibrillation.zip"])
    _expect(data / "af", umask)

    tsv = src / "train.tsv"
    tsv.write_bytes(sst_tsv(sst_rows(20)))
    sst.import_files(data, [tsv], expected_md5=md5_of(tsv))
    sst.embed(data, embedder=fake_embedder, chunk_rows=8)
    _expect(data / "sst", umask)

    # a download: the downloads/ folder and the fetched-then-imported data set
    with RangeServer({"/c.tar.gz": fake.path.read_bytes()}) as server:
        monkeypatch.setattr(cifar, "URL", server.url("/c.tar.gz"))
        monkeypatch.setattr(cifar, "ARCHIVE_MD5", fake.md5)
        cifar.fetch(tmp_path / "data3")
    _expect(tmp_path / "data3", umask)
    _expect(data, umask)


def test_a_failed_import_leaves_nothing_behind(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """An import stopped half-way (here: the disk fills while the batches are written) removes
    its staging folder and keeps the previous import."""
    data = tmp_path / "data"
    fake = write_cifar_archive(tmp_path / "cifar-10-python.tar.gz", per_batch=4)
    cifar.import_archive(data, fake.path, expected_md5=fake.md5)
    before = sorted(p.name for p in data.iterdir())
    real_write = Path.write_bytes

    def full(self: Path, raw: bytes) -> int:
        if self.name == "data_batch_3":
            raise OSError(28, "No space left on device")
        return real_write(self, raw)

    monkeypatch.setattr(Path, "write_bytes", full)
    with pytest.raises(OSError, match="No space left"):
        cifar.import_archive(data, fake.path, expected_md5=fake.md5)
    monkeypatch.undo()
    assert sorted(p.name for p in data.iterdir()) == before
    assert cifar.n_train(data) == 20
