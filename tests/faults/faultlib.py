"""Helpers of the fault suite: starting ``eos-tui`` (with injected faults) in child processes,
checking that a killed run recovers, hashing trees, and the suite's figures (:data:`FIGURES`)."""

from __future__ import annotations

import csv
import hashlib
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

from conftest import TINY

ROOT = Path(__file__).resolve().parents[2]
CHILD = Path(__file__).resolve().parent / "child.py"
TINY_ARGS = [a for item in TINY for a in ("--set", item)]
LONG_ARGS = ["--set", "train.max_steps=100000", "--set", "train.target_loss=1e-12"]

FIGURES: Counter = Counter()
"""What the suite did, printed at the end of the session (tests/faults/conftest.py):
``runs killed`` (by signal and by point), ``runs recovered``, ``rows lost``, ``inputs tried``,
``one-line errors``, ``tracebacks``, ``trees modified`` ..."""

EXIT_BY_SIGNAL = {signal.SIGINT: 130, signal.SIGTERM: 143, signal.SIGHUP: 129, signal.SIGKILL: -signal.SIGKILL}


def start_run(out: Path, *extra: str, fault: str | None = None, commits: Path | None = None,
              slow_step: float = 0.0, long: bool = True) -> subprocess.Popen:
    """``eos-tui run preset dice-quick --no-ui --out OUT`` (tiny) in a child process, with
    ``fault`` injected (``FAULT_AT``, see child.py) and committed steps logged to ``commits``."""
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    for key in ("FAULT_AT", "FAULT_COMMITS", "FAULT_SLOW_STEP"):
        env.pop(key, None)
    if fault:
        env["FAULT_AT"] = fault
    if commits:
        env["FAULT_COMMITS"] = str(commits)
    if slow_step:
        env["FAULT_SLOW_STEP"] = str(slow_step)
    cmd = [sys.executable, str(CHILD), "run", "preset", "dice-quick", "--no-ui", "--out", str(out),
           *TINY_ARGS, *(LONG_ARGS if long else []), *extra]
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT, env=env)


def eos_tui(*args: str, env: dict | None = None, timeout: float = 180) -> subprocess.CompletedProcess:
    """The installed command (its entry point, with this interpreter) in a child process."""
    return subprocess.run([sys.executable, "-m", "eos_tui.cli", *map(str, args)], capture_output=True,
                          text=True, timeout=timeout, cwd=ROOT, env=env)


def committed(ledger: Path) -> list[int]:
    try:
        return [int(x) for x in ledger.read_text().split()]
    except FileNotFoundError:
        return []


def wait_for_commits(ledger: Path, n: int, proc: subprocess.Popen, timeout: float = 180) -> None:
    deadline = time.monotonic() + timeout
    while len(committed(ledger)) < n:
        if proc.poll() is not None:
            raise AssertionError(f"the run ended early ({proc.returncode}): {proc.stderr.read()}")
        if time.monotonic() > deadline:
            raise AssertionError("the run did not start in time")
        time.sleep(0.05)


def check_recovered(run_dir: Path, commits: list[int], sig: int | None, tmp: Path) -> int:
    """Assert that a killed run reopens, exports and replays to its last committed step, with
    every checkpoint complete or absent; return the number of committed rows lost (0)."""
    from engine.export import export_run
    from engine.store import open_run
    from engine.store.listing import summarize
    from eos_tui.app.reader import poll_once
    from eos_tui.app.series import RunData

    with open_run(run_dir) as run:
        assert run.status == "interrupted", (run.status, run.status_message)
        assert run.crashed == (sig == signal.SIGKILL)
        steps = [int(s) for s in run.steps()["step"]]
        assert steps == list(range(len(steps))), "steps are not contiguous"
        lost = len(set(commits) - set(steps))
        assert len(steps) >= len(commits)  # at most the step in flight is missing from the ledger
        num_params = int(run.meta["num_params"])
        for step in run.checkpoint_steps():
            theta = run.checkpoint(step)["theta"]
            assert step in steps and theta.numel() == num_params and bool(theta.isfinite().all())
        assert set(run.snapshot_steps().tolist()) <= set(steps)
        run.training_data()
    leftovers = list((run_dir / "checkpoints").glob("*.tmp"))
    assert sig == signal.SIGKILL or not leftovers, leftovers  # a caught signal cleans up
    out = tmp / f"{run_dir.name}.csv"
    export_run(run_dir, "csv", out)
    with open(out, newline="") as f:
        assert sum(1 for _ in csv.DictReader(f)) == len(steps)
    with open_run(run_dir) as run:  # what the replay screen reads, with its own reader code
        data = RunData(key="r", path=run_dir)
        poll_once(run, data)
        assert len(data.steps) == len(steps) and data.status == "interrupted"
    assert summarize(run_dir).status == "interrupted"
    return lost


def tree_hash(*roots: Path) -> dict[str, str]:
    """Path -> sha256 (or ``dir``) of everything under ``roots``: equal before and after means
    nothing was created, removed or modified."""
    out: dict[str, str] = {}
    for root in roots:
        root = Path(root)
        if not root.exists():
            out[str(root)] = "absent"
            continue
        for p in sorted([root, *root.rglob("*")]):
            if p.is_dir():
                out[str(p)] = "dir"
            else:
                out[str(p)] = hashlib.sha256(p.read_bytes()).hexdigest()
    return out


class PtyCommand:
    """A command on a pseudo-terminal (the Textual UI needs one): ``send`` keys, ``wait``."""

    def __init__(self, args: list[str], *, size: tuple[int, int] = (140, 40)) -> None:
        import fcntl
        import pty
        import struct
        import termios

        self.master, slave = pty.openpty()
        fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", size[1], size[0], 0, 0))
        env = dict(os.environ, TERM="xterm-256color", COLUMNS=str(size[0]), LINES=str(size[1]))
        self.proc = subprocess.Popen(args, stdin=slave, stdout=slave, stderr=slave, env=env, cwd=ROOT,
                                     start_new_session=True)
        os.close(slave)
        self.output = bytearray()

    def drain(self, seconds: float = 0.0) -> None:
        import select

        end = time.monotonic() + seconds
        while True:
            ready, _, _ = select.select([self.master], [], [], max(0.0, min(0.1, end - time.monotonic())))
            if ready:
                try:
                    self.output.extend(os.read(self.master, 65536))
                except OSError:
                    return
            elif time.monotonic() >= end:
                return

    def send(self, keys: str) -> None:
        os.write(self.master, keys.encode())

    def wait(self, timeout: float = 90) -> int:
        end = time.monotonic() + timeout
        while self.proc.poll() is None and time.monotonic() < end:
            self.drain(0.2)
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
            raise AssertionError(f"did not exit: {self.text()[-2000:]}")
        self.drain(0.1)
        return self.proc.returncode

    def text(self) -> str:
        """What the command wrote, without terminal escape sequences."""
        import re

        return re.sub(r"\x1b(\[[0-9;?<>=$]*[ -/]*[@-~]|[@-Z\\-_])", "", self.output.decode("utf-8", "replace"))

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        os.close(self.master)


def wait_for_rows(run_dir: Path, n: int, while_alive=None, timeout: float = 180) -> None:
    """Wait until the run at ``run_dir`` has ``n`` committed rows."""
    from engine.store import open_run

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if while_alive is not None and while_alive.poll() is not None:
            raise AssertionError(f"the process ended early ({while_alive.returncode})")
        try:
            with open_run(run_dir) as run:
                if run.num_steps() >= n:
                    return
        except Exception:  # noqa: BLE001 - not created yet
            pass
        time.sleep(0.1)
    raise AssertionError(f"{run_dir} did not reach {n} rows")


def engine_pids(run_dir: Path) -> list[int]:
    """Pids of engine processes (``python -m engine.launch``) training into ``run_dir``."""
    pids = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            cmd = (proc / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if b"engine.launch" in cmd and str(run_dir).encode() in cmd:
            pids.append(int(proc.name))
    return pids
