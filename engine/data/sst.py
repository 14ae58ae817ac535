"""Stanford Sentiment Treebank as RoBERTa-base token embeddings (spec §8).

**Variant** [choice]: the GLUE SST-2 training split, ``SST-2/train.tsv`` inside
https://dl.fbaipublicfiles.com/glue/data/SST-2.zip (archive md5
``9f81648d4199384278b86e315dac217c``, ``train.tsv`` md5 ``da409a0a939379ed32a470bc0f7fe99a``,
as pinned by torchtext): 67,349 labelled sentences and phrases, binary labels
(0 negative, 1 positive), header ``sentence<TAB>label``. The paper's subset sizes
461/922/1844/3689 are ``n/64 .. n/8`` of an ``n`` between 29,512 and 29,519 (or
``n/128 .. n/16`` of 59,024..59,039), which matches none of the published SST splits we could
verify (SST-2 sentence level: 6,920; GLUE SST-2: 67,349; SST-5 sentences: 8,544), so the exact
set the paper used is unknown. GLUE SST-2 is chosen because it is the most widely distributed,
checksummed variant; ``PAPER_SIZES`` keeps the paper's sizes, all well inside its 67,349
samples, and subsets are drawn from all of them.

**Embedding** (``eos-tui data embed sst``, optional extra ``embed`` = ``transformers``):
each sentence is tokenised by the model's tokenizer (``<s> ... </s>``), cropped or padded to
32 tokens, and the model's last hidden state is taken, with padded positions set to zero:
``(32, 768)`` per sentence. No further normalisation [choice]: RoBERTa's last hidden state is
already layer-normalised per token. The whole training split is embedded, in chunks, and
stored as float16 [choice] in ``DATA_DIR/sst/embeddings.safetensors`` (67,349 x 32 x 768 x
2 bytes = 3.3 GB; float32 would be 6.6 GB).

**Cache format**: a standard safetensors file with tensors ``labels`` (I64, ``(n,)``) and
``embeddings`` (F16, ``(n, 32, 768)``), written by :func:`write_embeddings` as a stream (never
all in memory). Its ``__metadata__`` records the format, model, SHA-256 of the ``train.tsv``
it came from, the chunk size and a SHA-256 of the labels and of every chunk of
``CHUNK_ROWS`` embedding rows. Loading checks the header and the exact file size (catching
truncation) and the hashes of the labels and of every chunk holding a requested row, so every
byte used for training is verified and chunks holding none are not read at all.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import math
import os
import shutil
import struct
import sys
import zipfile
import zlib
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from engine.data import download
from engine.errors import DataError

NAME = "sst"
N_TRAIN = 67349
NUM_CLASSES = 2
N_TOKENS = 32
EMBED_DIM = 768
INPUT_SHAPE = (N_TOKENS, EMBED_DIM)
PAPER_SIZES = (461, 922, 1844, 3689)
NEEDS_DOWNLOAD = True
DESCRIPTION = "SST-2 (GLUE) sentences as RoBERTa-base token embeddings (32 x 768), 2 classes"

URL = "https://dl.fbaipublicfiles.com/glue/data/SST-2.zip"
ARCHIVE_NAME = "SST-2.zip"
ARCHIVE_MD5 = "9f81648d4199384278b86e315dac217c"
ARCHIVE_MEMBER = "SST-2/train.tsv"
TRAIN_TSV = "train.tsv"
TRAIN_TSV_MD5 = "da409a0a939379ed32a470bc0f7fe99a"
TSV_HEADER = "sentence\tlabel"
MANIFEST = "manifest.json"
EMBEDDINGS = "embeddings.safetensors"
DEFAULT_MODEL = "roberta-base"
CHUNK_ROWS = 256
FORMAT = 1
CACHE_FORMAT = "eos-tui-sst-embeddings/1"
_ROW_BYTES = N_TOKENS * EMBED_DIM * 2  # one sentence in float16
_MAX_HEADER = 16 << 20

MISSING = (
    f"run `eos-tui data fetch {NAME}` (needs internet) or `eos-tui data import {NAME} FILE`, "
    f"then `eos-tui data embed {NAME}`"
)
EMBED = f"run `eos-tui data embed {NAME}` (needs `pip install 'eos-tui[embed]'` and the {DEFAULT_MODEL} weights)"

Embedder = Callable[[list[str]], np.ndarray]
"""Maps a list of sentences to their token embeddings, ``(len, N_TOKENS, EMBED_DIM)``."""


def dataset_dir(data_dir: Path) -> Path:
    """Where the sentences and embeddings live: ``data_dir/sst``."""
    return Path(data_dir) / NAME


def input_shape(options: dict | None = None) -> tuple[int, ...]:
    """``INPUT_SHAPE``; SST takes no options."""
    download.check_no_options(options, NAME)
    return INPUT_SHAPE


# --------------------------------------------------------------------------- sentences


def parse_tsv(raw: bytes, source: str) -> tuple[list[str], np.ndarray]:
    """Sentences and int64 labels of a GLUE SST-2 ``train.tsv`` (strictly validated)."""
    def bad(what: str) -> DataError:
        return DataError(f"{source} is not an SST-2 train.tsv ({what}): {MISSING}")

    try:
        lines = raw.decode("utf-8").split("\n")
    except UnicodeDecodeError:
        raise bad("not UTF-8 text") from None
    if lines and lines[-1] == "":
        lines.pop()
    if not lines or lines[0].rstrip("\r") != TSV_HEADER:
        raise bad("the first line must be 'sentence<TAB>label'")
    sentences, labels = [], []
    for number, line in enumerate(lines[1:], start=2):
        fields = line.rstrip("\r").split("\t")
        if len(fields) != 2 or fields[1] not in ("0", "1") or not fields[0].strip():
            raise bad(f"line {number}: expected a sentence, a tab and the label 0 or 1")
        sentences.append(fields[0])
        labels.append(int(fields[1]))
    if not sentences:
        raise bad("no sentences")
    return sentences, np.asarray(labels, dtype=np.int64)


def _tsv_from(path: Path, expected_md5: str | None) -> tuple[bytes, str]:
    """``train.tsv`` bytes from ``SST-2.zip``, a ``train.tsv`` or a folder holding either."""
    if path.is_dir():
        candidates = [path / ARCHIVE_NAME, path / TRAIN_TSV, path / "SST-2" / TRAIN_TSV]
        found = [p for p in candidates if p.is_file()]
        if not found:
            raise DataError(f"neither {ARCHIVE_NAME} nor {TRAIN_TSV} is in {path}: {MISSING}")
        path = found[0]
    if not path.is_file():
        raise DataError(f"{path} does not exist: pass {ARCHIVE_NAME} or {TRAIN_TSV} to `eos-tui data import {NAME}`")
    is_zip = zipfile.is_zipfile(path)
    expected = (expected_md5 or (ARCHIVE_MD5 if is_zip else TRAIN_TSV_MD5)).lower()
    actual = download.file_digest(path, "md5")
    if actual != expected:
        raise DataError(
            f"{path} failed its checksum (md5 {actual}, expected {expected}): it is not the official "
            f"{ARCHIVE_NAME if is_zip else 'SST-2 ' + TRAIN_TSV}; run `eos-tui data fetch {NAME}` "
            "or import a verified copy"
        )
    if not is_zip:
        return path.read_bytes(), path.name
    try:
        with zipfile.ZipFile(path) as zf:
            return zf.read(ARCHIVE_MEMBER), f"{path.name}:{ARCHIVE_MEMBER}"
    except KeyError:
        raise DataError(f"{path} has no {ARCHIVE_MEMBER}: it is not {ARCHIVE_NAME}; {MISSING}") from None
    except (zipfile.BadZipFile, zlib.error, OSError, EOFError) as exc:
        raise DataError(f"{path} is not a readable zip ({exc}): {MISSING}") from None


def import_files(data_dir: Path, paths: list[Path], *, expected_md5: str | None = None) -> Path:
    """Import the SST-2 training sentences into ``data_dir/sst``; return that directory.

    ``paths``: one ``SST-2.zip``, ``train.tsv`` or folder holding one of them. ``expected_md5``
    defaults to the official checksum of the given kind of file. Embeddings already present are
    kept; loading refuses them if they were made from a different ``train.tsv``.
    """
    if len(paths) != 1:
        raise DataError(f"`eos-tui data import {NAME}` takes one file: {ARCHIVE_NAME} or {TRAIN_TSV}")
    raw, source = _tsv_from(Path(paths[0]), expected_md5)
    sentences, _ = parse_tsv(raw, source)
    root = dataset_dir(data_dir)
    root.mkdir(parents=True, exist_ok=True)
    tmp = root / f".{TRAIN_TSV}.tmp"
    tmp.write_bytes(raw)
    os.replace(tmp, root / TRAIN_TSV)
    download.write_json_atomic(root / MANIFEST, {
        "dataset": NAME,
        "format": FORMAT,
        "source": source,
        "files": {TRAIN_TSV: {"size": len(raw), "sha256": hashlib.sha256(raw).hexdigest()}},
        "n_sentences": len(sentences),
    })
    return root


def fetch(data_dir: Path, *, progress: download.Progress | None = None) -> Path:
    """Download ``SST-2.zip`` (md5-checked), import its ``train.tsv``, delete the download."""
    target = Path(data_dir) / "downloads" / ARCHIVE_NAME
    download.fetch(URL, target, expected_md5=ARCHIVE_MD5, progress=progress, name=NAME)
    root = import_files(data_dir, [target], expected_md5=ARCHIVE_MD5)
    target.unlink()
    return root


def _sentences_manifest(data_dir: Path) -> dict:
    """The manifest of the imported sentences (DataError if absent or malformed)."""
    manifest = download.read_manifest(dataset_dir(data_dir) / MANIFEST, NAME, "SST", MISSING)
    try:
        entry = manifest["files"][TRAIN_TSV]
        ok = manifest["format"] == FORMAT and isinstance(entry["size"], int) and len(entry["sha256"]) == 64
    except (KeyError, TypeError):
        ok = False
    if not ok:
        raise DataError(f"SST manifest in {dataset_dir(data_dir)} is malformed: {MISSING}")
    return manifest


def load_sentences(data_dir: Path) -> tuple[list[str], np.ndarray, str]:
    """Imported sentences, labels and the ``train.tsv`` SHA-256 (checked against the manifest)."""
    entry = _sentences_manifest(data_dir)["files"][TRAIN_TSV]
    path = dataset_dir(data_dir) / TRAIN_TSV
    try:
        raw = path.read_bytes()
    except OSError:
        raise DataError(f"{path} is missing: {MISSING}") from None
    digest = hashlib.sha256(raw).hexdigest()
    if len(raw) != entry["size"] or digest != entry["sha256"]:
        raise DataError(f"{path} is truncated or corrupt (size or SHA-256 mismatch): {MISSING}")
    sentences, labels = parse_tsv(raw, str(path))
    return sentences, labels, digest


# --------------------------------------------------------------------------- the embeddings cache


def _header_bytes(n: int, metadata: dict[str, str]) -> bytes:
    """The safetensors header (8-byte length + JSON padded with spaces to a multiple of 8)."""
    label_bytes = 8 * n
    header = {
        "__metadata__": metadata,
        "labels": {"dtype": "I64", "shape": [n], "data_offsets": [0, label_bytes]},
        "embeddings": {
            "dtype": "F16",
            "shape": [n, N_TOKENS, EMBED_DIM],
            "data_offsets": [label_bytes, label_bytes + n * _ROW_BYTES],
        },
    }
    text = json.dumps(header, separators=(",", ":"), sort_keys=True).encode("utf-8")
    text += b" " * (-len(text) % 8)
    return struct.pack("<Q", len(text)) + text


def write_embeddings(
    path: Path,
    labels: np.ndarray,
    chunks: Iterable[np.ndarray],
    *,
    metadata: dict[str, str],
    chunk_rows: int = CHUNK_ROWS,
    progress: Callable[[int, int], None] | None = None,
) -> Path:
    """Stream token embeddings into the safetensors cache at ``path``; return ``path``.

    ``chunks`` yields float arrays of ``chunk_rows`` sentences each (the last may be shorter),
    shape ``(rows, N_TOKENS, EMBED_DIM)``, in label order. They are stored as float16 with a
    SHA-256 per chunk in the metadata (plus ``metadata``, e.g. the model name). The file is
    written to ``path.part`` and renamed when complete.
    """
    labels = np.ascontiguousarray(labels, dtype="<i8")
    n = int(labels.shape[0])
    n_chunks = math.ceil(n / chunk_rows)
    meta = {
        **{str(k): str(v) for k, v in metadata.items()},
        "format": CACHE_FORMAT,
        "n_tokens": str(N_TOKENS),
        "embed_dim": str(EMBED_DIM),
        "chunk_rows": str(chunk_rows),
        "labels_sha256": hashlib.sha256(labels.tobytes()).hexdigest(),
        "chunk_sha256": ",".join(["0" * 64] * n_chunks),  # placeholder of the final length
    }
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    part = path.with_name(path.name + ".part")
    hashes: list[str] = []
    try:
        with open(part, "wb") as f:
            f.write(_header_bytes(n, meta))
            f.write(labels.tobytes())
            done = 0
            for chunk in chunks:
                rows = min(chunk_rows, n - done)
                block = np.ascontiguousarray(chunk, dtype="<f2")
                if block.shape != (rows, N_TOKENS, EMBED_DIM) or rows <= 0:
                    raise ValueError(
                        f"chunk {len(hashes)} has shape {block.shape}, expected ({rows}, {N_TOKENS}, {EMBED_DIM})"
                    )
                if not np.isfinite(block).all():
                    raise DataError(f"the model produced non-finite embeddings (chunk {len(hashes)}): {EMBED}")
                raw = block.tobytes()
                hashes.append(hashlib.sha256(raw).hexdigest())
                f.write(raw)
                done += rows
                if progress:
                    progress(done, n)
            if done != n:
                raise ValueError(f"chunks held {done} sentences, expected {n}")
            meta["chunk_sha256"] = ",".join(hashes)
            f.seek(0)
            f.write(_header_bytes(n, meta))
        os.replace(part, path)
    except BaseException:
        part.unlink(missing_ok=True)
        raise
    return path


@dataclass(frozen=True)
class EmbeddingsCache:
    """A checked header of an embeddings cache; :meth:`read` verifies and loads rows."""

    path: Path
    n: int
    data_start: int  # file offset of the labels; the embeddings follow them
    chunk_rows: int
    chunk_sha256: tuple[str, ...]
    labels_sha256: str
    metadata: dict[str, str]

    def read(self, indices: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Rows ``indices`` as ``(len, 32*768)`` float64 and their int64 labels, hash-verified."""
        X = np.empty((indices.size, N_TOKENS * EMBED_DIM), dtype=np.float64)
        chunk_of = indices // self.chunk_rows
        with open(self.path, "rb") as f:
            f.seek(self.data_start)
            raw = f.read(8 * self.n)
            if hashlib.sha256(raw).hexdigest() != self.labels_sha256:
                raise _corrupt(self.path, "labels fail their SHA-256")
            labels = np.frombuffer(raw, dtype="<i8").astype(np.int64)
            if labels.size and (labels.min() < 0 or labels.max() >= NUM_CLASSES):
                raise _corrupt(self.path, "labels outside 0..1")
            for c in np.unique(chunk_of):
                first = int(c) * self.chunk_rows
                rows = min(self.chunk_rows, self.n - first)
                f.seek(self.data_start + 8 * self.n + first * _ROW_BYTES)
                raw = f.read(rows * _ROW_BYTES)
                if hashlib.sha256(raw).hexdigest() != self.chunk_sha256[c]:
                    raise _corrupt(self.path, f"rows {first}..{first + rows - 1} fail their SHA-256")
                block = np.frombuffer(raw, dtype="<f2").reshape(rows, -1)
                where = np.nonzero(chunk_of == c)[0]
                X[where] = block[indices[where] - first]
        return X, labels[indices]


def _corrupt(path: Path, what: str) -> DataError:
    return DataError(
        f"SST embeddings cache {path} is truncated or corrupt ({what}): run `eos-tui data embed {NAME}` again"
    )


def open_cache(path: Path) -> EmbeddingsCache:
    """Parse and check the header of the cache at ``path`` (cheap: no hashing).

    Checks the tensor names, dtypes, shapes, offsets, metadata and that the file size is
    exactly header + data, so truncation or appended bytes are caught here.
    """
    path = Path(path)
    try:
        size = path.stat().st_size
        with open(path, "rb") as f:
            head = f.read(8)
            length = struct.unpack("<Q", head)[0] if len(head) == 8 else 0
            if not 2 <= length <= min(_MAX_HEADER, size - 8):
                raise _corrupt(path, "no valid header")
            header = json.loads(f.read(length).decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise _corrupt(path, "unreadable header") from None
    except OSError as exc:
        raise DataError(f"cannot read {path} ({exc}): run `eos-tui data embed {NAME}` again") from None
    try:
        meta = header["__metadata__"]
        n = int(header["labels"]["shape"][0])
        chunk_rows = int(meta["chunk_rows"])
        hashes = tuple(meta["chunk_sha256"].split(",")) if n else ()
        ok = (
            set(header) == {"__metadata__", "labels", "embeddings"}
            and meta["format"] == CACHE_FORMAT
            and meta["n_tokens"] == str(N_TOKENS) and meta["embed_dim"] == str(EMBED_DIM)
            and header["labels"] == {"dtype": "I64", "shape": [n], "data_offsets": [0, 8 * n]}
            and header["embeddings"] == {
                "dtype": "F16", "shape": [n, N_TOKENS, EMBED_DIM],
                "data_offsets": [8 * n, 8 * n + n * _ROW_BYTES],
            }
            and n > 0 and chunk_rows > 0 and len(hashes) == math.ceil(n / chunk_rows)
            and all(len(h) == 64 for h in hashes) and len(meta["labels_sha256"]) == 64
        )
    except (KeyError, TypeError, ValueError, AttributeError, IndexError):
        ok = False
    if not ok:
        raise _corrupt(path, "unexpected header")
    expected = 8 + length + n * (8 + _ROW_BYTES)
    if size != expected:
        raise _corrupt(path, f"{size} bytes, expected {expected}")
    return EmbeddingsCache(path, n, 8 + length, chunk_rows, hashes, meta["labels_sha256"], dict(meta))


# --------------------------------------------------------------------------- what embedding costs

ENCODER_PARAMS = 85_054_464
"""Weights a token passes through in roberta-base's encoder (12 layers x 7,087,872): one
multiply-add each, so a forward pass costs about ``2 * ENCODER_PARAMS`` FLOPs per token."""
TRANSFORMER_EFFICIENCY = 0.8
"""[choice] The share of this machine's float32 matrix-multiply speed a transformer forward pass
reaches (attention, GELU and layer norms run slower); the progress bar's ETA, measured as it
goes, corrects it."""


@dataclass(frozen=True)
class EmbedPlan:
    """What ``eos-tui data embed sst`` will cost, stated before it starts."""

    sentences: int
    disk_bytes: int  # the finished cache (written beside the old one, if any, then renamed)
    free_bytes: int | None
    seconds: float
    where: Path

    def describe(self) -> str:
        free = "" if self.free_bytes is None else f", {_gb(self.free_bytes)} free"
        return (f"embedding {self.sentences:,} sentences needs {_gb(self.disk_bytes)} in {self.where}{free}, "
                f"and about {_duration(self.seconds)} here (from this machine's matrix-multiply speed; "
                "the progress bar's ETA refines it)")


def _gb(n: int) -> str:
    return f"{n / 1e9:.1f} GB" if n >= 1e8 else f"{n / 1e6:.1f} MB"


def _duration(seconds: float) -> str:
    if seconds < 90:
        return f"{max(seconds, 1):.0f} s"
    if seconds < 90 * 60:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def cache_bytes(n: int, model: str = DEFAULT_MODEL, chunk_rows: int = CHUNK_ROWS) -> int:
    """The exact size of the embeddings cache of ``n`` sentences."""
    meta = {"model": model, "source_sha256": "0" * 64, "format": CACHE_FORMAT, "n_tokens": str(N_TOKENS),
            "embed_dim": str(EMBED_DIM), "chunk_rows": str(chunk_rows), "labels_sha256": "0" * 64,
            "chunk_sha256": ",".join(["0" * 64] * math.ceil(n / chunk_rows))}
    return len(_header_bytes(n, meta)) + n * (8 + _ROW_BYTES)


def matmul_flops(seconds: float = 0.3) -> float:
    """This machine's float32 matrix-multiply speed (FLOP/s) at the shape of a transformer's
    feed-forward layer (a batch of 64 sentences of 32 tokens), with torch's threads."""
    import time

    import torch

    a, b = torch.randn(64 * N_TOKENS, EMBED_DIM), torch.randn(EMBED_DIM, 4 * EMBED_DIM)
    a @ b  # warm-up
    count, start = 0, time.perf_counter()
    while (elapsed := time.perf_counter() - start) < seconds:
        a @ b
        count += 1
    return 2 * a.shape[0] * a.shape[1] * b.shape[1] * count / elapsed


def plan_embedding(data_dir: Path, *, model: str = DEFAULT_MODEL, flops: float | None = None) -> EmbedPlan:
    """Sentences, disk and time of embedding the imported sentences; a :class:`DataError` when
    they are missing or the disk lacks the room."""
    n = int(_sentences_manifest(data_dir)["n_sentences"])
    where = dataset_dir(data_dir)
    need = cache_bytes(n, model)
    try:
        free: int | None = shutil.disk_usage(where).free
    except OSError:
        free = None
    if free is not None and free < need:
        raise DataError(f"embedding {n:,} sentences needs {_gb(need)} in {where}, but only {_gb(free)} is "
                        f"free: free some space, or use `--data-dir` on a larger disk")
    seconds = n * N_TOKENS * 2 * ENCODER_PARAMS / ((flops or matmul_flops()) * TRANSFORMER_EFFICIENCY)
    return EmbedPlan(n, need, free, seconds, where)


# --------------------------------------------------------------------------- embedding

HUB_TIMEOUT = 3.0  # seconds to reach the Hugging Face hub before calling it offline


def _installed(name: str) -> bool:
    if name in sys.modules:
        return sys.modules[name] is not None
    try:
        return importlib.util.find_spec(name) is not None
    except (ImportError, ValueError):
        return False


def _cached(model: str) -> bool:
    """Whether ``model`` is a local folder or already in the Hugging Face cache."""
    if Path(model).expanduser().is_dir():
        return True
    try:
        from huggingface_hub import try_to_load_from_cache
    except ImportError:
        return False
    try:
        return isinstance(try_to_load_from_cache(model, "config.json"), str)
    except Exception:  # a name that is not a repository id, a broken cache: not usable offline
        return False


def hub_unreachable(timeout: float = HUB_TIMEOUT) -> str | None:
    """Why the Hugging Face hub (``$HF_ENDPOINT``, default https://huggingface.co) does not
    answer an HTTP request within ``timeout`` seconds, or ``None`` when it does (any HTTP
    status counts as an answer). The request runs in a thread, so a hanging resolver or a
    network that accepts connections and then stays silent cannot hold this up."""
    import threading
    import urllib.error
    import urllib.request

    if os.environ.get("HF_HUB_OFFLINE", "").strip() not in ("", "0") or \
            os.environ.get("TRANSFORMERS_OFFLINE", "").strip() not in ("", "0"):
        return "offline mode is set (HF_HUB_OFFLINE or TRANSFORMERS_OFFLINE)"
    endpoint = os.environ.get("HF_ENDPOINT") or "https://huggingface.co"
    outcome: list[str | None] = []

    def probe() -> None:
        try:
            urllib.request.urlopen(urllib.request.Request(endpoint, method="HEAD"), timeout=timeout).close()
            outcome.append(None)
        except urllib.error.HTTPError:
            outcome.append(None)  # the server answered
        except (urllib.error.URLError, OSError, ValueError) as exc:
            reason = getattr(exc, "reason", None) or exc
            outcome.append(f"{endpoint}: {getattr(reason, 'strerror', None) or reason}")

    thread = threading.Thread(target=probe, name="hub-probe", daemon=True)
    thread.start()
    thread.join(timeout)
    return outcome[0] if outcome else f"{endpoint}: no answer within {timeout:g} s"


def check_model(model: str = DEFAULT_MODEL) -> bool:
    """Fail at once, with one line, when ``model`` cannot be loaded: transformers missing, or
    the model neither local nor cached while the hub does not answer within
    :data:`HUB_TIMEOUT` seconds. Returns whether it is local or cached. Cheap: imports neither
    transformers nor torch."""
    if not _installed("transformers"):
        raise DataError(
            f"`eos-tui data embed {NAME}` needs the optional package transformers: run "
            "`pip install 'eos-tui[embed]'`"
        )
    cached = _cached(model)
    if not cached and (reason := hub_unreachable()):
        raise DataError(
            f"model {model!r} is not in the Hugging Face cache and the hub cannot be reached ({reason}): "
            f"run `eos-tui data embed {NAME}` with internet access once (Hugging Face caches it), "
            "or pass `--model DIR` of a local copy"
        )
    return cached


def roberta_embedder(model: str = DEFAULT_MODEL, *, batch_size: int = 64) -> Embedder:
    """An :data:`Embedder` running the Hugging Face ``model`` (needs ``transformers``).

    Last hidden state of ``model`` on the tokenised sentence, cropped/padded to
    :data:`N_TOKENS` tokens, with padded positions zeroed. A model that is neither a local
    folder nor cached needs the hub: when it cannot be reached within :data:`HUB_TIMEOUT`
    seconds this fails at once (transformers itself would retry for about a minute).
    """
    cached = check_model(model)
    try:
        import transformers
    except ImportError:
        raise DataError(
            f"`eos-tui data embed {NAME}` needs the optional package transformers: run "
            "`pip install 'eos-tui[embed]'`"
        ) from None
    import torch

    options = {"local_files_only": True} if cached else {}
    try:
        tokenizer = transformers.AutoTokenizer.from_pretrained(model, **options)
        network = transformers.AutoModel.from_pretrained(model, **options)
    except Exception as exc:  # offline, unknown name, broken cache: all fixed the same way
        reason = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise DataError(
            f"could not load model {model!r} ({reason}): run `eos-tui data embed {NAME}` with "
            "internet access once (Hugging Face caches it), or pass `--model DIR` of a local copy"
        ) from None
    if getattr(network.config, "hidden_size", None) != EMBED_DIM:
        raise DataError(
            f"model {model!r} has hidden size {network.config.hidden_size}, SST needs {EMBED_DIM}: "
            f"use `--model {DEFAULT_MODEL}`"
        )
    network.eval()

    def run(sentences: list[str]) -> np.ndarray:
        out = []
        for start in range(0, len(sentences), batch_size):
            batch = [s.strip() for s in sentences[start:start + batch_size]]
            enc = tokenizer(batch, padding="max_length", truncation=True, max_length=N_TOKENS, return_tensors="pt")
            with torch.inference_mode():
                hidden = network(**enc).last_hidden_state
            out.append((hidden * enc["attention_mask"].unsqueeze(-1)).float().numpy())
        return np.concatenate(out) if out else np.zeros((0, N_TOKENS, EMBED_DIM), np.float32)

    return run


def embed(
    data_dir: Path,
    *,
    model: str = DEFAULT_MODEL,
    embedder: Embedder | None = None,
    chunk_rows: int = CHUNK_ROWS,
    progress: Callable[[int, int], None] | None = None,
) -> Path:
    """Embed every imported sentence into ``data_dir/sst/embeddings.safetensors``; return its path.

    ``embedder`` defaults to :func:`roberta_embedder` of ``model`` (tests pass their own).
    """
    sentences, labels, digest = load_sentences(data_dir)
    run = embedder if embedder is not None else roberta_embedder(model)

    def chunks() -> Iterator[np.ndarray]:
        for start in range(0, len(sentences), chunk_rows):
            batch = sentences[start:start + chunk_rows]
            out = np.asarray(run(batch))
            if out.shape != (len(batch), N_TOKENS, EMBED_DIM):
                raise DataError(
                    f"model {model!r} gave embeddings of shape {out.shape[1:]}, SST needs "
                    f"({N_TOKENS}, {EMBED_DIM}): use `--model {DEFAULT_MODEL}`"
                )
            yield out

    path = dataset_dir(data_dir) / EMBEDDINGS
    return write_embeddings(
        path, labels, chunks(),
        metadata={"model": model, "source_sha256": digest}, chunk_rows=chunk_rows, progress=progress,
    )


# --------------------------------------------------------------------------- loading


def _cache(data_dir: Path) -> EmbeddingsCache:
    """The checked cache header, with messages that say which step is missing."""
    path = dataset_dir(data_dir) / EMBEDDINGS
    if not path.is_file():
        if (dataset_dir(data_dir) / MANIFEST).is_file():
            raise DataError(f"SST embeddings not found in {dataset_dir(data_dir)}: {EMBED}")
        raise DataError(f"SST not found in {Path(data_dir)}: {MISSING}")
    cache = open_cache(path)
    try:
        source = _sentences_manifest(data_dir)["files"][TRAIN_TSV]["sha256"]
    except DataError:
        return cache  # the sentences are not needed to train; only a mismatch is an error
    if cache.metadata.get("source_sha256") != source:
        raise DataError(
            f"SST embeddings in {dataset_dir(data_dir)} were made from another train.tsv: "
            f"run `eos-tui data embed {NAME}` again"
        )
    return cache


def n_train(data_dir: Path) -> int:
    """Number of embedded training sentences (67,349 for the official split)."""
    return _cache(data_dir).n


def available(data_dir: Path) -> bool:
    """Whether a cache with a valid header and exact size is present (no hashing)."""
    try:
        _cache(data_dir)
    except DataError:
        return False
    return True


def status(data_dir: Path) -> str:
    """One line for ``eos-tui data list``."""
    try:
        cache = _cache(data_dir)
    except DataError as exc:
        return f"missing: {str(exc).split(': ', 1)[-1]}"
    return f"ready: {cache.n} sentences embedded with {cache.metadata.get('model', '?')}"


def load_train(data_dir: Path, indices: np.ndarray, options: dict) -> tuple[np.ndarray, np.ndarray]:
    """Token embeddings of sentences ``indices`` as ``(n, 24576)`` float64, and labels."""
    download.check_no_options(options, NAME)
    cache = _cache(data_dir)
    return cache.read(download.check_indices(indices, cache.n, NAME))
