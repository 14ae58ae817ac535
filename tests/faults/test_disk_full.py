"""A full disk: the run stops with a clear status (``failed``, saying the disk is full), exit 5
and one line, and its store stays intact (reopens, exports, every committed step there,
checkpoints complete or absent). On a real small tmpfs where the sandbox lets us mount one
(a user and mount namespace), and with injected ENOSPC everywhere."""

from __future__ import annotations

import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from engine.export import export_run
from engine.store import open_run
from faults.faultlib import CHILD, FIGURES, LONG_ARGS, ROOT, TINY_ARGS, committed, start_run

FULL = ("No space left on device", "database or disk is full")


def _check_store(run_dir: Path, commits: list[int], tmp: Path) -> str:
    """The run after the disk filled: a clear status, every committed step, and an intact
    store; returns the status message."""
    FIGURES["disk-full runs"] += 1
    with open_run(run_dir) as run:
        assert run.status == "failed" and not run.crashed, (run.status, run.status_message)
        message = run.status_message or ""
        assert any(text in message for text in FULL), message
        FIGURES["disk-full clear status"] += 1
        steps = [int(s) for s in run.steps()["step"]]
        assert steps == list(range(len(steps))) and set(commits) <= set(steps)
        for step in run.checkpoint_steps():
            assert run.checkpoint(step)["theta"].numel() == int(run.meta["num_params"])
    export_run(run_dir, "csv", tmp / f"{run_dir.name}.csv")
    assert not list((run_dir / "checkpoints").glob("*.tmp"))
    FIGURES["disk-full store intact"] += 1
    return message


def _one_error_line(stderr: str) -> str:
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: ") and "Traceback" not in stderr, stderr
    assert any(text in lines[0] for text in FULL), lines[0]
    return lines[0]


@pytest.mark.slow
@pytest.mark.parametrize("where", ["checkpoint", "transaction"])
def test_injected_enospc(tmp_path: Path, where: str) -> None:
    out, ledger = tmp_path / "run", tmp_path / "commits"
    proc = start_run(out, "--set", "metrics.snapshot_every=5", fault=f"{where}:3:ENOSPC", commits=ledger)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 5, err
    _one_error_line(err)
    _check_store(out, committed(ledger), tmp_path)


def _can_mount_tmpfs() -> bool:
    if shutil.which("unshare") is None:
        return False
    probe = subprocess.run(["unshare", "-Urm", "sh", "-c", "mount -t tmpfs -o size=64k tmpfs /mnt 2>/dev/null "
                            "|| mount -t tmpfs -o size=64k tmpfs /tmp"], capture_output=True)
    return probe.returncode == 0


@pytest.mark.slow
@pytest.mark.parametrize("fills", ["checkpoints", "store"])
def test_real_full_disk(tmp_path: Path, fills: str) -> None:
    """A 2 MiB tmpfs, mostly taken by ballast: the run fills the rest with checkpoints (every
    other step) or with store rows (no checkpoints after the first), and must stop cleanly."""
    if not _can_mount_tmpfs():
        pytest.skip("cannot mount a tmpfs here (no user and mount namespaces); the injected ENOSPC tests cover this")
    disk, copy = tmp_path / "disk", tmp_path / "copy"
    disk.mkdir()
    copy.mkdir()
    extra = (["--set", "metrics.snapshot_every=2"] if fills == "checkpoints" else
             ["--set", "metrics.snapshot_every=100000", "--set", "metrics.transient_steps=100000"])
    child = shlex.join([sys.executable, str(CHILD), "run", "preset", "dice-quick", "--no-ui", "--out",
                        str(disk / "run"), *TINY_ARGS, *LONG_ARGS, *extra])
    script = f"""
        mount -t tmpfs -o size=2m tmpfs {disk} || exit 90
        head -c {2048 * 1024 - 640 * 1024} /dev/zero > {disk}/ballast
        FAULT_COMMITS={tmp_path}/commits timeout 300 {child} > {tmp_path}/out 2> {tmp_path}/err
        echo $? > {tmp_path}/rc
        df -k {disk} | tail -1 > {tmp_path}/df
        cp -a {disk}/run {copy}/run
    """
    res = subprocess.run(["unshare", "-Urm", "sh", "-c", script], capture_output=True, text=True, timeout=400,
                         cwd=ROOT)
    assert res.returncode == 0, res.stderr
    rc = int((tmp_path / "rc").read_text())
    err = (tmp_path / "err").read_text()
    assert rc == 5, err + (tmp_path / "out").read_text()[-2000:]
    _one_error_line(err)
    message = _check_store(copy / "run", committed(tmp_path / "commits"), tmp_path)
    assert str(disk / "run") in message or "disk" in message
