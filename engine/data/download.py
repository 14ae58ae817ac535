"""Getting data files onto disk and checking them.

- :func:`fetch`: HTTP(S) download that resumes an interrupted transfer (``Range`` request
  into ``DEST.part``), verifies an MD5/SHA-256 checksum and renames atomically, so ``DEST``
  exists only when it is complete and verified.
- Checksums (:func:`file_digest`), JSON manifests written atomically, staged directory
  replacement and the index/option checks shared by the downloadable data sets
  (``cifar``, ``ucr``, ``sst``).
- Permissions: everything written for a data set gets the modes of ordinary files and
  folders, ``0666``/``0777`` less the umask (``0644``/``0755`` with the usual ``022``), like
  files a user copies in, so a data directory shared by a group or a cluster's nodes reads
  the same everywhere (temporary files and folders are made ``0600``/``0700`` by Python's
  :mod:`tempfile`; :func:`public_mode` fixes them before they are published).

Every failure a user can cause or fix (offline, bad checksum, truncated file) raises
:class:`~engine.errors.DataError` with one line naming the command to run.
"""

from __future__ import annotations

import hashlib
import http.client
import json
import os
import shutil
import tempfile
import urllib.error
import urllib.request
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

from engine.errors import DataError

Progress = Callable[[int, "int | None"], None]
"""``progress(bytes_done, bytes_total_or_None)``, called as a download advances."""

CHUNK_BYTES = 1 << 20
USER_AGENT = "eos-tui (+https://pypi.org/project/eos-tui/)"
_SCHEMES = ("http://", "https://")


# --------------------------------------------------------------------------- checksums


def file_digest(path: Path, algorithm: str = "sha256") -> str:
    """Hex digest of the file at ``path`` (``algorithm``: any :mod:`hashlib` name)."""
    h = hashlib.new(algorithm)
    with open(path, "rb") as f:
        while block := f.read(CHUNK_BYTES):
            h.update(block)
    return h.hexdigest()


def checksum_mismatch(path: Path, *, md5: str | None = None, sha256: str | None = None) -> str | None:
    """``None`` if ``path`` matches every given checksum, else ``"md5 X, expected Y"``."""
    for algorithm, expected in (("md5", md5), ("sha256", sha256)):
        if expected is None:
            continue
        actual = file_digest(path, algorithm)
        if actual != expected.lower():
            return f"{algorithm} {actual}, expected {expected.lower()}"
    return None


# --------------------------------------------------------------------------- download


def _offline_error(url: str, reason: object, name: str) -> DataError:
    return DataError(
        f"could not download {url}: {reason}; if you are offline, download it elsewhere "
        f"and run `eos-tui data import {name} FILE`"
    )


def _open(url: str, offset: int, timeout: float) -> Any:
    """Open ``url`` asking for the bytes from ``offset`` on (no Range header when 0)."""
    headers = {"User-Agent": USER_AGENT, "Accept-Encoding": "identity"}
    if offset:
        headers["Range"] = f"bytes={offset}-"
    return urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=timeout)


def _content_range_start(value: str | None) -> int | None:
    """The first byte of a ``Content-Range: bytes A-B/T`` header, or None if unparsable."""
    if not value or not value.startswith("bytes "):
        return None
    try:
        return int(value[6:].split("-", 1)[0])
    except ValueError:
        return None


def fetch(
    url: str,
    dest: Path,
    *,
    expected_md5: str | None = None,
    expected_sha256: str | None = None,
    progress: Progress | None = None,
    timeout: float = 30.0,
    name: str = "NAME",
) -> Path:
    """Download ``url`` to ``dest`` and return ``dest``.

    Bytes go to ``dest.part`` first; an existing ``.part`` (an interrupted earlier attempt)
    is resumed with a ``Range`` request (a server that ignores it makes the download start
    over). When complete, the file is checked against ``expected_md5``/``expected_sha256``:
    on mismatch the partial file is deleted and :class:`DataError` raised; on success it is
    renamed to ``dest`` atomically. ``name`` is the data-set name used in error messages.
    """
    if not url.startswith(_SCHEMES):
        raise ValueError(f"only http(s) URLs can be fetched, got {url!r}")
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + ".part")
    restarted = False
    while True:
        offset = part.stat().st_size if part.exists() else 0
        try:
            response = _open(url, offset, timeout)
        except urllib.error.HTTPError as exc:
            if exc.code == 416 and offset and not restarted:
                # the server has nothing after `offset`: the part may already be complete
                if (expected_md5 or expected_sha256) and not checksum_mismatch(
                    part, md5=expected_md5, sha256=expected_sha256
                ):
                    break
                part.unlink()
                restarted = True
                continue
            raise _offline_error(url, f"HTTP {exc.code} {exc.reason}", name) from None
        except (urllib.error.URLError, OSError) as exc:
            reason = getattr(exc, "reason", None) or exc
            raise _offline_error(url, reason, name) from None
        with response:
            resumed = offset > 0 and response.status == 206
            if resumed and _content_range_start(response.headers.get("Content-Range")) != offset:
                part.unlink()  # the server answered a different range: start over
                if restarted:
                    raise _offline_error(url, "the server sent an unexpected byte range", name)
                restarted = True
                continue
            start = offset if resumed else 0
            length = response.headers.get("Content-Length")
            total = start + int(length) if length is not None and length.isdigit() else None
            done = _copy(response, part, start, total, progress, url)
        if total is not None and done < total:
            raise DataError(
                f"download of {url} stopped at {done} of {total} bytes: run the same command "
                "again to resume"
            )
        break
    bad = checksum_mismatch(part, md5=expected_md5, sha256=expected_sha256)
    if bad:
        part.unlink()
        raise DataError(
            f"{url} failed its checksum ({bad}); the download was deleted: run "
            f"`eos-tui data fetch {name}` again or `eos-tui data import {name} FILE` with a verified copy"
        )
    os.replace(part, dest)
    return dest


def _copy(response: Any, part: Path, start: int, total: int | None, progress: Progress | None, url: str) -> int:
    """Stream ``response`` into ``part`` from byte ``start``; return the bytes now in ``part``."""
    done = start
    with open(part, "r+b" if start else "wb") as f:
        f.seek(start)
        f.truncate()
        if progress:
            progress(done, total)
        try:
            while block := response.read(CHUNK_BYTES):
                f.write(block)
                done += len(block)
                if progress:
                    progress(done, total)
        except (OSError, http.client.HTTPException, ValueError) as exc:
            f.flush()
            raise DataError(
                f"download of {url} was interrupted at {done} bytes ({exc or type(exc).__name__}): "
                "run the same command again to resume"
            ) from None
    return done


# --------------------------------------------------------------------------- permissions


def current_umask() -> int:
    """The process's umask (read from ``/proc`` where possible, so it is never changed)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def public_mode(path: Path) -> None:
    """Give ``path`` (a file, or a folder and everything in it) the modes of ordinary files:
    ``0o666`` for files and ``0o777`` for folders, less the umask."""
    mask = current_umask()
    path = Path(path)
    todo = [path]
    while todo:
        p = todo.pop()
        if p.is_symlink():
            continue
        if p.is_dir():
            os.chmod(p, 0o777 & ~mask)
            todo.extend(p.iterdir())
        else:
            os.chmod(p, 0o666 & ~mask)


# --------------------------------------------------------------------------- manifests and staging


def write_json_atomic(path: Path, payload: dict) -> None:
    """Write ``payload`` as JSON to ``path`` via a temporary file and an atomic rename."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(payload, f, indent=1, sort_keys=True)
            f.write("\n")
        public_mode(Path(tmp))
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def read_manifest(path: Path, dataset: str, title: str, fix: str) -> dict:
    """The JSON manifest at ``path`` (a dict whose ``"dataset"`` is ``dataset``).

    Raises :class:`DataError` naming the data set as ``title`` and ending in ``fix`` (the
    command that recreates it) if the manifest is missing, unreadable or for another data set.
    """
    if not path.is_file():
        raise DataError(f"{title} not found in {path.parent.parent}: {fix}")
    try:
        payload = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise DataError(f"{title} manifest {path} is unreadable ({exc}): {fix}") from None
    if not isinstance(payload, dict) or payload.get("dataset") != dataset:
        raise DataError(f"{path} is not a {title} manifest: {fix}")
    return payload


def read_verified(path: Path, entry: dict, what: str, fix: str) -> bytes:
    """The bytes of an imported file after checking them against its manifest ``entry``
    (``size`` and ``sha256``); a :class:`DataError` naming ``what`` and ending in ``fix`` if the
    file is missing, truncated or altered, or corrupt."""
    try:
        raw = path.read_bytes()
    except OSError:
        raise DataError(f"{what} {path} is missing: {fix}") from None
    if len(raw) != entry["size"]:
        raise DataError(f"{what} {path} is truncated or altered ({len(raw)} of {entry['size']} bytes): {fix}")
    if hashlib.sha256(raw).hexdigest() != entry["sha256"]:
        raise DataError(f"{what} {path} is corrupt (SHA-256 mismatch): {fix}")
    return raw


def files_present(manifest: Callable[[], dict], root: Path, names: Iterable[str]) -> bool:
    """Whether an import is present: its manifest (read by ``manifest()``, which raises
    :class:`DataError` when it is missing or malformed) is valid and every file ``names`` is in
    ``root`` at its recorded size (no hashing)."""
    try:
        files = manifest()["files"]
    except DataError:
        return False
    return all((root / n).is_file() and (root / n).stat().st_size == files[n]["size"] for n in names)


def staging_dir(final: Path) -> Path:
    """A fresh empty directory next to ``final`` to prepare its new contents in (with the
    mode ``final`` will have)."""
    final.parent.mkdir(parents=True, exist_ok=True)
    staged = Path(tempfile.mkdtemp(dir=final.parent, prefix=f".{final.name}.import-"))
    public_mode(staged)
    return staged


@contextmanager
def staged_install(final: Path) -> Iterator[Path]:
    """Prepare new contents of ``final`` in a staging folder (yielded); they replace ``final``
    when the block succeeds, and are deleted when it fails (a full disk, an interrupt), leaving
    ``final`` as it was."""
    staged = staging_dir(final)
    try:
        yield staged
        public_mode(staged)
        replace_dir(staged, final)
    except BaseException:
        shutil.rmtree(staged, ignore_errors=True)
        raise


def install_files(final: Path, files: dict[str, bytes], manifest: dict) -> Path:
    """Install ``files`` (name -> bytes) as the folder ``final`` with ``manifest.json``: the
    given ``manifest`` plus ``files`` (each one's ``size`` and ``sha256``), all written in a
    staging folder that replaces ``final`` only once complete (:func:`staged_install`)."""
    with staged_install(final) as staged:
        entries = {}
        for name, raw in files.items():
            (staged / name).write_bytes(raw)
            entries[name] = {"size": len(raw), "sha256": file_digest(staged / name)}
        write_json_atomic(staged / "manifest.json", {**manifest, "files": entries})
    return final


def replace_dir(staged: Path, final: Path) -> None:
    """Make ``staged`` become ``final`` (replacing an existing ``final``)."""
    if final.exists():
        old = Path(tempfile.mkdtemp(dir=final.parent, prefix=f".{final.name}.old-"))
        os.replace(final, old / final.name)
        os.replace(staged, final)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(staged, final)


# --------------------------------------------------------------------------- loader arguments


def check_no_options(options: dict | None, dataset: str) -> None:
    """Raise :class:`DataError` if ``options`` is non-empty (these data sets take none)."""
    if options:
        raise DataError(f"the {dataset} data set takes no options, got {', '.join(sorted(map(str, options)))}")


def check_indices(indices: np.ndarray, n_total: int, dataset: str) -> np.ndarray:
    """``indices`` as a 1-D int64 array, every entry in ``0..n_total-1`` (else DataError)."""
    idx = np.asarray(indices)
    if idx.ndim != 1 or (idx.size and not np.issubdtype(idx.dtype, np.integer)):
        raise DataError(f"{dataset} sample indices must be a 1-D integer array, got shape {idx.shape} {idx.dtype}")
    idx = idx.astype(np.int64, copy=False)
    if idx.size and (idx.min() < 0 or idx.max() >= n_total):
        raise DataError(
            f"{dataset} sample index {int(idx.max() if idx.max() >= n_total else idx.min())} "
            f"out of range: the training split has {n_total} samples"
        )
    return idx
