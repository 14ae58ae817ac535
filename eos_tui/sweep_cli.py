"""``eos-tui sweep``, ``sweep status``, ``sweep watch``, ``analyze`` and ``resume``.

Mounted into the main CLI by :func:`mount` (each command wrapped in ``user_errors``): a user's
mistake is one ``error:`` line and exit status 2, never a traceback.

* ``eos-tui sweep PRESET [--sizes ...] [--init-seeds N] [--subset-seeds N] [--set k=v] [--out DIR]
  [--workers N | --scheduler ADDRESS] [--no-ui] [--force] [--retry-failed]``: plan, write the
  manifest, run on Dask (the live sweep screen, or headless with progress and ETA). Running the
  same command again continues the sweep.
* ``eos-tui sweep status SWEEP``: the table of runs and their states (tab-separated when piped).
* ``eos-tui sweep watch SWEEP``: the live sweep screen of a sweep started elsewhere.
* ``eos-tui analyze SWEEP [--format table|csv|json]``: max P^1 per run, the power-law fit with R²
  and bootstrap intervals, per-size medians, the paper's Table-2 row.
* ``eos-tui resume RUN [--no-ui]``: continue an interrupted run from its last checkpoint.
"""

from __future__ import annotations

import csv
import json
import math
import os
import sys
import time
from pathlib import Path
from typing import Annotated, Optional

import typer

from engine.errors import ConfigError

FORMATS = ("table", "csv", "json")
SWEEP_ACTIONS = ("status", "watch")


def default_workers() -> int:
    """One worker per core this process may use."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - not Linux
        return max(1, os.cpu_count() or 1)


def _num(value, spec: str = ".4g") -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "-"
    return format(value, spec)


def _ci(pair) -> str:
    lo, hi = pair
    return f"[{_num(lo)}, {_num(hi)}]"


# -- sweep ----------------------------------------------------------------------------------


def sweep(
    target: Annotated[str, typer.Argument(metavar="PRESET | status SWEEP | watch SWEEP",
                                          help="A preset to sweep, or `status SWEEP` / `watch SWEEP`.")],
    sweep_dir: Annotated[Optional[Path], typer.Argument(metavar="[SWEEP]", help="The sweep directory (status, watch).")] = None,
    sizes: Annotated[Optional[str], typer.Option("--sizes", help="Dataset sizes, comma-separated (default: the paper's Table-1 sizes of the data set).")] = None,
    init_seeds: Annotated[str, typer.Option("--init-seeds", help="Initialisation seeds per size.")] = "4",
    subset_seeds: Annotated[str, typer.Option("--subset-seeds", help="Training-subset seeds per size.")] = "4",
    sets: Annotated[Optional[list[str]], typer.Option("--set", "-s", help="Override a setting of every run: key=value (repeatable).")] = None,
    out: Annotated[Optional[Path], typer.Option("--out", "-o", help="Sweep directory (default: RUNS/sweep-PRESET); on a cluster a path every worker sees.")] = None,
    workers: Annotated[Optional[str], typer.Option("--workers", "-w", help="Local Dask workers, one process and one torch thread each (default: the cores).")] = None,
    scheduler: Annotated[Optional[str], typer.Option("--scheduler", help="Submit to this Dask scheduler (e.g. tcp://host:8786) instead of starting a local cluster.")] = None,
    no_ui: Annotated[bool, typer.Option("--no-ui", help="Headless: progress lines instead of the live sweep screen.")] = False,
    force: Annotated[bool, typer.Option("--force", help="Replace a different plan in --out (runs it cannot reuse are moved to superseded-*/, never deleted).")] = False,
    retry_failed: Annotated[bool, typer.Option("--retry-failed", help="Run failed runs again (by default they stay recorded as failed).")] = False,
    runs_dir: Annotated[Optional[Path], typer.Option("--runs-dir", help="Parent of the default sweep directory (default: $EOS_TUI_RUNS or ./runs).")] = None,
) -> None:
    """Run a dataset-size sweep of PRESET on Dask (sizes × init seeds × subset seeds), live.

    `eos-tui sweep status SWEEP` prints its runs and their states; `eos-tui sweep watch SWEEP`
    follows a sweep started elsewhere. Running the same command again skips finished runs and
    continues interrupted ones from their last checkpoint.
    """
    if target in SWEEP_ACTIONS:
        if sweep_dir is None:
            raise ConfigError(f"`eos-tui sweep {target}` needs the sweep directory: eos-tui sweep {target} SWEEP")
        (sweep_status_cmd if target == "status" else sweep_watch_cmd)(sweep_dir)
        return
    if sweep_dir is not None:
        raise ConfigError(f"unexpected argument {str(sweep_dir)!r}: give the sweep directory with --out")
    if scheduler and workers is not None:
        raise ConfigError("--workers sizes the local cluster; with --scheduler the cluster has its own workers")
    from engine.resume import run_lock
    from engine.sweep.execute import check_scheduler, client_lock_path
    from engine.sweep.manifest import check_plan, set_aside_stale_runs, write_manifest
    from engine.sweep.plan import make_plan, parse_count, parse_sizes

    from eos_tui.cli import err_console, runs_root

    if scheduler:  # first: an unreachable scheduler is reported within seconds (before torch loads)
        n = check_scheduler(scheduler)
        err_console.print(f"Dask scheduler {scheduler}: {n} workers", highlight=False)
    plan = make_plan(target, sizes=parse_sizes(sizes), init_seeds=init_seeds,
                     subset_seeds=subset_seeds, sets=sets)
    n_workers = parse_count(workers, "--workers") if workers is not None else default_workers()
    if not scheduler:  # the workers are local: check the device here (a cluster's workers check their own)
        from engine.trainer import resolve_device  # torch: after the checks that do not need it

        resolve_device(plan.base["train"]["device"])
    out = out if out is not None else runs_root(runs_dir) / f"sweep-{target}"
    differs = check_plan(out, plan, force=force)
    if out.is_dir():
        with run_lock(client_lock_path(out), wait=False) as free:
            if not free:
                raise ConfigError(f"another eos-tui sweep client is running {out}; watch it with "
                                  f"`eos-tui sweep watch {out}`")
    if differs:
        moved = set_aside_stale_runs(out, plan)
        if moved:
            err_console.print(f"--force: {len(moved)} runs of the previous plan moved to {out}/superseded-*/",
                              highlight=False)
    write_manifest(out, plan)
    err_console.print(f"sweep [bold]{out}[/]: {plan.describe()}", highlight=False)
    if no_ui:
        raise typer.Exit(_sweep_headless(out, n_workers, scheduler, retry_failed))
    from engine.launch import spawn_sweep

    from eos_tui.app import run_sweep_screen

    proc = spawn_sweep(out, workers=n_workers, scheduler=scheduler, retry_failed=retry_failed)
    raise typer.Exit(run_sweep_screen(out, process=proc))


class SweepPrinter:
    """Headless output of a sweep: one line per finished run, and a progress line with ETA (a
    live line on a terminal, a plain line every ``interval`` seconds otherwise)."""

    def __init__(self, sweep_dir: Path, *, interval: float = 10.0) -> None:
        from rich.console import Console

        self.sweep_dir = sweep_dir
        self.console = Console()
        self.plain = not self.console.is_terminal
        self.interval = interval
        self.last_print = 0.0
        self.live = None
        self.t0 = time.monotonic()

    def __enter__(self) -> "SweepPrinter":
        if not self.plain:
            from rich.live import Live
            from rich.text import Text

            self.live = Live(Text("starting the sweep …"), console=self.console, refresh_per_second=2)
            self.live.__enter__()
        return self

    def __exit__(self, *exc) -> None:
        if self.live is not None:
            self.live.__exit__(*exc)

    def message(self, text: str) -> None:
        self.console.print(text, highlight=False, soft_wrap=True)

    def result(self, res: dict) -> None:
        from engine.analysis.sweep import read_run_result

        rel = res.get("rel", "?")
        r = read_run_result(self.sweep_dir / rel, rel)
        style = {"finished": "green", "diverged": "yellow"}.get(res.get("status"), "red")
        timing = f", {res['run_s']:.1f} s" if res.get("run_s") else ""
        self.console.print(
            f"[{style}]{res.get('status')}[/] {rel} ({res.get('action')}, {res.get('steps', 0)} steps{timing})"
            f": {res.get('message', '')} · max P^1 = {_num(r.max_P1)}", highlight=False, soft_wrap=True)

    def progress(self, status) -> None:
        line = f"{self._elapsed()} · {status.summary()}"
        fit = status.analysis.fit
        if fit is not None:
            line += f" · fit c2 = {fit.c2:.3f} (R² {fit.r2:.2f}, {fit.n} runs)"
        if self.live is not None:
            from rich.text import Text

            self.live.update(Text(line))
        elif time.monotonic() - self.last_print >= self.interval:
            self.last_print = time.monotonic()
            print(line, flush=True)

    def _elapsed(self) -> str:
        from engine.sweep.status import format_duration

        return format_duration(time.monotonic() - self.t0)


def _sweep_headless(out: Path, workers: int, scheduler: Optional[str], retry_failed: bool) -> int:
    from engine.sweep.execute import run_sweep

    from eos_tui.cli import console

    with SweepPrinter(out) as printer:
        try:
            outcome = run_sweep(out, workers=workers, scheduler=scheduler, retry_failed=retry_failed,
                                on_result=printer.result, on_progress=printer.progress,
                                on_message=printer.message)
        except KeyboardInterrupt:
            printer.message("interrupted: runs in progress end 'interrupted'; run the same command "
                            "again to continue the sweep")
            raise
    status = outcome.status
    if not outcome.results:
        console.print(f"nothing to do: {status.summary()}", highlight=False, soft_wrap=True)
    else:
        console.print(f"sweep {out}: {status.summary()} ({len(outcome.results)} run this time, "
                      f"{outcome.wall_s:.0f} s on {outcome.workers} workers)", highlight=False, soft_wrap=True)
    fit = status.analysis.fit
    if fit is not None:
        console.print(f"max P^1 ≈ {fit.c1:.4g} · D^{fit.c2:.3f}  (R² {fit.r2:.3f}, {fit.n} runs) — "
                      f"details: eos-tui analyze {out}", highlight=False, soft_wrap=True)
    return 0 if outcome.ok else 1


def sweep_status_cmd(sweep_dir: Path) -> None:
    from engine.sweep.status import format_duration, sweep_status

    from eos_tui.cli import err_console, print_table

    status = sweep_status(sweep_dir)
    rows = [[r.rel, r.state, "-" if r.step is None else str(r.steps_done), f"{100 * r.fraction:.0f}%",
             _num(r.loss), _num(r.lambda1), _num(r.max_P1), f"{r.wall_s:.0f}" if r.wall_s else "-",
             r.message or "-"] for r in status.runs]
    print_table(f"sweep {sweep_dir}: {status.plan.describe()}",
                ["run", "state", "steps", "progress", "loss", "λ1", "max P^1", "wall s", "message"], rows)
    err_console.print(status.summary(), highlight=False)
    client = status.client
    if client is not None:
        alive = "running" if status.client_alive else (client.state if client.state != "running" else "gone")
        since = format_duration(time.time() - client.started)
        err_console.print(f"client: {alive} (pid {client.pid} on {client.host}, started {since} ago, "
                          f"{client.scheduler or f'{client.workers} local workers'})", highlight=False)


def sweep_watch_cmd(sweep_dir: Path) -> None:
    from engine.sweep.manifest import read_plan

    from eos_tui.app import run_sweep_screen

    read_plan(sweep_dir)  # one-line error for a directory that is not a sweep
    raise typer.Exit(run_sweep_screen(sweep_dir))


# -- analyze --------------------------------------------------------------------------------


def analyze(
    sweep_dir: Annotated[Path, typer.Argument(metavar="SWEEP", help="A sweep directory (or any folder of runs).")],
    format: Annotated[str, typer.Option("--format", "-f", help="table, csv or json.")] = "table",
    bootstrap: Annotated[int, typer.Option("--bootstrap", help="Bootstrap resamples for the 95% intervals.")] = 1000,
) -> None:
    """The paper's power law over a sweep: max P^1 after step 10 per run, c1·D^c2 with R² and
    bootstrap 95% intervals, per-size medians, the paper's Table-2 row (failed runs excluded)."""
    from engine.analysis.sweep import analyze_runs
    from engine.sweep.manifest import is_sweep_dir, read_plan

    if format not in FORMATS:
        raise ConfigError(f"--format must be one of {', '.join(FORMATS)}, got {format!r}")
    if bootstrap < 0:
        raise ConfigError(f"--bootstrap must be >= 0, got {bootstrap}")
    if not sweep_dir.is_dir():
        raise ConfigError(f"{sweep_dir} is not a directory")
    paths = None
    if is_sweep_dir(sweep_dir):
        paths = [sweep_dir / spec.rel for spec in read_plan(sweep_dir).runs()]
    analysis = analyze_runs(sweep_dir, paths, bootstrap=bootstrap)
    if not analysis.runs:
        raise ConfigError(f"no runs in {sweep_dir}")
    if format == "json":
        print(json.dumps(analysis.to_json(), indent=2))
    elif format == "csv":
        cols, rows = analysis.csv_rows()
        writer = csv.writer(sys.stdout, lineterminator="\n")
        writer.writerow(cols)
        writer.writerows([["" if v is None else (repr(v) if isinstance(v, float) else v) for v in row] for row in rows])
    else:
        _print_analysis(analysis)
    if analysis.fit is None:
        raise ConfigError(f"no power-law fit: {analysis.fit_error}")


def _print_analysis(a) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console()
    if not console.is_terminal:  # a file or a pipe: wide enough that no cell wraps
        console = Console(width=200)

    runs = Table(title=f"runs of {a.root}")
    for col in ("run", "D", "init seed", "subset seed", "status", "max P^1 (step > 10)", "in fit"):
        runs.add_column(col)
    for r in a.runs:
        why = r.excluded_because
        runs.add_row(r.label, str(r.n_train or "-"), str(r.init_seed if r.init_seed is not None else "-"),
                     str(r.subset_seed if r.subset_seed is not None else "-"), r.status, _num(r.max_P1),
                     "yes" if why is None else f"no ({why})")
    console.print(runs)
    med = Table(title="median max P^1 per dataset size")
    for col in ("D", "median max P^1", "runs"):
        med.add_column(col)
    for d, m, n in a.medians:
        med.add_row(str(d), _num(m), str(n))
    console.print(med)
    fit = Table(title="max P^1 ≈ c1 · D^c2 (least squares in log–log space; 95% bootstrap intervals)")
    for col in ("", "c1", "c1 95%", "c2", "c2 95%", "R²", "runs"):
        fit.add_column(col)
    if a.fit is not None:
        f = a.fit
        fit.add_row("this sweep", _num(f.c1), _ci(f.c1_ci), _num(f.c2), _ci(f.c2_ci), _num(f.r2, ".3f"), str(f.n))
    if a.paper is not None:
        name, (c1, c2, r2) = a.paper
        fit.add_row(f"paper Table 2 ({name})", _num(c1), "", _num(c2), "", _num(r2, ".2f"), "16 per size")
    console.print(fit)
    excluded = ", ".join(f"{n} {why}" for why, n in a.excluded.items())
    console.print(f"{len(a.included)} of {len(a.runs)} runs in the fit" + (f"; excluded: {excluded}" if excluded else ""),
                  highlight=False)


# -- resume ---------------------------------------------------------------------------------


def resume(
    run: Annotated[Path, typer.Argument(help="An interrupted run directory.")],
    no_ui: Annotated[bool, typer.Option("--no-ui", help="Headless: continue in this process and print progress.")] = False,
) -> None:
    """Continue an interrupted run from its last checkpoint (the trajectory the uninterrupted run
    would have taken; rows already stored are recomputed and compared, not rewritten)."""
    from engine.resume import find_resume_point

    point = find_resume_point(run)
    from eos_tui.cli import err_console

    err_console.print(f"resuming {run} from the checkpoint of step {point.step} (stored rows up to "
                      f"step {point.last_step} are recomputed and compared)", highlight=False)
    if no_ui:
        from engine.launch import interrupt_on_signals
        from engine.resume import resume_run

        from eos_tui.cli import report_result
        from eos_tui.progress import HeadlessProgress

        # SIGINT/SIGTERM/SIGHUP end it `interrupted` again, exit 128 + N (as `run --no-ui`)
        with interrupt_on_signals(), HeadlessProgress(run.name, point.max_steps) as progress:
            result = resume_run(run, on_step=progress)
        raise typer.Exit(report_result(result, run))
    from engine.launch import spawn_resume

    from eos_tui.app import run_monitor

    proc = spawn_resume(run)
    _wait_until_reopened(run, proc)
    raise typer.Exit(run_monitor([run], processes=[proc]))


def _wait_until_reopened(run: Path, proc, timeout: float = 120.0) -> None:
    """The monitor follows a run while it is ``running``: wait until the engine process has
    reopened it (it loads the data and the checkpoint first), or report why it could not (the
    engine's own error line and exit code). A resume that already ended well is fine too."""
    from engine.errors import RunStoreError
    from engine.launch import last_log_line
    from engine.store import open_run

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with open_run(run) as r:
            if r.status == "running":
                return
        code = proc.poll()
        if code == 0:
            return  # it finished between two looks
        if code is not None:
            line = last_log_line(proc) or f"the engine exited (code {code})"
            error = RunStoreError(f"the engine could not resume {run}: {line.removeprefix('error: ')}")
            error.exit_code = code if code > 0 else 1
            raise error
        time.sleep(0.1)


def mount(app: typer.Typer) -> None:
    """Add ``sweep``, ``analyze`` and ``resume`` to the main CLI (called by ``eos_tui.cli``)."""
    from eos_tui.cli import user_errors

    app.command("sweep")(user_errors(sweep))
    app.command("analyze")(user_errors(analyze))
    app.command("resume")(user_errors(resume))
