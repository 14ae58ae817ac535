"""Run the training engine in its own process.

The UI never trains in its own process: it spawns ``python -m engine.launch`` and follows the
run directory through the store. The worker runs at a lower scheduling priority so that the
interface stays responsive on a small machine, and turns SIGTERM into the same clean
``interrupted`` ending as Ctrl-C.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

WORKER_NICENESS = 5


def spawn_training(config: dict, out_dir: Path, log_path: Path | None = None) -> subprocess.Popen:
    """Start training ``config`` into ``out_dir`` in a child process; its output goes to ``log_path``."""
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
        return subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                env=env, cwd=str(Path(__file__).resolve().parent.parent))
    finally:
        log.close()


def _raise_interrupt(signum, frame):  # noqa: ARG001 - signal handler signature
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    from engine.errors import EosError
    from engine.trainer import train

    parser = argparse.ArgumentParser(description="eos-tui training worker")
    parser.add_argument("--out")
    parser.add_argument("--config-json")
    parser.add_argument("--resume", help="continue this interrupted run from its last checkpoint")
    args = parser.parse_args(argv)
    if args.resume is None and (args.out is None or args.config_json is None):
        parser.error("give --out and --config-json, or --resume RUN")
    signal.signal(signal.SIGTERM, _raise_interrupt)
    try:
        os.nice(WORKER_NICENESS)
    except OSError:
        pass
    try:
        if args.resume is not None:
            from engine.resume import resume_run

            result = resume_run(Path(args.resume))
        else:
            result = train(json.loads(args.config_json), Path(args.out))
    except KeyboardInterrupt:
        return 130
    except EosError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    print(f"{result.status}: {result.message}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
