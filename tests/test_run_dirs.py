"""Run directories: exclusive creation, the ``.starting`` marker, and how listings read runs that
are being created, were abandoned half-created, or are broken."""

from __future__ import annotations

import json
import os
import socket
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from engine.errors import RunStoreError
from engine.store import RunWriter, creation_state, list_runs, make_run_dir, open_run
from engine.store.liveness import STARTING_FILE
from eos_tui.cli import app

runner = CliRunner()


def _create(path: Path, **kw) -> RunWriter:
    return RunWriter.create(path, config={"preset": "t"}, meta={"preset": "t", "solver": "gd"}, num_eigs=2, **kw)


def test_simultaneous_creation_gives_every_caller_its_own_directory(tmp_path: Path) -> None:
    barrier = threading.Barrier(32)
    made: list[Path] = []

    def start() -> None:
        barrier.wait()
        made.append(make_run_dir(tmp_path / "runs", "20260101-120000-dice-quick"))

    threads = [threading.Thread(target=start) for _ in range(32)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    names = sorted(p.name for p in made)
    assert len(set(names)) == 32
    assert set(names) == {"20260101-120000-dice-quick"} | {f"20260101-120000-dice-quick-{i}" for i in range(2, 33)}
    for p in made:
        assert json.loads((p / STARTING_FILE).read_text())["pid"] == os.getpid()


def test_bad_names_and_roots(tmp_path: Path) -> None:
    with pytest.raises(RunStoreError, match="not a valid run directory name"):
        make_run_dir(tmp_path, "a/b")
    (tmp_path / "file").write_text("x")
    with pytest.raises(RunStoreError, match="not a directory"):
        make_run_dir(tmp_path / "file", "run")


def test_writer_takes_a_marked_directory_and_removes_the_marker(tmp_path: Path) -> None:
    path = make_run_dir(tmp_path, "r")
    with _create(path) as writer:
        assert not (path / STARTING_FILE).exists() and (path / ".reserve").exists()
        writer.append_step({"step": 0, "loss": 1.0})
    assert not (path / ".reserve").exists()
    with open_run(path) as run:
        assert run.status == "finished" and run.num_steps() == 1
    other = make_run_dir(tmp_path, "s")
    (other / "notes.txt").write_text("mine")
    with pytest.raises(RunStoreError, match="not empty"):
        _create(other)
    assert (other / "notes.txt").read_text() == "mine"


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_creation_states(tmp_path: Path) -> None:
    # marked by a live process: starting
    alive = make_run_dir(tmp_path, "alive")
    assert creation_state(alive, 30)[0] == "starting"
    # marked by a process that is gone: interrupted
    dead = tmp_path / "dead"
    dead.mkdir()
    (dead / STARTING_FILE).write_text(json.dumps({"pid": _dead_pid(), "host": socket.gethostname(), "time": 0}))
    assert creation_state(dead, 30)[0] == "interrupted"
    # a marker from another host: judged by its age
    remote = tmp_path / "remote"
    remote.mkdir()
    (remote / STARTING_FILE).write_text(json.dumps({"pid": 1, "host": "elsewhere", "time": 0}))
    assert creation_state(remote, 30)[0] == "starting"
    os.utime(remote / STARTING_FILE, (time.time() - 100, time.time() - 100))
    assert creation_state(remote, 30)[0] == "interrupted"
    # a store whose writer lives but run.json is not written yet: starting
    mid = tmp_path / "mid"
    _create(mid, heartbeat_interval=None).close()
    (mid / "run.json").unlink()
    with sqlite3.connect(mid / "metrics.sqlite") as conn:
        conn.execute("UPDATE meta SET value = 'running' WHERE key = 'status'")
        conn.execute("UPDATE meta SET value = ? WHERE key = 'heartbeat'", (repr(time.time()),))
    assert creation_state(mid, 30)[0] == "starting"
    # ... and with a final status but no run.json: damaged, not starting
    with sqlite3.connect(mid / "metrics.sqlite") as conn:
        conn.execute("UPDATE meta SET value = 'finished' WHERE key = 'status'")
    assert creation_state(mid, 30) is None
    # a complete run, an empty folder, a folder of something else: not being created
    done = tmp_path / "done"
    _create(done).close()
    assert creation_state(done, 30) is None
    (tmp_path / "empty").mkdir()
    assert creation_state(tmp_path / "empty", 30) is None
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "a.txt").write_text("x")
    assert creation_state(tmp_path / "notes", 30) is None


def test_listing_says_starting_interrupted_and_corrupt_only_when_files_say_so(tmp_path: Path) -> None:
    make_run_dir(tmp_path, "starting-run")
    dead = tmp_path / "abandoned"
    dead.mkdir()
    (dead / STARTING_FILE).write_text(json.dumps({"pid": _dead_pid(), "host": socket.gethostname(), "time": 0}))
    with _create(tmp_path / "ok") as w:
        w.append_step({"step": 0, "loss": 1.0})
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "run.json").write_text("{}")
    (broken / "metrics.sqlite").write_bytes(b"garbage" * 100)
    assert "broken" not in {s.name for s in list_runs(tmp_path)}  # just changed: not judged yet
    settled = time.time() - 10
    for p in [broken, *broken.iterdir()]:
        os.utime(p, (settled, settled))
    (tmp_path / "empty").mkdir()
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "a.txt").write_text("x")
    got = {s.name: (s.status, s.message) for s in list_runs(tmp_path)}
    assert set(got) == {"starting-run", "abandoned", "ok", "broken"}
    assert got["starting-run"][0] == "starting" and f"pid {os.getpid()}" in got["starting-run"][1]
    assert got["abandoned"][0] == "interrupted" and "stopped before the run was created" in got["abandoned"][1]
    assert got["ok"][0] == "finished" and got["broken"][0] == "corrupt"
    with pytest.raises(RunStoreError, match="still starting"):
        open_run(tmp_path / "starting-run")
    with pytest.raises(RunStoreError, match="never completed"):
        open_run(dead)


def test_runs_table_shows_a_starting_run(tmp_path: Path) -> None:
    make_run_dir(tmp_path, "a-starting-run")
    result = runner.invoke(app, ["runs", str(tmp_path), "--no-ui"])
    assert result.exit_code == 0
    rows = [line.split("\t") for line in result.stdout.splitlines()]
    assert rows[0][:2] == ["run", "status"] and rows[1][:2] == ["a-starting-run", "starting"]


async def test_runs_browser_shows_a_starting_run_and_does_not_open_it(tmp_path: Path) -> None:
    from textual.widgets import DataTable

    from app_fixtures import screen_text, wait_until
    from eos_tui.app import build_app

    make_run_dir(tmp_path, "a-starting-run")
    app_ = build_app("browser", [tmp_path])
    async with app_.run_test(size=(160, 40)) as pilot:
        table = app_.screen.query_one("#runs", DataTable)
        await wait_until(pilot, lambda: table.row_count == 1, what="run listed")
        await wait_until(pilot, lambda: "starting" in screen_text(app_), what="row painted")
        await pilot.press("enter")
        await pilot.pause(0.2)
        assert type(app_.screen).__name__ == "RunsScreen"


def test_out_dir_is_claimed_and_a_failed_start_leaves_nothing(tmp_path: Path) -> None:
    """A start that fails before its run exists (here: CIFAR-10 is not imported) removes the
    directory it created, and leaves an --out directory that existed as it found it."""
    empty_data = tmp_path / "data"
    empty_data.mkdir()
    runs = tmp_path / "runs"
    result = runner.invoke(app, ["run", "preset", "cifar-ce", "--no-ui", "--runs-dir", str(runs),
                                 "--data-dir", str(empty_data)])
    assert result.exit_code == 2 and "CIFAR-10 not found" in result.output
    assert list(runs.iterdir()) == []
    out = tmp_path / "out"
    out.mkdir()
    result = runner.invoke(app, ["run", "preset", "cifar-ce", "--no-ui", "--out", str(out),
                                 "--data-dir", str(empty_data)])
    assert result.exit_code == 2 and out.is_dir() and list(out.iterdir()) == []
    result = runner.invoke(app, ["run", "compare", "cifar-ce", "--no-ui", "--runs-dir", str(runs),
                                 "--data-dir", str(empty_data)])
    assert result.exit_code == 2 and list(runs.iterdir()) == []
    assert "run directory" not in result.output
