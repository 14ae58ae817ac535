"""The command line: headless runs, listing, export, and one-line errors for bad input."""

from __future__ import annotations

import csv
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from conftest import TINY
from engine.store import open_run
from eos_tui.cli import app

runner = CliRunner()
TINY_ARGS = [a for item in TINY for a in ("--set", item)]


def invoke(*args: str):
    return runner.invoke(app, list(args), catch_exceptions=False)


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("cli") / "run"
    result = invoke("run", "preset", "dice-quick", "--no-ui", "--out", str(out), *TINY_ARGS)
    assert result.exit_code == 0, result.output
    assert "finished" in result.output
    return out


def test_headless_run_prints_progress_and_saves_the_run(finished_run):
    with open_run(finished_run) as run:
        assert run.status == "finished" and run.num_steps() == 30


def test_runs_table_lists_the_run(finished_run):
    result = invoke("runs", str(finished_run.parent), "--no-ui")
    assert result.exit_code == 0
    assert "run" in result.output and "finished" in result.output and "dice-quick" in result.output


def test_export_csv_uses_the_spec_column_names(finished_run, tmp_path):
    out = tmp_path / "m.csv"
    result = invoke("export", str(finished_run), "--format", "csv", "--out", str(out))
    assert result.exit_code == 0, result.output
    with open(out) as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 30
    for col in ("step", "t", "loss", "accuracy", "grad_norm", "lr", "tau", "threshold", "wall_s",
                "hvp_count", "lambda_H_1", "lambda_G1", "overlap_ratio", "EK2", "P_1", "r_1", "s_2",
                "kappa_3", "m_1", "EK2_layer_2", "a_L"):
        assert col in rows[0], col
    assert rows[10]["P_1"] != "" and rows[11]["P_1"] == ""  # snapshot columns at snapshot steps only


def test_presets_lists_every_preset():
    result = invoke("presets")
    assert result.exit_code == 0
    lines = result.stdout.splitlines()
    assert lines[0].split("\t")[:5] == ["preset", "data", "n", "criterion", "solver"]
    rows = {line.split("\t")[0]: line.split("\t") for line in lines[1:]}
    for name in ("dice-quick", "dice-ce", "cifar-ce", "digits-ce-gd"):
        assert name in rows
    assert rows["dice-ce"][2] == "468" and rows["dice-quick"][7] == "yes"


def test_presets_measure_caches_the_step_cost(monkeypatch, tmp_path):
    from engine.config import load_preset
    from engine.step_cost import cached_step_cost, measure_step_cost

    monkeypatch.setenv("EOS_TUI_DATA", str(tmp_path))
    cfg = load_preset("dice-quick", TINY)
    assert cached_step_cost("tiny", cfg) is None
    cost = measure_step_cost("tiny", cfg)
    assert 0 < cost.step_s < 60 and cost.snapshot_s > 0 and cost.setup_s > 0 and not cost.random_data
    assert cached_step_cost("tiny", cfg) == cost
    assert cached_step_cost("tiny", cfg, random_data=True) is None


def test_presets_measure_says_which_presets_it_did_not_time(monkeypatch, tmp_path):
    """Absent data without --random-data: nothing is timed (no minutes spent), and the user is told
    which presets and how to time them anyway."""
    from eos_tui.cli import app

    monkeypatch.setenv("EOS_TUI_DATA", str(tmp_path))  # no CIFAR-10 here
    res = CliRunner().invoke(app, ["presets", "--measure", "cifar-ce", "cifar-mse"])
    assert res.exit_code == 0, res.output
    assert "not measured, their data is absent: cifar-ce, cifar-mse (add --random-data" in res.output


@pytest.mark.parametrize(
    "args, message",
    [
        (["run", "preset", "nope", "--no-ui"], "unknown preset 'nope'"),
        (["run", "preset", "dice-quick", "--no-ui", "--set", "train.lrr=1"], "did you mean 'train.lr'"),
        (["run", "preset", "dice-quick", "--no-ui", "--set", "model.width=wide"], "must be an integer"),
        (["run", "preset", "dice-quick", "--no-ui", "--set", "train.lr=0"], "train.lr must be > 0"),
        (["run", "preset", "dice-quick", "--no-ui", "--set", "train.lr=-0.1"], "train.lr must be > 0"),
        (["run", "preset", "dice-quick", "--no-ui", "--device", "tpu"], "train.device must be one of"),
        (["replay", "/nonexistent/run"], "/nonexistent/run"),
        (["export", "/nonexistent/run"], "/nonexistent/run"),
        (["export", "/nonexistent/run", "--format", "xls"], "--format must be one of"),
    ],
)
def test_bad_input_is_one_error_line_and_exit_2(args, message):
    result = runner.invoke(app, args)
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    assert message in result.output


def test_non_empty_out_is_refused(tmp_path):
    (tmp_path / "x").write_text("keep me")
    result = runner.invoke(app, ["run", "preset", "dice-quick", "--no-ui", "--out", str(tmp_path)])
    assert result.exit_code == 2 and "not empty" in result.output
    assert (tmp_path / "x").read_text() == "keep me"


def test_corrupt_run_directory(tmp_path, finished_run):
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "run.json").write_text("{}")
    (bad / "metrics.sqlite").write_bytes(b"this is not a database" * 100)
    result = runner.invoke(app, ["export", str(bad)])
    assert result.exit_code == 2 and "Traceback" not in result.output


def test_compare_a_run_with_itself_is_refused(finished_run):
    result = runner.invoke(app, ["compare", str(finished_run), str(finished_run)])
    assert result.exit_code == 2 and "itself" in result.output


def test_cuda_request_without_cuda_is_a_clear_error():
    import torch

    if torch.cuda.is_available():
        pytest.skip("CUDA is available here")
    result = runner.invoke(app, ["run", "preset", "dice-quick", "--no-ui", "--device", "cuda"])
    assert result.exit_code == 2 and "CUDA is not available" in result.output


def _start_headless(out: Path, *extra: str) -> subprocess.Popen:
    """A tiny headless run that keeps training until it is stopped (no reachable target loss)."""
    cmd = [sys.executable, "-m", "eos_tui.cli", "run", "preset", "dice-quick", "--no-ui", "--out", str(out),
           *TINY_ARGS, "--set", "train.max_steps=100000", "--set", "train.target_loss=1e-12", *extra]
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            cwd=Path(__file__).resolve().parent.parent)


def _wait_for_rows(out: Path, rows: int, timeout: float = 120) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if (out / "metrics.sqlite").exists():
            try:
                with open_run(out) as run:
                    if run.num_steps() >= rows:
                        return
            except Exception:  # the writer may still be creating the store
                pass
        time.sleep(0.2)
    raise AssertionError("the run did not start")


def test_ctrl_c_marks_interrupted_and_exits_130(tmp_path):
    out = tmp_path / "run"
    proc = _start_headless(out)
    _wait_for_rows(out, 20)
    proc.send_signal(signal.SIGINT)
    output, _ = proc.communicate(timeout=60)
    assert proc.returncode == 130, output
    assert "Traceback" not in output
    with open_run(out) as run:
        assert run.status == "interrupted" and not run.crashed and run.num_steps() >= 20


def test_kill_9_loses_at_most_the_step_in_flight(tmp_path):
    out = tmp_path / "run"
    proc = _start_headless(out)
    _wait_for_rows(out, 15)
    with open_run(out) as run:
        before = run.num_steps()
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    with open_run(out) as run:
        assert run.status == "interrupted" and run.crashed
        steps = run.steps()["step"]
        assert len(steps) >= before and list(steps) == list(range(len(steps)))  # every committed row
        assert run.checkpoint(0)["theta"].numel() > 0
    result = invoke("export", str(out))
    assert result.exit_code == 0
