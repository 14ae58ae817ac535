"""``step``: one exponential Euler step against its floor (spec §5–6).

Per problem: after ``warmup`` steps of the engine's :class:`ExponentialEuler` (k+1 = 11
eigenpairs, warm-started :class:`EigTracker`, engine default tolerances), time

* a warm exponential Euler step (``solver.step``: fused pass + Rayleigh–Ritz + update),
* one full-batch gradient (``LossProblem.loss_and_grad``),
* the floor: one fused forward-over-reverse pass computing the gradient and the k+1 HVPs
  (``LossProblem.grad_and_hvp``),

and the engine's ``eig.dtype = float32`` option: the eigen-solve runs on a float32 copy of the
problem (HVPs, Rayleigh–Ritz) while the gradient, the update and the trajectory stay float64.
Its cost is reported as the eigenvalue error at a fixed subspace (float32 vs float64
Rayleigh–Ritz of the same block) and the trajectory error after the timed steps, both started
from the same state.
"""

from __future__ import annotations

import torch

from engine.bench.common import (BenchResult, Stopwatch, dice_setup, make_ee, median,
                                 random_setup, rel_diff, tier, time_call)

NAME = "step"
DESCRIPTION = "exponential Euler step vs one gradient and vs the fused grad+(k+1)-HVP floor"
TARGET_RATIO = 1.3


def _ritz(V: torch.Tensor, HV: torch.Tensor) -> torch.Tensor:
    T = V.double().T @ HV.double()
    return torch.linalg.eigvalsh(0.5 * (T + T.T))


def one_iteration_step(setup, start, block, values, *, k: int, lr: float, repeats: int,
                       end: dict | None = None) -> list[float]:
    """Seconds of warm steps whose eigen-solve is capped at one Rayleigh–Ritz iteration.

    This is the cost of a step once the warm start has converged (the fused pass, Rayleigh–Ritz
    on the k+1 block, the update): the step's structure against the floor, independent of how
    many iterations the tracker's stopping rule asks for.
    """
    ee1 = make_ee(setup, k=k, lr=lr, max_iters=1, cold_max_iters=1)
    if block is not None:
        ee1.tracker.block = block.clone()
        ee1.tracker.values = None if values is None else values.clone()
    times, th = [], start
    for _ in range(repeats):
        with Stopwatch() as sw:
            th, _ = ee1.step(th)
        times.append(sw.seconds)
    if end is not None:
        end["theta"] = th
    return times


def structural_only(setup, *, k: int, lr: float, repeats: int) -> dict:
    """Full-size row without warm-up: one-iteration steps, gradient and floor at θ0."""
    problem = setup.problem
    start = setup.theta0.clone()
    one = one_iteration_step(setup, start, None, None, k=k, lr=lr, repeats=repeats + 1)[1:]
    grad_times = time_call(lambda: problem.loss_and_grad(start), repeats=repeats, warmup=1)
    V = torch.linalg.qr(torch.randn(setup.spec.num_params, k + 1, dtype=torch.float64,
                                    generator=torch.Generator().manual_seed(0)).to(start.dtype)).Q
    floor_times = time_call(lambda: problem.grad_and_hvp(start, V), repeats=repeats, warmup=0)
    t1, tg, tf = median(one), median(grad_times), median(floor_times)
    return {"case": setup.describe() + " (no warm-up: 1-iteration steps only)", "label": setup.label,
            "k+1": k + 1, "step_s": None, "step_1iter_s": t1, "grad_s": tg, "floor_s": tf,
            "step/grad": None, "step/floor": None, "1iter/floor": t1 / tf, "floor/grad": tf / tg,
            "repeats": repeats, "step_1iter_times": one, "grad_times": grad_times,
            "floor_times": floor_times}


def bench_problem(setup, *, k: int, lr: float, warmup: int, repeats: int, cold_max_iters: int | None,
                  console=None) -> dict:
    problem = setup.problem
    ee = make_ee(setup, k=k, lr=lr, cold_max_iters=cold_max_iters)
    theta = setup.theta0.clone()
    with Stopwatch() as sw_warm:
        for i in range(warmup):
            theta, info = ee.step(theta)
            if console is not None:
                console.log(f"{setup.label}: warm-up step {i + 1}/{warmup} "
                            f"({info.eig_iterations} eig iters, loss {info.loss:.4g})")
    start = theta.clone()
    block0 = ee.tracker.block.clone()
    values0 = None if ee.tracker.values is None else ee.tracker.values.clone()

    # float64 exponential Euler steps (the trajectory continues; each step is warm)
    step_times, eig_iters = [], []
    hvp_before = problem.hvp_count
    th64 = start
    for _ in range(repeats):
        with Stopwatch() as sw:
            th64, info = ee.step(th64)
        step_times.append(sw.seconds)
        eig_iters.append(info.eig_iterations)
    hvps_per_step = (problem.hvp_count - hvp_before) / repeats

    # one gradient, and the floor (fused gradient + k+1 HVPs) at the same state
    grad_times = time_call(lambda: problem.loss_and_grad(start), repeats=repeats, warmup=1)
    out = {}

    def floor():
        out["HV64"] = problem.grad_and_hvp(start, block0)[2]

    floor_times = time_call(floor, repeats=repeats, warmup=0)
    end1: dict = {}
    one_times = one_iteration_step(setup, start, block0, values0, k=k, lr=lr, repeats=repeats, end=end1)

    # eig.dtype = float32: float32 eigen-solve, float64 trajectory, same start and warm block
    mixed = make_ee(setup, k=k, lr=lr, eig_dtype=torch.float32)
    mixed.tracker.block = block0.float().clone()
    mixed.tracker.values = None if values0 is None else values0.float().clone()
    mixed_times, mixed_iters = [], []
    thmx = start
    for _ in range(repeats):
        with Stopwatch() as sw:
            thmx, info = mixed.step(thmx)
        mixed_times.append(sw.seconds)
        mixed_iters.append(info.eig_iterations)
    p32 = mixed.tracker.problem
    s32 = start.float()
    b32 = block0.float()
    with Stopwatch() as sw32:
        HV32 = p32.grad_and_hvp(s32, b32)[2]
    lam64 = _ritz(block0, out["HV64"])
    lam32 = _ritz(b32, HV32)
    eig_err = float(((lam32 - lam64).abs() / lam64.abs().clamp_min(1e-300)).max())
    traj_err = rel_diff(thmx, th64, scale=th64 - start)
    traj_err_abs = rel_diff(thmx, th64)

    t_step, t_grad, t_floor = median(step_times), median(grad_times), median(floor_times)
    t_mixed = median(mixed_times)
    return {
        "case": setup.describe(),
        "label": setup.label,
        "k+1": k + 1,
        "warmup_s": sw_warm.seconds,
        "step_s": t_step,
        "grad_s": t_grad,
        "floor_s": t_floor,
        "step/grad": t_step / t_grad,
        "step/floor": t_step / t_floor,
        "step_1iter_s": median(one_times),
        "1iter/floor": median(one_times) / t_floor,
        "1iter_traj_rel_err": rel_diff(end1["theta"], th64, scale=th64 - start),
        "floor/grad": t_floor / t_grad,
        "eig_iters": median(eig_iters),
        "hvps/step": hvps_per_step,
        "f32_step_s": t_mixed,
        "f32_floor_s": sw32.seconds,
        "f32_speedup": t_step / t_mixed,
        "f32_eig_iters": median(mixed_iters),
        "f32_eig_rel_err": eig_err,
        "f32_traj_rel_err": traj_err,
        "f32_traj_rel_err_vs_norm": traj_err_abs,
        "repeats": repeats,
        "lambda1": float(lam64.max()),
        "step_times": step_times,
        "grad_times": grad_times,
        "floor_times": floor_times,
        "f32_step_times": mixed_times,
        "step_1iter_times": one_times,
    }


def run(quick: bool = False, console=None) -> dict:
    torch.manual_seed(0)
    res = BenchResult(NAME, DESCRIPTION)
    k, lr = 10, 0.05
    level = tier(quick)
    structural = []
    if level == "quick":
        setups = [dice_setup(n=64, image_size=8, width=32, depth=4, label="dice (quick)"),
                  random_setup(n=48, d0=96, width=32, depth=4, label="cifar-shaped (quick)")]
        warmup, repeats, cold = 3, 2, 8
    elif level == "medium":
        setups = [dice_setup(n=468, image_size=16, width=128, depth=6, label="dice 16×16, width 128"),
                  random_setup(n=390, d0=768, width=128, depth=6, label="cifar-shaped 768, width 128")]
        structural = [dice_setup(n=468, image_size=32, width=512, depth=6, label="dice-ce")]
        warmup, repeats, cold = 20, 3, None
    else:
        setups = [dice_setup(n=468, image_size=32, width=512, depth=6, label="dice-ce"),
                  random_setup(n=390, d0=3072, width=512, depth=6, label="cifar-shaped")]
        warmup, repeats, cold = 20, 3, None
    from engine.config import DEFAULTS

    eig = DEFAULTS["eig"]
    res.params = {"tier": level, "k": k, "eigenpairs": k + 1, "lr": lr, "warmup_steps": warmup,
                  "repeats": repeats, "eig_tol": eig["tol"], "eig_residual_tol": eig["residual_tol"],
                  "eig_warm_iters": eig["warm_iters"], "oversample": 0,
                  "cold_max_iters": cold or eig["max_iters"], "dtype": "float64"}
    rows = [bench_problem(s, k=k, lr=lr, warmup=warmup, repeats=repeats, cold_max_iters=cold,
                          console=console) for s in setups]
    srows = [structural_only(s, k=k, lr=lr, repeats=2) for s in structural]
    res.table("exp-Euler step (medians, seconds)", rows + srows,
              ["label", "k+1", "step_s", "step_1iter_s", "grad_s", "floor_s", "step/grad",
               "step/floor", "1iter/floor", "floor/grad", "eig_iters", "hvps/step"])
    res.table("eig.dtype=float32: float32 eigen-solve, float64 trajectory", rows,
              ["label", "step_s", "f32_step_s", "f32_speedup", "f32_floor_s", "f32_eig_iters",
               "f32_eig_rel_err", "f32_traj_rel_err", "f32_traj_rel_err_vs_norm"])
    for r in rows:
        res.target(f"{r['label']}: step/floor", r["step/floor"], f"≤ {TARGET_RATIO}",
                   r["step/floor"] <= TARGET_RATIO)
    for r in rows + srows:
        res.target(f"{r['label']}: one-iteration step/floor", r["1iter/floor"], f"≤ {TARGET_RATIO}",
                   r["1iter/floor"] <= TARGET_RATIO)
    res.note("problems: " + "; ".join(r["case"] for r in rows + srows))
    res.note("step_1iter_s: a warm step whose eigen-solve stops after one Rayleigh–Ritz iteration "
             "(what a step costs once the warm start has converged); step_s: the engine's default "
             f"settings (eig.tol={eig['tol']:g}, eig.residual_tol={eig['residual_tol']:g}, at most "
             f"eig.warm_iters={eig['warm_iters']} iteration(s) per warm step), "
             "eig_iters: its median iterations per step. Each extra iteration is one more HVP block.")
    res.note("cifar-shaped uses random N(0,1) inputs and random labels of CIFAR-10's shape "
             "(3072 inputs, 10 classes): valid for timing only.")
    res.note(f"the tracker's first (cold) solve is capped at {cold or eig['max_iters']} iterations; the {warmup} "
             "warm-up steps follow the trajectory as in a real run (max 20 iterations each, tol 1e-3).")
    res.note("f32_traj_rel_err = ‖θ_mixed − θ_f64‖ / ‖θ_f64 − θ_start‖ after the timed steps "
             "from the same state; f32_eig_rel_err = max relative difference of the k+1 Ritz "
             "values of the same block with float32 vs float64 HVPs.")
    return res.as_dict()
