"""The sweep directory: its manifest (``sweep.json``), journal and client record.

Layout of ``SWEEP/``::

    sweep.json              the plan: preset, sizes, seeds, --set overrides, the resolved base
                            config and its hash, the runs (written atomically by the client side)
    size=D/init=i/subset=j/ one eos-tui run directory per run (engine.store), written by a worker
    size=D/init=i/.subset=j.lock   the run's writer lock (engine.resume.run_lock)
    events.jsonl            the journal: one JSON line per finished task (status, host, timings)
    client.json             the sweep client of the moment: pid, host, workers, scheduler, state
    .client.lock            held by the live sweep client (one client per sweep directory)
    superseded-STAMP/       runs set aside by ``--force`` (never deleted)

Workers share the directory through the file system: on a cluster it must be a path every
worker sees (NFS, Lustre, ...).
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from engine.config import resolve
from engine.errors import ConfigError, RunStoreError
from engine.store import open_run
from engine.store.files import atomic_write
from engine.sweep.plan import SweepPlan, config_hash

MANIFEST = "sweep.json"
JOURNAL = "events.jsonl"
CLIENT = "client.json"
FORMAT = "eos-tui sweep"
VERSION = 1


def manifest_path(sweep_dir: Path) -> Path:
    return Path(sweep_dir) / MANIFEST


def is_sweep_dir(path: Path | str) -> bool:
    return manifest_path(Path(path)).is_file()


def read_manifest(sweep_dir: Path | str) -> dict:
    """The manifest of ``sweep_dir`` (a :class:`RunStoreError` if it is missing or unreadable)."""
    path = manifest_path(Path(sweep_dir).expanduser())
    if not path.is_file():
        raise RunStoreError(f"{path.parent} is not an eos-tui sweep (no {MANIFEST})")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise RunStoreError(f"{path} is unreadable: {exc}") from None
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise RunStoreError(f"{path} is not an eos-tui sweep manifest")
    if int(data.get("version", 0)) > VERSION:
        raise RunStoreError(f"{path} was written by a newer eos-tui (sweep format {data['version']})")
    return data


def read_plan(sweep_dir: Path | str) -> SweepPlan:
    return SweepPlan.from_json(read_manifest(sweep_dir))


def plan_differences(stored: dict, plan: SweepPlan) -> list[str]:
    """What differs between a stored manifest and ``plan`` (empty: the same plan)."""
    diffs = []
    if stored.get("preset") != plan.preset:
        diffs.append(f"preset {stored.get('preset')} → {plan.preset}")
    if sorted(stored.get("sizes", [])) != sorted(plan.sizes):
        diffs.append(f"sizes {','.join(map(str, sorted(stored.get('sizes', []))))} → "
                     f"{','.join(map(str, sorted(plan.sizes)))}")
    for key in ("init_seeds", "subset_seeds"):
        if stored.get(key) != getattr(plan, key):
            diffs.append(f"{key.replace('_', ' ')} {stored.get(key)} → {getattr(plan, key)}")
    if stored.get("config_hash") != plan.hash:
        old = stored.get("config", {})
        changed = [f"{s}.{k}" for s, sec in plan.base.items() if isinstance(sec, dict)
                   for k, v in sec.items() if isinstance(old.get(s), dict) and old[s].get(k) != v]
        diffs.append("settings " + (", ".join(changed) if changed else "(config hash)"))
    return diffs


def check_plan(sweep_dir: Path, plan: SweepPlan, *, force: bool = False) -> bool:
    """Whether ``sweep_dir`` can take ``plan`` (nothing is written): a new or empty directory,
    or one whose manifest holds the same plan. A different plan is a :class:`ConfigError`
    unless ``force``; a non-empty directory that is not a sweep is refused always. Returns
    whether the stored plan differs (then ``force`` was given)."""
    sweep_dir = Path(sweep_dir)
    if sweep_dir.exists() and not sweep_dir.is_dir():
        raise ConfigError(f"--out {sweep_dir} exists and is not a directory")
    if not is_sweep_dir(sweep_dir):
        if sweep_dir.is_dir() and any(sweep_dir.iterdir()):
            raise ConfigError(f"--out {sweep_dir} is not empty and holds no sweep ({MANIFEST}); "
                              "choose a new directory")
        return False
    diffs = plan_differences(read_manifest(sweep_dir), plan)
    if diffs and not force:
        raise ConfigError(f"{sweep_dir} holds a different sweep plan ({'; '.join(diffs)}); "
                          "use another --out, or --force to replace the plan (its runs are kept)")
    return bool(diffs)


def write_manifest(sweep_dir: Path, plan: SweepPlan) -> None:
    """Write (or rewrite) the manifest of ``plan`` atomically."""
    sweep_dir = Path(sweep_dir)
    sweep_dir.mkdir(parents=True, exist_ok=True)
    created = None
    if is_sweep_dir(sweep_dir):
        created = read_manifest(sweep_dir).get("created")
    body = {"format": FORMAT, "version": VERSION,
            "created": created or datetime.now(timezone.utc).isoformat(timespec="seconds"),
            **plan.to_json(), "runs": [spec.rel for spec in plan.runs()]}
    atomic_write(manifest_path(sweep_dir), (json.dumps(body, indent=2) + "\n").encode("utf-8"))


def set_aside_stale_runs(sweep_dir: Path, plan: SweepPlan) -> list[str]:
    """``--force``: move every run directory whose config is not the one ``plan`` gives it to
    ``superseded-STAMP/`` (same relative path); runs the new plan reuses stay. Returns the moved
    relative paths."""
    sweep_dir = Path(sweep_dir)
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    keep = {spec.rel: config_hash(plan.config_for(spec)) for spec in plan.runs()}
    moved = []
    for meta in sorted(sweep_dir.glob("size=*/init=*/subset=*/run.json")):
        run_dir = meta.parent
        rel = run_dir.relative_to(sweep_dir).as_posix()
        try:
            with open_run(run_dir) as run:
                same = keep.get(rel) == config_hash(resolve(dict(run.config)))
        except Exception:  # noqa: BLE001 - unreadable: set aside as well
            same = False
        if same:
            continue
        target = sweep_dir / f"superseded-{stamp}" / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.move(str(run_dir), str(target))
        moved.append(rel)
    return moved


# -- journal and client record -------------------------------------------------------------


def append_journal(sweep_dir: Path, record: dict) -> None:
    """Append one line to the sweep's journal (the client is its only writer)."""
    line = json.dumps({"time": time.time(), **record}, default=str) + "\n"
    with open(Path(sweep_dir) / JOURNAL, "a", encoding="utf-8") as fh:
        fh.write(line)
        fh.flush()
        os.fsync(fh.fileno())


def read_journal(sweep_dir: Path) -> list[dict]:
    """The journal's records, oldest first (a torn last line is skipped)."""
    path = Path(sweep_dir) / JOURNAL
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError):
        return []
    out = []
    for line in lines:
        try:
            rec = json.loads(line)
        except ValueError:
            continue
        if isinstance(rec, dict):
            out.append(rec)
    return out


@dataclass
class ClientRecord:
    """``client.json``: who drives the sweep now (or drove it last)."""

    pid: int
    host: str
    started: float
    workers: str
    scheduler: str | None
    state: str = "running"      # running | finished | interrupted | failed
    message: str = ""
    updated: float = 0.0

    @classmethod
    def new(cls, workers: str, scheduler: str | None) -> "ClientRecord":
        now = time.time()
        return cls(pid=os.getpid(), host=socket.gethostname(), started=now, workers=workers,
                   scheduler=scheduler, updated=now)

    def write(self, sweep_dir: Path) -> None:
        self.updated = time.time()
        atomic_write(Path(sweep_dir) / CLIENT, (json.dumps(self.__dict__, indent=2) + "\n").encode())

    @classmethod
    def read(cls, sweep_dir: Path) -> "ClientRecord | None":
        try:
            data = json.loads((Path(sweep_dir) / CLIENT).read_text(encoding="utf-8"))
            return cls(**{k: data[k] for k in cls.__dataclass_fields__ if k in data})
        except (OSError, ValueError, TypeError, KeyError):
            return None

