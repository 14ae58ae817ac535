"""The ``eos-tui`` command line.

Every command that trains has a headless twin (``--no-ui``). User mistakes (unknown preset,
bad ``--set``, missing or corrupt run, …) print one ``error:`` line and exit with status 2;
Ctrl-C during training leaves the run ``interrupted`` and exits 130.
"""

from __future__ import annotations

import copy
import functools
import os
import sys
from datetime import datetime
from pathlib import Path
from typing import Annotated, Callable, Optional

import typer
from rich.console import Console
from rich.table import Table

from engine.errors import ConfigError, EosError, RunStoreError

app = typer.Typer(
    name="eos-tui",
    help="Watch neural-network training reach (or avoid) the edge of stability, live.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
run_app = typer.Typer(help="Train a preset (live UI by default, --no-ui for headless).", no_args_is_help=True)
app.add_typer(run_app, name="run")

console = Console()
err_console = Console(stderr=True)

DEFAULT_RUNS_DIR = "runs"


def user_errors(func: Callable) -> Callable:
    """Turn :class:`EosError` into one ``error:`` line and a non-zero exit, Ctrl-C into 130."""

    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        try:
            return func(*args, **kwargs)
        except EosError as exc:
            err_console.print(f"[bold red]error:[/] {exc}", highlight=False, soft_wrap=True)
            raise typer.Exit(exc.exit_code) from None
        except KeyboardInterrupt:
            err_console.print("interrupted: the run is marked [bold]interrupted[/] and its data is kept")
            raise typer.Exit(130) from None

    return wrapper


def print_table(title: str, columns: list[str], rows: list[list[str]]) -> None:
    """A rich table on a terminal; tab-separated lines (header first) when piped, for scripts."""
    if not console.is_terminal:
        print("\t".join(columns))
        for row in rows:
            print("\t".join(row))
        return
    table = Table(title=title)
    for col in columns:
        table.add_column(col)
    for row in rows:
        table.add_row(*row)
    console.print(table)


def runs_root(value: Optional[Path]) -> Path:
    """Where runs are saved: ``--runs-dir``, then ``$EOS_TUI_RUNS``, then ``./runs``."""
    return Path(value or os.environ.get("EOS_TUI_RUNS") or DEFAULT_RUNS_DIR)


def new_run_dir(root: Path, label: str) -> Path:
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    path = root / f"{stamp}-{label}"
    i = 1
    while path.exists():
        i += 1
        path = root / f"{stamp}-{label}-{i}"
    return path


def check_out_dir(path: Path) -> Path:
    if path.exists() and (not path.is_dir() or any(path.iterdir())):
        raise RunStoreError(f"--out {path} already exists and is not empty; choose a new directory")
    return path


def build_config(preset: str, sets: list[str], max_steps: Optional[int], device: Optional[str],
                 data_dir: Optional[Path]) -> dict:
    from engine.config import load_preset

    overrides = list(sets or [])
    if max_steps is not None:
        overrides.append(f"train.max_steps={max_steps}")
    if device is not None:
        overrides.append(f"train.device={device}")
    if data_dir is not None:
        overrides.append(f"data.data_dir={data_dir}")
    cfg = load_preset(preset, overrides)
    from engine.trainer import resolve_device

    resolve_device(cfg["train"]["device"])
    return cfg


PresetArg = Annotated[str, typer.Argument(help="Preset name (see `eos-tui presets`).")]
SetOpt = Annotated[Optional[list[str]], typer.Option("--set", "-s", help="Override a setting: key=value (repeatable), e.g. train.lr=0.05")]
NoUI = Annotated[bool, typer.Option("--no-ui", help="Headless: train in this process and print progress.")]
OutOpt = Annotated[Optional[Path], typer.Option("--out", "-o", help="Run directory (must not exist or be empty).")]
RunsDirOpt = Annotated[Optional[Path], typer.Option("--runs-dir", help="Parent of new run directories [default: $EOS_TUI_RUNS or ./runs].")]
MaxStepsOpt = Annotated[Optional[int], typer.Option("--max-steps", min=1, help="Stop after this many steps.")]
DeviceOpt = Annotated[Optional[str], typer.Option("--device", help="cpu or cuda.")]
DataDirOpt = Annotated[Optional[Path], typer.Option("--data-dir", help="Where downloaded data sets live.")]


def train_headless(cfg: dict, out: Path, label: str) -> int:
    """Train in this process with a progress display; the exit code of the run."""
    from engine.trainer import train

    from eos_tui.progress import HeadlessProgress

    console.print(f"run directory: [bold]{out}[/]", highlight=False)
    with HeadlessProgress(label, cfg["train"]["max_steps"]) as progress:
        result = train(cfg, out, on_step=progress)
    style = {"finished": "green", "diverged": "red"}.get(result.status, "yellow")
    console.print(f"[{style}]{result.status}[/]: {result.message} ({result.steps} steps, final loss {result.final_loss:.4g})",
                  highlight=False)
    return 0 if result.status in ("finished", "diverged") else 1


def launch(runs: list[tuple[Path, dict, str]], no_ui: bool) -> None:
    """Train ``(run_dir, config, label)`` runs: one after another headless, or each in its own
    engine process watched live (one run: monitor; two: side by side). Exits with their code."""
    if no_ui:
        raise typer.Exit(max(train_headless(cfg, path, label) for path, cfg, label in runs))
    from engine.launch import spawn_training

    from eos_tui.app import run_monitor

    procs = [spawn_training(cfg, path) for path, cfg, _ in runs]
    raise typer.Exit(run_monitor([path for path, _, _ in runs], processes=procs))


def _training_command(build: Callable[[str, dict, Optional[Path], Optional[Path]], list],
                      doc: str) -> Callable:
    """A ``run`` subcommand: the launch options shared by every command that trains, then
    ``build(name, config, out, runs_dir)`` gives the ``(run_dir, config, label)`` runs to launch."""

    @user_errors
    def command(
        name: PresetArg,
        no_ui: NoUI = False,
        out: OutOpt = None,
        sets: SetOpt = None,
        max_steps: MaxStepsOpt = None,
        device: DeviceOpt = None,
        data_dir: DataDirOpt = None,
        runs_dir: RunsDirOpt = None,
    ) -> None:
        cfg = build_config(name, sets or [], max_steps, device, data_dir)
        launch(build(name, cfg, out, runs_dir), no_ui)

    command.__doc__ = doc
    return command


def _preset_runs(name: str, cfg: dict, out: Optional[Path], runs_dir: Optional[Path]) -> list:
    target = check_out_dir(out) if out else new_run_dir(runs_root(runs_dir), name)
    return [(target, cfg, name)]


def _compare_runs(name: str, base: dict, out: Optional[Path], runs_dir: Optional[Path]) -> list:
    parent = check_out_dir(out) if out else new_run_dir(runs_root(runs_dir), f"compare-{name}")
    runs = []
    for solver in ("gd", "ee"):
        cfg = {k: (dict(v) if isinstance(v, dict) else v) for k, v in base.items()}
        cfg["train"] = dict(base["train"], solver=solver)
        cfg["group"] = parent.name
        runs.append((parent / solver, cfg, f"{name}/{solver}"))
    return runs


run_app.command("preset")(_training_command(
    _preset_runs, "Train preset NAME and watch it live (or headless with --no-ui)."))
run_app.command("compare")(_training_command(
    _compare_runs, "Train preset NAME with GD and with exponential Euler (same data, same initial "
    "weights), side by side."))


def _existing_run(path: Path) -> Path:
    from engine.store import open_run

    with open_run(path):
        pass
    return path


@app.command()
@user_errors
def compare(
    a: Annotated[Path, typer.Argument(help="First run directory.")],
    b: Annotated[Path, typer.Argument(help="Second run directory.")],
) -> None:
    """Compare two saved (or running) runs side by side on the common time axis t."""
    if a.resolve() == b.resolve():
        raise ConfigError("cannot compare a run with itself: give two different run directories")
    _existing_run(a)
    _existing_run(b)
    from eos_tui.app import run_compare

    raise typer.Exit(run_compare(a, b))


@app.command()
@user_errors
def replay(
    run: Annotated[Path, typer.Argument(help="Run directory.")],
    follow: Annotated[bool, typer.Option("--follow", "-f", help="Keep following a run that is still being written.")] = False,
) -> None:
    """Replay a saved run (or follow a live one)."""
    _existing_run(run)
    from eos_tui.app import run_replay

    raise typer.Exit(run_replay(run, follow=follow))


@app.command()
@user_errors
def runs(
    root: Annotated[Optional[Path], typer.Argument(help="Folder of runs [default: $EOS_TUI_RUNS or ./runs].")] = None,
    no_ui: NoUI = False,
) -> None:
    """Browse saved runs (a table with --no-ui)."""
    from engine.store import list_runs

    root = runs_root(root)
    summaries = list_runs(root)
    if not no_ui:
        from eos_tui.app import run_browser

        raise typer.Exit(run_browser(root))
    def num(v, fmt=".4g"):
        return "-" if v is None else format(v, fmt)

    print_table(f"runs in {root}",
                ["run", "status", "preset", "solver", "steps", "t", "final loss", "max λ1", "max P^1", "started"],
                [[s.name, s.status, s.preset or "-", s.solver or "-", str(s.steps), num(s.t), num(s.final_loss),
                  num(s.max_lambda), num(s.max_P1), s.started or "-"] for s in summaries])
    if not summaries:
        err_console.print(f"no runs in {root}")


@app.command()
@user_errors
def presets(
    measure: Annotated[bool, typer.Option("--measure", help="Time one warm step of each preset whose data is present, and remember it.")] = False,
) -> None:
    """List the presets: data set, size, criterion, solver, data present, cost per step."""
    from engine.config import load_preset, preset_names
    from engine.data import dataset_info
    from engine.step_cost import cached_step_cost, measure_step_cost

    rows = []
    for name in preset_names():
        cfg = load_preset(name)
        try:
            info = dataset_info(cfg["data"]["name"], cfg["data"]["data_dir"] or None)
        except EosError:
            info = {"available": False, "paper_sizes": []}
        size = cfg["data"]["size"] or (min(info["paper_sizes"]) if info.get("paper_sizes") else "?")
        cost = cached_step_cost(name, cfg)
        if measure and info.get("available"):
            err_console.print(f"measuring {name} …", highlight=False)
            cost = measure_step_cost(name, cfg)
        m = cfg["model"]
        rows.append([name, cfg["data"]["name"], str(size), cfg["train"]["criterion"], cfg["train"]["solver"],
                     f"{cfg['train']['lr']:g}", f"{m['depth']}×{m['width']} {m['activation']} {m['dtype']}",
                     "yes" if info.get("available") else "no",
                     "-" if cost is None else f"{cost:.3g} s", cfg.get("description", "")])
    print_table("presets", ["preset", "data", "n", "criterion", "solver", "η", "net", "data present",
                            "s/step", "description"], rows)
    if not measure:
        err_console.print("s/step: seconds per warm step measured on this machine by `eos-tui presets --measure`")


@app.command()
@user_errors
def export(
    run: Annotated[Path, typer.Argument(help="Run directory.")],
    format: Annotated[str, typer.Option("--format", "-f", help="csv or parquet.")] = "csv",
    out: Annotated[Optional[Path], typer.Option("--out", "-o", help="Output file [default: RUN/metrics.FORMAT].")] = None,
) -> None:
    """Export a run's metrics (one row per step, snapshot columns filled at snapshot steps)."""
    from engine.export import export_run

    path = export_run(run, format, out)
    console.print(f"wrote {path}", highlight=False)


@app.command()
@user_errors
def serve(
    command: Annotated[list[str], typer.Argument(help="The eos-tui command to serve, e.g. `replay runs/X`.")],
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "localhost",
    port: Annotated[int, typer.Option(help="Port.")] = 8000,
) -> None:
    """Serve an eos-tui screen in a web browser (textual-serve)."""
    from eos_tui.app import serve_command

    serve_command(command, host=host, port=port)


def _mount_data() -> None:
    try:
        from eos_tui.data_cli import data_app
    except ImportError:  # pragma: no cover - only while the data CLI is absent
        return
    # Wrapped copies: the data sub-app itself stays untouched (it raises EosError for its callers).
    wrapped = typer.Typer(help=data_app.info.help, no_args_is_help=True)
    for info in data_app.registered_commands:
        clone = copy.copy(info)
        clone.callback = user_errors(info.callback)
        wrapped.registered_commands.append(clone)
    app.add_typer(wrapped, name="data")


def _mount_bench() -> None:
    try:
        from eos_tui.bench_cli import bench_command
    except ImportError:  # pragma: no cover
        return
    app.command("bench")(user_errors(bench_command))


_mount_data()
_mount_bench()
from eos_tui.sweep_cli import mount as _mount_sweeps  # noqa: E402 - sweep, analyze, resume

_mount_sweeps(app)


def main() -> None:
    app()


if __name__ == "__main__":
    main()
