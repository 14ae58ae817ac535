"""Tests of engine/data/ucr.py (AtrialFibrillation) on generated UEA ``.ts`` files."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import numpy as np
import pytest

from datafiles import AF_HEADER, RangeServer, af_cases, ts_text, write_af_files, write_af_zip
from engine.data import ucr
from engine.errors import DataError

FIX = "run `eos-tui data fetch af` (needs internet) or `eos-tui data import af FILE`"


@pytest.fixture
def imported(tmp_path: Path) -> tuple[Path, np.ndarray, list[str]]:
    train, test, values, labels = write_af_files(tmp_path / "src")
    ucr.import_files(tmp_path / "data", [train, test])
    return tmp_path / "data", values, labels


def _normalised(values: np.ndarray) -> np.ndarray:
    mean = values.mean(axis=(0, 2))[None, :, None]
    std = values.std(axis=(0, 2))[None, :, None]
    return (values - mean) / std


def test_protocol_constants() -> None:
    assert (ucr.NAME, ucr.N_TRAIN, ucr.NUM_CLASSES, ucr.INPUT_SHAPE) == ("af", 7680, 3, (2, 128))
    assert ucr.PAPER_SIZES == (60, 120, 240, 480, 960) and ucr.NEEDS_DOWNLOAD
    assert [ucr.N_TRAIN // d for d in (128, 64, 32, 16, 8)] == list(ucr.PAPER_SIZES)
    assert ucr.input_shape({}) == (2, 128)


def test_windows_labels_and_normalisation(imported: tuple[Path, np.ndarray, list[str]]) -> None:
    data_dir, values, labels = imported
    assert ucr.available(data_dir) and ucr.n_train(data_dir) == 7680
    idx = np.array([0, 1, 511, 512, 1030, 7679])
    X, y = ucr.load_train(data_dir, idx, {})
    assert X.shape == (6, 256) and X.dtype == np.float64 and y.dtype == np.int64
    norm = _normalised(values)
    for row, i in enumerate(idx):
        case, start = divmod(int(i), 512)
        np.testing.assert_allclose(X[row], norm[case, :, start:start + 128].reshape(-1), atol=1e-12)
        assert y[row] == "nst".index(labels[case])
    # channel-major flattening: first 128 entries are channel 0
    np.testing.assert_allclose(X[0, :128], norm[0, 0, :128], atol=1e-12)
    # window 511 of case 0 ends at time 638; window 512 is case 1 from time 0
    np.testing.assert_allclose(X[2, 127], norm[0, 0, 638], atol=1e-12)


def test_all_windows_share_their_case_label(imported: tuple[Path, np.ndarray, list[str]]) -> None:
    data_dir, _, labels = imported
    _, y = ucr.load_train(data_dir, np.arange(7680), {})
    assert np.array_equal(y, np.repeat(["nst".index(label) for label in labels], 512))


def test_import_from_zip_and_folder(tmp_path: Path) -> None:
    values, _ = write_af_zip(tmp_path / "AtrialFibrillation.zip")
    ucr.import_files(tmp_path / "a", [tmp_path / "AtrialFibrillation.zip"])
    write_af_files(tmp_path / "folder" / "nested")
    ucr.import_files(tmp_path / "b", [tmp_path / "folder"])
    Xa, ya = ucr.load_train(tmp_path / "a", np.arange(0, 7680, 97), {})
    Xb, yb = ucr.load_train(tmp_path / "b", np.arange(0, 7680, 97), {})
    np.testing.assert_array_equal(Xa, Xb)
    np.testing.assert_array_equal(ya, yb)
    manifest = json.loads((tmp_path / "a" / "af" / "manifest.json").read_text())
    assert manifest["source"]["kind"] == "zip" and manifest["upstream_checksum"] is None


def test_missing_data_names_the_commands(tmp_path: Path) -> None:
    assert not ucr.available(tmp_path)
    with pytest.raises(DataError) as info:
        ucr.load_train(tmp_path, np.arange(3), {})
    assert str(info.value) == f"AtrialFibrillation not found in {tmp_path}: {FIX}"


def test_modified_file_fails_its_recorded_hash(imported: tuple[Path, np.ndarray, list[str]]) -> None:
    data_dir, _, _ = imported
    path = data_dir / "af" / "AtrialFibrillation_TRAIN.ts"
    text = path.read_text()
    path.write_text(text.replace("0", "1", 1)[:len(text)])  # same size, one digit changed
    with pytest.raises(DataError, match="SHA-256 mismatch.*eos-tui data fetch af"):
        ucr.load_train(data_dir, np.arange(3), {})
    path.write_text(text[:-50])
    assert not ucr.available(data_dir)
    with pytest.raises(DataError, match="truncated"):
        ucr.load_train(data_dir, np.arange(3), {})


def _header_with(key: str, line: str | None) -> list[str]:
    """AF_HEADER with the line starting ``key`` replaced by ``line`` (or removed)."""
    out = [h for h in AF_HEADER if not h.startswith(key)] if line is None else [
        line if h.startswith(key) else h for h in AF_HEADER]
    return out


@pytest.mark.parametrize(("header", "cases", "match"), [
    (_header_with("@problemName", "@problemName BasicMotions"), 15, "problemName"),
    (_header_with("@dimensions", "@dimensions 3"), 15, "3 dimensions"),
    (_header_with("@seriesLength", "@seriesLength 600"), 15, "600 values"),
    (_header_with("@classLabel", "@classLabel true n s"), 15, "label 't' is not one of n s"),
    (_header_with("@classLabel", "@classLabel false"), 15, "classLabel"),
    (_header_with("@missing", "@missing true"), 15, "@missing must be false"),
    (_header_with("@timeStamps", "@timeStamps true"), 15, "@timestamps must be false"),
    (_header_with("@equalLength", None), 15, "@equallength must be true"),
    (_header_with("@data", None), 15, "expected a header field"),
    ([*AF_HEADER[:-1], "@targetLabel true", "@data"], 15, "unexpected header field"),
    (AF_HEADER, 14, "14 cases"),
])
def test_strict_structure(tmp_path: Path, header: list[str], cases: int, match: str) -> None:
    values, labels = af_cases(0, n_cases=cases)
    train = tmp_path / "AtrialFibrillation_TRAIN.ts"
    test = tmp_path / "AtrialFibrillation_TEST.ts"
    train.write_text(ts_text(values, labels, header))
    test.write_text(ts_text(*af_cases(1)))
    with pytest.raises(DataError, match=match) as info:
        ucr.import_files(tmp_path / "data", [train, test])
    assert "AtrialFibrillation_TRAIN.ts" in str(info.value) and "\n" not in str(info.value)
    assert not (tmp_path / "data" / "af").exists()


@pytest.mark.parametrize(("edit", "match"), [
    (lambda line: line.replace(",", ",?,", 1), "not a number|640 values"),
    (lambda line: line.replace(",", ",abc,", 1), "not a number"),
    (lambda line: line.rsplit(":", 1)[0] + ":x", "label 'x'"),
    (lambda line: line.replace(":", ",", 1), "fields"),
])
def test_bad_data_lines(tmp_path: Path, edit, match: str) -> None:
    values, labels = af_cases(0)
    lines = ts_text(values, labels).splitlines()
    lines[len(AF_HEADER) + 4] = edit(lines[len(AF_HEADER) + 4])
    train = tmp_path / "AtrialFibrillation_TRAIN.ts"
    train.write_text("\n".join(lines) + "\n")
    test = tmp_path / "AtrialFibrillation_TEST.ts"
    test.write_text(ts_text(*af_cases(1)))
    with pytest.raises(DataError, match=match):
        ucr.import_files(tmp_path / "data", [train, test])


def test_header_is_case_insensitive_and_tolerates_comments_and_crlf(tmp_path: Path) -> None:
    values, labels = af_cases(0)
    header = ["# comment", "", *[h.lower() if h.startswith("@") and "classLabel" not in h else h for h in AF_HEADER]]
    text = ts_text(values, labels, header).replace("\n", "\r\n")
    ts = ucr.parse_ts(text, "x.ts")
    assert ts.values.shape == (15, 2, 640) and ts.class_labels == ("n", "s", "t")
    np.testing.assert_allclose(ts.values, values)


def test_import_needs_both_splits(tmp_path: Path) -> None:
    train, _, _, _ = write_af_files(tmp_path / "src")
    with pytest.raises(DataError, match="AtrialFibrillation_TEST.ts not found"):
        ucr.import_files(tmp_path / "data", [train])
    other = tmp_path / "Other_TRAIN.ts"
    other.write_text("x")
    with pytest.raises(DataError, match="is not AtrialFibrillation_TRAIN.ts"):
        ucr.import_files(tmp_path / "data", [other])
    with pytest.raises(DataError, match="does not exist"):
        ucr.import_files(tmp_path / "data", [tmp_path / "nope.zip"])


def test_corrupt_zip(tmp_path: Path) -> None:
    zpath = tmp_path / "AtrialFibrillation.zip"
    write_af_zip(zpath)
    raw = bytearray(zpath.read_bytes())
    raw[200] ^= 0xFF  # inside the first compressed member: CRC or inflate error
    zpath.write_bytes(bytes(raw))
    with pytest.raises(DataError, match="not a readable zip|not a valid"):
        ucr.import_files(tmp_path / "data", [zpath])
    with zipfile.ZipFile(tmp_path / "empty.zip", "w") as zf:
        zf.writestr("readme.txt", "nothing here")
    with pytest.raises(DataError, match="not found in"):
        ucr.import_files(tmp_path / "data", [tmp_path / "empty.zip"])


def test_bad_arguments(imported: tuple[Path, np.ndarray, list[str]]) -> None:
    data_dir, _, _ = imported
    with pytest.raises(DataError, match="out of range"):
        ucr.load_train(data_dir, np.array([7680]), {})
    with pytest.raises(DataError, match="takes no options"):
        ucr.load_train(data_dir, np.arange(2), {"window": 64})


def test_fetch_tries_mirrors(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write_af_zip(tmp_path / "AtrialFibrillation.zip")
    with RangeServer({"/mirror/AtrialFibrillation.zip": (tmp_path / "AtrialFibrillation.zip").read_bytes()}) as server:
        monkeypatch.setattr(ucr, "URLS", (server.url("/gone.zip"), server.url("/mirror/AtrialFibrillation.zip")))
        assert ucr.fetch(tmp_path / "data") == tmp_path / "data" / "af"
        monkeypatch.setattr(ucr, "URLS", (server.url("/gone.zip"),))
        with pytest.raises(DataError, match="HTTP 404.*eos-tui data import af FILE"):
            ucr.fetch(tmp_path / "data2")
    assert ucr.available(tmp_path / "data")
    assert not (tmp_path / "data" / "downloads" / "AtrialFibrillation.zip").exists()
