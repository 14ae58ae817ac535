"""``stepcontrol``: exponential Euler with step-size control against the RK4 reference flow.

The paper net's init on Dice (width 128 in the full tier, as the ``science-ee-flow`` acceptance
check) trained to loss 0.05 by: RK4 with ``τ = 0.2/λ1`` (the fine reference), RK4 with
``τ = 0.5/λ1`` (the project's usual reference), exponential Euler with the default controller
(``ee.order = 2``, ``ee.tol = 0.1``) and the plain first-order step (``ee.order = 1``) at two
tolerances. For each: steps, the worst relative gap of loss and λ1(H) to the fine reference at
equal gradient-flow time ``t`` (interpolated), loss rises, rejected trials, and the cost per unit
of ``t`` (process seconds on one thread, and curvature products) beside RK4's. Snapshots are off
(``metrics.layer_metrics = false``) so only the integrators are timed.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import numpy as np

from engine.bench.common import BenchResult, tier

NAME = "stepcontrol"
DESCRIPTION = "exponential Euler with step-size control vs the RK4 flow: accuracy at equal t, cost per unit t"

SOLVERS = [
    ("RK4 τ=0.2/λ1 (reference)", ["train.solver=rk4", "train.rk4_alpha=0.2"]),
    ("RK4 τ=0.5/λ1", ["train.solver=rk4", "train.rk4_alpha=0.5"]),
    ("EE order 2, tol 0.1 (default)", []),
    ("EE order 1, tol 0.02", ["ee.order=1", "ee.tol=0.02"]),
    ("EE order 1, tol 0.05", ["ee.order=1", "ee.tol=0.05"]),
]


def _trajectory(base: list[str], overrides: list[str]) -> dict:
    from engine.config import load_preset
    from engine.store import open_run
    from engine.trainer import train

    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.process_time()
        result = train(load_preset("dice-ce", [*base, *overrides]), Path(tmp) / "run")
        seconds = time.process_time() - t0
        with open_run(Path(tmp) / "run") as run:
            s = run.steps()
    return {"steps": s, "status": result.status, "seconds": seconds}


def _gaps(run: dict, ref: dict) -> tuple[float, float]:
    """Worst relative gap of loss and λ1(H) to ``ref`` at equal t (rows after the first)."""
    T, L, H = ref["t"], ref["loss"], ref["lambda_H_1"]
    ok = np.isfinite(H)
    t = run["t"][1:]
    inside = t <= T[-1]
    t = t[inside]
    loss = run["loss"][1:][inside]
    lam = run["lambda_H_1"][1:][inside]
    fin = np.isfinite(lam)
    gl = np.abs(loss / np.interp(t, T, L) - 1).max(initial=0.0)
    gh = np.abs(lam[fin] / np.interp(t[fin], T[ok], H[ok]) - 1).max(initial=0.0)
    return float(gl), float(gh)


def run(quick: bool = False, console=None) -> dict:
    res = BenchResult(NAME, DESCRIPTION)
    level = tier(quick)
    width = {"quick": 16, "medium": 64, "full": 128}[level]
    base = [f"model.width={width}", "train.target_loss=0.05", "metrics.layer_metrics=false",
            "metrics.snapshot_every=100000", "train.max_steps=4000"]
    if level == "quick":
        base += ["data.size=60", "data.image_size=8", "model.depth=3", "train.target_loss=1.0"]
    solvers = SOLVERS if level != "quick" else SOLVERS[:3]
    res.params = {"tier": level, "preset": "dice-ce", "overrides": " ".join(base)}
    runs = {}
    for label, overrides in solvers:
        runs[label] = _trajectory(base, overrides)
        if console is not None:
            console.log(f"stepcontrol: {label} done ({len(runs[label]['steps']['t'])} steps)")
    ref = runs[SOLVERS[0][0]]["steps"]
    rk_cost = None
    rows = []
    for label, _ in solvers:
        r = runs[label]
        s = r["steps"]
        t_end = float(s["t"][-1])
        gl, gh = _gaps(s, ref)
        per_t = r["seconds"] / t_end if t_end > 0 else float("nan")
        if label.startswith("RK4 τ=0.5"):
            rk_cost = per_t
        rej = s.get("ee_rejections")
        rows.append({
            "solver": label, "status": r["status"], "steps": len(s["t"]), "t_end": t_end,
            "loss_gap": gl, "lambda_gap": gh,
            "loss_rises": int(np.sum(s["loss"][1:] > s["loss"][:-1] * (1 + 1e-12))),
            "rejections": int(np.nansum(rej)) if rej is not None else 0,
            "seconds": r["seconds"], "s_per_t": per_t,
            "products_per_t": float(s["hvp_count"][-1]) / t_end if t_end > 0 else float("nan"),
        })
    for row in rows:
        row["cost_vs_rk4"] = row["s_per_t"] / rk_cost if rk_cost else float("nan")
    res.table("to the target loss from the same init (gaps: worst over the run at equal t, against the "
              "first row)", rows,
              ["solver", "status", "steps", "t_end", "loss_gap", "lambda_gap", "loss_rises", "rejections",
               "seconds", "s_per_t", "products_per_t", "cost_vs_rk4"])
    default = next(r for r in rows if "default" in r["solver"])
    res.target("default EE: loss and λ1 gap to the RK4 flow", max(default["loss_gap"], default["lambda_gap"]),
               "≤ 0.05", max(default["loss_gap"], default["lambda_gap"]) <= 0.05)
    res.target("default EE: loss rises", default["loss_rises"], "0", default["loss_rises"] == 0)
    if rk_cost:
        res.target("default EE cost per unit t ÷ RK4 τ=0.5/λ1", default["cost_vs_rk4"], "< 1",
                   default["cost_vs_rk4"] < 1)
    res.note("cost: process seconds of the whole run (one torch thread) per unit of gradient-flow time; "
             "products_per_t counts Hessian-vector products (the EE trial gradients and RK4 stages are "
             "gradients, counted only in the seconds).")
    res.note("both solvers track and certify the top k+1 = 7 eigenpairs each step (eig.residual_tol); "
             "RK4 needs only λ1 for its step, so part of its cost is the recorded spectrum.")
    return res.as_dict()
