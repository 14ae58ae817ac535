"""`eos-tui resume`: an interrupted run continues from its last checkpoint on the trajectory the
uninterrupted run took (to 1e-10), rows already stored are recomputed and compared, not rewritten."""

from __future__ import annotations

import math
import sqlite3

import numpy as np
import pytest

from conftest import tiny_config
from engine.errors import RunStoreError
from engine.launch import spawn_training
from engine.resume import find_resume_point, resume_run, run_lock
from engine.store import open_run, send_control
from engine.trainer import train
from sweep_fixtures import invoke, kill_9_when

STEPS = 45
SOLVERS = {
    "ee": ("dice-quick-ee", []),
    "gd": ("dice-quick", ["eig.every=3"]),          # λ1 every 3rd step: the step counter is state
    "rk4": ("dice-quick", ["train.solver=rk4", "eig.every=2"]),  # and RK4's λ1 between eigen steps
}


def config(solver: str, *extra: str) -> dict:
    preset, sets = SOLVERS[solver]
    return tiny_config(f"train.max_steps={STEPS}", "train.target_loss=1e-9", *sets, *extra, preset=preset)


def interrupted_at(cfg: dict, path, step: int):
    def stop(row):
        if row["step"] == step:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train(cfg, path, on_step=stop)
    return path


def assert_same_trajectory(full, resumed, after: int) -> None:
    with open_run(full) as a, open_run(resumed) as b:
        sa, sb = a.steps(), b.steps()
        assert sa["step"].tolist() == sb["step"].tolist() == list(range(STEPS))
        for col in sa:
            if col == "wall_s":
                continue
            x, y = sa[col][after:], sb[col][after:]
            both_nan = np.isnan(x) & np.isnan(y)
            err = np.abs(x - y)[~both_nan] / np.maximum(np.abs(x[~both_nan]), 1e-300)
            assert not err.size or err.max() <= 1e-10, (col, err.max())
        na, nb = a.snapshots(), b.snapshots()
        assert na["step"].tolist() == nb["step"].tolist()
        for col in na:
            if col not in ("step", "snapshot_seconds"):
                np.testing.assert_allclose(nb[col], na[col], rtol=1e-8, equal_nan=True, err_msg=col)
        assert a.checkpoint_steps() == b.checkpoint_steps()
        ta, tb = a.checkpoint()["theta"], b.checkpoint()["theta"]
        assert float((ta - tb).abs().max() / ta.abs().max()) <= 1e-10
        assert b.status == "finished"


@pytest.mark.parametrize("solver", sorted(SOLVERS))
def test_resume_equals_the_uninterrupted_run(tmp_path, solver):
    cfg = config(solver)
    full = tmp_path / "full"
    train(cfg, full)
    cut = interrupted_at(cfg, tmp_path / "cut", 27)
    point = find_resume_point(cut)
    assert (point.step, point.last_step) == (20, 27)  # the checkpoint of the snapshot at step 20
    result = resume_run(cut)
    assert result.status == "finished" and result.steps == STEPS
    assert_same_trajectory(full, cut, after=20)
    with open_run(cut) as run:
        events = run.events()
    resumed = [e for e in events if e["kind"] == "resumed"]
    assert len(resumed) == 1 and "rows 20..27 recomputed (8 compared) agree with the stored rows to 0" in resumed[0]["message"]


def test_resume_after_kill_9_and_after_a_stop(tmp_path):
    cfg = config("ee", "train.max_steps=200", "metrics.snapshot_every=25")
    full = tmp_path / "full"
    train(cfg, full)
    run_dir = tmp_path / "killed"
    def rows() -> int:
        if not (run_dir / "run.json").exists():
            return 0
        with open_run(run_dir) as run:
            return run.last_step() or 0

    kill_9_when(spawn_training(cfg, run_dir), lambda: rows() >= 60)
    with open_run(run_dir) as run:
        assert run.status == "interrupted" and run.crashed
        killed_at = run.last_step()
    assert 60 <= killed_at < 199
    # first resume: stop it from the control channel after a few steps (as a monitor's `s` would)
    calls = []

    def stop_soon(row):
        calls.append(row["step"])
        if len(calls) == 3:
            send_control(run_dir, "stop")

    first = resume_run(run_dir, on_step=stop_soon)
    assert first.status == "interrupted"
    # then again to the end: the stop left in the control file does not stop it again
    res = invoke("resume", run_dir, "--no-ui")
    assert res.exit_code == 0, res.output
    with open_run(full) as a, open_run(run_dir) as b:
        for col in ("t", "loss", "tau", "lambda_H_1", "grad_norm", "hvp_count"):
            np.testing.assert_allclose(b.steps()[col], a.steps()[col], rtol=1e-10, err_msg=col)
        assert float((a.checkpoint()["theta"] - b.checkpoint()["theta"]).abs().max()) <= 1e-10
        kinds = [e["kind"] for e in b.events()]
    assert kinds.count("resumed") == 2 and kinds[-1] == "finished"


def test_a_stored_row_that_differs_is_kept_and_reported(tmp_path):
    cfg = config("ee")
    cut = interrupted_at(cfg, tmp_path / "cut", 25)
    with sqlite3.connect(cut / "metrics.sqlite") as db:  # as if written by another machine
        db.execute("UPDATE steps SET loss = loss * (1 + 1e-6), packed = NULL WHERE step = 23")
    stored = open_run(cut).steps()["loss"][23]
    resume_run(cut)
    with open_run(cut) as run:
        assert run.steps()["loss"][23] == stored  # append-only: the stored row keeps its value
        warning = [e["message"] for e in run.events() if e["kind"] == "warning"]
    assert len(warning) == 1 and "agree with the stored rows to 1e-06" in warning[0]


def test_what_cannot_be_resumed(tmp_path):
    cfg = config("ee")
    done = tmp_path / "done"
    train(cfg, done)
    with pytest.raises(RunStoreError, match=r"has ended \(finished\): there is nothing to resume"):
        find_resume_point(done)
    res = invoke("resume", done, "--no-ui")
    assert res.exit_code == 2 and res.output.startswith("error:") and len(res.output.strip().splitlines()) == 1

    cut = interrupted_at(cfg, tmp_path / "cut", 15)
    with run_lock(cut):  # another process is resuming it
        with pytest.raises(RunStoreError, match="being resumed or trained by another process"):
            resume_run(cut)
    for ckpt in (cut / "checkpoints").iterdir():  # checkpoints of an older eos-tui: θ only
        from engine.store.files import encode_tensors, load_tensors

        theta = load_tensors(ckpt, "checkpoint")["theta"]
        ckpt.write_bytes(encode_tensors({"theta": theta}, None))
    with pytest.raises(RunStoreError, match="no checkpoint with the solver's state"):
        find_resume_point(cut)


def test_a_live_run_is_not_resumed(tmp_path):
    from app_fixtures import start_writer

    proc = start_writer(tmp_path / "live", delay=0.05)
    try:
        with pytest.raises(RunStoreError, match="still being written"):
            find_resume_point(tmp_path / "live")
    finally:
        proc.kill()
        proc.wait()


def test_checkpoints_hold_the_pre_step_state(tmp_path):
    run = tmp_path / "r"
    train(config("gd"), run)
    with open_run(run) as r:
        ck = r.checkpoint(20)
        hvp = r.steps()["hvp_count"]
    assert int(ck["steps_taken"]) == 20  # the solver's counter before step 20
    assert int(ck["hvp_count"]) == int(hvp[19])  # products before step 20 = after step 19
    assert {"eig_block", "eig_values"} <= set(ck) and not math.isnan(float(ck["eig_values"][0]))


def test_headless_resume_answers_sigterm_like_a_run(tmp_path):
    """`eos-tui resume RUN --no-ui` under SIGTERM: the run ends `interrupted` again with every
    committed row, exit 143 (as `eos-tui run --no-ui`); a later resume finishes it, exit 0."""
    import os
    import signal
    import subprocess
    import sys
    import time

    cfg = config("ee", "train.max_steps=400", "metrics.snapshot_every=25")
    cut = interrupted_at(cfg, tmp_path / "cut", 30)
    proc = subprocess.Popen([sys.executable, "-m", "eos_tui.cli", "resume", str(cut), "--no-ui"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 120
        while True:
            with open_run(cut) as run:
                if (run.last_step() or 0) >= 40:
                    break
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() < deadline, "the resumed run did not advance"
            time.sleep(0.05)
        os.kill(proc.pid, signal.SIGTERM)
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 143, err
    with open_run(cut) as run:
        assert run.status == "interrupted" and not run.crashed
        stopped_at = run.last_step()
    assert 40 <= stopped_at < 399
    res = invoke("resume", cut, "--no-ui")
    assert res.exit_code == 0, res.output
    with open_run(cut) as run:
        assert run.status == "finished" and run.last_step() == 399
