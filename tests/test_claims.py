"""The paper's claims on a run (engine.analysis.claims, `eos-tui claims`), on controlled stores."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from typer.testing import CliRunner

from engine.analysis.claims import evaluate
from engine.store import RunWriter
from eos_tui.cli import app

DEPTH = 3


def _snapshot(lam: float, *, p1: float, a_l: float = 0.5, kappa: float = 0.9, s: float = 1.5, m1: float = 11.0,
              rho: float = 0.2, g_rel: float = 0.05, r_rel: float = 0.05, layer2: float = 1.2,
              layer3: float = 0.5) -> dict[str, float]:
    ek1 = a_l * s * s * p1 * m1 * kappa  # the five-factor identity for layer 1
    return {"lambda_G1": lam * (1 - g_rel), "lambda_HmG1": lam * r_rel, "overlap_ratio": rho, "a_L": a_l,
            "s_1": s, "s_2": s, "P_1": p1, "m_1": m1, "kappa_1": kappa, "EK2_layer_1": ek1,
            "EK2_layer_2": layer2 * ek1, "EK2_layer_3": layer3 * ek1}


def _columns(snaps: dict[int, dict], lam: dict[int, float], n: int = 120, every: int = 1):
    steps = {"step": np.arange(n), "lambda_H_1": np.full(n, np.nan)}
    for s in range(0, n, every):
        steps["lambda_H_1"][s] = lam.get(s, 1.0)
    names = sorted({k for v in snaps.values() for k in v})
    cols = {"step": np.array(sorted(snaps))}
    for name in names:
        cols[name] = np.array([snaps[s].get(name, np.nan) for s in sorted(snaps)])
    return steps, cols


# A run that shows the paper's mechanism: λ1 ×6 from step 10 to 100, P^1 ×5 while a_L ×1.2 and
# κ_1 ×1.1, λ1(G) within 5% and λ1(H−G) 5%, the second layer 20% above the first. The snapshot
# at step 0 lies inside the transient and is wild: it must be ignored.
LAM = {0: 500.0, 10: 10.0, 50: 40.0, 100: 60.0}
PAPER_LIKE = {
    0: _snapshot(500.0, p1=1.0, g_rel=0.9, r_rel=0.9, layer2=5.0, rho=0.9),
    10: _snapshot(10.0, p1=0.01, rho=0.2),
    50: _snapshot(40.0, p1=0.04, rho=0.25, a_l=0.55),
    100: _snapshot(60.0, p1=0.05, rho=0.3, a_l=0.6, kappa=0.99),
}


def test_a_run_with_the_papers_mechanism_holds_every_claim():
    report = evaluate(*_columns(PAPER_LIKE, LAM), depth=DEPTH, transient=10)
    by = {c.key: c for c in report.claims}
    assert report.snapshot_steps == [10, 50, 100] and report.reference_step == 10 and report.peak_step == 100
    assert by["g_vs_h"].number == pytest.approx(0.05) and by["g_vs_h"].holds
    assert by["residual"].number == pytest.approx(0.05) and by["residual"].holds
    assert by["overlap"].number == pytest.approx(1.5) and by["overlap"].holds
    assert by["largest_layer"].holds is None and "layer 2 at 3/3" in by["largest_layer"].value
    assert by["layer_excess"].number == pytest.approx(0.2) and by["layer_excess"].holds
    growth = {k: by[f"factor_{k}"].number for k in ("a_L", "prod_s", "P_1", "m_1", "kappa_1")}
    assert growth == pytest.approx({"a_L": 1.2, "prod_s": 1.0, "P_1": 5.0, "m_1": 1.0, "kappa_1": 1.1})
    assert all(by[f"factor_{k}"].holds for k in growth)
    # counterfactual: λ1·P(s0)/P(s) = 10, 10, 12 → ×1.2 instead of ×6
    assert by["counterfactual"].number == pytest.approx(1 - math.log(1.2) / math.log(6.0))
    assert by["counterfactual"].holds
    assert report.held() == (10, 10) and len(report.claims) == 11


def test_a_run_against_the_paper_fails_each_claim_with_its_number():
    snaps = {
        10: _snapshot(10.0, p1=0.05, rho=0.3, g_rel=0.2, r_rel=0.15, layer2=1.5),
        60: _snapshot(30.0, p1=0.025, rho=0.2, a_l=1.5, kappa=2.0),
    }
    report = evaluate(*_columns(snaps, {10: 10.0, 60: 30.0}), depth=DEPTH, transient=10, solver="gd", lr=0.1)
    by = {c.key: c for c in report.claims}
    assert by["g_vs_h"].number == pytest.approx(0.2) and by["g_vs_h"].holds is False
    assert by["residual"].number == pytest.approx(0.15) and by["residual"].holds is False
    assert by["overlap"].holds is False
    assert by["layer_excess"].number == pytest.approx(0.5) and by["layer_excess"].holds is False
    assert by["factor_P_1"].number == pytest.approx(0.5) and by["factor_P_1"].holds is False
    assert by["factor_a_L"].number == pytest.approx(3.0) and by["factor_a_L"].holds is False
    assert by["factor_kappa_1"].holds is False and by["factor_m_1"].holds
    # P^1 halved while λ1 tripled: holding it would have made the rise larger (×6)
    cf = by["counterfactual"]
    assert cf.number == pytest.approx(1 - math.log(6.0) / math.log(3.0)) and cf.holds is False
    assert "60 ≥ 2/η = 20" in cf.value


def test_one_snapshot_after_the_transient_leaves_the_growth_claims_open():
    snaps = {0: PAPER_LIKE[0], 10: PAPER_LIKE[10]}
    report = evaluate(*_columns(snaps, LAM), depth=DEPTH, transient=10)
    by = {c.key: c for c in report.claims}
    assert by["g_vs_h"].holds and by["residual"].holds and by["layer_excess"].holds
    for key in ("overlap", "factor_P_1", "factor_a_L", "counterfactual"):
        assert by[key].holds is None and "needs two snapshots" in by[key].value
    empty = evaluate(*_columns({0: PAPER_LIKE[0]}, LAM), depth=DEPTH, transient=10)
    assert all(c.holds is None for c in empty.claims) and len(empty.claims) == 11


def test_gd_runs_with_a_sparse_spectrum_use_the_latest_eigenvalue():
    snaps = {12: PAPER_LIKE[10], 52: PAPER_LIKE[50]}
    steps, cols = _columns(snaps, {10: 10.0, 50: 40.0}, every=5)
    report = evaluate(steps, cols, depth=DEPTH, transient=10, eig_every=5)
    assert {c.key: c for c in report.claims}["g_vs_h"].number == pytest.approx(0.05)
    # a lookback shorter than the gap finds nothing: the claim cannot be evaluated
    short = evaluate(steps, cols, depth=DEPTH, transient=10, eig_every=1)
    assert {c.key: c for c in short.claims}["g_vs_h"].holds is None


def _store(path, snaps: dict[int, dict], lam: dict[int, float], n: int = 120):
    meta = {"name": path.name, "preset": "synthetic", "solver": "ee", "criterion": "ce", "depth": DEPTH,
            "lr": 0.01, "num_eigs": 2}
    config = {"preset": "synthetic", "train": {"solver": "ee", "lr": 0.01}, "model": {"depth": DEPTH},
              "metrics": {"transient_steps": 10}, "eig": {"every": 1}}
    w = RunWriter.create(path, config=config, meta=meta, num_eigs=2, heartbeat_interval=None)
    w.append_steps([{"step": s, "t": 0.01 * s, "loss": 1.0 / (1 + s), "tau": 0.01, "threshold": 200.0,
                     "lr": 0.01, "lambda_H": [lam.get(s, 1.0), 0.5]} for s in range(n)])
    for s, values in snaps.items():
        w.append_snapshot(s, values)
    w.close("finished")
    return path


def test_cli_prints_the_report_as_a_table_and_as_json(tmp_path):
    run = _store(tmp_path / "run", PAPER_LIKE, LAM)
    runner = CliRunner()
    result = runner.invoke(app, ["claims", str(run), "--format", "json"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert len(data["claims"]) >= 6 and data["reference_step"] == 10 and data["peak_step"] == 100
    assert {c["key"] for c in data["claims"]} >= {"g_vs_h", "residual", "overlap", "layer_excess",
                                                  "factor_P_1", "counterfactual"}
    assert all(c["verdict"] in ("holds", "does not hold", "n/a") for c in data["claims"])
    table = runner.invoke(app, ["claims", str(run)], catch_exceptions=False)
    assert table.exit_code == 0
    assert "λ1(G) is within 10.1% of λ1(H)" in table.stdout and "10 of 10 claims hold" in table.stdout


@pytest.mark.parametrize("args, message", [
    (["--format", "xml"], "--format must be one of table, json"),
    ([], "does not exist"),
])
def test_cli_bad_input_is_one_error_line(tmp_path, args, message):
    target = tmp_path / "run"
    if args:
        _store(target, PAPER_LIKE, LAM)
    result = CliRunner().invoke(app, ["claims", str(target), *args], catch_exceptions=False)
    assert result.exit_code == 2 and result.output.count("error:") == 1 and message in result.output


def test_on_a_real_run_the_five_growths_multiply_to_the_growth_of_the_first_layer(tmp_path):
    """End to end: the factor growths of a real (tiny) run satisfy the five-factor identity."""
    from conftest import tiny_config
    from engine.analysis.claims import claims_for_run
    from engine.store import open_run
    from engine.trainer import train

    train(tiny_config("train.solver=ee", "train.lr=0.2"), tmp_path / "run")
    with open_run(tmp_path / "run") as run:
        report = claims_for_run(run)
        snaps = run.snapshots()
    by = {c.key: c for c in report.claims}
    at = list(snaps["step"])
    i0, i1 = at.index(report.reference_step), at.index(report.peak_step)
    ek1 = snaps["EK2_layer_1"]
    product = math.prod(by[f"factor_{k}"].number for k in ("a_L", "prod_s", "P_1", "m_1", "kappa_1"))
    assert product == pytest.approx(ek1[i1] / ek1[i0], rel=1e-10)
    assert len(report.claims) == 11 and by["g_vs_h"].holds is not None


def test_cheap_snapshots_are_not_counted_as_negative_eigenvalues():
    """A cheap snapshot leaves λ(H−G) NaN (not solved): the residual claim judges the full ones only
    and counts a negative eigenvalue only where the magnitude sense says so."""
    steps = {"step": np.arange(40), "lambda_H_1": np.full(40, 10.0)}
    snaps = {"step": np.array([10, 20, 30, 39]), "lambda_HmG1": np.array([0.5, np.nan, np.nan, 0.8]),
             "lambda_HmG_mag": np.array([0.5, np.nan, np.nan, -1.2]), "snapshot_full": np.array([1, 0, 0, 1])}
    report = evaluate(steps, snaps, depth=0, transient=10, solver="gd", lr=0.1)
    claim = {c.key: c for c in report.claims}["residual"]
    assert claim.number == pytest.approx(0.08) and claim.holds
    assert "over 2 snapshots" in claim.value and "at 1 of them" in claim.value
