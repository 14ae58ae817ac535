"""Tests for engine/store.py: round trip, concurrent reads, kill -9 safety, bad input."""

from __future__ import annotations

import json
import math
import os
import signal
import sqlite3
import subprocess
import sys
import time
import tomllib
from contextlib import nullcontext
from pathlib import Path

import numpy as np
import pytest
import torch

from engine.errors import EosError, RunStoreError
from engine.store import (
    SCALAR_COLUMNS,
    RunWriter,
    dumps_toml,
    is_run_dir,
    list_runs,
    open_run,
    send_control,
)

pytestmark = pytest.mark.timeout(60)

REPO = Path(__file__).resolve().parents[1]
HELPER = Path(__file__).with_name("store_writer_proc.py")
sys.path.insert(0, str(HELPER.parent))
from store_writer_proc import NUM_EIGS, expected_row, expected_theta  # noqa: E402

NAN = float("nan")
CONFIG = {
    "preset": "dice-ce",
    "model": {"sizes": [1024, 64, 6], "activation": "elu", "gain": 1.0, "bias": None},
    "data": {"name": "dice", "size": 468, "seed": 3, "path": None},
    "train": {"solver": "gd", "lr": 0.01, "max_steps": 5000, "fp64": True,
              "schedule": {"kind": "const", "values": [0.5, 1e-20]}},
}
META = {"preset": "dice-ce", "solver": "gd", "device": "cpu", "depth": 2, "num_params": 66_000,
        "created": "2024-05-01T12:00:00+00:00"}


def make_writer(path: Path, num_eigs: int = 3, **meta) -> RunWriter:
    return RunWriter.create(path, config=CONFIG, meta={**META, **meta}, num_eigs=num_eigs,
                            heartbeat_interval=None)


def spawn_writer(run_dir: Path, *args: str) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.Popen([sys.executable, str(HELPER), str(run_dir), *args], cwd=REPO,
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def check_rows(cols: dict[str, np.ndarray], first: int, count: int) -> None:
    """``cols`` holds exactly the helper's rows ``first .. first + count - 1``."""
    np.testing.assert_array_equal(cols["step"], np.arange(first, first + count))
    for i, step in enumerate(range(first, first + count)):
        row = expected_row(step)
        assert cols["loss"][i] == row["loss"]
        assert cols["hvp_count"][i] == row["hvp_count"]
        assert cols["lambda_H_1"][i] == row["lambda_H"][0]
        np.testing.assert_array_equal(cols["lambda_H_2"][i], row["lambda_H"][1])
        assert math.isnan(cols["lambda_H_3"][i])
        assert cols["neg_eigs"][i] == (1 if step % 3 == 0 else 0)


# ------------------------------------------------------------------------------------------
# Round trip
# ------------------------------------------------------------------------------------------


def test_round_trip(tmp_path: Path) -> None:
    run_dir = tmp_path / "deep" / "run1"
    rows = [
        {"step": 0, "t": 0.0, "loss": 1.75, "accuracy": 0.125, "grad_norm": 3.5, "lr": 0.01,
         "tau": 0.01, "threshold": 200.0, "wall_s": 0.5, "hvp_count": 12, "transient": 1,
         "lambda_H": [250.0, NAN, NAN]},
        {"step": 1, "t": 0.01, "loss": 1.5, "transient": 1},  # nothing else computed
        {"step": 2, "t": 0.02, "loss": 1.25, "transient": 0, "lambda_H": np.array([150.0, 2.0])},
        {"step": 5, "t": 0.05, "loss": NAN, "transient": 0, "neg_eigs": 2,
         "lambda_H": torch.tensor([180.0, -1.0, 0.5], dtype=torch.float64)},
    ]
    theta0 = torch.linspace(-1, 1, 7, dtype=torch.float64)
    eigvecs = torch.randn(7, 3, dtype=torch.float32)
    X = torch.randn(4, 3)
    y = torch.tensor([0, 1, 2, 1])
    with make_writer(run_dir) as w:
        assert w.num_eigs == 3 and w.path == run_dir
        for row in rows:
            w.append_step(row)
        assert w.last_step == 5
        w.append_snapshot(0, {"lambda_G1": 240.0, "P_1": 0.5, "overlap_ratio": NAN})
        w.append_snapshot(2, {"lambda_G1": 140.0, "P_1": 0.25, "s_1": 3.0})
        w.append_snapshot(5, {"P_1": 0.125})
        w.log_event(0, "info", "started")
        w.log_event(None, "warning", "slow step, 'quoted'\nsecond line")
        p0 = w.save_checkpoint(0, {"theta": theta0, "eigvecs": eigvecs})
        w.save_checkpoint(5, {"theta": theta0[::2] * 2})  # a non-contiguous view
        w.save_training_data(X, y, np.array([5, 9, 11, 40]))
    assert p0 == run_dir / "checkpoints" / "step_00000000.safetensors"
    assert is_run_dir(run_dir)

    with open_run(run_dir) as run:
        assert run.config == {"preset": "dice-ce",
                              "model": {"sizes": [1024, 64, 6], "activation": "elu", "gain": 1.0},
                              "data": {"name": "dice", "size": 468, "seed": 3},
                              "train": CONFIG["train"]}
        assert run.meta == {**META, "num_eigs": 3}
        assert run.num_eigs == 3
        assert run.status == "finished" and not run.crashed and run.status_message is None

        cols = run.steps()
        assert list(cols) == list(SCALAR_COLUMNS) + ["lambda_H_1", "lambda_H_2", "lambda_H_3"]
        assert cols["step"].dtype == np.int64 and cols["loss"].dtype == np.float64
        np.testing.assert_array_equal(cols["step"], [0, 1, 2, 5])
        np.testing.assert_array_equal(cols["loss"], [1.75, 1.5, 1.25, NAN])
        np.testing.assert_array_equal(cols["hvp_count"], [12, NAN, NAN, NAN])
        np.testing.assert_array_equal(cols["lambda_H_1"], [250.0, NAN, 150.0, 180.0])
        np.testing.assert_array_equal(cols["lambda_H_2"], [NAN, NAN, 2.0, -1.0])
        np.testing.assert_array_equal(cols["lambda_H_3"], [NAN, NAN, NAN, 0.5])
        # NaN eigenvalue (negative) vs not computed: neg_eigs tells them apart.
        np.testing.assert_array_equal(cols["neg_eigs"], [2, NAN, 0, 2])

        # The typed columns alone give the same answer as the packed fast path.
        with sqlite3.connect(run_dir / "metrics.sqlite") as raw:
            raw.execute("UPDATE steps SET packed = NULL WHERE step = 2")
        slow = run.steps()
        assert list(slow) == list(cols)
        for name in cols:
            np.testing.assert_array_equal(slow[name], cols[name])
            assert slow[name].dtype == cols[name].dtype

        tail = run.steps(since=1, columns=["loss", "lambda_H_1"])
        assert list(tail) == ["step", "loss", "lambda_H_1"]
        np.testing.assert_array_equal(tail["step"], [2, 5])
        empty = run.steps(since=5)
        assert len(empty["step"]) == 0 and empty["step"].dtype == np.int64
        assert run.last_step() == 5 and run.num_steps() == 4

        np.testing.assert_array_equal(run.snapshot_steps(), [0, 2, 5])
        snaps = run.snapshots()
        assert list(snaps) == ["step", "lambda_G1", "P_1", "overlap_ratio", "s_1"]
        np.testing.assert_array_equal(snaps["lambda_G1"], [240.0, 140.0, NAN])
        np.testing.assert_array_equal(snaps["P_1"], [0.5, 0.25, 0.125])
        np.testing.assert_array_equal(snaps["s_1"], [NAN, 3.0, NAN])
        np.testing.assert_array_equal(run.snapshots(since=2)["step"], [5])
        at0 = run.snapshot_at(0)
        assert at0["lambda_G1"] == 240.0 and math.isnan(at0["overlap_ratio"])

        events = run.events()
        assert [(e["id"], e["step"], e["kind"], e["message"]) for e in events] == [
            (1, 0, "info", "started"), (2, None, "warning", "slow step, 'quoted'\nsecond line")]
        assert run.events(since=1)[0]["id"] == 2

        assert run.checkpoint_steps() == [0, 5]
        ck0 = run.checkpoint(0)
        assert torch.equal(ck0["theta"], theta0) and torch.equal(ck0["eigvecs"], eigvecs)
        assert ck0["eigvecs"].dtype == torch.float32
        assert torch.equal(run.checkpoint()["theta"], theta0[::2] * 2)
        data = run.training_data()
        assert torch.equal(data["X"], X) and torch.equal(data["y"], y)
        assert data["indices"].dtype == torch.int64
        assert data["indices"].tolist() == [5, 9, 11, 40]

        s = run.summary()
        assert (s.name, s.status, s.preset, s.solver, s.steps) == (
            "run1", "finished", "dice-ce", "gd", 4)
        assert s.t == 0.05 and s.final_loss is None  # NaN loss at the end reads as missing
        assert s.max_lambda == 180.0  # step 0 (250) is transient
        assert s.max_P1 == 0.25  # snapshot at transient step 0 excluded
        assert s.started == META["created"]


def test_toml_writer_round_trips_awkward_values() -> None:
    data = {
        "top": 1,
        "weird key.x": "quote \" backslash \\ tab\t newline\n bell\x07 del\x7f é ✓",
        "floats": [0.1, 1e300, -2.5e-8, float("inf"), -float("inf")],
        "big": 2**62, "neg": -3, "flag": False, "np": np.float32(0.5), "npi": np.int64(4),
        "skip": None,
        "empty": {},
        "a": {"b": {"c": {"d": 1}}, "list_of_tables": [{"x": 1, "y": None}, {"z": "w"}],
              "tuple": (1, 2), "path": Path("/tmp/x"), "nested": [[1, 2], ["a"]]},
    }
    text = dumps_toml(data, header="line one\nline two")
    assert text.startswith("# line one\n# line two\n")
    back = tomllib.loads(text)
    expected = {k: v for k, v in data.items() if k != "skip"}
    expected["np"], expected["npi"] = 0.5, 4
    expected["a"] = {"b": {"c": {"d": 1}}, "list_of_tables": [{"x": 1}, {"z": "w"}],
                     "tuple": [1, 2], "path": "/tmp/x", "nested": [[1, 2], ["a"]]}
    assert back == expected
    assert math.isnan(tomllib.loads(dumps_toml({"x": float("nan")}))["x"])
    with pytest.raises(TypeError, match="a.b"):
        dumps_toml({"a": {"b": object()}})
    with pytest.raises(TypeError, match="None inside the list"):
        dumps_toml({"a": [1, None]})


# ------------------------------------------------------------------------------------------
# Writer behaviour
# ------------------------------------------------------------------------------------------


def test_writer_rejects_bad_rows(tmp_path: Path) -> None:
    w = make_writer(tmp_path / "r", num_eigs=2)
    w.append_step({"step": 3})
    with pytest.raises(ValueError, match="unknown step field"):
        w.append_step({"step": 4, "los": 1.0})
    with pytest.raises(ValueError, match="3 eigenvalues given"):
        w.append_step({"step": 4, "lambda_H": [1.0, 2.0, 3.0]})
    with pytest.raises(ValueError, match="not after the last recorded step 3"):
        w.append_step({"step": 3})
    with pytest.raises(ValueError, match="not after"):
        w.append_steps([{"step": 4}, {"step": 4}])
    with pytest.raises(ValueError, match="duplicate"):
        w.append_snapshot(3, {"P_1": 1.0})
        w.append_snapshot(3, {"P_1": 2.0})
    with pytest.raises(ValueError, match="unknown status"):
        w.set_status("done")
    w.close()
    with pytest.raises(RunStoreError, match="closed"):
        w.append_step({"step": 9})
    with open_run(tmp_path / "r") as run:
        np.testing.assert_array_equal(run.steps()["step"], [3])  # rejected rows left no trace
        assert run.snapshot_at(3) == {"P_1": 1.0}


@pytest.mark.parametrize("raise_, preset, expected, message", [
    (None, None, "finished", None),
    (RuntimeError("boom"), None, "failed", "RuntimeError: boom"),
    (KeyboardInterrupt(), None, "interrupted", "interrupted by the user"),
    (RuntimeError("after divergence"), "diverged", "diverged", "diverged at step 812"),
    (None, "diverged", "diverged", "diverged at step 812"),
])
def test_context_manager_final_status(tmp_path: Path, raise_, preset, expected, message) -> None:
    with pytest.raises(type(raise_)) if raise_ is not None else nullcontext():
        with make_writer(tmp_path / "r") as w:
            if preset:
                w.set_status(preset, "diverged at step 812")
            if raise_ is not None:
                raise raise_
    with open_run(tmp_path / "r") as run:
        assert (run.status, run.status_message) == (expected, message)
        assert not run.crashed


def test_control_channel_round_trip(tmp_path: Path) -> None:
    w = make_writer(tmp_path / "r")
    assert w.poll_control() == "run"  # no control file yet
    with open_run(tmp_path / "r") as run:
        for command in ("pause", "stop", "run", "stop"):
            send_control(tmp_path / "r", command)
            assert w.poll_control() == command
            assert w.poll_control() == command  # cached
            assert run.control == command
    assert not list(tmp_path.glob("r/*.tmp"))
    (tmp_path / "r" / "control").write_text("garbage")
    assert w.poll_control() == "run"
    (tmp_path / "r" / "control").unlink()
    assert w.poll_control() == "run"
    w.close()


def test_stale_heartbeat_reads_interrupted(tmp_path: Path) -> None:
    w = make_writer(tmp_path / "r")
    with open_run(tmp_path / "r") as run:
        assert run.status == "running" and not run.crashed  # our own pid, fresh heartbeat
    with open_run(tmp_path / "r", stale_after=0.0) as run:
        assert run.status == "interrupted"
    # Age the heartbeat behind the writer's back: readers report interrupted, store untouched.
    with sqlite3.connect(tmp_path / "r" / "metrics.sqlite") as conn:
        conn.execute("UPDATE meta SET value = ? WHERE key = 'heartbeat'", (repr(time.time() - 99),))
    with open_run(tmp_path / "r") as run:
        assert run.status == "interrupted" and run.crashed
        assert run.summary().status == "interrupted"
        assert dict(run._query("SELECT key, value FROM meta"))["status"] == "running"
    w._last_heartbeat -= 2.0  # pretend the last write was 2 s ago: the next beat is due
    w.heartbeat()
    with open_run(tmp_path / "r") as run:
        assert run.status == "running"
    w.close()


# ------------------------------------------------------------------------------------------
# Concurrency and crash safety (writer in a subprocess)
# ------------------------------------------------------------------------------------------


def test_reading_while_writing_sees_growing_prefix(tmp_path: Path) -> None:
    run_dir = tmp_path / "live"
    total = 300
    proc = spawn_writer(run_dir, "--steps", str(total), "--sleep", "0.001")
    try:
        assert proc.stdout.readline().strip() == "0"  # first row committed
        run = open_run(run_dir)
        seen, batches, last = 0, 0, None
        while True:
            alive = proc.poll() is None
            cols = run.steps(since=last)
            n = len(cols["step"])
            if n:
                check_rows(cols, seen, n)  # contiguous continuation of what we had
                seen += n
                batches += 1
                last = int(cols["step"][-1])
                assert run.last_step() == last or run.last_step() > last
            if alive:
                assert run.status in ("running", "finished")
            else:
                if seen == total:
                    break
            time.sleep(0.005)
        assert proc.wait(timeout=30) == 0, proc.stderr.read()
        assert batches >= 2, "the reader never saw a partial prefix"
        assert run.status == "finished" and run.num_steps() == total
        run.close()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_kill_9_loses_nothing_committed(tmp_path: Path) -> None:
    run_dir = tmp_path / "killed"
    proc = spawn_writer(run_dir, "--steps", "0", "--checkpoint-every", "10")
    printed = []
    try:
        while not printed or printed[-1] < 35:
            line = proc.stdout.readline()
            assert line, f"writer exited early: {proc.stderr.read()}"
            printed.append(int(line))
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    printed += [int(line) for line in proc.stdout.read().split()]  # committed before the kill
    committed = printed[-1]

    with open_run(run_dir) as run:
        n = run.num_steps()
        assert n in (committed + 1, committed + 2)  # at most one committed-but-unprinted step
        check_rows(run.steps(), 0, n)
        assert run.status == "interrupted" and run.crashed
        assert run.status_message
        latest = run.checkpoint_steps()[-1]
        assert latest % 10 == 0 and committed // 10 * 10 <= latest <= n - 1
        np.testing.assert_array_equal(run.checkpoint()["theta"].numpy(), expected_theta(latest))
        assert run.summary().status == "interrupted"
    assert (run_dir / "metrics.sqlite").stat().st_size > 0


def test_checkpoint_tmp_leftovers_are_ignored(tmp_path: Path) -> None:
    w = make_writer(tmp_path / "r")
    w.save_checkpoint(10, {"theta": np.ones(3)})
    ckdir = tmp_path / "r" / "checkpoints"
    (ckdir / "step_00000020.safetensors.tmp").write_bytes(b"\x00partial")
    (ckdir / "step_00000030.safetensors.1234.5678.tmp").write_bytes(b"\x00partial")
    w.close()
    with open_run(tmp_path / "r") as run:
        assert run.checkpoint_steps() == [10]
        assert run.checkpoint()["theta"].tolist() == [1.0, 1.0, 1.0]
        with pytest.raises(RunStoreError, match=r"no checkpoint at step 20 .* steps 10$"):
            run.checkpoint(20)


# ------------------------------------------------------------------------------------------
# Bad input
# ------------------------------------------------------------------------------------------


def _one_line_error(excinfo: pytest.ExceptionInfo) -> str:
    message = str(excinfo.value)
    assert message and "\n" not in message
    assert isinstance(excinfo.value, EosError)
    return message


def test_open_missing_and_non_run_dirs(tmp_path: Path) -> None:
    with pytest.raises(RunStoreError, match="does not exist") as exc:
        open_run(tmp_path / "nope")
    _one_line_error(exc)
    (tmp_path / "junk").mkdir()
    (tmp_path / "junk" / "notes.txt").write_text("hi")
    with pytest.raises(RunStoreError, match="not an eos-tui run directory") as exc:
        open_run(tmp_path / "junk")
    _one_line_error(exc)
    with pytest.raises(RunStoreError, match="not a directory"):
        open_run(tmp_path / "junk" / "notes.txt")


def test_open_corrupt_store_and_config(tmp_path: Path) -> None:
    make_writer(tmp_path / "bad").close()
    (tmp_path / "bad" / "metrics.sqlite").write_bytes(os.urandom(8192))
    with pytest.raises(RunStoreError, match="corrupt.*not a database") as exc:
        open_run(tmp_path / "bad")
    _one_line_error(exc)

    make_writer(tmp_path / "badcfg").close()
    (tmp_path / "badcfg" / "config.toml").write_text("model = [unclosed\n")
    with pytest.raises(RunStoreError, match="config .*config.toml is unreadable") as exc:
        open_run(tmp_path / "badcfg")
    _one_line_error(exc)

    make_writer(tmp_path / "badjson").close()
    (tmp_path / "badjson" / "run.json").write_text("{not json")
    with pytest.raises(RunStoreError, match="run.json is unreadable"):
        open_run(tmp_path / "badjson")


def test_create_refuses_non_empty_dir_and_bad_control(tmp_path: Path) -> None:
    target = tmp_path / "out"
    target.mkdir()
    (target / "keep.txt").write_text("x")
    with pytest.raises(RunStoreError, match="already exists and is not empty") as exc:
        make_writer(target)
    _one_line_error(exc)
    assert sorted(p.name for p in target.iterdir()) == ["keep.txt"]

    w = make_writer(tmp_path / "empty_ok")  # an existing empty dir is fine
    w.close()
    with pytest.raises(RunStoreError, match="unknown control command 'halt'") as exc:
        send_control(tmp_path / "empty_ok", "halt")
    _one_line_error(exc)
    with pytest.raises(RunStoreError, match="not an eos-tui run directory"):
        send_control(tmp_path / "missing", "stop")
    with pytest.raises(RunStoreError, match="has no training data"):
        open_run(tmp_path / "empty_ok").training_data()
    with pytest.raises(RunStoreError, match="has no checkpoints"):
        open_run(tmp_path / "empty_ok").checkpoint()
    with pytest.raises(RunStoreError, match="unknown step column"):
        open_run(tmp_path / "empty_ok").steps(columns=["nope"])


# ------------------------------------------------------------------------------------------
# Listing and scale
# ------------------------------------------------------------------------------------------


def test_list_runs(tmp_path: Path) -> None:
    older = make_writer(tmp_path / "a_older", created="2024-01-01T00:00:00+00:00", solver="rk4")
    older.append_step({"step": 0, "loss": 2.0, "t": 0.0, "lambda_H": [3.0, 1.0, NAN]})
    older.close("diverged", "diverged at step 0")
    newer = make_writer(tmp_path / "b_newer", created="2024-06-01T00:00:00+00:00")
    newer.append_step({"step": 0, "loss": 1.0, "t": 0.0})
    newer.close()
    (tmp_path / "junk").mkdir()
    (tmp_path / "junk" / "file.txt").write_text("not a run")
    make_writer(tmp_path / "c_corrupt", created="2023-01-01T00:00:00+00:00").close()
    (tmp_path / "c_corrupt" / "metrics.sqlite").write_bytes(b"garbage" * 100)
    assert [r.name for r in list_runs(tmp_path)] == ["b_newer", "a_older"]  # just changed: not judged yet
    settled = time.time() - 10
    for p in [tmp_path / "c_corrupt", *(tmp_path / "c_corrupt").iterdir()]:
        os.utime(p, (settled, settled))

    runs = list_runs(tmp_path)
    assert [(r.name, r.status) for r in runs] == [
        ("b_newer", "finished"), ("a_older", "diverged"), ("c_corrupt", "corrupt")]
    assert runs[1].solver == "rk4" and runs[1].max_lambda == 3.0 and runs[1].final_loss == 2.0
    assert runs[1].message == "diverged at step 0"
    assert "not a database" in runs[2].message and runs[2].preset == "dice-ce"

    assert [r.name for r in list_runs(tmp_path / "b_newer")] == ["b_newer"]  # root is a run
    with pytest.raises(RunStoreError, match="does not exist"):
        list_runs(tmp_path / "nowhere")


def test_100k_rows_read_back(tmp_path: Path) -> None:
    n, k = 100_000, 4
    w = make_writer(tmp_path / "big", num_eigs=k)
    w.append_steps({"step": i, "t": 0.01 * i, "loss": 1.0 / (i + 1), "hvp_count": i,
                    "lambda_H": (float(i), 1.0, NAN, 0.5)} for i in range(n))
    w.close()
    with open_run(tmp_path / "big") as run:
        start = time.perf_counter()
        cols = run.steps()
        elapsed = time.perf_counter() - start
        assert len(cols["step"]) == n and run.num_steps() == n
        np.testing.assert_array_equal(cols["step"], np.arange(n))
        np.testing.assert_array_equal(cols["lambda_H_1"], np.arange(n, dtype=np.float64))
        assert np.isnan(cols["lambda_H_3"]).all() and (cols["neg_eigs"] == 1).all()
        assert len(run.steps(since=n - 11)["step"]) == 10
    print(f"steps() of {n} rows: {elapsed:.3f} s")
