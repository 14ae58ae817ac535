"""Sweeps on real Dask clusters: a 2-worker LocalCluster end to end, the same sweep on an external
scheduler (``dask scheduler`` + ``dask worker`` processes started here on localhost), and a
sweep client killed with SIGKILL mid-way then run again."""

from __future__ import annotations

import json
import math
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from engine.store import open_run
from sweep_fixtures import ROOT, TINY_RUNS, analyze_json, invoke, kill_9_when, run_cli, run_json_count, sweep_command

pytestmark = pytest.mark.timeout(900)


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> tuple[Path, subprocess.CompletedProcess]:
    """The tiny sweep, uninterrupted, on a 2-worker LocalCluster."""
    out = tmp_path_factory.mktemp("sweep") / "ref"
    res = run_cli(sweep_command(out, "--workers", "2"))
    assert res.returncode == 0, res.stdout + res.stderr
    return out, res


def assert_same_analysis(a: dict, b: dict) -> None:
    runs_a = {r["run"]: r for r in a["runs"]}
    runs_b = {r["run"]: r for r in b["runs"]}
    assert runs_a.keys() == runs_b.keys()
    for name, r in runs_a.items():
        assert r["status"] == runs_b[name]["status"] == "finished"
        assert math.isclose(r["max_P1"], runs_b[name]["max_P1"], rel_tol=1e-9), name
    for key in ("c1", "c2", "r2"):
        assert math.isclose(a["fit"][key], b["fit"][key], rel_tol=1e-9), key


def test_local_cluster_sweep_end_to_end(reference):
    out, res = reference
    manifest = json.loads((out / "sweep.json").read_text())
    assert manifest["preset"] == "dice-quick-ee" and manifest["sizes"] == [40, 80]
    assert sorted(manifest["runs"]) == sorted(TINY_RUNS)
    assert run_json_count(out) == 4
    for rel in TINY_RUNS:  # real run directories at deterministic paths, written by the workers
        with open_run(out / rel) as run:
            assert run.status == "finished" and run.num_steps() == 120
            assert run.meta["n_train"] == int(rel.split("/")[0].split("=")[1])
            assert run.config["train"]["threads"] == 1
            assert run.meta["host"] and int(run._meta_table()["pid"]) != os.getpid()  # noqa: SLF001
    subsets = {}
    for rel in TINY_RUNS:
        with open_run(out / rel) as run:
            subsets[rel] = run.training_data()["indices"].tolist()
    assert subsets[TINY_RUNS[0]] != subsets[TINY_RUNS[1]]  # subset seeds differ
    journal = [json.loads(line) for line in (out / "events.jsonl").read_text().splitlines()]
    assert sorted(r["rel"] for r in journal) == sorted(TINY_RUNS)
    assert {r["status"] for r in journal} == {"finished"} and {r["action"] for r in journal} == {"trained"}
    assert "max P^1 ≈" in res.stdout and "4 finished" in res.stdout

    # the same command again: nothing is run again, no cluster is started
    t0 = time.perf_counter()
    again = run_cli(sweep_command(out, "--workers", "2"))
    assert again.returncode == 0, again.stderr
    assert "nothing to do" in again.stdout and run_json_count(out) == 4
    assert len((out / "events.jsonl").read_text().splitlines()) == 4
    assert time.perf_counter() - t0 < 60

    # sweep status: the table of runs (tab-separated when piped)
    status = invoke("sweep", "status", out)
    assert status.exit_code == 0, status.output
    lines = status.stdout.strip().splitlines()
    assert lines[0].split("\t")[:3] == ["run", "state", "steps"]
    assert sorted(line.split("\t")[0] for line in lines[1:]) == sorted(TINY_RUNS)
    assert all(line.split("\t")[1] == "finished" for line in lines[1:])
    assert "4 finished" in status.stderr and "client: finished" in status.stderr

    a = analyze_json(out)
    assert a["fit"]["runs"] == 4 and a["fit"]["sizes"] == 2 and a["counts"]["excluded"] == {}
    lo, hi = a["fit"]["c2_ci95"]
    assert lo <= a["fit"]["c2"] <= hi
    assert a["paper_table2"] == {"row": "dice-ce", "c1": 0.0017, "c2": 0.23, "r2": 0.84}


@pytest.fixture
def external_cluster(tmp_path):
    """A real scheduler and two single-threaded workers on localhost (free ports)."""
    sched_file = tmp_path / "scheduler.json"
    env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
    procs = [subprocess.Popen([sys.executable, "-m", "distributed.cli.dask_scheduler", "--host", "127.0.0.1",
                               "--port", "0", "--no-dashboard", "--scheduler-file", str(sched_file)],
                              cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)]
    try:
        deadline = time.monotonic() + 60
        while not sched_file.exists() and time.monotonic() < deadline:
            time.sleep(0.2)
        address = json.loads(sched_file.read_text())["address"]
        procs.append(subprocess.Popen(
            [sys.executable, "-m", "distributed.cli.dask_worker", address, "--nworkers", "2", "--nthreads", "1",
             "--no-dashboard", "--host", "127.0.0.1", "--local-directory", str(tmp_path / "dask-worker")],
            cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        from distributed import Client

        with Client(address, timeout="30s") as client:
            client.wait_for_workers(2, timeout=120)
        yield address
    finally:
        for p in reversed(procs):
            p.terminate()
        for p in reversed(procs):
            try:
                p.wait(timeout=30)
            except subprocess.TimeoutExpired:
                p.kill()


@pytest.mark.slow
def test_external_scheduler_sweep(reference, external_cluster, tmp_path):
    out = tmp_path / "ext"
    res = run_cli(sweep_command(out, "--scheduler", external_cluster))
    assert res.returncode == 0, res.stdout + res.stderr
    assert "2 workers" in res.stderr  # the scheduler's workers were reported before the sweep
    assert run_json_count(out) == 4
    assert_same_analysis(analyze_json(reference[0]), analyze_json(out))
    client = json.loads((out / "client.json").read_text())
    assert client["scheduler"] == external_cluster and client["state"] == "finished"


def _progress(sweep: Path) -> dict[str, int]:
    rows = {}
    for rel in TINY_RUNS:
        if (sweep / rel / "run.json").exists():
            try:
                with open_run(sweep / rel) as run:
                    rows[rel] = run.num_steps()
            except Exception:  # noqa: BLE001 - being created
                pass
    return rows


@pytest.mark.slow
def test_sigkill_of_the_client_then_rerun(reference, tmp_path):
    out = tmp_path / "killed"
    client = subprocess.Popen(sweep_command(out, "--workers", "2"), cwd=ROOT, stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL)

    def under_way() -> bool:  # a run well under way, and some runs not done
        rows = _progress(out)
        return any(n >= 30 for n in rows.values()) and sum(n == 120 for n in rows.values()) < 3

    kill_9_when(client, under_way)
    cut = _progress(out)
    assert any(n < 120 for n in cut.values()) or len(cut) < 4, cut
    res = run_cli(sweep_command(out, "--workers", "2"))
    assert res.returncode == 0, res.stdout + res.stderr
    assert run_json_count(out) == 4  # no run duplicated
    for rel in TINY_RUNS:
        with open_run(out / rel) as run:
            steps = run.steps(columns=["loss"])["step"].tolist()
            assert run.status == "finished" and steps == list(range(120)), rel
    journal = [json.loads(line) for line in (out / "events.jsonl").read_text().splitlines()]
    assert "resumed" in {r["action"] for r in journal} or any(n == 0 for n in cut.values())
    assert_same_analysis(analyze_json(reference[0]), analyze_json(out))


@pytest.mark.slow
def test_a_lost_worker_is_replaced_and_its_run_continues(reference, tmp_path):
    """SIGKILL of a worker process mid-run: Dask runs the task again on the restarted worker,
    which continues the run from its checkpoint; the analysis is the uninterrupted one."""
    out = tmp_path / "lost"
    client = subprocess.Popen(sweep_command(out, "--workers", "1"), cwd=ROOT, stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, text=True)
    rel = TINY_RUNS[0]  # the first run submitted
    worker = {}

    def under_way() -> bool:
        if not (out / rel / "run.json").exists():
            return False
        with open_run(out / rel) as run:
            worker["pid"] = int(run._meta_table()["pid"])  # noqa: SLF001 - the writer's pid
            return (run.last_step() or 0) >= 40

    try:
        deadline = time.monotonic() + 300
        while not under_way():
            assert client.poll() is None and time.monotonic() < deadline
            time.sleep(0.05)
        os.kill(worker["pid"], signal.SIGKILL)
        output, _ = client.communicate(timeout=600)
    finally:
        if client.poll() is None:
            client.kill()
    assert client.returncode == 0, output
    assert "Warning" not in output and "Traceback" not in output, output
    journal = {r["rel"]: r for r in map(json.loads, (out / "events.jsonl").read_text().splitlines())}
    assert journal[rel]["action"] == "resumed" and journal[rel]["pid"] != worker["pid"]
    assert run_json_count(out) == 4
    assert_same_analysis(analyze_json(reference[0]), analyze_json(out))


def test_unreachable_scheduler_is_one_line_within_10_s(tmp_path):
    import socket

    with socket.socket() as s:  # a free port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    out = tmp_path / "never"
    t0 = time.perf_counter()
    res = run_cli(sweep_command(out, "--scheduler", f"tcp://127.0.0.1:{port}"), timeout=60)
    elapsed = time.perf_counter() - t0
    assert res.returncode == 2, res.stdout + res.stderr
    errors = [line for line in res.stderr.splitlines() if line.strip()]
    assert len(errors) == 1 and errors[0].startswith("error: cannot reach the Dask scheduler"), res.stderr
    assert "Traceback" not in res.stdout + res.stderr
    assert elapsed < 10
    assert not out.exists()  # nothing written


def test_worker_side_task_is_idempotent(reference, tmp_path):
    """The task itself (as a lost worker's retry would run it): a finished run is left alone."""
    from engine.sweep.task import run_task

    copy = tmp_path / "copy"
    shutil.copytree(reference[0], copy)
    rel = TINY_RUNS[0]
    before = (copy / rel / "metrics.sqlite").stat().st_mtime_ns
    res = run_task({"path": str(copy / rel), "rel": rel, "config": {}, "threads": 1})
    assert res["action"] == "skipped" and res["status"] == "finished"
    assert (copy / rel / "metrics.sqlite").stat().st_mtime_ns == before
