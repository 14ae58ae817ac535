"""Measured cost of one training step of a preset on this machine (for ``eos-tui presets``).

``measure_step_cost`` builds the preset's problem and solver, takes one (cold) step, then
times warm steps, and remembers the median in the user cache directory, keyed by the preset's
resolved config and the host, so the listing can show it later without re-measuring.
"""

from __future__ import annotations

import hashlib
import json
import platform
import statistics
import tempfile
import time
from pathlib import Path

from engine.data.paths import default_data_dir


def _cache_file() -> Path:
    return default_data_dir() / "step_costs.json"


def _key(name: str, cfg: dict) -> str:
    blob = json.dumps(cfg, sort_keys=True, default=str) + platform.node()
    return f"{name}:{hashlib.sha256(blob.encode()).hexdigest()[:16]}"


def _load() -> dict:
    try:
        return json.loads(_cache_file().read_text())
    except (OSError, ValueError):
        return {}


def cached_step_cost(name: str, cfg: dict) -> float | None:
    """Seconds per warm step measured earlier for this exact config on this host, if any."""
    value = _load().get(_key(name, cfg))
    return float(value) if value is not None else None


def measure_step_cost(name: str, cfg: dict, *, steps: int = 3) -> float:
    """Median seconds of ``steps`` warm solver steps (after one cold step); cached."""
    from engine.trainer import Trainer

    with tempfile.TemporaryDirectory() as tmp:
        trainer = Trainer(cfg, Path(tmp) / "run")
        theta, _ = trainer.solver.step(trainer.theta)
        times = []
        for _ in range(steps):
            start = time.perf_counter()
            theta, _ = trainer.solver.step(theta)
            times.append(time.perf_counter() - start)
    cost = statistics.median(times)
    data = _load()
    data[_key(name, cfg)] = cost
    path = _cache_file()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(data, indent=1))
    except OSError:
        pass  # a read-only cache only means the value is not remembered
    return cost
