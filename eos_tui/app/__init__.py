"""The eos-tui Textual app: live monitor, replay, compare and run browser.

Entry points for the CLI (each returns an exit code; CLI-level problems raise
:class:`engine.errors.EosError` before the app starts):

* :func:`run_monitor` — one run: live monitor; two runs: live compare.
* :func:`run_replay` — replay a stored run (``follow=True``: keep up with a run being written).
* :func:`run_compare` — two stored runs side by side and overlaid on gradient-flow time t.
* :func:`run_browser` — the run browser of a runs folder.
* :func:`run_sweep_screen` — a dataset-size sweep, live (``eos-tui sweep``, ``sweep watch``).
* :func:`serve_command` / :func:`serve` — serve an ``eos-tui`` command (e.g. ``replay runs/X``)
  to web browsers through textual-serve.

Data path: engine → run store → UI. The UI reads runs only through ``engine.store``, from
worker threads; see :mod:`eos_tui.app.reader`.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

__all__ = ["run_monitor", "run_replay", "run_compare", "run_browser", "run_sweep_screen", "serve",
           "serve_command", "build_app"]

STOP_WAIT_S = 60.0


def _check_run(path: Path):
    """Open the run once (raises RunStoreError with a one-line message if missing/corrupt)."""
    from engine.store import open_run

    with open_run(path) as run:
        return run.meta


def _data(path: Path, key: str):
    from .reader import preload
    from .series import RunData

    data = RunData(key=key, path=Path(path).expanduser())
    preload(data)  # overlap reading the store with the app's start-up
    return data


def _check_pair(a: Path, b: Path) -> None:
    from engine.errors import EosError

    _check_run(a)
    _check_run(b)
    if Path(a).expanduser().resolve() == Path(b).expanduser().resolve():
        raise EosError(f"cannot compare a run with itself: {a}")


def build_app(kind: str, paths: list[Path], *, follow: bool = False, live: bool = False):
    """The app for ``kind`` in ``monitor``/``replay``/``compare``/``browser`` (no checks)."""
    from .app import EosApp

    if kind == "monitor":
        from .screens.monitor import MonitorScreen

        data = _data(paths[0], "a")
        return EosApp(lambda: MonitorScreen(data, live=live))
    if kind == "replay":
        from .screens.replay import ReplayScreen

        data = _data(paths[0], "a")
        return EosApp(lambda: ReplayScreen(data, follow=follow))
    if kind == "compare":
        from .screens.compare import CompareScreen

        a, b = _data(paths[0], "a"), _data(paths[1], "b")
        return EosApp(lambda: CompareScreen(a, b, live=live))
    if kind == "browser":
        from .screens.runs import RunsScreen

        root = Path(paths[0]).expanduser()
        return EosApp(lambda: RunsScreen(root))
    if kind == "sweep":
        from .screens.sweep import SweepScreen

        root = Path(paths[0]).expanduser()
        return EosApp(lambda: SweepScreen(root))
    raise ValueError(f"unknown app kind {kind!r}")


def _run(app) -> int:
    """Run ``app``; SIGINT, SIGTERM or SIGHUP make it exit (terminal restored) with
    ``128 + signum``, recorded as ``app.exit_signal``."""
    import asyncio
    import signal

    app.exit_signal = None

    def on_signal(signum, frame):  # noqa: ARG001 - signal handler signature
        if app.exit_signal is not None:
            return
        app.exit_signal = signum
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # the app is not running (yet, or any more)
            from engine.launch import SignalInterrupt

            raise SignalInterrupt(signum) from None
        loop.call_soon_threadsafe(lambda: app.exit(None, 128 + signum))

    signals = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
    previous = {s: signal.signal(s, on_signal) for s in signals}
    try:
        result = app.run()
    finally:
        for s, old in previous.items():
            signal.signal(s, old)
    if app.exit_signal is not None:
        return 128 + app.exit_signal
    return result if isinstance(result, int) else (app.return_code or 0)


def _wait_for(processes: list[subprocess.Popen] | None, stopped: bool) -> None:
    """After the UI exits: give engines that were sent ``stop`` time to close their runs."""
    import sys

    for proc in processes or []:
        if proc.poll() is not None:
            continue
        if stopped:
            try:
                print("waiting for the engine to stop (the run ends 'interrupted') ...", file=sys.stderr)
            except OSError:  # the terminal is gone (SIGHUP)
                pass
        try:
            proc.wait(timeout=STOP_WAIT_S if stopped else 10.0)
        except subprocess.TimeoutExpired:
            if stopped:
                proc.terminate()  # the engine turns SIGTERM into an 'interrupted' ending
                try:
                    proc.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    proc.kill()


def run_monitor(run_dirs: list[Path], *, processes: list[subprocess.Popen] | None = None) -> int:
    """Watch one live run (monitor) or two (compare), started by this session's ``processes``.

    Quitting while they train asks first, then sends ``stop`` (the runs end ``interrupted``
    with their data kept) and waits for the engines to close. If the user leaves the UI while
    runs are finished, the engines are simply waited for.
    """
    from engine.errors import EosError

    if len(run_dirs) not in (1, 2):
        raise EosError(f"the monitor shows one or two runs, got {len(run_dirs)}")
    paths = [Path(p).expanduser() for p in run_dirs]
    for p in paths:
        _wait_exists(p, processes)
    if len(paths) == 2:
        _check_pair(*paths)
        app = build_app("compare", paths, live=True)
    else:
        _check_run(paths[0])
        app = build_app("monitor", paths, live=True)
    try:
        code = _run(app)
    except BaseException:
        _stop_all(paths)  # never leave an engine training behind a crashed UI
        _wait_for(processes, stopped=True)
        raise
    if app.exit_signal is not None:  # end the engines the way the UI was ended
        for proc in processes or []:
            if proc.poll() is None:
                proc.send_signal(app.exit_signal)
        _wait_for(processes, stopped=True)
        return code
    _wait_for(processes, stopped=bool(app.stopped_runs))
    return code


def _stop_all(paths: list[Path]) -> None:
    from engine.errors import EosError
    from engine.store import send_control

    for p in paths:
        try:
            send_control(p, "stop")
        except EosError:
            pass


def _wait_exists(path: Path, processes, timeout: float = 120.0) -> None:
    """A freshly spawned engine needs a moment (imports, data) before its run directory exists."""
    import time

    from engine.errors import RunStoreError
    from engine.store import is_run_dir

    deadline = time.monotonic() + (timeout if processes else 0)
    while not is_run_dir(path):
        if processes and all(p.poll() is not None for p in processes):
            from engine.launch import last_log_line

            line = last_log_line(processes[0]) or f"the engine exited (code {processes[0].returncode})"
            error = RunStoreError(f"{line.removeprefix('error: ')} (before creating {path})")
            error.exit_code = processes[0].returncode if processes[0].returncode > 0 else 1
            raise error
        if time.monotonic() > deadline:
            return  # open_run reports the problem
        time.sleep(0.1)


def run_replay(run_dir: Path, *, follow: bool = False) -> int:
    """Replay a stored run; ``follow`` keeps the playhead at the end of a run still being written."""
    path = Path(run_dir).expanduser()
    _check_run(path)
    return _run(build_app("replay", [path], follow=follow))


def run_compare(a: Path, b: Path) -> int:
    """Compare two stored runs on the common time axis t."""
    pa, pb = Path(a).expanduser(), Path(b).expanduser()
    _check_pair(pa, pb)
    return _run(build_app("compare", [pa, pb]))


def run_browser(root: Path) -> int:
    """Browse the runs under ``root``; Enter replays, ``c`` marks two runs to compare."""
    from engine.store import list_runs

    root = Path(root).expanduser()
    list_runs(root)  # raises RunStoreError for a missing folder
    return _run(build_app("browser", [root]))


def run_sweep_screen(sweep_dir: Path, *, process: subprocess.Popen | None = None) -> int:
    """The live sweep screen of ``sweep_dir``; ``process`` is the sweep client this session
    started (quitting asks, then stops it: its runs end ``interrupted``, resumable)."""
    import sys

    from .app import EosApp
    from .screens.sweep import SweepScreen

    path = Path(sweep_dir).expanduser()
    app = EosApp(lambda: SweepScreen(path, process=process))
    try:
        code = _run(app)
    except BaseException:
        if process is not None and process.poll() is None:
            process.terminate()
        raise
    if process is not None and process.poll() is None:
        if not getattr(process, "stopped_by_screen", False):  # a second SIGTERM is ignored anyway
            process.terminate()  # leaving the screen stops the sweep (the quit key asked first)
        print("waiting for the sweep client to stop its runs (they end 'interrupted'; run the same "
              "command again to continue) ...", file=sys.stderr)
        _wait_for([process], stopped=True)
    if code == 0 and process is not None and process.returncode:
        # a failed run, or a stopped sweep: as the headless sweep says (killed by signal N: 128 + N)
        code = process.returncode if process.returncode > 0 else 128 - process.returncode
    return code


def serve(command: str, *, host: str = "localhost", port: int = 8000, title: str = "eos-tui") -> None:
    """Serve ``command`` (e.g. ``"eos-tui replay runs/x"``) to web browsers with textual-serve.

    Each browser tab starts its own copy of the command in a pseudo-terminal.
    """
    from engine.errors import EosError

    try:
        from textual_serve.server import Server
    except ImportError as exc:  # pragma: no cover - optional dependency
        raise EosError("eos-tui serve needs textual-serve: pip install 'eos-tui[serve]'") from exc
    Server(command, host=host, port=port, title=title).serve()


def serve_command(args: list[str], *, host: str = "localhost", port: int = 8000) -> None:
    """Serve ``eos-tui ARGS...`` (e.g. ``["replay", "runs/x"]``) to web browsers.

    Runs the CLI with this very interpreter (``python -m eos_tui.cli ARGS``), so it works
    without the ``eos-tui`` script on PATH. Serving ``serve`` itself is refused.
    """
    import shlex
    import sys

    from engine.errors import EosError

    args = list(args)
    if not args:
        raise EosError("eos-tui serve needs a command to serve, e.g. `eos-tui serve replay runs/X`")
    if args[0] == "serve":
        raise EosError("eos-tui serve cannot serve itself")
    command = shlex.join([sys.executable, "-m", "eos_tui.cli", *args])
    serve(command, host=host, port=port, title="eos-tui " + " ".join(args))
