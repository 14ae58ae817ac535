"""Tests of engine/data/download.py against a local HTTP server (never the internet)."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest

from datafiles import RangeServer, unused_port_url
from engine.data import download
from engine.errors import DataError

BODY = bytes(range(256)) * 5000  # 1.28 MB: more than one read chunk
MD5 = hashlib.md5(BODY).hexdigest()
SHA256 = hashlib.sha256(BODY).hexdigest()


@pytest.fixture(autouse=True)
def _no_proxy(monkeypatch: pytest.MonkeyPatch) -> None:
    for var in ("http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY", "all_proxy", "ALL_PROXY"):
        monkeypatch.delenv(var, raising=False)


def test_full_download_verifies_and_reports_progress(tmp_path: Path) -> None:
    calls: list[tuple[int, int | None]] = []
    with RangeServer({"/f.bin": BODY}) as server:
        out = download.fetch(server.url("/f.bin"), tmp_path / "sub" / "f.bin", expected_md5=MD5,
                             expected_sha256=SHA256, progress=lambda d, t: calls.append((d, t)))
    assert out == tmp_path / "sub" / "f.bin" and out.read_bytes() == BODY
    assert not (tmp_path / "sub" / "f.bin.part").exists()
    assert calls[0] == (0, len(BODY)) and calls[-1] == (len(BODY), len(BODY))
    assert [d for d, _ in calls] == sorted(d for d, _ in calls)
    assert server.requests == [("/f.bin", None)]


def test_resumes_from_partial_file_with_range(tmp_path: Path) -> None:
    dest = tmp_path / "f.bin"
    (tmp_path / "f.bin.part").write_bytes(BODY[:1000])
    with RangeServer({"/f.bin": BODY}) as server:
        download.fetch(server.url("/f.bin"), dest, expected_md5=MD5)
    assert dest.read_bytes() == BODY
    assert server.requests == [("/f.bin", "bytes=1000-")]


def test_interrupted_download_keeps_part_then_resumes(tmp_path: Path) -> None:
    dest = tmp_path / "f.bin"
    with RangeServer({"/f.bin": BODY}) as server:
        server.cut_after["/f.bin"] = 300_000
        with pytest.raises(DataError) as info:
            download.fetch(server.url("/f.bin"), dest, expected_sha256=SHA256, name="cifar10")
        assert "run the same command again to resume" in str(info.value)
        assert not dest.exists()
        assert (tmp_path / "f.bin.part").stat().st_size == 300_000
        download.fetch(server.url("/f.bin"), dest, expected_sha256=SHA256)
    assert dest.read_bytes() == BODY
    assert server.requests[-1] == ("/f.bin", "bytes=300000-")


def test_server_ignoring_range_restarts_from_zero(tmp_path: Path) -> None:
    dest = tmp_path / "f.bin"
    (tmp_path / "f.bin.part").write_bytes(b"garbage" * 10)
    with RangeServer({"/f.bin": BODY}) as server:
        server.ignore_range = True
        download.fetch(server.url("/f.bin"), dest, expected_md5=MD5)
    assert dest.read_bytes() == BODY


def test_complete_part_answered_416_is_accepted(tmp_path: Path) -> None:
    (tmp_path / "f.bin.part").write_bytes(BODY)
    with RangeServer({"/f.bin": BODY}) as server:
        download.fetch(server.url("/f.bin"), tmp_path / "f.bin", expected_md5=MD5)
    assert (tmp_path / "f.bin").read_bytes() == BODY


def test_checksum_mismatch_deletes_download(tmp_path: Path) -> None:
    dest = tmp_path / "f.bin"
    with RangeServer({"/f.bin": BODY}) as server:
        with pytest.raises(DataError) as info:
            download.fetch(server.url("/f.bin"), dest, expected_md5="0" * 32, name="cifar10")
    message = str(info.value)
    assert "checksum" in message and "eos-tui data fetch cifar10" in message and "\n" not in message
    assert not dest.exists() and not (tmp_path / "f.bin.part").exists()


def test_connection_refused_is_a_clear_offline_error(tmp_path: Path) -> None:
    url = unused_port_url("/cifar.tar.gz")
    with pytest.raises(DataError) as info:
        download.fetch(url, tmp_path / "x", name="cifar10", timeout=5)
    message = str(info.value)
    assert message.startswith(f"could not download {url}: ")
    assert "if you are offline" in message and "`eos-tui data import cifar10 FILE`" in message
    assert not (tmp_path / "x").exists()


def test_http_404_is_a_data_error(tmp_path: Path) -> None:
    with RangeServer({}) as server:
        with pytest.raises(DataError, match="HTTP 404"):
            download.fetch(server.url("/missing"), tmp_path / "x", name="af")


def test_unresolvable_host_is_a_data_error(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="could not download"):
        download.fetch("http://host.invalid/x.zip", tmp_path / "x", timeout=5)


def test_non_http_url_is_rejected(tmp_path: Path) -> None:
    with pytest.raises(ValueError):
        download.fetch("file:///etc/passwd", tmp_path / "x")


def test_file_digest_and_mismatch(tmp_path: Path) -> None:
    path = tmp_path / "a"
    path.write_bytes(b"abc")
    assert download.file_digest(path) == hashlib.sha256(b"abc").hexdigest()
    assert download.checksum_mismatch(path, md5=hashlib.md5(b"abc").hexdigest()) is None
    assert "expected" in download.checksum_mismatch(path, sha256="f" * 64)


def test_manifest_round_trip_and_errors(tmp_path: Path) -> None:
    path = tmp_path / "ds" / "manifest.json"
    with pytest.raises(DataError, match="Thing not found in .*: run it"):
        download.read_manifest(path, "thing", "Thing", "run it")
    download.write_json_atomic(path, {"dataset": "thing", "n": 3})
    assert download.read_manifest(path, "thing", "Thing", "fix")["n"] == 3
    with pytest.raises(DataError, match="not a Other manifest"):
        download.read_manifest(path, "other", "Other", "fix")
    path.write_text("{truncated")
    with pytest.raises(DataError, match="unreadable"):
        download.read_manifest(path, "thing", "Thing", "fix")
    assert [p.name for p in path.parent.iterdir()] == ["manifest.json"]  # no temp files left


def test_replace_dir(tmp_path: Path) -> None:
    final = tmp_path / "ds"
    for content in ("one", "two"):
        staged = download.staging_dir(final)
        (staged / "f").write_text(content)
        download.replace_dir(staged, final)
        assert (final / "f").read_text() == content
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ds"]


def test_check_indices_and_options() -> None:
    assert download.check_indices(np.array([0, 4], dtype=np.int32), 5, "x").dtype == np.int64
    for bad in (np.array([5]), np.array([-1]), np.array([[1]]), np.array([0.5])):
        with pytest.raises(DataError):
            download.check_indices(bad, 5, "x")
    download.check_no_options({}, "x")
    with pytest.raises(DataError, match="takes no options, got size"):
        download.check_no_options({"size": 3}, "x")


# --------------------------------------------------------------------------- the `eos-tui data` sub-app


@pytest.fixture
def cli(monkeypatch: pytest.MonkeyPatch):
    """``invoke(*args)`` running a standalone app with ``data_app`` mounted as ``data``."""
    import typer
    from rich.console import Console
    from typer.testing import CliRunner

    from eos_tui import data_cli
    from eos_tui.data_cli import data_app

    monkeypatch.setattr(data_cli, "console", Console(width=300))  # keep table rows on one line

    app = typer.Typer()
    app.add_typer(data_app, name="data")
    runner = CliRunner()
    return lambda *args: runner.invoke(app, ["data", *map(str, args)])


def test_cli_help_lists_commands(cli) -> None:
    result = cli("--help")
    assert result.exit_code == 0
    for command in ("fetch", "import", "embed", "list"):
        assert command in result.output


def test_cli_list_empty_dir(cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EOS_TUI_DATA", str(tmp_path / "env"))
    result = cli("list")
    assert result.exit_code == 0, result.output
    output = " ".join(result.output.split())
    assert "env" in output
    for name in ("dice", "digits", "cifar10", "af", "sst"):
        assert name in output
    assert "built in" in output and "missing" in output and "ready" not in output


def test_cli_import_then_list(cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from datafiles import write_af_zip, write_cifar_archive
    from engine.data import cifar

    write_af_zip(tmp_path / "AtrialFibrillation.zip")
    result = cli("import", "af", tmp_path / "AtrialFibrillation.zip", "--data-dir", tmp_path / "d")
    assert result.exit_code == 0, result.output
    assert "af: ready: 7680 windows" in result.output
    fake = write_cifar_archive(tmp_path / "cifar-10-python.tar.gz", per_batch=4)
    result = cli("import", "cifar10", fake.path, "--data-dir", tmp_path / "d")
    assert isinstance(result.exception, DataError)
    assert "expected c58f30108f718f92721af3b95e74349a" in str(result.exception)
    monkeypatch.setattr(cifar, "ARCHIVE_MD5", fake.md5)
    result = cli("import", "cifar10", fake.path, "--data-dir", tmp_path / "d")
    assert result.exit_code == 0, result.output
    listing = " ".join(cli("list", "--data-dir", tmp_path / "d").output.split())
    assert "ready: 20 training images" in listing and "ready: 7680 windows" in listing
    assert "missing: run `eos-tui data fetch sst`" in listing


def test_cli_fetch_from_local_server(cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from datafiles import write_cifar_archive
    from engine.data import cifar

    fake = write_cifar_archive(tmp_path / "src.tar.gz", per_batch=4)
    with RangeServer({"/c.tar.gz": fake.path.read_bytes()}) as server:
        monkeypatch.setattr(cifar, "URL", server.url("/c.tar.gz"))
        monkeypatch.setattr(cifar, "ARCHIVE_MD5", fake.md5)
        result = cli("fetch", "cifar10", "--data-dir", tmp_path / "d")
    assert result.exit_code == 0, result.output
    assert "cifar10: ready: 20 training images" in " ".join(result.output.split())
    assert cifar.n_train(tmp_path / "d") == 20


def test_cli_fetch_offline(cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from engine.data import ucr

    monkeypatch.setattr(ucr, "URLS", (unused_port_url("/AtrialFibrillation.zip"),))
    result = cli("fetch", "af", "--data-dir", tmp_path)
    assert isinstance(result.exception, DataError)
    assert "`eos-tui data import af FILE`" in str(result.exception)


def test_cli_user_errors(cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import sys

    from datafiles import md5_of, sst_rows, sst_tsv
    from engine.data import sst

    result = cli("fetch", "mnist", "--data-dir", tmp_path)
    assert isinstance(result.exception, DataError) and "cifar10, af, sst" in str(result.exception)
    result = cli("embed", "cifar10", "--data-dir", tmp_path)
    assert isinstance(result.exception, DataError) and "only sst" in str(result.exception)
    result = cli("embed", "sst", "--data-dir", tmp_path)
    assert isinstance(result.exception, DataError) and "eos-tui data fetch sst" in str(result.exception)
    tsv = tmp_path / "train.tsv"
    tsv.write_bytes(sst_tsv(sst_rows(5)))
    monkeypatch.setattr(sst, "TRAIN_TSV_MD5", md5_of(tsv))
    assert cli("import", "sst", tsv, "--data-dir", tmp_path / "d").exit_code == 0
    monkeypatch.setitem(sys.modules, "transformers", None)
    result = cli("embed", "sst", "--data-dir", tmp_path / "d")
    assert isinstance(result.exception, DataError) and "pip install 'eos-tui[embed]'" in str(result.exception)
