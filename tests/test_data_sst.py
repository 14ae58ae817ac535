"""Tests of engine/data/sst.py: SST-2 sentences, the embeddings cache and the embed step.

The cache is written by the same :func:`sst.write_embeddings` that ``eos-tui data embed``
uses, fed by a deterministic stand-in for RoBERTa (``transformers`` is not installed here).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import socket
import struct
import sys
from pathlib import Path

import numpy as np
import pytest
from safetensors.numpy import load_file

from datafiles import RangeServer, fake_embedder, md5_of, sst_rows, sst_tsv, write_sst_zip
from engine.data import sst
from engine.errors import DataError

N = 70  # sentences; with chunk_rows=16 the cache has 5 chunks, the last one short
EMBED_FIX = "run `eos-tui data embed sst`"


@pytest.fixture
def imported(tmp_path: Path) -> Path:
    tsv = tmp_path / "src" / "train.tsv"
    tsv.parent.mkdir()
    tsv.write_bytes(sst_tsv(sst_rows(N)))
    sst.import_files(tmp_path / "data", [tsv], expected_md5=md5_of(tsv))
    return tmp_path / "data"


@pytest.fixture
def embedded(imported: Path) -> Path:
    sst.embed(imported, embedder=fake_embedder, chunk_rows=16)
    return imported


def _cache_path(data_dir: Path) -> Path:
    return data_dir / "sst" / "embeddings.safetensors"


def test_protocol_constants() -> None:
    assert (sst.NAME, sst.N_TRAIN, sst.NUM_CLASSES, sst.INPUT_SHAPE) == ("sst", 67349, 2, (32, 768))
    assert sst.PAPER_SIZES == (461, 922, 1844, 3689) and sst.NEEDS_DOWNLOAD
    assert sst.input_shape({}) == (32, 768)
    assert sst.ARCHIVE_MD5 == "9f81648d4199384278b86e315dac217c"


def test_parse_tsv() -> None:
    rows = sst_rows(5)
    sentences, labels = sst.parse_tsv(sst_tsv(rows), "train.tsv")
    assert sentences == [s for s, _ in rows] and labels.tolist() == [y for _, y in rows]
    assert labels.dtype == np.int64


@pytest.mark.parametrize(("raw", "match"), [
    (b"text\tlabel\nfine\t1\n", "first line"),
    (b"sentence\tlabel\ngood\t2\n", "line 2"),
    (b"sentence\tlabel\ngood\t1\nbad line\n", "line 3"),
    (b"sentence\tlabel\na\tb\t1\n", "line 2"),
    (b"sentence\tlabel\n  \t1\n", "line 2"),
    (b"sentence\tlabel\n", "no sentences"),
    (b"sentence\tlabel\n\xff\t1\n", "UTF-8"),
])
def test_parse_tsv_rejects(raw: bytes, match: str) -> None:
    with pytest.raises(DataError, match=match) as info:
        sst.parse_tsv(raw, "train.tsv")
    assert "eos-tui data fetch sst" in str(info.value)


def test_embed_then_load(embedded: Path) -> None:
    rows = sst_rows(N)
    assert sst.available(embedded) and sst.n_train(embedded) == N
    idx = np.array([0, 15, 16, 40, 69])
    X, y = sst.load_train(embedded, idx, {})
    assert X.shape == (5, 32 * 768) and X.dtype == np.float64 and y.dtype == np.int64
    expected = fake_embedder([rows[i][0] for i in idx]).astype(np.float16).astype(np.float64)
    np.testing.assert_array_equal(X, expected.reshape(5, -1))
    assert y.tolist() == [rows[i][1] for i in idx]
    assert sst.status(embedded) == f"ready: {N} sentences embedded with roberta-base"


def test_cache_is_a_standard_safetensors_file(embedded: Path) -> None:
    tensors = load_file(_cache_path(embedded))
    assert tensors["embeddings"].dtype == np.float16 and tensors["embeddings"].shape == (N, 32, 768)
    assert tensors["labels"].tolist() == [y for _, y in sst_rows(N)]
    X, _ = sst.load_train(embedded, np.arange(N), {})
    np.testing.assert_array_equal(X, tensors["embeddings"].reshape(N, -1).astype(np.float64))


def test_write_embeddings_streams_chunks_and_reports_progress(tmp_path: Path) -> None:
    labels = np.array([0, 1, 1, 0, 1])
    data = np.random.default_rng(0).normal(size=(5, 32, 768)).astype(np.float32)
    seen: list[tuple[int, int]] = []
    path = sst.write_embeddings(tmp_path / "c.safetensors", labels, [data[:2], data[2:4], data[4:]],
                                metadata={"model": "m"}, chunk_rows=2,
                                progress=lambda d, t: seen.append((d, t)))
    assert seen == [(2, 5), (4, 5), (5, 5)]
    cache = sst.open_cache(path)
    assert cache.n == 5 and cache.chunk_rows == 2 and len(cache.chunk_sha256) == 3
    assert cache.chunk_sha256[0] == hashlib.sha256(data[:2].astype("<f2").tobytes()).hexdigest()
    assert cache.metadata["model"] == "m"
    with pytest.raises(ValueError, match="shape"):
        sst.write_embeddings(tmp_path / "d.safetensors", labels, [data[:3]], metadata={}, chunk_rows=2)
    assert not (tmp_path / "d.safetensors").exists() and not (tmp_path / "d.safetensors.part").exists()


def test_missing_steps_are_named(tmp_path: Path, imported: Path) -> None:
    with pytest.raises(DataError) as info:
        sst.load_train(tmp_path / "empty", np.arange(2), {})
    assert str(info.value) == (
        f"SST not found in {tmp_path / 'empty'}: run `eos-tui data fetch sst` (needs internet) or "
        "`eos-tui data import sst FILE`, then `eos-tui data embed sst`")
    assert not sst.available(imported)
    with pytest.raises(DataError) as info:
        sst.load_train(imported, np.arange(2), {})
    assert "SST embeddings not found" in str(info.value) and "pip install 'eos-tui[embed]'" in str(info.value)
    assert sst.status(imported).startswith("missing: run `eos-tui data embed sst`")


def test_truncated_cache(embedded: Path) -> None:
    path = _cache_path(embedded)
    path.write_bytes(path.read_bytes()[:-10])
    assert not sst.available(embedded)
    with pytest.raises(DataError) as info:
        sst.load_train(embedded, np.arange(2), {})
    assert "truncated or corrupt" in str(info.value) and str(info.value).endswith(f"{EMBED_FIX} again")
    path.write_bytes(b"\x05")
    with pytest.raises(DataError, match="no valid header"):
        sst.load_train(embedded, np.arange(2), {})


def test_corrupt_chunk_detected_only_when_read(embedded: Path) -> None:
    path = _cache_path(embedded)
    raw = bytearray(path.read_bytes())
    raw[-5] ^= 0x01  # inside the last chunk (rows 64..69)
    path.write_bytes(bytes(raw))
    assert sst.available(embedded)  # the header and size are intact
    X, _ = sst.load_train(embedded, np.arange(0, 64), {})  # other chunks still verify
    assert X.shape == (64, 32 * 768)
    with pytest.raises(DataError, match=r"rows 64\.\.69 fail their SHA-256"):
        sst.load_train(embedded, np.array([3, 65]), {})


def test_corrupt_labels_detected(embedded: Path) -> None:
    path = _cache_path(embedded)
    raw = bytearray(path.read_bytes())
    header_len = struct.unpack("<Q", raw[:8])[0]
    raw[8 + header_len] ^= 0x01  # first label
    path.write_bytes(bytes(raw))
    with pytest.raises(DataError, match="labels fail their SHA-256"):
        sst.load_train(embedded, np.arange(2), {})


def _rewrite_header(path: Path, edit) -> None:
    raw = path.read_bytes()
    length = struct.unpack("<Q", raw[:8])[0]
    header = json.loads(raw[8:8 + length])
    edit(header)
    text = json.dumps(header).encode()
    text += b" " * (-len(text) % 8)
    path.write_bytes(struct.pack("<Q", len(text)) + text + raw[8 + length:])


@pytest.mark.parametrize("edit", [
    lambda h: h["embeddings"].update(dtype="F32"),
    lambda h: h["embeddings"].update(shape=[N, 16, 768]),
    lambda h: h["__metadata__"].update(format="something-else/9"),
    lambda h: h["__metadata__"].update(chunk_sha256="abc"),
    lambda h: h.pop("labels"),
])
def test_unexpected_header(embedded: Path, edit) -> None:
    _rewrite_header(_cache_path(embedded), edit)
    with pytest.raises(DataError, match="unexpected header"):
        sst.load_train(embedded, np.arange(2), {})


def test_wrong_recorded_checksum(embedded: Path) -> None:
    _rewrite_header(_cache_path(embedded), lambda h: h["__metadata__"].update(
        chunk_sha256=",".join(["f" * 64] * 5)))
    with pytest.raises(DataError, match=r"rows 0\.\.15 fail their SHA-256"):
        sst.load_train(embedded, np.arange(2), {})


def test_stale_cache_after_reimport(embedded: Path, tmp_path: Path) -> None:
    tsv = tmp_path / "other.tsv"
    tsv.write_bytes(sst_tsv(sst_rows(N, seed=9)))
    sst.import_files(embedded, [tsv], expected_md5=md5_of(tsv))
    with pytest.raises(DataError, match="made from another train.tsv.*eos-tui data embed sst"):
        sst.load_train(embedded, np.arange(2), {})
    (embedded / "sst" / "manifest.json").unlink()  # sentences gone: the cache alone suffices
    assert sst.load_train(embedded, np.arange(2), {})[0].shape == (2, 32 * 768)


def test_official_checksums_reject_other_files(tmp_path: Path) -> None:
    tsv = tmp_path / "train.tsv"
    tsv.write_bytes(sst_tsv(sst_rows(4)))
    with pytest.raises(DataError, match="expected da409a0a939379ed32a470bc0f7fe99a.*eos-tui data fetch sst"):
        sst.import_files(tmp_path / "data", [tsv])
    md5 = write_sst_zip(tmp_path / "SST-2.zip", sst_rows(4))
    with pytest.raises(DataError, match=f"md5 {md5}, expected 9f81648d4199384278b86e315dac217c"):
        sst.import_files(tmp_path / "data", [tmp_path / "SST-2.zip"])
    assert not (tmp_path / "data" / "sst").exists()


def test_import_zip_and_folder(tmp_path: Path) -> None:
    rows = sst_rows(12)
    (tmp_path / "src").mkdir()
    md5 = write_sst_zip(tmp_path / "src" / "SST-2.zip", rows)
    sst.import_files(tmp_path / "a", [tmp_path / "src"], expected_md5=md5)
    sentences, labels, _ = sst.load_sentences(tmp_path / "a")
    assert sentences == [s for s, _ in rows] and labels.tolist() == [y for _, y in rows]
    with pytest.raises(DataError, match="takes one file"):
        sst.import_files(tmp_path / "a", [tmp_path / "src", tmp_path / "src"])


def test_corrupt_imported_tsv_blocks_embedding(imported: Path) -> None:
    path = imported / "sst" / "train.tsv"
    path.write_bytes(path.read_bytes()[:-3])
    with pytest.raises(DataError, match="truncated or corrupt.*eos-tui data fetch sst"):
        sst.embed(imported, embedder=fake_embedder)


def test_embedder_with_wrong_width_is_a_data_error(imported: Path) -> None:
    with pytest.raises(DataError, match=r"shape \(32, 512\).*--model roberta-base"):
        sst.embed(imported, model="small-model", embedder=lambda s: np.zeros((len(s), 32, 512)))
    assert not _cache_path(imported).exists()
    assert not _cache_path(imported).with_name("embeddings.safetensors.part").exists()


def test_missing_transformers_names_the_extra(imported: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "transformers", None)  # makes `import transformers` fail
    with pytest.raises(DataError) as info:
        sst.embed(imported)
    assert str(info.value) == (
        "`eos-tui data embed sst` needs the optional package transformers: run "
        "`pip install 'eos-tui[embed]'`")


def test_model_load_failure_is_a_data_error(imported: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import types

    def offline(name: str) -> None:
        raise OSError(f"We couldn't connect to 'https://huggingface.co' to load {name}.\nCheck your connection")

    fake = types.SimpleNamespace(AutoTokenizer=types.SimpleNamespace(from_pretrained=offline),
                                 AutoModel=types.SimpleNamespace(from_pretrained=offline))
    monkeypatch.setitem(sys.modules, "transformers", fake)
    with _listening_hub(monkeypatch):  # the hub answers; loading fails later
        with pytest.raises(DataError) as info:
            sst.embed(imported)
    message = str(info.value)
    assert "could not load model 'roberta-base' (We couldn't connect" in message
    assert "`eos-tui data embed sst`" in message and "\n" not in message


@contextlib.contextmanager
def _listening_hub(monkeypatch: pytest.MonkeyPatch):
    """``$HF_ENDPOINT`` on a local HTTP server that answers (404 to everything)."""
    with RangeServer({}) as server:
        monkeypatch.setenv("HF_ENDPOINT", server.url("/"))
        monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
        monkeypatch.delenv("TRANSFORMERS_OFFLINE", raising=False)
        yield


@contextlib.contextmanager
def _silent_hub(monkeypatch: pytest.MonkeyPatch):
    """``$HF_ENDPOINT`` on a port that accepts connections and never answers (a captive or
    filtered network)."""
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        monkeypatch.setenv("HF_ENDPOINT", f"http://127.0.0.1:{server.getsockname()[1]}")
        yield


def _slow_transformers(monkeypatch: pytest.MonkeyPatch) -> list:
    """A stand-in for transformers whose loading takes a minute, as its retries do offline."""
    import time
    import types

    calls: list = []

    def slow(name: str, **kwargs) -> None:
        calls.append(name)
        time.sleep(60)

    fake = types.SimpleNamespace(AutoTokenizer=types.SimpleNamespace(from_pretrained=slow),
                                 AutoModel=types.SimpleNamespace(from_pretrained=slow))
    monkeypatch.setitem(sys.modules, "transformers", fake)
    monkeypatch.setitem(sys.modules, "huggingface_hub", None)  # nothing is cached
    return calls


@pytest.mark.parametrize("offline", ["refused", "silent", "env"])
def test_embed_offline_fails_within_5_seconds_with_one_line(imported: Path, monkeypatch: pytest.MonkeyPatch,
                                                          offline: str) -> None:
    import time

    from datafiles import unused_port_url

    calls = _slow_transformers(monkeypatch)
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("TRANSFORMERS_OFFLINE", raising=False)
    start = time.monotonic()
    with contextlib.ExitStack() as stack:
        if offline == "refused":
            monkeypatch.setenv("HF_ENDPOINT", unused_port_url("/"))
        elif offline == "silent":
            stack.enter_context(_silent_hub(monkeypatch))
        else:
            monkeypatch.setenv("HF_HUB_OFFLINE", "1")
        with pytest.raises(DataError) as info:
            sst.embed(imported)
    assert time.monotonic() - start <= 5.0
    message = str(info.value)
    assert "not in the Hugging Face cache and the hub cannot be reached" in message and "\n" not in message
    assert "--model DIR" in message and not calls


def test_embed_plan_states_disk_and_time(imported: Path) -> None:
    plan = sst.plan_embedding(imported, flops=65e9)
    assert plan.sentences == N and plan.disk_bytes == sst.cache_bytes(N)
    text = plan.describe()
    assert f"embedding {N:,} sentences needs" in text and "free" in text and "ETA" in text
    # the full GLUE SST-2 split: the cache is 3.3 GB, and at 65 GFLOP/s about two hours
    full = sst.plan_embedding(imported, flops=65e9)
    seconds = sst.N_TRAIN * sst.N_TOKENS * 2 * sst.ENCODER_PARAMS / (65e9 * sst.TRANSFORMER_EFFICIENCY)
    assert 90 * 60 < seconds < 150 * 60 and full.seconds > 0
    assert abs(sst.cache_bytes(sst.N_TRAIN) / 1e9 - 3.3) < 0.05
    assert sst.matmul_flops(0.05) > 1e8


def test_embedded_cache_has_the_planned_size(embedded: Path) -> None:
    size = _cache_path(embedded).stat().st_size
    assert size - 8 - len(json.dumps({})) < sst.cache_bytes(N, chunk_rows=16) <= size + 64


def test_embed_refuses_when_the_disk_lacks_room(imported: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import collections

    usage = collections.namedtuple("usage", "total used free")
    monkeypatch.setattr(sst.shutil, "disk_usage", lambda path: usage(10**9, 10**9 - 1000, 1000))
    with pytest.raises(DataError, match=r"needs .* but only 0.0 MB is free"):
        sst.plan_embedding(imported)


def test_cli_embed_offline_fails_within_5_seconds(imported: Path) -> None:
    """The real command in a subprocess, start-up included: one error line, within 5 s."""
    import subprocess
    import time

    env = dict(os.environ, HF_HUB_OFFLINE="1", EOS_TUI_DATA=str(imported), HF_HOME=str(imported / "hf"))
    start = time.monotonic()
    res = subprocess.run([sys.executable, "-m", "eos_tui.cli", "data", "embed", "sst"], env=env,
                         capture_output=True, text=True, timeout=120)
    assert time.monotonic() - start <= 5.0
    assert res.returncode == 2, res.stderr
    err = [line for line in res.stderr.splitlines() if line.strip()]
    assert len(err) == 1 and err[0].startswith("error: ") and "Traceback" not in res.stderr
    expected = "cannot be reached" if _installed_transformers() else "pip install 'eos-tui[embed]'"
    assert expected in err[0]


def test_cli_embed_states_the_plan_before_it_starts(imported: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """With the model available: the disk and time line, then progress, then the cache."""
    from typer.testing import CliRunner

    from eos_tui.cli import app

    monkeypatch.setattr(sst, "check_model", lambda model: True)
    monkeypatch.setattr(sst, "roberta_embedder", lambda model: fake_embedder)
    result = CliRunner().invoke(app, ["data", "embed", "sst", "--data-dir", str(imported)])
    assert result.exit_code == 0, result.output
    out = " ".join(result.output.split())
    assert out.index(f"embedding {N:,} sentences needs") < out.index("sst: ready: 70 sentences")
    assert "free, and about" in out and "ETA" in out


def _installed_transformers() -> bool:
    import importlib.util

    return importlib.util.find_spec("transformers") is not None


def test_bad_arguments(embedded: Path) -> None:
    with pytest.raises(DataError, match="out of range"):
        sst.load_train(embedded, np.array([N]), {})
    with pytest.raises(DataError, match="takes no options"):
        sst.load_train(embedded, np.arange(2), {"tokens": 16})


def test_fetch_from_local_server(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    md5 = write_sst_zip(tmp_path / "SST-2.zip", sst_rows(9))
    with RangeServer({"/glue/SST-2.zip": (tmp_path / "SST-2.zip").read_bytes()}) as server:
        monkeypatch.setattr(sst, "URL", server.url("/glue/SST-2.zip"))
        monkeypatch.setattr(sst, "ARCHIVE_MD5", md5)
        sst.fetch(tmp_path / "data")
    assert len(sst.load_sentences(tmp_path / "data")[0]) == 9
    assert not (tmp_path / "data" / "downloads" / "SST-2.zip").exists()
