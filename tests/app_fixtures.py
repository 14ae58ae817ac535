"""Run directories for the app tests: a real tiny training run, and controlled stores.

* :func:`real_tiny_run` trains a real (tiny) run with the engine once per test session and
  normalises its wall-clock fields so that screenshots are deterministic.
* :func:`synthetic_run` writes a controlled store with ``engine.store.RunWriter`` (a huge run,
  an ``ee`` run, a run left ``running``) for tests that need exact control.
* :func:`start_writer` starts a separate writer *process* that appends rows flat out (or at
  a given pace) until it is stopped through the control channel or killed.

Run as a script (``python tests/app_fixtures.py write DIR ...``) it is that writer process.
"""

from __future__ import annotations

import math
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from engine.store import RunWriter  # noqa: E402
from eos_tui.app.pilot import settle  # noqa: E402,F401 - re-exported for the tests

CREATED = "2026-01-01T12:00:00+00:00"
TINY_OVERRIDES = [
    "model.width=16", "model.depth=3", "data.size=120", "train.max_steps=40",
    "metrics.snapshot_every=10", "eig.every=2", "eig.num=3",
]


def _meta(name: str, solver: str, lr: float, depth: int, k: int, **extra) -> dict:
    meta = {
        "name": name, "preset": extra.pop("preset", "synthetic"), "description": "synthetic test run",
        "solver": solver, "criterion": "ce", "dataset": "dice", "n_train": 120, "device": "cpu",
        "dtype": "float64", "lr": lr, "k": k, "num_eigs": k, "depth": depth, "num_outputs": 6,
        "num_params": 1000, "created": CREATED, "target_loss": 0.01, "group": None,
    }
    meta.update(extra)
    return meta


def synthetic_rows(n: int, *, solver: str = "gd", lr: float = 0.3, k: int = 2, start: int = 0,
                   eig_every: int = 2, seed: int = 0) -> list[dict]:
    """Step rows that look like edge-of-stability training (deterministic)."""
    rng = np.random.default_rng(seed + start)
    rows = []
    t = start * lr
    for step in range(start, start + n):
        thr_gd = 2.0 / lr
        lam = thr_gd * (1 - 0.8 * math.exp(-step / 15.0)) + 0.2 * math.sin(step / 2.0)
        if solver == "ee":
            lam = 3.0 * thr_gd * (1 - 0.8 * math.exp(-step / 15.0))
            tau = min(lr, 1.0 / (0.6 * lam))
        else:
            tau = lr
        loss = 1.8 * math.exp(-step / 25.0) + 0.003 + 0.01 * abs(rng.standard_normal()) * math.exp(-step / 50)
        row = {
            "step": step, "t": t, "loss": loss, "accuracy": min(1.0, 0.2 + step / 60.0),
            "grad_norm": loss, "lr": lr, "tau": tau, "threshold": 2.0 / tau,
            "wall_s": 0.05 * step, "hvp_count": 12 * (step // eig_every + 1),
            "transient": int(step < 10),
        }
        if step % eig_every == 0:
            row["lambda_H"] = [lam * (0.7 ** j) for j in range(k)]
        rows.append(row)
        t += tau
    return rows


def synthetic_snapshot(step: int, depth: int) -> dict[str, float]:
    g = 1.0 + step / 20.0
    values = {"lambda_G1": 5.0 * g / (1 + g / 4), "lambda_HmG1": 0.3 * g, "overlap_ratio": 0.2 + 0.5 * (1 - 1 / g),
              "EK2": 8.0 * g, "a_L": 0.5 / g}
    p = 1.0
    for i in range(depth, 0, -1):
        if i < depth:
            values[f"s_{i}"] = 1.5 + 0.1 * i
            values[f"r_{i}"] = min(1.0, 0.05 * g * (1 + 0.2 * i))
            p *= values[f"r_{i}"]
        values[f"P_{i}"] = p
        values[f"a_{i}"] = 0.5 / g
        values[f"m_{i}"] = 10.0 + i
        values[f"kappa_{i}"] = 0.9
        values[f"EK2_layer_{i}"] = 2.0 * g * (depth - i + 1)
    return values


def synthetic_run(path: Path, *, steps: int = 60, solver: str = "gd", lr: float = 0.3, depth: int = 3,
                  k: int = 2, snapshot_every: int = 10, status: str | None = "finished",
                  name: str | None = None, preset: str = "synthetic", meta: dict | None = None,
                  snapshot_extra=None) -> Path:
    """Write a controlled run with ``RunWriter`` (``status=None`` leaves it ``running``).

    ``meta`` overrides fields of ``run.json`` (e.g. ``n_train``); ``snapshot_extra(step)`` adds
    values to each snapshot (e.g. a ``lambda_G1_converged`` flag)."""
    path = Path(path)
    meta = dict(_meta(name or path.name, solver, lr, depth, k, preset=preset), **(meta or {}))
    config = {"preset": preset, "train": {"solver": solver, "lr": lr, "target_loss": 0.01},
              "model": {"depth": depth}}
    w = RunWriter.create(path, config=config, meta=meta, num_eigs=k, heartbeat_interval=None)
    rows = synthetic_rows(steps, solver=solver, lr=lr, k=k)
    for chunk in range(0, steps, 5000):
        w.append_steps(rows[chunk:chunk + 5000])
    for s in range(0, steps, snapshot_every):
        w.append_snapshot(s, dict(synthetic_snapshot(s, depth), **(snapshot_extra(s) if snapshot_extra else {})))
    if status is not None:
        w.close(status)
    else:
        w._conn.close()  # leave it "running" (a reader will see the writer as gone) # noqa: SLF001
    return path


def normalised_copy(src: Path, dst: Path, per_step: float = 0.05) -> Path:
    """Copy the run ``src`` to ``dst`` through the store API with deterministic time fields:
    ``wall_s = step * per_step`` and a fixed ``created`` (for snapshot tests)."""
    from engine.store import open_run

    with open_run(src) as run:
        meta = dict(run.meta, created=CREATED, name=Path(dst).name)
        steps = run.steps()
        snaps = run.snapshots()
        status, message = run.status, run.status_message
        w = RunWriter.create(dst, config=run.config, meta=meta, num_eigs=run.num_eigs,
                             heartbeat_interval=None)
    names = list(steps)
    rows = []
    for i in range(len(steps["step"])):
        row = {}
        for name in names:
            v = float(steps[name][i])
            row[name] = None if math.isnan(v) else v
        row["step"] = int(steps["step"][i])
        row["wall_s"] = row["step"] * per_step
        rows.append(row)
    w.append_steps(rows)
    for j, step in enumerate(snaps["step"]):
        w.append_snapshot(int(step), {k: float(v[j]) for k, v in snaps.items() if k != "step"})
    w.close(status, message)
    return Path(dst)


def real_tiny_run(path: Path, preset: str = "dice-quick", extra: list[str] | None = None) -> Path:
    """Train a real tiny run with the engine into ``path`` and normalise its wall-clock fields."""
    import torch

    from engine.config import load_preset
    from engine.trainer import train

    torch.set_num_threads(1)  # tiny problem: threads only add contention (and round-off drift)
    cfg = load_preset(preset, TINY_OVERRIDES + list(extra or []))
    path = Path(path)
    raw = path.parent / f".{path.name}-raw"
    train(cfg, raw)
    return normalised_copy(raw, path)


def spawn_real_training(path: Path, preset: str = "dice-quick", min_rows: int = 5,
                        extra: list[str] | None = None):
    """Start the real engine (``engine.launch.spawn_training``) on a tiny but long run and wait
    until it has committed ``min_rows`` rows. Returns the Popen; the caller kills it."""
    from engine.config import load_preset
    from engine.launch import spawn_training

    # a target loss it never reaches: the run stays live until the test stops or kills it
    cfg = load_preset(preset, TINY_OVERRIDES + ["train.max_steps=100000", "train.target_loss=1e-12"]
                      + list(extra or []))
    proc = spawn_training(cfg, Path(path), Path(path).parent / f"{Path(path).name}.log")
    deadline = time.monotonic() + 120
    while not (Path(path) / "run.json").exists():
        if proc.poll() is not None or time.monotonic() > deadline:
            log = (Path(path).parent / f"{Path(path).name}.log")
            raise RuntimeError(f"engine did not start: {log.read_text() if log.exists() else ''}")
        time.sleep(0.1)
    wait_for_rows(path, min_rows, timeout=120)
    return proc


def engine_available() -> bool:
    try:
        import engine.trainer  # noqa: F401
        from engine.config import load_preset  # noqa: F401
    except Exception:
        return False
    return True


# -- a writer in its own process ---------------------------------------------------------------

def start_writer(path: Path, *, delay: float = 0.0, steps: int = 10**9, k: int = 2, depth: int = 3,
                 snapshot_every: int = 50) -> subprocess.Popen:
    """Start a writer process appending synthetic rows to a new run at ``path``.

    ``delay`` seconds between steps (0: flat out). It honours ``pause``/``stop`` on the
    control channel (``stop`` ends the run ``interrupted``, as the engine does).
    Returns once the run directory exists.
    """
    proc = subprocess.Popen(
        [sys.executable, __file__, "write", str(path), str(delay), str(steps), str(k), str(depth),
         str(snapshot_every)],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )
    deadline = time.monotonic() + 20
    while not (Path(path) / "run.json").exists():
        if proc.poll() is not None or time.monotonic() > deadline:
            err = proc.stderr.read().decode() if proc.stderr else ""
            raise RuntimeError(f"writer did not start: {err}")
        time.sleep(0.02)
    return proc


@contextmanager
def writing_run(path: Path, *, delay: float = 0.0, rows: int = 1) -> Iterator[subprocess.Popen]:
    """A writer process (:func:`start_writer`) with at least ``rows`` rows committed; killed on
    leaving the block if it is still running."""
    proc = start_writer(path, delay=delay)
    try:
        wait_for_rows(path, rows)
        yield proc
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def wait_for_rows(path: Path, n: int, timeout: float = 20.0) -> int:
    """Wait until the run at ``path`` has at least ``n`` committed rows; return the count."""
    from engine.store import open_run

    deadline = time.monotonic() + timeout
    with open_run(path) as run:
        while True:
            count = run.num_steps()
            if count >= n or time.monotonic() > deadline:
                return count
            time.sleep(0.02)


def _writer_main(path: str, delay: str, steps: str, k: str, depth: str, snapshot_every: str) -> None:
    delay_f, n, k_i, depth_i, snap = float(delay), int(steps), int(k), int(depth), int(snapshot_every)
    meta = _meta(Path(path).name, "gd", 0.3, depth_i, k_i, preset="synthetic-live")
    w = RunWriter.create(path, config={"preset": "synthetic-live"}, meta=meta, num_eigs=k_i,
                         heartbeat_interval=1.0)
    step = 0
    while step < n:
        control = w.poll_control()
        if control == "stop":
            w.close("interrupted", "stopped from the UI")
            return
        if control == "pause":
            time.sleep(0.05)
            continue
        row = synthetic_rows(1, start=step, k=k_i)[0]
        w.append_step(row)
        if step % snap == 0:
            w.append_snapshot(step, synthetic_snapshot(step, depth_i))
        step += 1
        if delay_f:
            time.sleep(delay_f)
    w.close("finished")


if __name__ == "__main__":
    if len(sys.argv) >= 2 and sys.argv[1] == "write":
        _writer_main(*sys.argv[2:8])


# -- helpers for Pilot tests ---------------------------------------------------------------------

async def wait_until(pilot, condition, timeout: float = 20.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await pilot.pause(0.05)


def screen_text(app) -> str:
    """The visible text of the app (from its SVG screenshot), for assertions."""
    import html
    import re

    svg = app.export_screenshot()
    rows: dict[float, list[tuple[float, str]]] = {}
    for m in re.finditer(r'<text class="[^"]*-r\d+" x="([\d.]+)" y="([\d.]+)"[^>]*>([^<]*)</text>', svg):
        rows.setdefault(float(m.group(2)), []).append((float(m.group(1)), html.unescape(m.group(3))))
    lines = []
    for y in sorted(rows):
        lines.append("".join(t for _, t in sorted(rows[y])).replace("\xa0", " "))
    return "\n".join(lines)


# -- pytest fixtures (import them into a test module to use them) -------------------------------

import pytest  # noqa: E402


_SESSION: dict[str, Path] = {}


@pytest.fixture(scope="session")
def runs_root(tmp_path_factory) -> Path:
    """A runs folder with a real tiny GD run ``gd`` and ``ee`` run (synthetic if no engine yet).

    Trained once per test session: the fixture is imported into several test modules, which
    would otherwise each get their own copy of a session fixture.
    """
    if "runs_root" in _SESSION:
        return _SESSION["runs_root"]
    root = tmp_path_factory.mktemp("runs")
    _SESSION["runs_root"] = root
    if engine_available():
        real_tiny_run(root / "gd", "dice-quick")
        real_tiny_run(root / "ee", "dice-quick-ee")
    else:  # pragma: no cover - only while the engine is being written
        synthetic_run(root / "gd", solver="gd")
        synthetic_run(root / "ee", solver="ee")
    return root


@pytest.fixture(scope="session")
def gd_run(runs_root) -> Path:
    return runs_root / "gd"


@pytest.fixture(scope="session")
def ee_run(runs_root) -> Path:
    return runs_root / "ee"
