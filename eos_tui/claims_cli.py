"""``eos-tui claims RUN [--format table|json]``: the paper's claims checked on a run.

Registered by the CLI as ``app.command("claims")``. One line per statement of the paper's
Discussion: the statement, this run's value, and whether it holds (``n/a`` when the run cannot
tell yet, e.g. before two snapshots after the transient). Definitions: docs/metrics.md §8.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Annotated

import typer

from engine.errors import ConfigError

FORMATS = ("table", "json")


def _finite_only(obj):
    """NaN and infinities as ``null`` (strict JSON)."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: _finite_only(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_finite_only(v) for v in obj]
    return obj


def claims_command(
    run: Annotated[Path, typer.Argument(help="Run directory (finished, or still being written).")],
    format: Annotated[str, typer.Option("--format", "-f", help="table or json.")] = "table",
) -> None:
    """Check the paper's claims on RUN: each statement, this run's value, holds or not."""
    from engine.analysis.claims import claims_for_run
    from engine.store import open_run

    if format not in FORMATS:
        raise ConfigError(f"--format must be one of {', '.join(FORMATS)}, got {format!r}")
    with open_run(run) as opened:
        report = claims_for_run(opened)
        name, status, preset = opened.path.name, opened.status, (opened.meta or {}).get("preset")
    if format == "json":
        print(json.dumps(_finite_only({"run": str(run), "status": status, "preset": preset,
                                        **report.as_dict()}), indent=1, ensure_ascii=False, default=str))
        return
    from eos_tui.cli import console, print_table

    held, judged = report.held()
    ref = (f"from step {report.reference_step} (the first snapshot after the transient)"
           if report.reference_step is not None else "no snapshot after the transient yet")
    peak = f" to step {report.peak_step} (peak sharpness)" if report.peak_step is not None else ""
    title = f"claims of the paper on {name} ({report.solver}, {report.steps} steps; growth {ref}{peak})"
    print_table(title, ["paper", "this run", "verdict"],
                [[c.statement, c.value, c.verdict] for c in report.claims])
    console.print(f"{held} of {judged} claims hold on this run "
                  f"({len(report.claims) - judged} cannot be evaluated); status: {status}", highlight=False)
