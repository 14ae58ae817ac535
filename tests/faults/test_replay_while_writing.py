"""A replay reading while another process writes: every read is a consistent, growing prefix of
the rows the writer committed (no torn or reordered row), exports taken meanwhile too, and the
replay ends with every row."""

from __future__ import annotations

import csv
import math
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from engine.store import open_run
from eos_tui.app.reader import poll_once
from eos_tui.app.series import RunData
from faults.faultlib import FIGURES, ROOT, eos_tui
from store_writer_proc import expected_row

WRITER = ROOT / "tests" / "store_writer_proc.py"


def _torn(view: dict, start: int) -> list[str]:
    """Rows of ``view`` from index ``start`` that differ from what the writer wrote."""
    bad = []
    steps = view.get("step", ())
    if list(steps) != list(range(len(steps))):
        return ["steps are not 0..n-1"]
    for i in range(start, len(steps)):
        row = expected_row(i)
        for col in ("t", "loss", "accuracy", "grad_norm", "hvp_count"):
            if not math.isclose(float(view[col][i]), float(row[col]), rel_tol=0, abs_tol=1e-12):
                bad.append(f"step {i} {col}")
        lam = row["lambda_H"]
        got = view["lambda_H_1"][i], view["lambda_H_2"][i]
        if got[0] != lam[0] or not (np.isnan(got[1]) if np.isnan(lam[1]) else got[1] == lam[1]):
            bad.append(f"step {i} lambda_H")
    return bad


def _export_while_written(run_dir: Path, writer: subprocess.Popen, tmp: Path, results: list[str]) -> None:
    while writer.poll() is None:
        out = tmp / f"export{len(results)}.csv"
        res = eos_tui("export", run_dir, "--out", out)
        if res.returncode != 0:
            results.append(res.stderr)
            continue
        with open(out, newline="") as f:
            rows = list(csv.DictReader(f))
        ok = [int(r["step"]) for r in rows] == list(range(len(rows))) and all(
            float(r["loss"]) == expected_row(int(r["step"]))["loss"] for r in rows)
        results.append("ok" if ok else f"export {len(results)} is not a prefix of the written rows")


@pytest.mark.slow
def test_replay_reads_a_consistent_growing_prefix_while_a_process_writes(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    writer = subprocess.Popen([sys.executable, str(WRITER), str(run_dir), "--steps", "6000", "--sleep", "0.0005",
                               "--checkpoint-every", "97"], stdout=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 60
        while not (run_dir / "run.json").exists():
            assert writer.poll() is None and time.monotonic() < deadline
            time.sleep(0.01)
        data = RunData(key="r", path=run_dir)
        reads, torn, checked = 0, [], 0
        exports: list[str] = []  # exports of the run as it is being written, from another thread
        exporter = threading.Thread(target=_export_while_written, args=(run_dir, writer, tmp_path, exports))
        exporter.start()
        with open_run(run_dir) as run:
            while True:
                done = writer.poll() is not None
                poll_once(run, data)
                reads += 1
                view = data.steps.view()
                torn += _torn(view, checked)
                checked = len(view.get("step", ()))
                if done and data.status == "finished":
                    poll_once(run, data)
                    break
                time.sleep(0.005)
        exporter.join()
        assert writer.wait(timeout=60) == 0
    finally:
        if writer.poll() is None:
            writer.kill()
            writer.wait()
    FIGURES["replay reads"] += reads
    FIGURES["torn reads"] += len(torn)
    assert not torn, torn[:10]
    assert len(data.steps) == 6000 and reads >= 100
    assert exports and all(e == "ok" for e in exports), exports
