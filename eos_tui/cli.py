"""The ``eos-tui`` command line.

Every command that trains has a headless twin (``--no-ui``). Exit codes (:data:`EXIT_CODES`,
the README's table): 0 a run finished (or a command did its job), 1 an internal error (a bug:
the traceback is shown), 2 bad input (unknown preset, bad ``--set``, missing or corrupt run or
data, wrong option), 3 the run diverged, 4 it was stopped through the control channel, 5 the
file system refused (disk full, read-only), 128 + N a signal: 130 Ctrl-C/SIGINT, 143 SIGTERM,
129 SIGHUP (the run is kept ``interrupted``). Every problem a user can cause or fix is one
``error:`` line on stderr, printed verbatim (never through rich markup, so ``[`` and ``]`` in
paths and messages survive), and never a traceback.

Help texts are rich markup (typer's default): write a literal ``[`` as ``\\[``;
``tests/test_cli_errors.py`` checks every command's help for eaten text.
"""

from __future__ import annotations

import contextlib
import copy
import functools
import os
import shutil
import signal
import sys
import tomllib
from datetime import datetime
from pathlib import Path
from typing import Annotated, Callable, Optional

import typer
from rich.console import Console
from rich.table import Table
from rich.text import Text

from engine.errors import ConfigError, EosError, RunStoreError, StorageError

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

EXIT_CODES = {
    0: "success: the run finished (target loss, max_steps or max_time_s), or the command did its job",
    1: "internal error (a bug: the traceback is printed), or the run failed inside the engine",
    2: "bad input: unknown preset or setting, wrong type or value, missing or corrupt run or data, "
       "non-empty --out, wrong option",
    3: "the run diverged (non-finite loss, or loss above divergence_factor × its start)",
    4: "the run was stopped through its control channel (`s` in a monitor)",
    5: "the file system refused: disk full, read-only or unwritable folder, I/O error",
    129: "SIGHUP (terminal closed): the run is kept, status interrupted",
    130: "SIGINT (Ctrl-C): the run is kept, status interrupted",
    141: "SIGPIPE: the reader of the output went away (e.g. `| head`); nothing more is printed",
    143: "SIGTERM (e.g. a cluster's preemption): the run is kept, status interrupted",
}


def one_line(text: object) -> str:
    """``text`` on one line (whitespace runs, newlines included, become one space)."""
    return " ".join(str(text).split())


def plain(text: object, style: str | None = None) -> Text:
    """``text`` as a rich Text: printed as it is, never parsed as markup."""
    return Text(str(text), style=style or "")


def print_error(message: object) -> None:
    """One ``error:`` line on stderr, the message verbatim."""
    line = Text("error:", style="bold red")
    line.append(" " + one_line(message))
    err_console.print(line, soft_wrap=True, highlight=False)


def user_errors(func: Callable) -> Callable:
    """Turn user-caused problems into one ``error:`` line and their exit code: :class:`EosError`
    (its ``exit_code``), an ``OSError`` (5), Ctrl-C/SIGTERM/SIGHUP (128 + signal number)."""

    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        from engine.launch import interrupt_exit_code

        try:
            return func(*args, **kwargs)
        except EosError as exc:
            print_error(exc)
            raise typer.Exit(exc.exit_code) from None
        except BrokenPipeError:  # the reader of the output went away (`| head`): stop quietly
            sys.stdout = open(os.devnull, "w")  # noqa: SIM115 - lives until exit
            raise typer.Exit(128 + signal.SIGPIPE) from None
        except OSError as exc:
            print_error(exc)
            raise typer.Exit(StorageError.exit_code) from None
        except KeyboardInterrupt as exc:
            reason = str(exc) or "interrupted by SIGINT"
            err_console.print(plain(f"{reason}: a run in progress is kept with status interrupted"),
                              soft_wrap=True, highlight=False)
            raise typer.Exit(interrupt_exit_code(exc)) from None

    return wrapper


def print_table(title: str, columns: list[str], rows: list[list[str]]) -> None:
    """A rich table on a terminal; tab-separated lines (header first) when piped, for scripts."""
    if not console.is_terminal:
        print("\t".join(columns))
        for row in rows:
            print("\t".join(row))
        return
    table = Table(title=plain(title))
    for col in columns:
        table.add_column(col)
    for row in rows:
        table.add_row(*map(plain, row))
    console.print(table)


def runs_root(value: Optional[Path]) -> Path:
    """Where runs are saved: ``--runs-dir``, then ``$EOS_TUI_RUNS``, then ``./runs``."""
    return Path(value or os.environ.get("EOS_TUI_RUNS") or DEFAULT_RUNS_DIR)


def new_run_dir(root: Path, label: str) -> Path:
    """Create a new run directory ``ROOT/STAMP-LABEL`` exclusively (``-2``, ``-3`` ... when
    simultaneous starts pick the same name) and return it."""
    from engine.store import make_run_dir

    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    path = make_run_dir(root, f"{stamp}-{label}")
    CREATED.add(path)
    return path


def check_out_dir(path: Path) -> Path:
    """Claim ``--out``: create it (or take it if it is an empty directory) and mark it starting."""
    from engine.store.liveness import mark_starting

    path = Path(path).expanduser()
    if path.exists() and (not path.is_dir() or any(path.iterdir())):
        raise RunStoreError(f"--out {path} already exists and is not empty; choose a new directory")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        if not path.exists():
            path.mkdir()
            CREATED.add(path)
    except FileExistsError:
        pass  # created meanwhile by someone else: checked below
    except OSError as exc:
        raise StorageError(f"cannot create --out {path}: {one_line(exc)}") from None
    if any(path.iterdir()):  # another process claimed it meanwhile
        raise RunStoreError(f"--out {path} already exists and is not empty; choose a new directory")
    mark_starting(path)
    return path


CREATED: set[Path] = set()
"""Run directories this process created (removed again if their run never starts)."""


def discard_unstarted(path: Path) -> None:
    """Undo a start that failed before its run existed (a run exists once ``run.json`` does;
    until then everything in ``path`` is this start's own): remove the directory if this process
    created it, else empty it again, and the engine's log beside it."""
    from engine.store.schema import RUN_FILE

    path = Path(path)
    if not path.is_dir() or (path / RUN_FILE).exists():
        return
    if path in CREATED:
        shutil.rmtree(path, ignore_errors=True)
    else:
        for child in path.iterdir():
            shutil.rmtree(child, ignore_errors=True) if child.is_dir() else child.unlink(missing_ok=True)
    (path.parent / f".{path.name}.log").unlink(missing_ok=True)


def _load_preset_or_file(name: str, overrides: list[str]) -> dict:
    """Preset ``name``, or the TOML file ``name`` when it ends in ``.toml`` or names a path."""
    from engine.config import load_preset, resolve

    if not (name.endswith(".toml") or os.sep in name):
        return load_preset(name, overrides)
    path = Path(name).expanduser()
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"preset file {path} does not exist") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read preset file {path}: {one_line(exc)}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"preset file {path} is not valid TOML: {one_line(exc)}") from None
    raw.setdefault("preset", path.stem)
    return resolve(raw, overrides)


def build_config(preset: str, sets: list[str], max_steps: Optional[int], device: Optional[str],
                 data_dir: Optional[Path]) -> dict:
    overrides = list(sets or [])
    if max_steps is not None:
        overrides.append(f"train.max_steps={max_steps}")
    if device is not None:
        overrides.append(f"train.device={device}")
    if data_dir is not None:
        overrides.append(f"data.data_dir={data_dir}")
    cfg = _load_preset_or_file(preset, overrides)
    from engine.trainer import resolve_device

    resolve_device(cfg["train"]["device"])
    return cfg


PresetArg = Annotated[str, typer.Argument(help="Preset name (see `eos-tui presets`), or a preset TOML file.")]
SetOpt = Annotated[Optional[list[str]], typer.Option("--set", "-s", help="Override a setting: key=value (repeatable), e.g. train.lr=0.05")]
NoUI = Annotated[bool, typer.Option("--no-ui", help="Headless: train in this process and print progress.")]
OutOpt = Annotated[Optional[Path], typer.Option("--out", "-o", help="Run directory (must not exist or be empty).")]
RunsDirOpt = Annotated[Optional[Path], typer.Option("--runs-dir", help="Parent of new run directories.",
                                                     show_default="$EOS_TUI_RUNS or ./runs")]
MaxStepsOpt = Annotated[Optional[int], typer.Option("--max-steps", min=1, help="Stop after this many steps.")]
DeviceOpt = Annotated[Optional[str], typer.Option("--device", help="cpu or cuda.")]
DataDirOpt = Annotated[Optional[Path], typer.Option("--data-dir", help="Where downloaded data sets live.")]


def train_headless(cfg: dict, out: Path, label: str) -> int:
    """Train in this process with a progress display; the exit code of the run
    (:data:`engine.launch.RUN_EXIT_CODES`). A diverged or stopped run ends with one line on
    stderr saying so."""
    from engine.trainer import train

    from eos_tui.progress import HeadlessProgress

    shown = []

    def on_step(row: dict) -> None:
        if not shown:  # the run exists from its first row on: name it then
            shown.append(True)
            _say_run_dir(out)
        progress(row)

    with HeadlessProgress(label, cfg["train"]["max_steps"]) as progress:
        result = train(cfg, out, on_step=on_step)
    return report_result(result, out)


def report_result(result, out: Path) -> int:
    """Say how a headless run ended (stdout when it finished, one stderr line otherwise); its
    exit code (:data:`engine.launch.RUN_EXIT_CODES`)."""
    from engine.launch import RUN_EXIT_CODES

    code = RUN_EXIT_CODES.get(result.status, 1)
    summary = f"{result.status}: {result.message} ({result.steps} steps, final loss {result.final_loss:.4g})"
    if code == 0:
        console.print(plain(summary, "green"), highlight=False, soft_wrap=True)
    else:
        hint = "; lower train.lr" if result.status == "diverged" else ""
        err_console.print(plain(f"{summary}{hint}; the run is kept in {out}", "red"), highlight=False, soft_wrap=True)
    return code


def _say_run_dir(path: Path) -> None:
    console.print(Text.assemble("run directory: ", (str(path), "bold")), highlight=False, soft_wrap=True)


def _pass_on(procs: list, signum: int, timeout: float = 60.0) -> None:
    """Send ``signum`` to the engine processes still running and wait for them to close their
    runs (killed after ``timeout`` seconds)."""
    import subprocess

    for proc in procs:
        if proc.poll() is None:
            proc.send_signal(signum)
    for proc in procs:
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _engine_code(proc) -> int:
    """An engine process's exit code, a death by signal N read as 128 + N like a shell does."""
    code = proc.returncode
    return 0 if code is None else (128 - code if code < 0 else code)


def launch(runs: list[tuple[Path, dict, str]], no_ui: bool) -> None:
    """Train ``(run_dir, config, label)`` runs: one after another headless, or each in its own
    engine process watched live (one run: monitor; two: side by side). Exits with their code:
    the first that is not 0. Directories of runs that never started are removed."""
    try:
        if no_ui:
            codes = []
            for path, cfg, label in runs:
                codes.append(train_headless(cfg, path, label))
                if codes[-1] not in (0, 3):
                    break
            raise typer.Exit(next((c for c in codes if c), 0))
        from engine.launch import interrupt_on_signals, spawn_training

        from eos_tui.app import run_monitor

        with interrupt_on_signals():  # until the app runs (it handles signals itself)
            procs = [spawn_training(cfg, path) for path, cfg, _ in runs]
            try:
                code = run_monitor([path for path, _, _ in runs], processes=procs)
            except KeyboardInterrupt as exc:  # end the engines the way this process was ended
                _pass_on(procs, getattr(exc, "signum", signal.SIGINT))
                for path, _, _ in runs:
                    if (path / "run.json").exists():
                        _say_run_dir(path)
                raise
        for path, _, _ in runs:
            _say_run_dir(path)
        raise typer.Exit(code or next((c for c in map(_engine_code, procs) if c), 0))
    finally:
        for path, _, _ in runs:
            discard_unstarted(path)
        if len(runs) > 1 and runs[0][0].parent in CREATED:
            try:
                runs[0][0].parent.rmdir()  # the folder of a compare whose runs never started
            except OSError:
                pass


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
        from engine.launch import interrupt_on_signals

        # headless: SIGINT/SIGTERM/SIGHUP end it cleanly from here on (the UI handles its own)
        with interrupt_on_signals() if no_ui else contextlib.nullcontext():
            cfg = build_config(name, sets or [], max_steps, device, data_dir)
            launch(build(name, cfg, out, runs_dir), no_ui)

    command.__doc__ = doc
    return command


def _label(name: str, cfg: dict) -> str:
    """The preset's name (a preset file's: its ``preset`` key or file name)."""
    return str(cfg.get("preset") or Path(name).stem) if name.endswith(".toml") or os.sep in name else name


def _preset_runs(name: str, cfg: dict, out: Optional[Path], runs_dir: Optional[Path]) -> list:
    label = _label(name, cfg)
    target = check_out_dir(out) if out else new_run_dir(runs_root(runs_dir), label)
    return [(target, cfg, label)]


def _compare_runs(name: str, base: dict, out: Optional[Path], runs_dir: Optional[Path]) -> list:
    from engine.store import make_run_dir
    from engine.store.liveness import STARTING_FILE

    name = _label(name, base)
    parent = check_out_dir(out) if out else new_run_dir(runs_root(runs_dir), f"compare-{name}")
    (parent / STARTING_FILE).unlink(missing_ok=True)  # a folder of two runs, not a run
    runs = []
    for solver in ("gd", "ee"):
        CREATED.add(make_run_dir(parent, solver))
        cfg = {k: (dict(v) if isinstance(v, dict) else v) for k, v in base.items()}
        cfg["train"] = dict(base["train"], solver=solver)
        cfg["group"] = parent.name
        runs.append((parent / solver, cfg, f"{name}/{solver}"))
    return runs


run_app.command("preset")(_training_command(
    _preset_runs, "Train preset NAME (or a preset TOML file) and watch it live (or headless with --no-ui)."))
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
    root: Annotated[Optional[Path], typer.Argument(help="Folder of runs.", show_default="$EOS_TUI_RUNS or ./runs")] = None,
    no_ui: NoUI = False,
) -> None:
    """Browse saved runs (a table with --no-ui; tab-separated when piped). A run being created
    shows as `starting`, one whose files stay unreadable as `corrupt`."""
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
        err_console.print(plain(f"no runs in {root}"), highlight=False, soft_wrap=True)


@app.command()
@user_errors
def presets(
    measure: Annotated[bool, typer.Option("--measure", help="Time the setup, a warm step and a snapshot of each preset on this machine, and remember them.")] = False,
    random_data: Annotated[bool, typer.Option("--random-data", help="With --measure: time presets whose data is absent on random data of the same shape.")] = False,
    only: Annotated[Optional[list[str]], typer.Argument(help="Presets to list (default: all).", show_default=False)] = None,
) -> None:
    """List the presets: data, size, criterion, solver, η, net, data present, and their cost here
    (seconds per step, expected steps and expected total of a run, measured with --measure)."""
    from engine.config import describe_lr, load_preset, preset_names
    from engine.data import dataset_info
    from engine.step_cost import (cached_step_cost, expected_steps, format_duration, measure_step_cost,
                                  snapshot_count)

    rows, skipped = [], []
    for name in only or preset_names():
        cfg = load_preset(name)
        try:
            info = dataset_info(cfg["data"]["name"], cfg["data"]["data_dir"] or None)
        except EosError:
            info = {"available": False, "paper_sizes": []}
        size = cfg["data"]["size"] or (min(info["paper_sizes"]) if info.get("paper_sizes") else "?")
        present = bool(info.get("available"))
        cost = cached_step_cost(name, cfg) or (None if present else cached_step_cost(name, cfg, random_data=True))
        if measure and (present or random_data):
            err_console.print(plain(f"measuring {name}{'' if present else ' on random data'} …"), highlight=False)
            cost = measure_step_cost(name, cfg, random_data=not present)
        elif measure:
            skipped.append(name)
        steps, measured = expected_steps(cfg)
        m = cfg["model"]
        per_step = "-" if cost is None else f"{cost.step_s:.3g} s" + (" (random data)" if cost.random_data else "")
        total = "-" if cost is None else ("" if measured else "≤ ") + format_duration(
            cost.total(steps, snapshot_count(cfg, steps)))
        rows.append([name, cfg["data"]["name"], str(size), cfg["train"]["criterion"], cfg["train"]["solver"],
                     describe_lr(cfg), f"{m['depth']}×{m['width']} {m['activation']} {m['dtype']}",
                     "yes" if present else "no", per_step, str(steps) if measured else f"≤ {steps}", total,
                     cfg.get("description", "")])
    print_table("presets", ["preset", "data", "n", "criterion", "solver", "η", "net", "data present",
                            "s/step", "steps", "total", "description"], rows)
    if skipped:
        err_console.print(plain(f"not measured, their data is absent: {', '.join(skipped)} (add --random-data "
                                "to time them on random data of the same shape)"), highlight=False)
    if not measure:
        err_console.print("s/step and total: measured on this machine by `eos-tui presets --measure` "
                          "(steps: a full run's count from docs/reproduction.md, or ≤ max_steps)")


@app.command()
@user_errors
def export(
    run: Annotated[Path, typer.Argument(help="Run directory.")],
    format: Annotated[str, typer.Option("--format", "-f", help="csv or parquet.")] = "csv",
    out: Annotated[Optional[Path], typer.Option("--out", "-o", help="Output file.", show_default="RUN/metrics.FORMAT")] = None,
) -> None:
    """Export a run's metrics (one row per step, snapshot columns filled at snapshot steps)."""
    from engine.export import export_run

    path = export_run(run, format, out)
    console.print(plain(f"wrote {path}"), highlight=False, soft_wrap=True)


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


def _mount_claims() -> None:
    from eos_tui.claims_cli import claims_command

    app.command("claims")(user_errors(claims_command))


def _mount_plot() -> None:
    from eos_tui.plot_cli import plot_command

    app.command("plot")(user_errors(plot_command))


_mount_data()
_mount_bench()
_mount_claims()
_mount_plot()


def _mount_sweeps() -> None:
    from eos_tui.sweep_cli import mount

    mount(app)  # sweep, analyze, resume


_mount_sweeps()


def main() -> None:
    """The ``eos-tui`` entry point: typer's app, with usage errors (a bad option or value) as one
    ``error:`` line and exit 2 instead of click's framed message."""
    # typer vendors click (0.2x) or uses it (older): find its exception classes either way
    click_exception = next(c for c in typer.BadParameter.__mro__ if c.__name__ == "ClickException")
    no_args = getattr(sys.modules[click_exception.__module__], "NoArgsIsHelpError", ())
    try:
        code = app(standalone_mode=False)
    except no_args as exc:  # `eos-tui` or a group alone: building the error printed the help
        if not getattr(typer.core, "HAS_RICH", True):
            exc.show()
        code = exc.exit_code
    except click_exception as exc:
        ctx = getattr(exc, "ctx", None)
        hint = f" (see `{ctx.command_path if ctx is not None else 'eos-tui'} --help`)"
        print_error(f"{exc.format_message()}{hint}")
        code = exc.exit_code
    except (typer.Abort, KeyboardInterrupt):
        err_console.print(plain("interrupted by SIGINT"), highlight=False)
        code = 130
    sys.exit(code if isinstance(code, int) else 0)


if __name__ == "__main__":
    main()
