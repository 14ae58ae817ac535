"""Listing the runs of a folder (``eos-tui runs``, the runs browser): :func:`list_runs`."""

from __future__ import annotations

import json
import sqlite3
from datetime import datetime
from pathlib import Path

from engine.errors import EosError, RunStoreError
from engine.store.reader import RunSummary, open_run
from engine.store.schema import METRICS_FILE, RUN_FILE, one_line

def _looks_like_run(path: Path) -> bool:
    return path.is_dir() and any((path / f).exists() for f in (METRICS_FILE, RUN_FILE))


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


def _corrupt_summary(path: Path, exc: BaseException) -> RunSummary:
    """Listing entry for a run that cannot be opened; keeps what ``run.json`` still tells."""
    try:
        meta = json.loads((path / RUN_FILE).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError):
        meta = {}
    meta = meta if isinstance(meta, dict) else {}
    text = {k: None if meta.get(k) is None else str(meta[k]) for k in ("preset", "solver",
                                                                        "created")}
    return RunSummary(path=path, name=path.name, status="corrupt", preset=text["preset"],
                      solver=text["solver"], steps=0, t=None, final_loss=None, max_lambda=None,
                      max_P1=None, started=text["created"], message=one_line(exc))


def list_runs(root: Path | str) -> list[RunSummary]:
    """Summaries of ``root`` (if it is a run) and of every run directly under it, newest first.

    Directories that are not runs are skipped; runs that cannot be read are listed with status
    ``corrupt`` and the reason in ``message``.
    """
    root = Path(root).expanduser()
    if not root.exists():
        raise RunStoreError(f"runs folder {root} does not exist")
    if not root.is_dir():
        raise RunStoreError(f"runs folder {root} is not a directory")
    candidates = [root] if _looks_like_run(root) else []
    candidates += sorted(p for p in root.iterdir() if _looks_like_run(p))
    summaries = []
    for path in candidates:
        try:
            with open_run(path) as run:
                summaries.append(run.summary())
        except (EosError, OSError, sqlite3.Error) as exc:
            summaries.append(_corrupt_summary(path, exc))
    summaries.sort(key=_sort_key, reverse=True)
    return summaries
