"""Runs killed with SIGKILL, SIGTERM or SIGINT at random points, during a checkpoint write and
inside a store transaction: every one reopens, exports and replays to its last committed step,
with its checkpoints complete or absent and no committed row lost."""

from __future__ import annotations

import json
import os
import random
import signal
import socket
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from faults.faultlib import (
    EXIT_BY_SIGNAL,
    FIGURES,
    check_recovered,
    committed,
    start_run,
    wait_for_commits,
)

SEED = int(os.environ.get("EOS_TUI_FAULT_SEED", "15"))
K, T, I = signal.SIGKILL, signal.SIGTERM, signal.SIGINT

# (signal, point): "random" kills land wherever the run is after a random number of rows and a
# random delay; "checkpoint" and "transaction" strike from inside the child (see child.py).
PLAN = ([(K, "random")] * 8 + [(T, "random")] * 3 + [(I, "random")] * 3
        + [(s, "checkpoint") for s in (K, T, I)] + [(s, "transaction") for s in (K, T, I)])


def _kill_one(i: int, sig: int, point: str, tmp: Path, rng: random.Random) -> str | None:
    """Run case ``i``; ``None`` if the run recovered, else what went wrong."""
    out, ledger = tmp / f"run{i:02d}-{signal.Signals(sig).name}-{point}", tmp / f"commits{i:02d}"
    fault = {"checkpoint": f"checkpoint:2:{signal.Signals(sig).name}",
             "transaction": f"transaction:7:{signal.Signals(sig).name}"}.get(point)
    proc = start_run(out, "--set", "metrics.snapshot_every=5", fault=fault, commits=ledger,
                     slow_step=0.01 if point == "random" else 0.0)
    try:
        if point == "random":
            wait_for_commits(ledger, rng.randint(1, 12), proc)
            time.sleep(rng.uniform(0.0, 0.8))
            proc.send_signal(sig)
        proc.wait(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    stderr = proc.stderr.read()
    if proc.returncode != EXIT_BY_SIGNAL[sig]:
        return f"{out.name}: exit {proc.returncode}, expected {EXIT_BY_SIGNAL[sig]}: {stderr[-500:]}"
    if "Traceback" in stderr:
        return f"{out.name}: traceback: {stderr[-800:]}"
    commits = committed(ledger)
    if point == "transaction" and commits != list(range(6)):
        return f"{out.name}: the kill did not land in the 7th step's transaction: {commits}"
    try:
        lost = check_recovered(out, commits, sig, tmp)
    except Exception as exc:  # noqa: BLE001 - reported per run below
        return f"{out.name}: {type(exc).__name__}: {exc}"
    FIGURES["runs recovered"] += 1
    FIGURES["rows lost"] += lost
    return None if lost == 0 else f"{out.name}: {lost} committed rows lost"


@pytest.mark.slow
def test_runs_killed_at_random_and_chosen_points_recover(tmp_path: Path) -> None:
    rng = random.Random(SEED)
    cases = [(i, sig, point, random.Random(rng.random())) for i, (sig, point) in enumerate(PLAN)]
    for _, sig, point, _ in cases:
        FIGURES["runs killed"] += 1
        FIGURES[f"killed by: {signal.Signals(sig).name}"] += 1
        FIGURES[f"killed at: {point}"] += 1
    with ThreadPoolExecutor(max_workers=3) as pool:
        problems = [p for p in pool.map(lambda c: _kill_one(c[0], c[1], c[2], tmp_path, c[3]), cases) if p]
    assert not problems, f"seed {SEED}:\n" + "\n".join(problems)
    assert len(PLAN) >= 20


@pytest.mark.slow
@pytest.mark.parametrize("sig", [K, T])
def test_a_start_killed_before_its_run_exists_is_not_left_half_made(tmp_path: Path, sig: int) -> None:
    """Killed while it imports and loads data (before the run exists): a caught signal removes
    the directory it created; after SIGKILL the directory lists as interrupted, never corrupt."""
    from engine.store import list_runs

    runs = tmp_path / "runs"
    out = runs / "early"
    proc = start_run(out)
    deadline = time.monotonic() + 60
    while not (out / ".starting").exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)
    assert (out / ".starting").exists() and not (out / "run.json").exists(), "the run was created too quickly"
    proc.send_signal(sig)
    proc.wait(timeout=60)
    FIGURES["runs killed"] += 1
    FIGURES[f"killed by: {signal.Signals(sig).name}"] += 1
    FIGURES["killed at: start-up"] += 1
    assert proc.returncode == EXIT_BY_SIGNAL[sig]
    listed = {s.name: s.status for s in list_runs(runs)}
    if sig == K:
        assert listed == {"early": "interrupted"}
        marker = json.loads((out / ".starting").read_text())
        assert marker["pid"] == proc.pid and marker["host"] == socket.gethostname()
    else:
        assert listed == {} and not out.exists()
    FIGURES["runs recovered"] += 1
