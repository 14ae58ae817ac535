"""Eight runs started at the same moment into one runs folder: all succeed, each in its own
directory (the second-resolution name gets a suffix), each named on its output."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from engine.store import list_runs, open_run
from faults.faultlib import ROOT, TINY_ARGS


@pytest.mark.slow
def test_eight_simultaneous_starts_into_one_runs_folder(tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    cmd = [sys.executable, "-m", "eos_tui.cli", "run", "preset", "dice-quick", "--no-ui", "--max-steps", "2",
           "--runs-dir", str(runs), *TINY_ARGS]
    procs = [subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT)
             for _ in range(8)]
    outputs = [p.communicate(timeout=600) for p in procs]
    assert [p.returncode for p in procs] == [0] * 8, [err for _, err in outputs]
    named = [next(line.split("run directory: ", 1)[1] for line in out.splitlines() if "run directory: " in line)
             for out, _ in outputs]
    assert len(set(named)) == 8
    dirs = sorted(p for p in runs.iterdir())
    assert sorted(map(Path, named)) == dirs
    for d in dirs:
        with open_run(d) as run:
            assert run.status == "finished" and run.num_steps() == 2
    assert {s.status for s in list_runs(runs)} == {"finished"}
