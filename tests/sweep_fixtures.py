"""A tiny sweep for the sweep tests: 2 sizes × 1 init seed × 2 subset seeds of a 3-layer net on
8×8 Dice (each run a few seconds), run through the real CLI in its own process, and synthetic
sweeps (power-law data written with the store) for the screen and the analysis."""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable

import numpy as np

from conftest import TINY
from engine.store import RunWriter

ROOT = Path(__file__).resolve().parent.parent
TINY_SWEEP_SETS = [s for s in TINY if not s.startswith(("data.size", "train.max_steps", "metrics.snapshot_every"))] + [
    "train.max_steps=120", "metrics.snapshot_every=20", "train.target_loss=1e-9"]
TINY_SWEEP = ["dice-quick-ee", "--sizes", "40,80", "--init-seeds", "1", "--subset-seeds", "2",
              *[a for s in TINY_SWEEP_SETS for a in ("--set", s)]]
TINY_RUNS = [f"size={d}/init=0/subset={j}" for d in (80, 40) for j in (0, 1)]


def sweep_command(out: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "eos_tui.cli", "sweep", *TINY_SWEEP, "--no-ui", "--out", str(out), *extra]


def run_cli(args: list[str], timeout: float = 600) -> subprocess.CompletedProcess:
    return subprocess.run(args, cwd=ROOT, capture_output=True, text=True, timeout=timeout)


def invoke(*args: str):
    """The CLI in this process (commands that start no cluster)."""
    from typer.testing import CliRunner

    from eos_tui.cli import app

    return CliRunner().invoke(app, [str(a) for a in args])


def analyze_json(sweep: Path) -> dict:
    res = invoke("analyze", sweep, "--format", "json")
    assert res.exit_code == 0, res.output
    return json.loads(res.stdout)


def run_json_count(sweep: Path) -> int:
    return sum(1 for _ in Path(sweep).rglob("run.json"))


def synthetic_sweep(root: Path, *, sizes=(100, 200, 400, 800), seeds: int = 2, c1: float = 0.002,
                    c2: float = 0.4, noise: float = 0.05, statuses: dict | None = None,
                    missing: tuple = ()) -> Path:
    """A sweep directory (manifest + runs) whose max P^1 follow ``c1·D^c2`` with log-normal
    noise; ``statuses`` maps a run's relative path to its final status, ``missing`` lists runs
    that were never started."""
    from engine.sweep.manifest import write_manifest
    from engine.sweep.plan import make_plan

    plan = make_plan("dice-quick-ee", sizes=list(sizes), init_seeds=1, subset_seeds=seeds,
                     sets=["train.max_steps=30"])
    write_manifest(root, plan)
    rng = np.random.default_rng(0)
    for spec in plan.runs():
        if spec.rel in missing:
            continue
        cfg = plan.config_for(spec)
        meta = {"name": spec.rel, "preset": "dice-quick-ee", "solver": "ee", "criterion": "ce",
                "dataset": "dice", "n_train": spec.size, "num_eigs": 2, "depth": 3}
        w = RunWriter.create(root / spec.rel, config=cfg, meta=meta, num_eigs=2, heartbeat_interval=None)
        peak = c1 * spec.size ** c2 * math.exp(noise * rng.standard_normal())
        w.append_steps([{"step": s, "t": 0.3 * s, "loss": 2.0 * math.exp(-s / 20), "tau": 0.3,
                         "threshold": 2 / 0.3, "wall_s": 0.1 * s, "transient": int(s < 10),
                         "lambda_H": [5.0 + s / 10, 1.0]} for s in range(30)])
        for s in (5, 10, 15, 20, 25, 29):
            w.append_snapshot(s, {"P_1": peak * (s / 29) if s > 10 else 10 * peak})  # transient spike ignored
        w.close((statuses or {}).get(spec.rel, "finished"))
    return root


def kill_9_when(proc: subprocess.Popen, ready: Callable[[], bool], timeout: float = 300) -> None:
    """SIGKILL ``proc`` as soon as ``ready()`` (polled every 50 ms); fail if it ends first."""
    try:
        deadline = time.monotonic() + timeout
        while not ready():
            assert proc.poll() is None, "the process ended before it could be killed"
            assert time.monotonic() < deadline, "timed out waiting to kill"
            time.sleep(0.05)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
