"""Listings while other processes create, write and delete runs: a run being created lists as
``starting``, a deleted one disappears, and nothing is ever called ``corrupt``."""

from __future__ import annotations

import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path

import pytest

from engine.store import LISTING_STATUSES, list_runs
from faults.faultlib import FIGURES, eos_tui

CHURN = Path(__file__).resolve().parent / "churn.py"


@contextmanager
def churning(root: Path, seconds: float, processes: int = 2):
    root.mkdir(parents=True, exist_ok=True)
    procs = [subprocess.Popen([sys.executable, str(CHURN), str(root), str(seconds), str(seed)],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for seed in range(processes)]
    try:
        yield procs
    finally:
        for proc in procs:
            try:
                _, err = proc.communicate(timeout=seconds + 60)
            except subprocess.TimeoutExpired:
                proc.kill()
                _, err = proc.communicate()
            assert proc.returncode == 0, err


@pytest.mark.slow
def test_churn_listings_never_say_corrupt(tmp_path: Path) -> None:
    root = tmp_path / "runs"
    seen: dict[str, int] = {}
    listings = 0
    with churning(root, seconds=20) as procs:
        deadline = time.monotonic() + 180
        while (listings < 200 or any(p.poll() is None for p in procs)) and time.monotonic() < deadline:
            for summary in list_runs(root):
                seen[summary.status] = seen.get(summary.status, 0) + 1
                assert summary.status != "corrupt", (summary.name, summary.message)
                assert summary.status in LISTING_STATUSES
            listings += 1
            if listings % 50 == 0:  # the command too, while the churn goes on
                res = eos_tui("runs", root, "--no-ui")
                assert res.returncode == 0 and "corrupt" not in res.stdout, res.stdout + res.stderr
                assert "Traceback" not in res.stderr
    FIGURES["listings"] += listings
    FIGURES["listed corrupt"] += seen.get("corrupt", 0)
    FIGURES["listed starting"] += seen.get("starting", 0)
    assert listings >= 200
    assert seen.get("starting", 0) > 0 and seen.get("finished", 0) > 0, seen


@pytest.mark.slow
async def test_runs_browser_during_churn(tmp_path: Path) -> None:
    from textual.widgets import DataTable

    from app_fixtures import screen_text, wait_until
    from eos_tui.app import build_app

    root = tmp_path / "runs"
    with churning(root, seconds=10, processes=1):
        time.sleep(0.5)
        app = build_app("browser", [root])
        async with app.run_test(size=(160, 40)) as pilot:
            table = app.screen.query_one("#runs", DataTable)
            await wait_until(pilot, lambda: table.row_count > 0, what="runs listed")
            for _ in range(30):
                await pilot.press("R")
                await pilot.pause(0.2)
                assert "corrupt" not in screen_text(app)
                FIGURES["listings"] += 1
