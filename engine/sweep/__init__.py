"""Dataset-size sweeps on Dask distributed (the paper's Table 2).

One concept a module: :mod:`~engine.sweep.plan` (sizes × init seeds × subset seeds of a preset,
each run's config and directory), :mod:`~engine.sweep.manifest` (the sweep directory:
``sweep.json``, the journal, the client record; its layout is documented there),
:mod:`~engine.sweep.task` (one run on a Dask worker: idempotent, resumes interrupted runs),
:mod:`~engine.sweep.execute` (the client: ``LocalCluster`` or a scheduler address, progress,
Ctrl-C), :mod:`~engine.sweep.status` (where a sweep stands, read from its directory, with ETA and
the live power-law fit). ``python -m engine.sweep SWEEP`` runs the client of a planned sweep (the
live sweep screen spawns it).
"""

from engine.sweep.execute import SweepOutcome, check_scheduler, run_sweep
from engine.sweep.manifest import check_plan, is_sweep_dir, read_plan, set_aside_stale_runs, write_manifest
from engine.sweep.plan import RunSpec, SweepPlan, make_plan, parse_count, parse_sizes
from engine.sweep.status import RunState, SweepScanner, SweepStatus, format_duration, sweep_status

__all__ = [
    "RunSpec", "SweepPlan", "make_plan", "parse_count", "parse_sizes",
    "check_plan", "is_sweep_dir", "read_plan", "set_aside_stale_runs", "write_manifest",
    "SweepOutcome", "check_scheduler", "run_sweep",
    "RunState", "SweepScanner", "SweepStatus", "format_duration", "sweep_status",
]
