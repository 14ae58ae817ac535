"""The UI shows certificates: unconverged values hollow and dimmed, residuals in the metrics
screen, exponential Euler's rejections and local error estimate in the monitor."""

from pathlib import Path

import numpy as np

from app_fixtures import ee_run, runs_root, screen_text, settle  # noqa: F401 - fixtures
from engine.store import RunWriter, open_run
from eos_tui.app import build_app
from eos_tui.app.figures import curvature_figure, layer_figure, sharpness_figure, stepsize_figure
from eos_tui.app.reader import poll_once
from eos_tui.app.series import RunData
from eos_tui.app.widgets.plot import UNCONVERGED, build_plot

SIZE = (160, 48)


def _data(path: Path) -> RunData:
    data = RunData(key=str(path), path=path)
    with open_run(path) as run:
        data.meta, data.config = dict(run.meta), dict(run.config)
        poll_once(run, data)
    return data


def test_unconverged_points_are_drawn_hollow(tmp_path):
    w = RunWriter.create(tmp_path / "c", config={"train": {"solver": "ee", "lr": 0.3},
                                                 "eig": {"residual_tol": 0.01}},
                         meta={"solver": "ee", "lr": 0.3, "depth": 3, "num_eigs": 2}, num_eigs=2,
                         heartbeat_interval=None)
    for step in range(6):
        w.append_step({"step": step, "t": 0.1 * step, "loss": 1.0 - 0.1 * step, "tau": 0.1,
                       "lambda_H": [5.0, 2.0], "eig_resid": 0.5 if step == 3 else 0.001,
                       "eig_iters": 2, "eig_refinements": 1, "ee_rejections": int(step == 2),
                       "ee_err": 0.05})
    for step in (0, 2, 4):
        bad = step == 2
        w.append_snapshot(step, {"lambda_G1": 3.0, "lambda_G1_resid": 0.2 if bad else 0.0,
                                 "lambda_G1_converged": 0.0 if bad else 1.0, "lambda_HmG1": 0.5,
                                 "lambda_HmG1_resid": 1e-4, "lambda_HmG1_converged": 1.0,
                                 "lambda_HmG_mag": -0.7, "lambda_HmG_mag_resid": 1e-4,
                                 "lambda_HmG_mag_converged": 1.0, "overlap_ratio": 0.4, "P_1": 0.1,
                                 "s_1": 2.0, "r_1": 0.5, "s_1_resid": 1e-4, "s_1_converged": 1.0,
                                 "snapshot_full": 1.0})
    w.close("finished")
    data = _data(tmp_path / "c")

    fig = curvature_figure(data, None, "step")
    flags = {ln.label: ln.converged for ln in fig.lines}
    assert flags["λ1(G)"].tolist() == [True, False, True]  # the step-2 snapshot did not converge
    assert flags["overlap ρ (right)"].tolist() == [True, False, True]  # ρ = λ1(G)/E‖K‖²
    assert flags["λ1(H−G)"].all()
    text, _ = build_plot(fig, 100, 20)
    assert UNCONVERGED in text.plain and "λ1(G) unconverged" in text.plain

    sharp = sharpness_figure(data, None, "step", extra_eigs=False)
    lam = next(ln for ln in sharp.lines if ln.label == "λ1(H)")
    assert lam.converged.tolist() == [True, True, True, False, True, True]  # step 3: residual 0.5 > 0.01
    assert UNCONVERGED in build_plot(sharp, 100, 20)[0].plain
    layer = layer_figure(data, None, "step", 1)
    assert all(ln.converged is None or ln.converged.all() for ln in layer.lines)

    step = stepsize_figure(data, None)
    assert "local error (right)" in [ln.label for ln in step.lines] and step.ylog
    assert "local error estimate" in step.title


async def test_metrics_screen_shows_residuals_and_flags(tmp_path):
    w = RunWriter.create(tmp_path / "m", config={"train": {"solver": "gd", "lr": 0.3}},
                         meta={"solver": "gd", "lr": 0.3, "depth": 2, "num_eigs": 1}, num_eigs=1,
                         heartbeat_interval=None)
    w.append_step({"step": 0, "t": 0.0, "loss": 1.0, "tau": 0.3, "lambda_H": [4.0]})
    w.append_snapshot(0, {"lambda_G1": 3.25, "lambda_G1_resid": 0.0, "lambda_G1_converged": 1.0,
                          "lambda_HmG1": 0.5, "lambda_HmG1_resid": 0.0123, "lambda_HmG1_converged": 0.0,
                          "lambda_HmG_mag": -0.75, "lambda_HmG_mag_resid": 2.5e-4,
                          "lambda_HmG_mag_converged": 1.0, "overlap_ratio": 0.4, "s_1": 2.0,
                          "s_1_resid": 3.5e-4, "s_1_converged": 1.0, "P_1": 0.2, "r_1": 0.2,
                          "snapshot_full": 1.0})
    w.close("finished")
    app = build_app("monitor", [tmp_path / "m"], live=False)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await pilot.press("m")
        await settle(pilot)
        text = screen_text(app)
    assert "residual" in text and "exact" in text  # λ1(G) by the exact Gram route
    assert "○ 0.5" in text and "0.012" in text  # λ1(H−G) flagged unconverged, its residual shown
    assert "-0.75" in text and "2.5e-4" in text and "3.5e-4" in text
    assert "λ(H−G) max |·|" in text and "s_i residual" in text and "full" in text


async def test_monitor_shows_step_control(ee_run):
    app = build_app("monitor", [ee_run], live=False)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        text = screen_text(app)
    assert "step control:" in text and "rejected trials" in text and "local error" in text
    assert "local error estimate" in text  # the step-size panel's title
