"""`eos-tui bench`: every benchmark runs with --quick and produces its tables and JSON keys.

A benchmark is not a test: nothing here asserts on a timing.
"""

from __future__ import annotations

import json

import pytest
import typer
from typer.testing import CliRunner

from engine import bench
from engine.bench import common
from engine.errors import ConfigError
from eos_tui.bench_cli import bench_command, run_benchmarks


@pytest.fixture(autouse=True)
def one_thread():
    """As `eos-tui bench --quick` does: small problems on a shared CI machine run many times
    faster on one torch thread than with spinning OpenMP threads."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _app() -> typer.Typer:
    app = typer.Typer()
    app.command("bench")(bench_command)
    app.command("noop")(lambda: None)  # a second command keeps "bench" a subcommand
    return app


def _check_result(result: dict, name: str) -> None:
    assert result["name"] == name
    assert result["description"]
    if result.get("skipped"):
        return
    assert result["tables"], f"{name} produced no table"
    for table in result["tables"]:
        assert table["rows"], table["title"]
        for row in table["rows"]:
            assert set(table["columns"]) <= set(row), (table["title"], set(table["columns"]) - set(row))
    for target in result["targets"]:
        assert {"name", "value", "target", "met"} <= set(target)


def test_names_and_unknown_name():
    assert bench.names() == ["step", "stable-solvers", "eigensolver", "snapshot", "stepcontrol", "sweep", "ui",
                             "plot", "scaling"]
    assert bench.resolve(None) == bench.names()
    assert bench.resolve(["step", "step", "ui"]) == ["step", "ui"]
    with pytest.raises(ConfigError) as exc:
        bench.resolve(["step", "nope"])
    assert "nope" in str(exc.value)
    for name in bench.names():
        assert name in str(exc.value)


def test_unknown_name_through_the_command_raises_before_any_work():
    result = CliRunner().invoke(_app(), ["bench", "nope", "--quick"])
    assert isinstance(result.exception, ConfigError)
    assert "valid names" in str(result.exception)
    assert "machine:" not in result.output


def test_common_helpers():
    info = common.machine_info()
    assert {"cpu", "cpu_count", "torch_threads", "torch", "device"} <= set(info)
    assert common.median([3, 1, 2]) == 2
    assert common.percentile([0, 10], 50) == 5
    assert common.fmt(1234567.0) == "1.23e+06" and common.fmt(None) == "—"
    assert len(common.time_call(lambda: None, repeats=3, warmup=0)) == 3


def test_step_quick_through_the_cli(tmp_path):
    out = tmp_path / "bench.json"
    result = CliRunner().invoke(_app(), ["bench", "step", "--quick", "--json", str(out)])
    assert result.exit_code == 0, result.output
    assert "machine:" in result.output and "step" in result.output
    report = json.loads(out.read_text())
    assert report["quick"] is True and {"cpu", "torch"} <= set(report["machine"])
    res = report["benchmarks"]["step"]
    _check_result(res, "step")
    rows = res["tables"][0]["rows"]
    assert len(rows) == 2
    for row in rows:
        for key in ("step_s", "grad_s", "floor_s", "step/grad", "step/floor", "1iter/floor",
                    "f32_speedup", "f32_eig_rel_err", "f32_traj_rel_err"):
            assert row[key] is not None and row[key] >= 0, key
        assert row["f32_eig_rel_err"] < 1e-3  # float32 HVPs change the Ritz values only slightly


def test_eigensolver_quick():
    res = bench.run_benchmark("eigensolver", quick=True)
    _check_result(res, "eigensolver")
    rows = res["tables"][0]["rows"]
    assert {r["phase"] for r in rows} == {"early", "late"}
    methods = {r["method"] for r in rows}
    assert {"warm subspace (oracle stop)", "warm Lanczos (oracle stop)", "cold eigsh",
            "cold power + deflation"} <= methods
    for r in rows:
        if r["method"] in ("cold eigsh", "warm Lanczos (oracle stop)"):
            assert r["reached"] and r["max_err"] <= 1e-6, r
    # the ceiling: no method pins 11 values with fewer than 11 products
    assert all(r["hvps"] >= 11 for r in rows)


def test_snapshot_quick_agrees_with_the_paper_route():
    res = bench.run_benchmark("snapshot", quick=True)
    _check_result(res, "snapshot")
    tables = {t["title"].split(" (")[0].split(",")[0]: t for t in res["tables"]}
    row = tables["agreement"]["rows"][0]
    for key in ("err_EK2", "err_EK2_layer", "err_s", "err_lambda_G1"):
        assert row[key] < 1e-6, key
    cost = tables["certified snapshot cost"]["rows"][0]
    assert cost["full_per_step"] > 0 and cost["full_per_grad"] > cost["full_per_step"]
    run = tables["snapshots over whole runs of the quick presets"]["rows"][0]
    assert 0 < run["snapshot_fraction"] < 1 and run["snapshots"] >= 2


def test_stepcontrol_quick_reports_gaps_and_cost():
    res = bench.run_benchmark("stepcontrol", quick=True)
    _check_result(res, "stepcontrol")
    rows = res["tables"][0]["rows"]
    assert rows[0]["loss_gap"] == 0 and rows[0]["lambda_gap"] == 0  # the reference against itself
    default = next(r for r in rows if "default" in r["solver"])
    assert default["loss_rises"] == 0 and default["s_per_t"] > 0 and default["cost_vs_rk4"] > 0


@pytest.mark.slow
def test_stable_solvers_quick():
    res = bench.run_benchmark("stable-solvers", quick=True)
    _check_result(res, "stable-solvers")
    if res["skipped"]:
        assert "pip install 'eos-tui[bench]'" in res["skipped"]
        return
    traj = [r for r in res["tables"][0]["rows"] if "rel_diff" in r]
    assert traj and all(r["rel_diff"] < 0.05 for r in traj)  # the same rule: close trajectories
    assert res["tables"][1]["rows"][0]["speedup"] > 0


def test_stable_solvers_missing_is_a_clear_skip(monkeypatch):
    from engine.bench import stable_solvers_peer

    monkeypatch.setattr(stable_solvers_peer, "available", lambda: False)
    res = bench.run_benchmark("stable-solvers", quick=True)
    assert res["skipped"] and "pip install 'eos-tui[bench]'" in res["skipped"]
    report = run_benchmarks(["stable-solvers"], quick=True)  # prints, does not crash
    assert report["benchmarks"]["stable-solvers"]["skipped"]


@pytest.mark.slow
def test_scaling_quick():
    res = bench.run_benchmark("scaling", quick=True)
    _check_result(res, "scaling")
    rows = res["tables"][0]["rows"]
    assert [r["n"] for r in rows] == [64, 256]
    assert all(r["peak_MiB"] > 0 and r["step_s"] > 0 for r in rows)
    assert res["tables"][2]["rows"][-1]["chunk"] == 64


@pytest.mark.slow
def test_ui_quick():
    res = bench.run_benchmark("ui", quick=True)
    _check_result(res, "ui")
    if res["skipped"]:
        return
    open_row = res["tables"][0]["rows"][0]
    assert open_row["rows_seen"] == 20_000
    live = res["tables"][1]["rows"]
    # every press reached the header, the sharpness panel and all four x-axis panels
    assert [row["n"] for row in live] == [8, 8, 8] and all(row["p99_ms"] >= 0 for row in live)


@pytest.mark.slow
def test_plot_quick():
    res = bench.run_benchmark("plot", quick=True)
    _check_result(res, "plot")
    plot_all, per_figure, keys = res["tables"]
    assert "figure all" in plot_all["rows"][0]["measure"] and plot_all["rows"][0]["median_s"] > 0
    assert {r["figure"] for r in per_figure["rows"]} >= {"sharpness", "overlap", "alignment", "layers", "factors"}
    # a CSV holds every point even where the drawn line is an envelope
    sharp = next(r for r in per_figure["rows"] if r["figure"] == "sharpness")
    assert sharp["csv_rows"] > sharp["drawn"]
    assert [r["n"] for r in keys["rows"]][:2] == [3, 3]


def test_sweep_quick():
    res = bench.run_benchmark("sweep", quick=True)
    _check_result(res, "sweep")
    one, two = res["tables"][0]["rows"]
    assert (one["workers"], two["workers"]) == (1, 2) and one["runs"] == two["runs"] == 4
    assert one["workers_used"] == 1 and two["workers_used"] == 2 and one["failed"] == two["failed"] == 0
    assert all(r["run_s"] > 0 and r["wall_s"] > 0 and r["in_task_s"] >= 0 for r in (one, two))
    cost = res["tables"][1]["rows"]
    assert [r["case"] for r in cost] == ["dice-ce D=60", "dice-ce D=120"]
    assert all(r["step_cpu_s"] > 0 and r["snapshot_cpu_s"] > 0 and r["run_1000_cpu_h"] > 0 for r in cost)
    assert [t["name"] for t in res["targets"]] == ["runs/min, 2 workers ÷ 1 worker",
                                                  "scheduling overhead per run (worst of the two)"]
