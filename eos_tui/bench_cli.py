"""``eos-tui bench [NAME ...] [--quick] [--json FILE]``: the performance benchmarks.

Registered by the CLI as ``app.command("bench")(bench_command)``. Prints the machine first,
then per benchmark a table of medians over repeats, the ratios and its targets (met/missed).
"""

from __future__ import annotations

import json
import math
import time
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console

from engine import bench

bench.register("ui", "eos_tui.bench_ui", before="scaling")  # the UI's benchmark lives with the UI
bench.register("plot", "eos_tui.bench_plot", before="scaling")  # `eos-tui plot` and the p key


def _jsonable(obj):
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if hasattr(obj, "item") and callable(obj.item):
        try:
            return _jsonable(obj.item())
        except (TypeError, ValueError, RuntimeError):
            pass
    if isinstance(obj, (str, int, bool)) or obj is None:
        return obj
    return str(obj)


def run_benchmarks(names: list[str] | None, *, quick: bool = False, json_file: Path | None = None,
                   console: Console | None = None, threads: int | None = None) -> dict:
    """Run the named benchmarks (all if none), print their tables, optionally write JSON.

    ``threads``: torch intra-op threads for the run (default: torch's own default, or 1 with
    ``quick``: small problems on a shared machine are many times slower with spinning OpenMP
    threads). Restored afterwards.
    """
    import torch

    if console is None:
        console = Console()
        if not console.is_terminal:  # logs and pipes: wide enough for the tables
            console = Console(width=180)
    selected = bench.resolve(names)  # raises ConfigError on an unknown name, before any work
    if threads is not None and threads < 1:
        from engine.errors import ConfigError

        raise ConfigError(f"--threads must be >= 1, got {threads}")
    previous = torch.get_num_threads()
    if threads is None and quick:
        threads = 1
    from engine import blas

    if threads is not None:
        torch.set_num_threads(threads)
    blas.set_threads(torch.get_num_threads())
    try:
        return _run_selected(selected, quick=quick, json_file=json_file, console=console)
    finally:
        torch.set_num_threads(previous)
        blas.set_threads(previous)


def _run_selected(selected: list[str], *, quick: bool, json_file: Path | None, console) -> dict:
    from engine.bench.common import machine_info, print_machine, print_result

    info = machine_info()
    print_machine(console, info)
    report = {"machine": info, "quick": bool(quick), "benchmarks": {}}
    for name in selected:
        t0 = time.perf_counter()
        result = bench.run_benchmark(name, quick=quick, console=console)
        result["wall_s"] = time.perf_counter() - t0
        report["benchmarks"][name] = result
        print_result(console, result)
        console.print(f"[dim]{name}: {result['wall_s']:.1f} s[/]")
        if json_file is not None:  # written after every benchmark, so a long run keeps partial results
            Path(json_file).write_text(json.dumps(_jsonable(report), indent=2) + "\n")
    return report


def bench_command(
    names: Optional[list[str]] = typer.Argument(
        None, help="Benchmarks to run (default: all): step, stable-solvers, eigensolver, snapshot, stepcontrol, sweep, ui, plot, scaling."),
    quick: bool = typer.Option(False, "--quick", help="Small sizes and few repeats: every benchmark in seconds."),
    json_file: Optional[Path] = typer.Option(None, "--json", help="Write all results to this JSON file."),
    threads: Optional[int] = typer.Option(
        None, "--threads", help="torch threads (default: torch's default; 1 with --quick)."),
) -> None:
    """Measure the engine: step vs floor, stable-solvers, eigen-solvers, snapshots, sweeps, UI latency, figures, scaling."""
    run_benchmarks(list(names or []), quick=quick, json_file=json_file, threads=threads)
