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
    (_header_with("@dimensions", "@dimensions 3"), 15, "expected 3 dimensions"),
    (_header_with("@seriesLength", "@seriesLength 600"), 15, "640 values, expected 600"),
    (_header_with("@seriesLength", "@seriesLength many"), 15, "@serieslength must be a positive integer"),
    (_header_with("@classLabel", "@classLabel true n s"), 15, "label 't' is not one of n s"),
    (_header_with("@classLabel", "@classLabel false"), 15, "classLabel"),
    (_header_with("@classLabel", None), 15, "classLabel"),
    (_header_with("@classLabel", "@classLabel true n s n t"), 15, "a label twice"),
    (_header_with("@missing", "@missing maybe"), 15, "@missing must be true or false"),
    (_header_with("@timeStamps", "@timeStamps true"), 15, "timestamps are not supported"),
    (_header_with("@equalLength", "@equalLength false"), 15, "unequal length are not supported"),
    (_header_with("@univariate", "@univariate true"), 15, "@univariate true but @dimension 2"),
    (_header_with("@data", None), 15, "expected an @identifier"),
    (_header_with("@data", "@data now"), 15, "text after @data"),
    (_header_with("@problemName", "@problemName AtrialFibrillation\n@problemName again"), 15, "given twice"),
    ([*AF_HEADER[:-1], "@targetLabel true", "@data"], 15, "regression file"),
    (AF_HEADER, 14, "14 cases"),
    (AF_HEADER, 0, "no cases"),
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
    (lambda line: line.replace(",", ",?,", 1), "missing value '\\?' in dimension 1 at position 2"),
    (lambda line: line.replace(",", ",NaN,", 1), "missing value 'NaN'"),
    (lambda line: line.replace(",", ",inf,", 1), "non-finite value 'inf'"),
    (lambda line: line.replace(",", ",abc,", 1), "value 'abc' in dimension 1 is not a number"),
    (lambda line: line.replace(",", ",,", 1), "value '' in dimension 1 is not a number"),
    (lambda line: line.rsplit(":", 1)[0] + ":x", "label 'x'"),
    (lambda line: line.replace(":", ",", 1), "fields"),
    (lambda line: line.rsplit(",", 1)[0] + ":" + line.rsplit(":", 1)[1], "639 values, expected 640"),
])
def test_bad_data_lines(tmp_path: Path, edit, match: str) -> None:
    values, labels = af_cases(0)
    lines = ts_text(values, labels).splitlines()
    lines[len(AF_HEADER) + 4] = edit(lines[len(AF_HEADER) + 4])
    train = tmp_path / "AtrialFibrillation_TRAIN.ts"
    train.write_text("\n".join(lines) + "\n")
    test = tmp_path / "AtrialFibrillation_TEST.ts"
    test.write_text(ts_text(*af_cases(1)))
    with pytest.raises(DataError, match=match) as info:
        ucr.import_files(tmp_path / "data", [train, test])
    assert f"line {len(AF_HEADER) + 5}:" in str(info.value)


def test_header_is_case_insensitive_and_tolerates_comments_and_crlf(tmp_path: Path) -> None:
    values, labels = af_cases(0)
    header = ["# comment", "", *[h.lower() if h.startswith("@") and "classLabel" not in h else h for h in AF_HEADER]]
    text = ts_text(values, labels, header).replace("\n", "\r\n")
    ts = ucr.parse_ts(text, "x.ts")
    assert ts.values.shape == (15, 2, 640) and ts.class_labels == ("n", "s", "t")
    np.testing.assert_allclose(ts.values, values)


def _variant(header: list[str], *, bom: bool = False, tabs: bool = False, spaced_values: bool = False) -> bytes:
    values, labels = af_cases(0)
    text = ts_text(values, labels, header)
    if tabs:  # identifier and value separated by tabs, as in some archive files
        text = "\n".join(line.replace(" ", "\t", 1) if line.startswith("@") else line for line in text.splitlines()) + "\n"
    if spaced_values:
        text = text.replace(",", ", ").replace(":", " : ")
    raw = text.encode("utf-8")
    return b"\xef\xbb\xbf" + raw if bom else raw


@pytest.mark.parametrize("variant", [
    dict(header=AF_HEADER, bom=True),
    dict(header=AF_HEADER, tabs=True),
    dict(header=AF_HEADER, bom=True, tabs=True, spaced_values=True),
    dict(header=_header_with("@dimensions", "@dimension 2")),  # the spec's spelling
    dict(header=_header_with("@dimensions", "@dimension\t2")),
    # every identifier but @classLabel and @data is optional: dimensions and length come from the data
    dict(header=[h for h in AF_HEADER if h.split()[0] in ("#The", "@classLabel", "@data")]),
    dict(header=[h for h in AF_HEADER if not h.startswith(("@timeStamps", "@missing", "@univariate", "@equalLength"))]),
    dict(header=[*AF_HEADER[:-1], "@someFutureIdentifier whatever", "@data"]),  # unknown identifiers are ignored
    dict(header=_header_with("@missing", "@missing true")),  # declared, but none present: fine
])
def test_spec_variants_found_in_the_archive_are_read(tmp_path: Path, variant: dict) -> None:
    values, labels = af_cases(0)
    raw = _variant(**variant)
    ts = ucr.parse_ts(raw, "AtrialFibrillation_TRAIN.ts")
    assert ts.values.shape == (15, 2, 640) and ts.class_labels == ("n", "s", "t")
    np.testing.assert_allclose(ts.values, values)
    assert [ts.class_labels[i] for i in ts.labels] == labels
    train, test = tmp_path / "AtrialFibrillation_TRAIN.ts", tmp_path / "AtrialFibrillation_TEST.ts"
    train.write_bytes(raw)
    test.write_text(ts_text(*af_cases(1)))
    root = ucr.import_files(tmp_path / "data", [train, test])
    X, y = ucr.load_train(tmp_path / "data", np.arange(3), {})
    assert X.shape == (3, 256) and root.is_dir()


def test_not_utf8_is_one_clear_line() -> None:
    with pytest.raises(DataError, match="not UTF-8 text"):
        ucr.parse_ts(b"@problemName \xff\xfe\n@data\n", "x.ts")


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
