"""Exit codes that tell: SIGINT/SIGTERM/SIGHUP end a run ``interrupted`` with 130/143/129 in a
headless ``eos-tui run``, in the engine process alone, and on the UI path (the UI itself, and
its engine while the UI runs); a diverged run exits 3 and a stopped one 4, each with one line."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from conftest import tiny_config
from engine.store import open_run, send_control
from faults.faultlib import (
    EXIT_BY_SIGNAL,
    FIGURES,
    LONG_ARGS,
    ROOT,
    TINY_ARGS,
    PtyCommand,
    engine_pids,
    start_run,
    wait_for_rows,
)

SIGNALS = [signal.SIGINT, signal.SIGTERM, signal.SIGHUP]


def _count(sig: int, point: str) -> None:
    FIGURES["runs killed"] += 1
    FIGURES[f"killed by: {signal.Signals(sig).name}"] += 1
    FIGURES[f"killed at: {point}"] += 1


def _interrupted_cleanly(run_dir: Path, sig: int, rows: int) -> None:
    with open_run(run_dir) as run:
        assert run.status == "interrupted" and not run.crashed
        assert run.status_message == f"interrupted by {signal.Signals(sig).name}"
        assert run.num_steps() >= rows
    FIGURES["runs recovered"] += 1


def _signalled(start, sig: int, tmp: Path) -> tuple[int, str, Path]:
    """Start a run with ``start(out)``, signal it after 5 rows; its exit code, stderr, folder."""
    out = tmp / f"run-{signal.Signals(sig).name}"
    proc = start(out)
    wait_for_rows(out, 5, proc)
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=60)
    return proc.returncode, err, out


def _engine_alone(out: Path) -> subprocess.Popen:
    cfg = tiny_config("train.max_steps=100000", "train.target_loss=1e-12")
    return subprocess.Popen([sys.executable, "-m", "engine.launch", "--out", str(out), "--config-json",
                             json.dumps(cfg)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT)


@pytest.mark.slow
@pytest.mark.parametrize("where, start", [("headless CLI", start_run), ("engine alone", _engine_alone)])
def test_headless_cli_and_engine_alone(tmp_path: Path, where: str, start) -> None:
    with ThreadPoolExecutor(3) as pool:
        results = list(pool.map(lambda s: _signalled(start, s, tmp_path), SIGNALS))
    for sig, (code, err, out) in zip(SIGNALS, results):
        _count(sig, where)
        assert code == EXIT_BY_SIGNAL[sig], err
        lines = [line for line in err.splitlines() if line.strip()]
        expected = (f"interrupted by {signal.Signals(sig).name}: a run in progress is kept with status interrupted"
                    if where == "headless CLI" else
                    f"interrupted: interrupted by {signal.Signals(sig).name}; the run is kept")
        assert lines == [expected], err
        _interrupted_cleanly(out, sig, 5)


def _ui(args: list[str], runs: Path) -> tuple[PtyCommand, Path]:
    cmd = PtyCommand([sys.executable, "-m", "eos_tui.cli", "run", "preset", "dice-quick", "--runs-dir", str(runs),
                      *TINY_ARGS, *LONG_ARGS, *args])
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        cmd.drain(0.2)
        made = [p for p in runs.iterdir() if p.is_dir()] if runs.exists() else []
        if made and (made[0] / "run.json").exists() and "status" in cmd.text():  # the monitor is drawn
            wait_for_rows(made[0], 5, cmd.proc)
            return cmd, made[0]
        assert cmd.proc.poll() is None, cmd.text()[-2000:]
    raise AssertionError("the UI's engine did not start")


@pytest.mark.slow
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGHUP])
def test_signal_to_the_ui_ends_its_engine_the_same_way(tmp_path: Path, sig: int) -> None:
    """`eos-tui run preset` with the live UI (on a pseudo-terminal): a signal to the UI process
    restores the terminal, passes the signal to the engine, and both end with 128 + N."""
    cmd, run_dir = _ui([], tmp_path / "runs")
    try:
        engines = engine_pids(run_dir)
        assert len(engines) == 1
        cmd.proc.send_signal(sig)
        code = cmd.wait()
    finally:
        cmd.close()
    _count(sig, "UI process")
    assert code == EXIT_BY_SIGNAL[sig], cmd.text()[-2000:]
    assert engine_pids(run_dir) == []
    assert f"run directory: {run_dir}" in " ".join(cmd.text().split())
    _interrupted_cleanly(run_dir, sig, 5)


@pytest.mark.slow
def test_signal_to_the_engine_while_the_ui_runs(tmp_path: Path) -> None:
    """SIGTERM to the engine process behind the live UI: the run ends interrupted, the UI shows
    it, and on quitting `eos-tui` exits with the engine's 143."""
    cmd, run_dir = _ui([], tmp_path / "runs")
    try:
        (engine,) = engine_pids(run_dir)
        import os

        os.kill(engine, signal.SIGTERM)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            cmd.drain(0.2)
            with open_run(run_dir) as run:
                if run.status == "interrupted":
                    break
        cmd.drain(1.0)  # the UI polls the store
        assert "interrupted" in cmd.text()
        cmd.send("q")
        code = cmd.wait()
    finally:
        cmd.close()
    _count(signal.SIGTERM, "UI's engine")
    assert code == 143
    _interrupted_cleanly(run_dir, signal.SIGTERM, 5)


@pytest.mark.slow
@pytest.mark.parametrize("sig", SIGNALS)
async def test_engine_signal_inside_the_running_app(tmp_path: Path, sig: int) -> None:
    """The engine spawned by engine.launch, watched by the Textual app (Pilot): a signal to it
    ends the run interrupted with 128 + N, and the monitor's header says so."""
    from app_fixtures import screen_text, wait_until
    from engine.launch import spawn_training
    from eos_tui.app import build_app

    out = tmp_path / "run"
    proc = spawn_training(tiny_config("train.max_steps=100000", "train.target_loss=1e-12"), out)
    try:
        wait_for_rows(out, 5, proc)
        app = build_app("monitor", [out], live=True)
        async with app.run_test(size=(160, 48)) as pilot:
            await wait_until(pilot, lambda: "running" in screen_text(app), what="live run shown")
            proc.send_signal(sig)
            await wait_until(pilot, lambda: "interrupted" in screen_text(app), timeout=60, what="interrupted shown")
        assert proc.wait(timeout=60) == EXIT_BY_SIGNAL[sig]
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    _count(sig, "engine under the app")
    _interrupted_cleanly(out, sig, 5)


@pytest.mark.slow
def test_diverged_run_exits_3_with_one_line(tmp_path: Path) -> None:
    out = tmp_path / "div"
    proc = start_run(out, "--set", "train.lr=50", "--set", "train.max_steps=200", long=False)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 3, err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("diverged: loss ") and "lower train.lr" in lines[0]
    assert str(out) in lines[0]
    with open_run(out) as run:
        assert run.status == "diverged"


@pytest.mark.slow
def test_stopped_run_exits_4(tmp_path: Path) -> None:
    out = tmp_path / "stopped"
    proc = start_run(out)
    wait_for_rows(out, 5, proc)
    send_control(out, "stop")
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 4, err
    assert [line for line in err.splitlines() if line.strip()][-1].startswith("interrupted: stopped from the control")
    with open_run(out) as run:
        assert run.status == "interrupted" and not run.crashed
