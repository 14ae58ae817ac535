"""``sweep``: runs per minute of a sweep on 1 and 2 local Dask workers, and its overhead per run.

The same plan (equal runs: one dataset size, several init seeds, so the work divides evenly) runs
once on a ``LocalCluster`` of one worker and once on two (fresh sweep directories, the real
client :func:`engine.sweep.execute.run_sweep`). Measured from the tasks' own clocks:

* ``run s``: a run's own time (the trainer: data, model, every step and snapshot);
* ``core share``: the run's CPU time over its wall time (1.0: a core of its own; less when the
  machine is shared with other work);
* ``in-task s``: task wall time minus the run's own time (the run's lock, its status check);
* ``gap s``: on each worker, from the end of one task to the start of the next (scheduling:
  the result's trip to the client and the next task's dispatch);
* ``overhead % of a run``: ``(workers × wall − Σ run s) / runs`` over the median run, i.e. every
  second a worker slot spent not training (dispatch, gaps, in-task work, an uneven tail).

Cluster start-up and the workers' first imports (torch, the engine: done once per worker process
by a warm-up call) are reported apart, as ``start s``: they are paid once per sweep, not per run.
Targets: 2 workers ≥ 1.7× the runs per minute of 1; overhead ≤ 2% of a run.

A second table gives the expected cost of a run of the paper's sweep (preset ``dice-ce``, the
paper net) at the smallest and the largest Table-1 size, in CPU seconds of this process (one
torch thread: a worker's share, unaffected by other work on a shared machine): a warm step, a
snapshot, and from them a run of 1000 steps (the first, cold step solves the eigenproblem from
scratch: 20 iterations, about 20 warm steps' worth; a snapshot every 100 steps).
"""

from __future__ import annotations

import os
import statistics
import tempfile
from pathlib import Path

from engine.bench.common import BenchResult, median

NAME = "sweep"
DESCRIPTION = "sweep throughput on 1 and 2 local Dask workers, and the scheduling overhead per run"
SPEEDUP_TARGET = 1.7
OVERHEAD_TARGET = 0.02

QUICK_SETS = ["data.image_size=8", "model.depth=3", "model.width=12", "train.max_steps=40",
              "metrics.snapshot_every=20", "train.target_loss=1e-9"]
FULL_SETS = ["model.width=64", "train.max_steps=120", "metrics.snapshot_every=60", "train.target_loss=1e-9"]


def measure(sweep_dir: Path, workers: int) -> dict:
    """Run the planned sweep at ``sweep_dir`` on ``workers`` local workers; its numbers."""
    from engine.sweep.execute import run_sweep

    out = run_sweep(sweep_dir, workers=workers)
    results = [r for r in out.results if r.get("status") == "finished"]
    runs = len(results)
    run_s = [r["run_s"] for r in results]
    in_task = [r["task_s"] - r["run_s"] for r in results]
    gaps = []
    by_worker: dict[int, list[dict]] = {}
    for r in results:
        by_worker.setdefault(r["pid"], []).append(r)
    for tasks in by_worker.values():
        tasks.sort(key=lambda r: r["started"])
        gaps += [b["started"] - a["ended"] for a, b in zip(tasks, tasks[1:])]
    slot_overhead = (workers * out.wall_s - sum(run_s)) / runs if runs else float("nan")
    return {
        "workers": workers, "runs": runs, "start_s": out.cluster_s, "wall_s": out.wall_s,
        "runs_per_min": 60.0 * runs / out.wall_s if out.wall_s > 0 else float("nan"),
        "run_s": median(run_s), "run_s_spread": (max(run_s) - min(run_s)) if run_s else float("nan"),
        "core_share": median([r["cpu_s"] / r["run_s"] for r in results if r["run_s"] > 0]),
        "in_task_s": median(in_task), "gap_s": statistics.fmean(gaps) if gaps else 0.0,
        "overhead_s": slot_overhead, "overhead_pct": 100 * slot_overhead / median(run_s),
        "workers_used": len(by_worker), "failed": len(out.results) - runs,
    }


COST_PRESET = "dice-ce"
QUICK_COST_SETS = ["data.image_size=8", "model.depth=3", "model.width=16"]


def run_cost(preset: str, size: int, sets: list[str], *, steps: int = 1000, warm: int = 2) -> dict:
    """CPU seconds of a warm step and a snapshot of ``preset`` at ``size`` (one torch thread),
    and the cost of a run of ``steps`` steps derived from them."""
    import tempfile as _tempfile
    import time

    import torch

    from engine.config import load_preset
    from engine.step_cost import time_trainer
    from engine.trainer import Trainer

    cfg = load_preset(preset, [f"data.size={size}", "eig.max_iters=1", *sets])
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with _tempfile.TemporaryDirectory() as tmp:
            trainer = Trainer(cfg, Path(tmp) / "run")
            # the first step is the start (a cheap cold step here), not counted
            _, times, snapshot = time_trainer(trainer, warm, clock=time.process_time)
    finally:
        torch.set_num_threads(threads)
    step = median(times)
    cold = 20 * step
    every = cfg["metrics"]["snapshot_every"]
    run_s = cold + steps * step + (steps // every) * snapshot
    return {"case": f"{preset} D={size}", "params": trainer.spec.num_params, "step_cpu_s": step,
            "snapshot_cpu_s": snapshot, "cold_step_cpu_s": cold, f"run_{steps}_cpu_h": run_s / 3600}


def run(quick: bool = False, console=None) -> dict:
    from engine.sweep.manifest import write_manifest
    from engine.sweep.plan import make_plan

    res = BenchResult(NAME, DESCRIPTION)
    sets = QUICK_SETS if quick else FULL_SETS
    size, seeds = (60, 4) if quick else (400, 6)
    plan = make_plan("dice-quick-ee", sizes=[size], init_seeds=seeds, subset_seeds=1, sets=sets)
    res.params = {"plan": f"dice-quick-ee, D={size}, {seeds} init seeds ({seeds} equal runs)",
                  "sets": " ".join(sets), "cores": os.cpu_count()}
    rows = []
    with tempfile.TemporaryDirectory(prefix="eos-bench-sweep-") as tmp:
        for workers in (1, 2):
            sweep_dir = Path(tmp) / f"w{workers}"
            write_manifest(sweep_dir, plan)
            rows.append(measure(sweep_dir, workers))
            if console is not None:
                console.log(f"sweep: {workers} worker(s) done")
    res.table("sweep of equal runs (wall: first submit to last result; start: cluster + worker imports)", rows,
              ["workers", "runs", "start_s", "wall_s", "runs_per_min", "run_s", "run_s_spread", "core_share",
               "in_task_s", "gap_s", "overhead_s", "overhead_pct"])
    cost_sizes = (60, 120) if quick else (468, 7500)
    costs = [run_cost(COST_PRESET, d, QUICK_COST_SETS if quick else []) for d in cost_sizes]
    res.table(f"cost of a run of the paper's sweep ({COST_PRESET}), CPU seconds on one thread", costs,
              ["case", "params", "step_cpu_s", "snapshot_cpu_s", "cold_step_cpu_s", "run_1000_cpu_h"])
    one, two = rows
    speedup = two["runs_per_min"] / one["runs_per_min"]
    overhead = max(r["overhead_pct"] for r in rows) / 100
    res.target("runs/min, 2 workers ÷ 1 worker", speedup, f"≥ {SPEEDUP_TARGET:g}×", speedup >= SPEEDUP_TARGET)
    res.target("scheduling overhead per run (worst of the two)", overhead, f"≤ {OVERHEAD_TARGET:.0%} of a run",
               overhead <= OVERHEAD_TARGET)
    slow = two["run_s"] / one["run_s"]
    res.note(f"a run took {slow:.2f}× as long with 2 workers as with 1 (median {two['run_s']:.2f} s vs "
             f"{one['run_s']:.2f} s): the speed-up is bounded by that, whatever the scheduling; on a machine "
             "shared with other work the two workers compete with it for the cores")
    if quick:
        res.note("--quick: runs of a fraction of a second, so fixed per-task costs weigh far more than in a "
                 "real sweep; the targets are for the full benchmark")
    return res.as_dict()
