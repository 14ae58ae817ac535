"""Sweeps without a cluster: the plan, the manifest, the status scan, `eos-tui analyze`, and one
`error:` line (exit 2, nothing written or overwritten) for every bad input."""

from __future__ import annotations

import csv
import io
import json
import math
import shutil
import time

import numpy as np
import pytest

from engine.errors import ConfigError
from engine.store import open_run
from engine.sweep.manifest import check_plan, read_manifest, set_aside_stale_runs, write_manifest
from engine.sweep.plan import RunSpec, config_hash, make_plan, parse_sizes
from engine.sweep.status import SweepScanner, format_duration
from sweep_fixtures import TINY_SWEEP, invoke, synthetic_sweep


def plan(**kw):
    args = dict(sizes=[200, 400], init_seeds=2, subset_seeds=2, sets=["train.max_steps=30"])
    args.update(kw)
    return make_plan("dice-quick-ee", **args)


def test_plan_runs_paths_and_configs():
    p = plan()
    runs = p.runs()
    assert [r.rel for r in runs][:2] == ["size=400/init=0/subset=0", "size=400/init=0/subset=1"]
    assert len(runs) == 8 and len({r.rel for r in runs}) == 8
    assert RunSpec.parse("size=400/init=1/subset=0") == RunSpec(400, 1, 0)
    cfg = p.config_for(RunSpec(400, 1, 1), group="S")
    assert cfg["data"]["size"] == 400 and cfg["train"]["seed"] == 1 and cfg["data"]["subset_seed"] == 1
    assert cfg["train"]["threads"] == 1 and cfg["train"]["max_steps"] == 30 and cfg["group"] == "S"
    assert p.base["data"]["size"] == 0  # per run
    # the preset's seeds are offsets; the hash changes with any setting, not with the order of --set
    shifted = plan(sets=["train.max_steps=30", "train.seed=10"])
    assert shifted.config_for(RunSpec(200, 1, 0))["train"]["seed"] == 11
    assert plan(sets=["train.max_steps=30", "train.lr=0.1"]).hash != p.hash
    assert plan(sets=["train.lr=0.3", "train.max_steps=30"]).hash == plan(sets=["train.max_steps=30", "train.lr=0.3"]).hash
    assert config_hash({**p.base, "group": "x"}) == p.hash
    # default sizes: the paper's Table-1 sizes of the data set
    assert make_plan("dice-ce", sizes=None, init_seeds=4, subset_seeds=4).sizes == [468, 937, 1875, 3750, 7500]
    assert parse_sizes("800, 200,400,200") == [200, 400, 800]


@pytest.mark.parametrize("kw, message", [
    (dict(init_seeds=0), "--init-seeds must be a positive integer"),
    (dict(subset_seeds="-1"), "--subset-seeds must be a positive integer"),
    (dict(init_seeds="two"), "--init-seeds must be a positive integer"),
    (dict(sizes=[100, 70000]), "70000 larger than the dice training set (60000 samples)"),
    (dict(sets=["data.size=100"]), "use --sizes"),
    (dict(sets=["train.lrr=1"]), "did you mean 'train.lr'"),
])
def test_bad_plans(kw, message):
    with pytest.raises(ConfigError) as err:
        plan(**kw)
    assert message in str(err.value)


def test_manifest_same_plan_different_plan_and_force(tmp_path):
    p = plan()
    assert check_plan(tmp_path / "new", p) is False  # a new directory takes any plan
    write_manifest(tmp_path / "s", p)
    assert check_plan(tmp_path / "s", plan()) is False
    with pytest.raises(ConfigError, match=r"different sweep plan \(sizes 200,400 → 200,400,800; settings train.max_steps\)"):
        check_plan(tmp_path / "s", plan(sizes=[200, 400, 800], sets=["train.max_steps=40"]))
    assert check_plan(tmp_path / "s", plan(init_seeds=3), force=True) is True
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "x").write_text("keep")
    with pytest.raises(ConfigError, match="holds no sweep"):
        check_plan(tmp_path / "other", p)
    assert read_manifest(tmp_path / "s")["runs"] == [r.rel for r in p.runs()]


def test_force_sets_aside_runs_it_cannot_reuse(tmp_path):
    sweep = synthetic_sweep(tmp_path / "s", sizes=(100, 200), seeds=1)
    old = make_plan("dice-quick-ee", sizes=[100, 200], init_seeds=1, subset_seeds=1, sets=["train.max_steps=30"])
    new = make_plan("dice-quick-ee", sizes=[100, 200], init_seeds=1, subset_seeds=1, sets=["train.max_steps=31"])
    # runs of the same config stay; runs of another config move to superseded-*/ (never deleted)
    assert set_aside_stale_runs(sweep, old) == []
    moved = set_aside_stale_runs(sweep, new)
    assert sorted(moved) == ["size=100/init=0/subset=0", "size=200/init=0/subset=0"]
    kept = list(sweep.glob("superseded-*/size=*/init=*/subset=*/run.json"))
    assert len(kept) == 2 and not (sweep / "size=100").joinpath("init=0", "subset=0").exists()


def test_status_scan_progress_eta_and_live_fit(tmp_path):
    sweep = synthetic_sweep(tmp_path / "s", statuses={"size=800/init=0/subset=1": "failed"},
                            missing=("size=100/init=0/subset=1",))
    status = SweepScanner(sweep).scan()
    states = {r.rel: r.state for r in status.runs}
    assert states["size=100/init=0/subset=1"] == "pending" and states["size=800/init=0/subset=1"] == "failed"
    assert status.counts == {"pending": 1, "finished": 6, "failed": 1}
    r = next(r for r in status.runs if r.rel == "size=400/init=0/subset=0")
    assert r.steps_done == 30 and r.fraction == 1.0 and r.loss == pytest.approx(2.0 * math.exp(-29 / 20))
    assert r.lambda1 == pytest.approx(7.9) and r.wall_s == pytest.approx(2.9)
    assert status.fraction == pytest.approx(1 - 100 / (2 * 100 + 2 * 200 + 2 * 400 + 2 * 800))
    assert status.eta_s is None  # nothing running
    fit = status.analysis.fit
    assert fit is not None and fit.n == 6 and abs(fit.c2 - 0.4) < 0.1
    assert "8 runs: 1 pending, 6 finished, 1 failed" in status.summary()
    assert format_duration(3725) == "1h02m" and format_duration(65) == "1m05s"


def test_analyze_json_csv_table(tmp_path):
    sweep = synthetic_sweep(tmp_path / "s", statuses={"size=800/init=0/subset=1": "diverged"})
    res = invoke("analyze", sweep, "--format", "json")
    assert res.exit_code == 0, res.output
    a = json.loads(res.stdout)
    assert list(a)[:2] == ["sweep", "fit"]  # the fit's c2 is the first c2 of the document
    included = [r for r in a["runs"] if r["included"]]
    assert len(included) == 7 and a["counts"]["excluded"] == {"diverged": 1}
    x = np.log([r["size"] for r in included])
    y = np.log([r["max_P1"] for r in included])
    slope, intercept = np.polyfit(x, y, 1)
    assert a["fit"]["c2"] == pytest.approx(slope, rel=1e-9) and a["fit"]["c1"] == pytest.approx(math.exp(intercept), rel=1e-9)
    lo, hi = a["fit"]["c2_ci95"]
    assert lo < a["fit"]["c2"] < hi and a["fit"]["bootstrap"] == 1000
    for r in a["runs"]:  # max P^1 after the transient only (the synthetic spike at step 10 is ignored)
        with open_run(sweep / r["run"]) as run:
            snaps = run.snapshots()
            assert r["max_P1"] == pytest.approx(float(snaps["P_1"][snaps["step"] > 10].max()))
    assert [m["size"] for m in a["per_size"]] == [100, 200, 400, 800] and a["per_size"][-1]["runs"] == 1
    assert a["paper_table2"]["row"] == "dice-ce"

    res = invoke("analyze", sweep, "--format", "csv")
    rows = list(csv.DictReader(io.StringIO(res.stdout)))
    kinds = [r["kind"] for r in rows]
    assert kinds.count("run") == 8 and kinds.count("median") == 4 and kinds.count("fit") == 1 and kinds[-1] == "paper"
    fit_row = next(r for r in rows if r["kind"] == "fit")
    assert float(fit_row["c2"]) == pytest.approx(a["fit"]["c2"], rel=1e-12)

    res = invoke("analyze", sweep)
    assert res.exit_code == 0
    for text in ("this sweep", "paper Table 2 (dice-ce)", "median max P^1", "7 of 8 runs in the fit",
                 "excluded: 1 diverged", "no (diverged)"):
        assert text in res.stdout, text


def test_analyze_needs_two_sizes(tmp_path):
    sweep = synthetic_sweep(tmp_path / "s", sizes=(100, 200),
                            statuses={"size=200/init=0/subset=0": "failed", "size=200/init=0/subset=1": "failed"})
    res = invoke("analyze", sweep, "--format", "json")
    assert res.exit_code == 2
    assert json.loads(res.stdout)["fit"] is None
    assert res.stderr.strip().startswith("error: no power-law fit: power-law fit needs at least 2 dataset sizes")


@pytest.fixture
def sweep_copy(tmp_path):
    sweep = synthetic_sweep(tmp_path / "s", sizes=(40, 80), seeds=1)
    return sweep, (sweep / "sweep.json").read_bytes()


@pytest.mark.parametrize("args, message", [
    (["sweep", "nope"], "unknown preset 'nope'"),
    (["sweep", "dice-quick-ee", "--sizes", "100,99999"], "99999 larger than the dice training set"),
    (["sweep", "dice-quick-ee", "--sizes", "0,100"], "every dataset size must be a positive integer"),
    (["sweep", "dice-quick-ee", "--sizes", "a,b"], "--sizes expects positive integers"),
    (["sweep", "dice-quick-ee", "--init-seeds", "0"], "--init-seeds must be a positive integer, got 0"),
    (["sweep", "dice-quick-ee", "--subset-seeds", "-2"], "--subset-seeds must be a positive integer, got -2"),
    (["sweep", "dice-quick-ee", "--workers", "0"], "--workers must be a positive integer, got 0"),
    (["sweep", "dice-quick-ee", "--workers", "2", "--scheduler", "tcp://127.0.0.1:1"], "with --scheduler the cluster has its own workers"),
    (["sweep", "status"], "needs the sweep directory"),
    (["sweep", "status", "/nonexistent/sweep"], "is not an eos-tui sweep"),
    (["sweep", "watch", "/nonexistent/sweep"], "is not an eos-tui sweep"),
    (["analyze", "/nonexistent/sweep"], "is not a directory"),
    (["analyze", ".", "--format", "xls"], "--format must be one of table, csv, json"),
    (["resume", "/nonexistent/run"], "does not exist"),
])
def test_bad_input_is_one_error_line_exit_2_and_nothing_written(tmp_path, args, message):
    out = tmp_path / "out"
    res = invoke(*args, *(["--out", out, "--no-ui"] if args[0] == "sweep" and args[1] not in ("status", "watch") else []))
    assert res.exit_code == 2, res.output
    lines = [line for line in res.output.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:") and message in lines[0], res.output
    assert not out.exists()


def test_a_different_plan_is_refused_without_force(sweep_copy):
    sweep, manifest = sweep_copy
    before = sorted(p.relative_to(sweep) for p in sweep.rglob("*"))
    res = invoke("sweep", *TINY_SWEEP, "--no-ui", "--out", sweep)
    assert res.exit_code == 2
    lines = [line for line in res.output.splitlines() if line.strip()]
    assert len(lines) == 1 and "holds a different sweep plan" in lines[0] and "--force" in lines[0]
    assert (sweep / "sweep.json").read_bytes() == manifest
    assert sorted(p.relative_to(sweep) for p in sweep.rglob("*")) == before


def test_a_sweep_with_a_live_client_is_refused(sweep_copy):
    from engine.resume import run_lock

    sweep, manifest = sweep_copy
    with run_lock(sweep / "client"):
        res = invoke("sweep", "dice-quick-ee", "--sizes", "40,80", "--init-seeds", "1", "--subset-seeds", "1",
                     "--set", "train.max_steps=30", "--no-ui", "--out", sweep)
    assert res.exit_code == 2 and "another eos-tui sweep client is running" in res.output
    assert (sweep / "sweep.json").read_bytes() == manifest


def test_sweep_status_table(sweep_copy):
    sweep, _ = sweep_copy
    res = invoke("sweep", "status", sweep)
    assert res.exit_code == 0, res.output
    rows = [line.split("\t") for line in res.stdout.strip().splitlines()]
    assert rows[0] == ["run", "state", "steps", "progress", "loss", "λ1", "max P^1", "wall s", "message"]
    assert {r[0] for r in rows[1:]} == {"size=80/init=0/subset=0", "size=40/init=0/subset=0"}
    assert all(r[1] == "finished" and r[2] == "30" and r[3] == "100%" for r in rows[1:])


def test_a_copied_sweep_keeps_working(sweep_copy, tmp_path):
    """Nothing in a sweep directory depends on its absolute path (it may be moved to a cluster)."""
    sweep, _ = sweep_copy
    moved = tmp_path / "moved"
    shutil.copytree(sweep, moved)
    assert {r.state for r in SweepScanner(moved).scan().runs} == {"finished"}


def test_expected_steps_follow_the_loss_to_the_target():
    from engine.sweep.status import _steps_to_target

    step = np.arange(10, 30)
    rows = {"step": step, "loss": 2.0 * np.exp(-0.1 * step)}
    assert _steps_to_target(rows, 0.01) == pytest.approx(math.log(200) / 0.1 + 1)  # the step after it reaches 0.01
    assert _steps_to_target({"step": step, "loss": np.full(20, 0.5)}, 0.01) == 0.0  # no descent: unknown
    assert _steps_to_target({"step": step[:5], "loss": rows["loss"][:5]}, 0.01) == 0.0  # too few rows


def test_a_port_that_is_not_a_dask_scheduler(tmp_path):
    import socket
    import threading

    server = socket.create_server(("127.0.0.1", 0))
    port = server.getsockname()[1]

    def answer() -> None:  # another service on the port: an HTTP reply to anything
        while True:
            try:
                conn, _ = server.accept()
            except OSError:
                return
            with conn:
                conn.sendall(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n" * 4)

    threading.Thread(target=answer, daemon=True).start()
    try:
        out = tmp_path / "out"
        res = invoke("sweep", "dice-quick-ee", "--no-ui", "--out", out, "--scheduler", f"tcp://127.0.0.1:{port}")
    finally:
        server.close()
    assert res.exit_code == 2, res.output
    lines = [line for line in res.output.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:") and "Dask scheduler" in lines[0], res.output
    assert not out.exists()


def test_the_sweep_client_stops_once_on_sigterm_even_when_signalled_twice(tmp_path):
    """`python -m engine.sweep` (what the sweep screen spawns) under SIGTERM, then a second SIGTERM
    while it stops: its runs in progress end `interrupted` (not crashed) and it exits 143."""
    import signal as _signal

    from engine.launch import spawn_sweep
    from engine.store import open_run
    from engine.sweep.manifest import write_manifest
    from engine.sweep.plan import make_plan
    from sweep_fixtures import TINY_SWEEP_SETS

    sweep = tmp_path / "s"
    sets = [s for s in TINY_SWEEP_SETS if not s.startswith("train.max_steps")] + ["train.max_steps=400"]
    write_manifest(sweep, make_plan("dice-quick-ee", sizes=[80], init_seeds=1, subset_seeds=1, sets=sets))
    run = sweep / "size=80/init=0/subset=0"
    client = spawn_sweep(sweep, workers=1)
    try:
        deadline = time.monotonic() + 240
        while True:
            if (run / "run.json").exists():
                with open_run(run) as r:
                    if (r.last_step() or 0) >= 5:
                        break
            assert client.poll() is None, client.log_path.read_text()
            assert time.monotonic() < deadline, "the run did not start"
            time.sleep(0.1)
        client.send_signal(_signal.SIGTERM)
        time.sleep(0.3)
        client.send_signal(_signal.SIGTERM)  # as a screen and its caller both might
        assert client.wait(timeout=120) == 143, client.log_path.read_text()
    finally:
        if client.poll() is None:
            client.kill()
    with open_run(run) as r:
        assert r.status == "interrupted" and not r.crashed, (r.status, r.status_message)
