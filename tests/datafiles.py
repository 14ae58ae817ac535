"""Small files in the real on-disk formats of the downloadable data sets, and a local server.

- CIFAR-10: ``cifar-10-python.tar.gz`` whose batches are Python-2-style protocol-2 pickles
  (``str`` as BINSTRING, numpy globals under ``numpy.core.multiarray``), as in the official
  archive, but with few images per batch.
- AtrialFibrillation: UEA ``.ts`` files with the real header and shape (15 cases, 2 x 640).
- SST-2: GLUE ``train.tsv`` lines and ``SST-2.zip``.
- :class:`RangeServer`: an HTTP server on 127.0.0.1 that honours ``Range`` requests and can
  cut a response short, to test resumable downloads without the internet.
"""

from __future__ import annotations

import hashlib
import io
import pickle
import struct
import tarfile
import threading
import zipfile
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np

# --------------------------------------------------------------------------- CIFAR-10


class _Py2Pickler(pickle._Pickler):  # type: ignore[name-defined]  # pure-Python pickler
    """Writes pickles the way Python 2's cPickle (protocol 2) did for CIFAR-10."""

    dispatch = pickle._Pickler.dispatch.copy()  # type: ignore[attr-defined]

    def save_bytes(self, obj: bytes) -> None:  # a Python 2 ``str``
        if len(obj) < 256:
            self.write(pickle.SHORT_BINSTRING + bytes([len(obj)]) + obj)
        else:
            self.write(pickle.BINSTRING + struct.pack("<i", len(obj)) + obj)
        self.memoize(obj)

    dispatch[bytes] = save_bytes

    def save_str(self, obj: str) -> None:  # Python 2 wrote ASCII text as ``str`` too
        self.save_bytes(obj.encode("latin-1"))

    dispatch[str] = save_str

    def save_global(self, obj: object, name: str | None = None) -> None:
        module = getattr(obj, "__module__", "")
        module = {"numpy._core.multiarray": "numpy.core.multiarray"}.get(module, module)
        self.write(pickle.GLOBAL + f"{module}\n{name or obj.__qualname__}\n".encode())  # type: ignore[attr-defined]
        self.memoize(obj)

    dispatch[type] = save_global


def py2_pickle(obj: object) -> bytes:
    """``obj`` pickled like Python 2 (bytes become ``str``)."""
    buf = io.BytesIO()
    _Py2Pickler(buf, protocol=2).dump(obj)
    return buf.getvalue()


# Python 2's pickle wrote functions via save_global too (``_reconstruct``)
_Py2Pickler.dispatch[type(np.zeros(0).__reduce__()[0])] = _Py2Pickler.save_global


@dataclass
class FakeCifar:
    """A generated archive and the images it holds."""

    path: Path
    md5: str
    data: np.ndarray  # (5 * per_batch, 3072) uint8, training images in order
    labels: np.ndarray  # (5 * per_batch,) int64


def cifar_batch(data: np.ndarray, labels: np.ndarray, name: str) -> dict:
    """One batch dict in the official layout."""
    return {
        b"batch_label": f"training batch {name}".encode(),
        b"labels": [int(v) for v in labels],
        b"data": data,
        b"filenames": [f"img_{i:05d}.png".encode() for i in range(len(labels))],
    }


def write_cifar_archive(
    path: Path, *, per_batch: int = 20, seed: int = 0, members: dict[str, bytes] | None = None,
) -> FakeCifar:
    """Write a small ``cifar-10-python.tar.gz`` to ``path``.

    ``members`` replaces (or, with new names, adds) raw files under ``cifar-10-batches-py/``,
    e.g. a corrupt ``data_batch_3``; an empty bytes value removes that member.
    """
    rng = np.random.default_rng(seed)
    n = 5 * per_batch
    data = rng.integers(0, 256, size=(n, 3072), dtype=np.uint8)
    labels = rng.integers(0, 10, size=n).astype(np.int64)
    files: dict[str, bytes] = {}
    for b in range(5):
        rows = slice(b * per_batch, (b + 1) * per_batch)
        files[f"data_batch_{b + 1}"] = py2_pickle(cifar_batch(data[rows], labels[rows], f"{b + 1} of 5"))
    test = rng.integers(0, 256, size=(per_batch, 3072), dtype=np.uint8)
    files["test_batch"] = py2_pickle(cifar_batch(test, rng.integers(0, 10, size=per_batch), "test"))
    files["batches.meta"] = py2_pickle({
        b"num_cases_per_batch": per_batch,
        b"label_names": [b"airplane", b"automobile", b"bird", b"cat", b"deer",
                         b"dog", b"frog", b"horse", b"ship", b"truck"],
        b"num_vis": 3072,
    })
    files["readme.html"] = b"<meta HTTP-EQUIV='REFRESH' content='0; url=http://www.cs.toronto.edu/~kriz/cifar.html'>\n"
    for name, raw in (members or {}).items():
        if raw:
            files[name] = raw
        else:
            files.pop(name, None)
    path.parent.mkdir(parents=True, exist_ok=True)
    with tarfile.open(path, "w:gz") as tar:
        folder = tarfile.TarInfo("cifar-10-batches-py")
        folder.type = tarfile.DIRTYPE
        folder.mode = 0o755
        tar.addfile(folder)
        for name, raw in files.items():
            info = tarfile.TarInfo(f"cifar-10-batches-py/{name}")
            info.size = len(raw)
            info.mode = 0o644
            tar.addfile(info, io.BytesIO(raw))
    return FakeCifar(path, md5_of(path), data, labels)


# --------------------------------------------------------------------------- AtrialFibrillation

AF_HEADER = [
    "#The data was derived from the Computers in Cardiology Challenge 2004 (test fixture)",
    "@problemName AtrialFibrillation",
    "@timeStamps false",
    "@missing false",
    "@univariate false",
    "@dimensions 2",
    "@equalLength true",
    "@seriesLength 640",
    "@classLabel true n s t",
    "@data",
]


def af_cases(seed: int = 0, n_cases: int = 15) -> tuple[np.ndarray, list[str]]:
    """``(n_cases, 2, 640)`` values with 5 decimals and labels n/s/t in turn."""
    rng = np.random.default_rng(seed)
    values = np.round(rng.normal(0.0, [[0.26], [0.16]], size=(n_cases, 2, 640)), 5)
    labels = [("n", "s", "t")[i % 3] for i in range(n_cases)]
    return values, labels


def ts_text(values: np.ndarray, labels: list[str], header: list[str] | None = None) -> str:
    """A ``.ts`` file: header lines, then one ``dim:dim:label`` line per case."""
    rows = [":".join(",".join(f"{v:.5f}" for v in dim) for dim in case) + f":{label}"
            for case, label in zip(values, labels, strict=True)]
    return "\n".join([*(AF_HEADER if header is None else header), *rows]) + "\n"


def write_af_files(folder: Path, seed: int = 0) -> tuple[Path, Path, np.ndarray, list[str]]:
    """Write ``AtrialFibrillation_TRAIN.ts``/``_TEST.ts``; return both paths and the training cases."""
    folder.mkdir(parents=True, exist_ok=True)
    train_values, train_labels = af_cases(seed)
    test_values, test_labels = af_cases(seed + 1)
    train = folder / "AtrialFibrillation_TRAIN.ts"
    test = folder / "AtrialFibrillation_TEST.ts"
    train.write_text(ts_text(train_values, train_labels))
    test.write_text(ts_text(test_values, test_labels))
    return train, test, train_values, train_labels


def write_af_zip(path: Path, seed: int = 0) -> tuple[np.ndarray, list[str]]:
    """Write ``AtrialFibrillation.zip`` as published (the two ``.ts`` plus ``.arff`` files)."""
    train_values, train_labels = af_cases(seed)
    test_values, test_labels = af_cases(seed + 1)
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("AtrialFibrillation_TRAIN.ts", ts_text(train_values, train_labels))
        zf.writestr("AtrialFibrillation_TEST.ts", ts_text(test_values, test_labels))
        zf.writestr("AtrialFibrillation_TRAIN.arff", "@relation AtrialFibrillation\n")
    return train_values, train_labels


# --------------------------------------------------------------------------- SST-2

SST_WORDS = ("a", "charming", "dull", "film", "the", "plot", "is", "not", "wonderful", "mess",
             "of", "acting", "hide", "new", "secretions", "from", "parental", "units")


def sst_rows(n: int, seed: int = 0) -> list[tuple[str, int]]:
    """``n`` (sentence, label) pairs in GLUE SST-2 style (lower case, tokenised, trailing space)."""
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(n):
        words = rng.choice(SST_WORDS, size=int(rng.integers(1, 12)))
        rows.append((" ".join(words) + " " * (i % 2), int(rng.integers(0, 2))))
    return rows


def sst_tsv(rows: list[tuple[str, int]]) -> bytes:
    """``train.tsv`` bytes: the header line, then ``sentence<TAB>label`` lines."""
    return ("sentence\tlabel\n" + "".join(f"{s}\t{y}\n" for s, y in rows)).encode("utf-8")


def write_sst_zip(path: Path, rows: list[tuple[str, int]]) -> str:
    """Write ``SST-2.zip`` (``SST-2/train.tsv``, ``dev.tsv``, ``test.tsv``); return its md5."""
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("SST-2/train.tsv", sst_tsv(rows))
        zf.writestr("SST-2/dev.tsv", sst_tsv(rows[:3]))
        zf.writestr("SST-2/test.tsv", "index\tsentence\n0\tit 's a film .\n")
    return md5_of(path)


def fake_embedder(sentences: list[str]) -> np.ndarray:
    """Deterministic stand-in for RoBERTa: ``(len, 32, 768)`` float32 from each sentence's hash."""
    out = np.empty((len(sentences), 32, 768), dtype=np.float32)
    for i, sentence in enumerate(sentences):
        seed = int.from_bytes(hashlib.sha256(sentence.encode()).digest()[:8], "little")
        out[i] = np.random.default_rng(seed).normal(size=(32, 768))
        out[i, min(len(sentence.split()) + 2, 32):] = 0.0  # padded tokens are zero
    return out


# --------------------------------------------------------------------------- helpers


def md5_of(path: Path) -> str:
    """md5 hex digest of a file."""
    return hashlib.md5(path.read_bytes()).hexdigest()


class RangeServer:
    """HTTP server on 127.0.0.1 serving ``files`` (URL path -> bytes) with ``Range`` support.

    ``cut_after[path] = k`` makes the next full (non-range) response for ``path`` stop after
    ``k`` bytes and close the connection (announcing the full length), once. ``ignore_range``
    makes the server answer every request with the whole file (200). ``requests`` records
    ``(path, range_header)`` of each request. Use as a context manager; ``url(path)`` gives
    the address.
    """

    def __init__(self, files: dict[str, bytes]) -> None:
        self.files = dict(files)
        self.cut_after: dict[str, int] = {}
        self.ignore_range = False
        self.requests: list[tuple[str, str | None]] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:  # keep test output quiet
                pass

            def do_GET(self) -> None:
                rng = self.headers.get("Range")
                server.requests.append((self.path, rng))
                body = server.files.get(self.path)
                if body is None:
                    self.send_error(404, "Not Found")
                    return
                start = 0
                if rng and not server.ignore_range:
                    start = int(rng.removeprefix("bytes=").split("-")[0])
                    if start >= len(body):
                        self.send_response(416)
                        self.send_header("Content-Range", f"bytes */{len(body)}")
                        self.send_header("Content-Length", "0")
                        self.end_headers()
                        return
                    self.send_response(206)
                    self.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
                else:
                    self.send_response(200)
                self.send_header("Content-Length", str(len(body) - start))
                self.end_headers()
                cut = server.cut_after.pop(self.path, None) if not rng else None
                self.wfile.write(body[start:] if cut is None else body[:cut])
                if cut is not None:
                    self.close_connection = True

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self._httpd.serve_forever, args=(0.05,), daemon=True)

    def url(self, path: str) -> str:
        """The address of ``path`` on this server."""
        return f"http://127.0.0.1:{self._httpd.server_address[1]}{path}"

    def __enter__(self) -> RangeServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join()


def unused_port_url(path: str = "/file") -> str:
    """An http URL on 127.0.0.1 where nothing listens (connection refused)."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}{path}"
