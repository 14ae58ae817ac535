"""Run the training engine in its own process, and how training answers signals.

The UI never trains in its own process: it spawns ``python -m engine.launch`` and follows the
run directory through the store. The worker runs at a lower scheduling priority so that the
interface stays responsive on a small machine.

Signals: SIGINT, SIGTERM and SIGHUP (Ctrl-C, a cluster's preemption, a closed terminal) end a
run the same clean way, inside the engine and in a headless ``eos-tui run``:
:func:`~engine.signals.interrupt_on_signals` (in :mod:`engine.signals`, below every layer that
needs it; re-exported here) turns the first one into :class:`SignalInterrupt` (a
``KeyboardInterrupt``), the trainer records the run ``interrupted`` with every committed row,
and the process exits with ``128 + signal number`` (130, 143, 129). The exit codes of a
training process (this worker and ``eos-tui run``) are :data:`RUN_EXIT_CODES`.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

from engine.signals import INTERRUPT_SIGNALS, SignalInterrupt, interrupt_exit_code, interrupt_on_signals

__all__ = ["INTERRUPT_SIGNALS", "RUN_EXIT_CODES", "SignalInterrupt", "interrupt_exit_code", "interrupt_on_signals",
           "last_log_line", "spawn_resume", "spawn_sweep", "spawn_training"]

WORKER_NICENESS = 5

RUN_EXIT_CODES = {"finished": 0, "failed": 1, "diverged": 3, "interrupted": 4}
"""Exit code of a training process by the run's final status. ``interrupted`` here means
stopped through the control channel (``s`` in the monitor); an interruption by a signal exits
with ``128 + signum`` instead. Bad input exits 2 and a storage failure (disk full, read-only or
unwritable folder) 5, before or while the run trains."""


def spawn_training(config: dict, out_dir: Path, log_path: Path | None = None) -> subprocess.Popen:
    """Start training ``config`` into ``out_dir`` in a child process; its output goes to ``log_path``
    (default: ``.NAME.log`` beside the run directory), kept on the process as ``log_path``."""
    return _spawn(["engine.launch", "--out", str(out_dir), "--config-json", json.dumps(config)],
                  Path(out_dir), log_path)


def spawn_resume(run_dir: Path, log_path: Path | None = None) -> subprocess.Popen:
    """Continue the interrupted run ``run_dir`` from its last checkpoint in a child process."""
    return _spawn(["engine.launch", "--resume", str(run_dir)], Path(run_dir), log_path)


def spawn_sweep(sweep_dir: Path, *, workers: int, scheduler: str | None = None,
                retry_failed: bool = False) -> subprocess.Popen:
    """Start the client of the planned sweep ``sweep_dir`` (``python -m engine.sweep``) in a child
    process; its output goes to ``SWEEP/.client.log``."""
    sweep_dir = Path(sweep_dir)
    args = ["engine.sweep", str(sweep_dir), "--workers", str(workers)]
    args += ["--scheduler", scheduler] if scheduler else []
    args += ["--retry-failed"] if retry_failed else []
    return _spawn(args, sweep_dir, sweep_dir / ".client.log")


def _spawn(module_args: list[str], out_dir: Path, log_path: Path | None) -> subprocess.Popen:
    log_path = Path(log_path) if log_path else out_dir.parent / f".{out_dir.name}.log"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    log = open(log_path, "ab")
    cmd = [sys.executable, "-m", *module_args]
    # Idle OpenMP threads sleep instead of spinning, so the engine leaves the UI its share of CPU.
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    env.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    try:
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                env=env, cwd=str(Path(__file__).resolve().parent.parent))
    finally:
        log.close()
    proc.log_path = log_path  # type: ignore[attr-defined]
    return proc


def last_log_line(proc: subprocess.Popen) -> str | None:
    """The last non-empty line the engine wrote to its log (its ``error:`` line when it failed)."""
    path = getattr(proc, "log_path", None)
    try:
        lines = Path(path).read_text(encoding="utf-8", errors="replace").splitlines() if path else []
    except OSError:
        return None
    return next((line.strip() for line in reversed(lines) if line.strip()), None)


def main(argv: list[str] | None = None) -> int:
    from engine.errors import EosError, StorageError
    from engine.trainer import train

    parser = argparse.ArgumentParser(description="eos-tui training worker")
    parser.add_argument("--out")
    parser.add_argument("--config-json")
    parser.add_argument("--resume", help="continue this interrupted run from its last checkpoint")
    args = parser.parse_args(argv)
    if args.resume is None and (args.out is None or args.config_json is None):
        parser.error("give --out and --config-json, or --resume RUN")
    try:
        os.nice(WORKER_NICENESS)
    except OSError:
        pass
    try:
        with interrupt_on_signals():
            if args.resume is not None:
                from engine.resume import resume_run

                result = resume_run(Path(args.resume))
            else:
                result = train(json.loads(args.config_json), Path(args.out))
    except KeyboardInterrupt as exc:
        print(f"interrupted: {str(exc) or 'interrupted by SIGINT'}; the run is kept", file=sys.stderr)
        return interrupt_exit_code(exc)
    except EosError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    except OSError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return StorageError.exit_code
    print(f"{result.status}: {result.message}")
    return RUN_EXIT_CODES.get(result.status, 1)


if __name__ == "__main__":
    sys.exit(main())
