"""Listing the runs of a folder (``eos-tui runs``, the runs browser): :func:`list_runs`.

Other processes may be creating, writing and deleting runs while a folder is listed. A run
being created is listed ``starting`` (see :func:`~engine.store.liveness.creation_state`); a run
whose files change while it is read is read again; a run deleted meanwhile is left out, and so
is one that cannot be read while its files are still changing (being rewritten or deleted: it
is listed again once they settle). Only a run whose files are unreadable and have been left
alone for :data:`SETTLE_SECONDS` is listed ``corrupt``.
"""

from __future__ import annotations

import json
import os
import sqlite3
import time
from datetime import datetime
from pathlib import Path

from engine.errors import EosError, RunStoreError
from engine.store.liveness import STARTING_FILE, creation_state
from engine.store.reader import RunSummary, open_run
from engine.store.schema import DEFAULT_STALE_AFTER, METRICS_FILE, RUN_FILE, STATUSES, one_line

LISTING_STATUSES = ("starting", *STATUSES, "corrupt")
"""Every status :func:`list_runs` reports: the stored ones plus ``starting`` and ``corrupt``."""

READ_ATTEMPTS = 4  # reads of a run whose files keep changing (10, 20, 40 ms apart)
SETTLE_SECONDS = 2.0  # an unreadable run changed more recently than this is not judged yet


def _looks_like_run(path: Path) -> bool:
    try:
        return path.is_dir() and any((path / f).exists() for f in (METRICS_FILE, RUN_FILE, STARTING_FILE))
    except OSError:
        return False


def _sort_key(summary: RunSummary) -> float:
    if summary.started:
        try:
            return datetime.fromisoformat(summary.started).timestamp()
        except ValueError:
            pass
    try:
        return summary.path.stat().st_mtime
    except OSError:
        return 0.0


def _settled(path: Path, fingerprint: tuple) -> bool:
    """Whether nothing in the run directory changed in the last :data:`SETTLE_SECONDS`."""
    try:
        newest = max([path.stat().st_mtime_ns, *(mtime for _, _, mtime in fingerprint)])
    except OSError:
        return False
    return time.time_ns() - newest >= SETTLE_SECONDS * 1e9


def _fingerprint(path: Path) -> tuple | None:
    """What the directory holds (names, sizes, mtimes); ``None`` once it is gone."""
    try:
        with os.scandir(path) as entries:
            return tuple(sorted((e.name, e.stat().st_size, e.stat().st_mtime_ns) for e in entries))
    except FileNotFoundError:
        return None
    except OSError:
        return ()


def _partial_summary(path: Path, status: str, message: str, exc: BaseException | None = None) -> RunSummary:
    """Listing entry for a run that cannot be opened; keeps what ``run.json`` still tells."""
    try:
        meta = json.loads((path / RUN_FILE).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError):
        meta = {}
    meta = meta if isinstance(meta, dict) else {}
    text = {k: None if meta.get(k) is None else str(meta[k]) for k in ("preset", "solver", "created")}
    started = text["created"]
    if started is None:
        try:
            started = datetime.fromtimestamp(path.stat().st_mtime).astimezone().isoformat(timespec="seconds")
        except OSError:
            pass
    return RunSummary(path=path, name=path.name, status=status, preset=text["preset"],
                      solver=text["solver"], steps=0, t=None, final_loss=None, max_lambda=None,
                      max_P1=None, started=started,
                      message=message if exc is None else f"{message}: {one_line(exc)}")


def summarize(path: Path | str, *, stale_after: float = DEFAULT_STALE_AFTER) -> RunSummary | None:
    """The listing entry of the run at ``path``; ``None`` when it is not (or no longer) a run.

    A run that cannot be opened is ``starting`` or ``interrupted`` while it is being created or
    after its creator died; otherwise it is read again while its files keep changing (another
    process writing or deleting it), left out while they have not settled, and called
    ``corrupt`` only when they are unreadable and settled.
    """
    path = Path(path)
    error: BaseException | None = None
    after: tuple = ()
    for attempt in range(READ_ATTEMPTS):
        before = _fingerprint(path)
        if before is None or not _looks_like_run(path):
            return None
        state = creation_state(path, stale_after)  # one stat for a complete run
        if state is None:
            try:
                with open_run(path, stale_after=stale_after) as run:
                    return run.summary()
            except (EosError, OSError, sqlite3.Error) as exc:
                error = exc
            state = creation_state(path, stale_after)  # it may have changed meanwhile
        if state is not None:
            return _partial_summary(path, *state)
        after = _fingerprint(path)
        if after is None or not _looks_like_run(path):
            return None
        if after == before and _settled(path, after):
            break
        if attempt < READ_ATTEMPTS - 1:
            time.sleep(0.01 * 2 ** attempt)
    if not _settled(path, after):
        return None  # being rewritten or deleted right now: judged once its files settle
    assert error is not None
    return _partial_summary(path, "corrupt", "unreadable", error)


def list_runs(root: Path | str, *, stale_after: float = DEFAULT_STALE_AFTER) -> list[RunSummary]:
    """Summaries of ``root`` (if it is a run) and of every run directly under it, newest first.

    Directories that are not runs are skipped; statuses are :data:`LISTING_STATUSES` (see
    :func:`summarize`), with the reason in ``message`` for ``starting`` and ``corrupt``.
    """
    root = Path(root).expanduser()
    if not root.exists():
        raise RunStoreError(f"runs folder {root} does not exist")
    if not root.is_dir():
        raise RunStoreError(f"runs folder {root} is not a directory")
    candidates = [root] if _looks_like_run(root) else []
    try:
        candidates += sorted(p for p in root.iterdir() if _looks_like_run(p))
    except OSError as exc:
        raise RunStoreError(f"cannot list runs folder {root}: {one_line(exc)}") from exc
    summaries = [s for s in (summarize(p, stale_after=stale_after) for p in candidates) if s is not None]
    summaries.sort(key=_sort_key, reverse=True)
    return summaries
