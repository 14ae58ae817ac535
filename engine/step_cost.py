"""Measured cost of a preset on this machine (for ``eos-tui presets``): per step and in total.

``measure_step_cost`` builds the preset's trainer (data, model, the ``lr = "auto"`` solve), takes
one cold step, times ``steps`` warm steps and one full snapshot, and remembers the result in
the user cache directory, keyed by the preset's resolved config and the host, so the listing
can show it later without re-measuring. A preset whose data is absent can be timed on random
data of its shape (``random_data=True``: standard-normal inputs of the data set's dimension,
random labels, the preset's subset size) — the cost of a step depends on the shapes, not on the
values; the listing marks such figures.

The expected total of a run is ``setup + steps · step + snapshots · snapshot``, where ``steps``
is the preset's ``train.expected_steps`` (how many steps a full run took when it was measured,
docs/reproduction.md) or, if that is 0, its ``train.max_steps`` (then the total is a bound),
and ``snapshots`` the number the trainer takes in that many steps.
"""

from __future__ import annotations

import copy
import hashlib
import json
import platform
import statistics
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from engine.data.paths import default_data_dir

VERSION = 2  # of the cached record; older records are ignored


@dataclass(frozen=True)
class StepCost:
    """Measured seconds of one preset's parts on this host."""

    step_s: float  # median warm solver step
    snapshot_s: float  # one full snapshot (layer metrics, λ1(G), λ1(H−G)) and its checkpoint data
    setup_s: float  # data, model, the lr rule and the first (cold) step
    random_data: bool = False  # timed on random data of the preset's shape (setup_s: a lower bound)

    def total(self, steps: int, snapshots: int) -> float:
        """Seconds of a run of ``steps`` steps with ``snapshots`` snapshots."""
        return self.setup_s + steps * self.step_s + snapshots * self.snapshot_s


def expected_steps(cfg: dict) -> tuple[int, bool]:
    """``(steps, measured)``: ``train.expected_steps`` if set, else ``train.max_steps`` (a bound)."""
    expected = cfg["train"]["expected_steps"]
    return (expected, True) if expected else (cfg["train"]["max_steps"], False)


def snapshot_count(cfg: dict, steps: int) -> int:
    """Snapshots the trainer takes in a run of ``steps`` rows (``Trainer.is_snapshot_step`` + the last)."""
    mc = cfg["metrics"]
    taken = {s for s in range(mc["snapshot_every"], steps, mc["snapshot_every"])}
    if mc["transient_steps"] < steps:
        taken.add(mc["transient_steps"])
    taken.add(max(steps - 1, 0))
    return len(taken)


def _cache_file() -> Path:
    return default_data_dir() / "step_costs.json"


def _key(name: str, cfg: dict, random_data: bool) -> str:
    blob = json.dumps(cfg, sort_keys=True, default=str) + platform.node() + ("random" if random_data else "")
    return f"{name}:{hashlib.sha256(blob.encode()).hexdigest()[:16]}"


def _load() -> dict:
    try:
        data = json.loads(_cache_file().read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def cached_step_cost(name: str, cfg: dict, *, random_data: bool = False) -> StepCost | None:
    """The cost measured earlier for this exact config on this host, if any."""
    record = _load().get(_key(name, cfg, random_data))
    if not isinstance(record, dict) or record.get("version") != VERSION:
        return None
    return StepCost(**{k: record[k] for k in ("step_s", "snapshot_s", "setup_s", "random_data")})


def random_training_set(cfg: dict):
    """Random data of the shape of the preset's data set and subset size (for timing only)."""
    from engine.data import dataset_info
    from engine.data.registry import TrainingSet

    info = dataset_info(cfg["data"]["name"])
    n = cfg["data"]["size"] or min(info["paper_sizes"])
    d0 = info["input_dim"] if cfg["data"]["name"] != "dice" else cfg["data"]["image_size"] ** 2
    gen = torch.Generator().manual_seed(0)
    X = torch.randn(n, d0, generator=gen, dtype=torch.float64)
    y = torch.randint(0, info["num_classes"], (n,), generator=gen)
    return TrainingSet(name=info["name"], X=X, y=y, indices=torch.arange(n), n_total=info["n_total"],
                       num_classes=info["num_classes"], input_shape=(d0,),
                       description=f"random data of the shape of {info['name']} (timing only)")


def measure_step_cost(name: str, cfg: dict, *, steps: int = 3, random_data: bool = False) -> StepCost:
    """Time the preset's setup and first step, ``steps`` warm steps and one snapshot; cached."""
    from engine.trainer import DTYPES, Trainer

    run_cfg = copy.deepcopy(cfg)
    data = None
    if random_data:
        # only the warm steps and the snapshot are representative on random data: the first,
        # cold eigen-solve is cut short (its cost here would depend on a spectrum the real data
        # does not have), so ``setup_s`` of such a measurement is a lower bound
        run_cfg["eig"]["max_iters"] = min(run_cfg["eig"]["max_iters"], 2)
        data = random_training_set(run_cfg)
        data.X = data.X.to(DTYPES[run_cfg["model"]["dtype"]])
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        trainer = Trainer(run_cfg, Path(tmp) / "run", data=data)
        built = time.perf_counter() - start
        first, times, snapshot = time_trainer(trainer, steps)
    cost = StepCost(step_s=statistics.median(times), snapshot_s=snapshot, setup_s=built + first,
                    random_data=random_data)
    data_ = _load()
    data_[_key(name, cfg, random_data)] = {"version": VERSION, **asdict(cost)}
    path = _cache_file()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(data_, indent=1))
    except OSError:
        pass  # a read-only cache only means the value is not remembered
    return cost


def time_trainer(trainer, warm: int, clock=time.perf_counter) -> tuple[float, list[float], float]:
    """Time ``trainer`` from its θ0 by ``clock``: its first step, ``warm`` more steps (each), then
    one snapshot. The first step is the cold one (the initial eigen-solve)."""
    start = clock()
    theta, _ = trainer.solver.step(trainer.theta)
    first = clock() - start
    times = []
    for _ in range(warm):
        start = clock()
        theta, _ = trainer.solver.step(theta)
        times.append(clock() - start)
    start = clock()
    trainer.snapshots.compute(theta)
    return first, times, clock() - start


def format_duration(seconds: float) -> str:
    """``42 s``, ``3.5 min``, ``2.1 h``."""
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.1f} h"
