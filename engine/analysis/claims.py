"""The paper's claims as a report on any run (``eos-tui claims``, the claims panel).

Lowell & Kastner's Discussion states what their runs showed; this module checks each statement
on a run's snapshots **after the initial transient** (snapshot steps ``≥ metrics.transient_steps``,
default 10). Every line is: the paper's statement, the run's value, and whether it holds (``None``
when the run cannot tell, e.g. fewer than two snapshots after the transient). Definitions, the
thresholds and which of them are our **[choice]**: docs/metrics.md §8. In short, with ``s0`` the
first snapshot after the transient and ``s*`` the later snapshot of the largest sharpness λ1(H):

1. ``g_vs_h``: max over snapshots of ``|λ1(H) − λ1(G)| / λ1(H)`` ≤ 10.1%;
2. ``residual``: max over snapshots of ``λ1(H−G) / λ1(H)`` ≤ 9.9%;
3. ``overlap``: the overlap ratio ρ rises: ``ρ(s*)/ρ(s0) > 1``;
4. ``largest_layer`` (which layer has the largest E‖K_i‖², for information) and
   ``layer_excess``: no layer's E‖K_i‖² exceeds the first layer's by more than 37%;
5. ``factor_*``: growth ``f(s*)/f(s0)`` of the five factors of
   ``E‖K_1‖² = a_L · Π_j s_j · P^1 · m_1 · κ_1``; P^1 "carries the rise" when its growth exceeds
   the product of the other four's (and is > 1); the others "stay within a small factor" (×2);
6. ``counterfactual``: with P^1 held at ``P^1(s0)``, the sharpness would be
   ``λ1_cf(s) = λ1(s) · P^1(s0)/P^1(s)``; the claim holds when P^1 accounts for at least half of
   the sharpening on a log scale, ``1 − log(max λ1_cf/λ1(s0)) / log(max λ1/λ1(s0)) ≥ 0.5``. For
   GD the report adds whether ``max λ1_cf`` would have stayed below 2/η (the stability bound).

λ1(H) at a snapshot step is the step row's ``lambda_H_1`` (or, for a GD run that computes the
spectrum every few steps, the latest one at most ``eig.every − 1`` steps earlier).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

import numpy as np

G_WITHIN = 0.101  # paper: λ1(G) within 10.1% of λ1(H)
RESIDUAL_AT_MOST = 0.099  # paper: λ1(H−G) at most 9.9% of λ1(H)
LAYER_EXCESS_AT_MOST = 0.37  # paper: no layer's E‖K_i‖² exceeds the first layer's by more than 37%
SMALL_FACTOR = 2.0  # [choice] "stays within a small factor": growth in [1/2, 2]
P1_SHARE_AT_LEAST = 0.5  # [choice] P^1 accounts for at least half of the (log) sharpening

FACTORS: tuple[tuple[str, str], ...] = (
    ("a_L", "a_L = E λ1(Hℓ)"),
    ("prod_s", "Π_j s_j = Π E‖J_j‖²"),
    ("P_1", "P^1 (alignment product)"),
    ("m_1", "m_1 = E[‖x_0‖² + 1]"),
    ("kappa_1", "κ_1 (coupling)"),
)


LABELS: dict[str, str] = {
    "g_vs_h": "λ1(G) ≈ λ1(H) (±10.1%)",
    "residual": "λ1(H−G) ≤ 9.9% λ1(H)",
    "overlap": "overlap ρ rises",
    "largest_layer": "largest E‖K_i‖²",
    "layer_excess": "E‖K_i‖² ≤ 1.37·E‖K_1‖²",
    "factor_a_L": "a_L within ×2",
    "factor_prod_s": "Π s_j within ×2",
    "factor_P_1": "P^1 carries the rise",
    "factor_m_1": "m_1 within ×2",
    "factor_kappa_1": "κ_1 within ×2",
    "counterfactual": "P^1 held: no rise",
}


@dataclass(frozen=True)
class Claim:
    """One line of the report."""

    key: str
    statement: str  # what the paper states
    value: str  # what this run shows, in words
    number: float | None  # the headline number of ``value`` (NaN-free; None when absent)
    holds: bool | None  # None: this run cannot tell (``value`` says why)

    @property
    def verdict(self) -> str:
        return {True: "holds", False: "does not hold", None: "n/a"}[self.holds]

    @property
    def label(self) -> str:
        """A short name of the statement (the claims panel)."""
        return LABELS.get(self.key, self.key)

    @property
    def brief(self) -> str:
        """The run's value in a few characters (the claims panel)."""
        x = self.number
        if x is None:
            return "—"
        if self.key in ("g_vs_h", "residual"):
            return f"{x:.1%}"
        if self.key == "layer_excess":
            return f"+{x:.0%}"
        if self.key == "largest_layer":
            return f"layer {int(x)}"
        if self.key == "counterfactual":
            return f"{x:.0%} of rise"
        return f"×{x:.3g}"


@dataclass
class ClaimsReport:
    """The claims of one run, with the snapshot steps they were evaluated on."""

    solver: str
    steps: int
    snapshot_steps: list[int]  # after the transient
    reference_step: int | None  # s0
    peak_step: int | None  # s*
    claims: list[Claim] = field(default_factory=list)

    def as_dict(self) -> dict:
        out = asdict(self)
        out["claims"] = [{**asdict(c), "verdict": c.verdict} for c in self.claims]
        return out

    def held(self) -> tuple[int, int]:
        """``(holds, evaluated)``: how many claims hold, of those the run can tell."""
        judged = [c for c in self.claims if c.holds is not None]
        return sum(bool(c.holds) for c in judged), len(judged)


def _finite(x) -> bool:
    return x is not None and math.isfinite(float(x))


def _num(x: float | None) -> float | None:
    return float(x) if _finite(x) else None


def lambda_at_steps(steps: dict, at: np.ndarray, lookback: int = 1) -> np.ndarray:
    """``lambda_H_1`` at each step of ``at``: that row's, else the latest within ``lookback − 1`` earlier."""
    rows, lam = np.asarray(steps["step"]), np.asarray(steps.get("lambda_H_1", []), dtype=np.float64)
    out = np.full(len(at), np.nan)
    if lam.size == 0:
        return out
    for j, s in enumerate(at):
        window = (rows <= s) & (rows > s - max(lookback, 1)) & np.isfinite(lam)
        if window.any():
            out[j] = lam[window][np.argmax(rows[window])]
    return out


def _growth(values: np.ndarray, i0: int, i1: int) -> float:
    a, b = values[i0], values[i1]
    return float(b / a) if _finite(a) and _finite(b) and a != 0 else math.nan


def evaluate(steps: dict, snapshots: dict, *, depth: int, transient: int = 10, solver: str = "ee",
             lr: float | None = None, eig_every: int = 1) -> ClaimsReport:
    """The claims on columnar ``steps`` and ``snapshots`` (as ``Run.steps()``/``Run.snapshots()``)."""
    n_steps = int(len(steps.get("step", [])))
    snap_step = np.asarray(snapshots.get("step", []), dtype=np.int64)
    keep = snap_step >= transient
    idx = np.flatnonzero(keep)
    at = snap_step[idx]

    def col(name: str) -> np.ndarray:
        values = snapshots.get(name)
        return np.full(len(idx), np.nan) if values is None else np.asarray(values, dtype=np.float64)[idx]

    lam = lambda_at_steps(steps, at, eig_every)
    report = ClaimsReport(solver=solver, steps=n_steps, snapshot_steps=[int(s) for s in at],
                          reference_step=int(at[0]) if len(at) else None, peak_step=None)
    none_yet = f"no snapshot after the first {transient} steps yet"
    report.claims.append(_g_vs_h(lam, col("lambda_G1"), none_yet))
    report.claims.append(_residual(lam, col("lambda_HmG1"), col("lambda_HmG_mag"), none_yet))
    finite = np.flatnonzero(np.isfinite(lam))
    two = len(idx) >= 2 and len(finite) >= 1 and np.isfinite(lam[0])
    peak = int(finite[np.argmax(lam[finite])]) if len(finite) else 0
    if two and peak == 0 and len(idx) >= 2:
        peak = len(idx) - 1  # sharpness never rose above s0: compare with the last snapshot
    report.peak_step = int(at[peak]) if two else None
    need_two = f"needs two snapshots after the first {transient} steps (has {len(idx)})"
    rho = col("overlap_ratio")
    g_rho = _growth(rho, 0, peak) if two else math.nan
    report.claims.append(Claim(
        "overlap", "the overlap ratio ρ = λ1(G)/E‖K‖² rises during training",
        f"ρ {rho[0]:.3g} → {rho[peak]:.3g} (×{g_rho:.3g}) from step {at[0]} to {at[peak]}" if _finite(g_rho)
        else need_two, _num(g_rho), (g_rho > 1) if _finite(g_rho) else None))
    layers = np.stack([col(f"EK2_layer_{i}") for i in range(1, depth + 1)], axis=1) if depth else np.empty((0, 0))
    report.claims.extend(_layers(layers, none_yet))
    prod_s = np.prod(np.stack([col(f"s_{j}") for j in range(1, depth)], axis=1), axis=1) if depth > 1 \
        else np.ones(len(idx))
    values = {"a_L": col("a_L"), "prod_s": prod_s, "P_1": col("P_1"), "m_1": col("m_1"),
              "kappa_1": col("kappa_1")}
    growth = {k: (_growth(v, 0, peak) if two else math.nan) for k, v in values.items()}
    report.claims.extend(_factors(growth, at, peak, need_two) if two else
                         [Claim(f"factor_{k}", _factor_statement(k, label), need_two, None, None)
                          for k, label in FACTORS])
    report.claims.append(_counterfactual(lam, values["P_1"], at, two, need_two, solver, lr))
    return report


def _g_vs_h(lam: np.ndarray, lam_g: np.ndarray, none_yet: str) -> Claim:
    rel = np.abs(lam - lam_g) / lam
    ok = np.isfinite(rel)
    statement = "λ1(G) is within 10.1% of λ1(H)"
    if not ok.any():
        return Claim("g_vs_h", statement, none_yet if not len(lam) else "λ1(G) or λ1(H) not recorded", None, None)
    worst = float(rel[ok].max())
    j = int(np.flatnonzero(ok)[np.argmax(rel[ok])])
    return Claim("g_vs_h", statement,
                 f"largest gap {worst:.1%} (λ1(H) {lam[j]:.4g}, λ1(G) {lam_g[j]:.4g}) over {ok.sum()} snapshots",
                 worst, worst <= G_WITHIN)


def _residual(lam: np.ndarray, lam_r: np.ndarray, lam_mag: np.ndarray, none_yet: str) -> Claim:
    """On the snapshots that solved H−G (full ones; a cheap snapshot leaves both columns NaN):
    ``lam_r`` its largest algebraic eigenvalue, ``lam_mag`` its largest in magnitude, signed."""
    statement = "λ1(H−G) is at most 9.9% of λ1(H)"
    rel = lam_r / lam
    ok = np.isfinite(rel)
    negative = int((np.isfinite(lam_mag) & (lam_mag < 0) & np.isfinite(lam)).sum())
    note = (f"; at {negative} of them H−G's largest eigenvalue in magnitude is negative (|λ| ="
            " ‖H−G‖ above λ1(H−G))") if negative else ""
    if not ok.any():
        return Claim("residual", statement, (none_yet if not len(lam) else "λ1(H−G) not recorded") + note,
                     None, None)
    worst = float(rel[ok].max())
    return Claim("residual", statement, f"at most {worst:.1%} of λ1(H) over {ok.sum()} snapshots{note}",
                 worst, worst <= RESIDUAL_AT_MOST)


def _layers(layers: np.ndarray, none_yet: str) -> list[Claim]:
    s1 = "the first layer has the largest E‖K_i‖² (for information)"
    s2 = "no layer's E‖K_i‖² exceeds the first layer's by more than 37%"
    ok = np.isfinite(layers).all(axis=1) if layers.size else np.zeros(0, bool)
    if not ok.any():
        return [Claim("largest_layer", s1, none_yet, None, None), Claim("layer_excess", s2, none_yet, None, None)]
    rows = layers[ok]
    largest = np.argmax(rows, axis=1) + 1
    counts = np.bincount(largest, minlength=rows.shape[1] + 1)[1:]
    order = np.argsort(-counts)
    text = ", ".join(f"layer {i + 1} at {counts[i]}/{len(rows)}" for i in order if counts[i])
    excess = float(np.max(rows / rows[:, :1]) - 1.0)
    worst = np.unravel_index(np.argmax(rows / rows[:, :1]), rows.shape)
    return [
        Claim("largest_layer", s1, f"largest: {text} snapshots", float(order[0] + 1), None),
        Claim("layer_excess", s2,
              f"at most +{max(excess, 0):.0%} (layer {worst[1] + 1})" if excess > 0
              else "the first layer is the largest at every snapshot", max(excess, 0.0),
              excess <= LAYER_EXCESS_AT_MOST),
    ]


def _factor_statement(key: str, label: str) -> str:
    if key == "P_1":
        return "P^1 rises, and carries the rise of E‖K_1‖² (its growth exceeds the other four's product)"
    return f"{label} stays within a small factor (×1/2 … ×2)"


def _factors(growth: dict[str, float], at: np.ndarray, peak: int, need_two: str) -> list[Claim]:
    others = math.prod(g for k, g in growth.items() if k != "P_1")
    out = []
    for key, label in FACTORS:
        g = growth[key]
        statement = _factor_statement(key, label)
        if not _finite(g):
            out.append(Claim(f"factor_{key}", statement, f"{label} not recorded", None, None))
            continue
        if key == "P_1":
            value = f"×{g:.3g} vs ×{others:.3g} for the other four (steps {at[0]}→{at[peak]})"
            holds = g > 1 and (not _finite(others) or g > others)
        else:
            value = f"×{g:.3g} (steps {at[0]}→{at[peak]})"
            holds = 1 / SMALL_FACTOR <= g <= SMALL_FACTOR
        out.append(Claim(f"factor_{key}", statement, value, g, holds))
    return out


def _counterfactual(lam: np.ndarray, p1: np.ndarray, at: np.ndarray, two: bool, need_two: str,
                    solver: str, lr: float | None) -> Claim:
    statement = ("with P^1 held at its value after the transient, the sharpness would not rise: "
                 "P^1's rise accounts for most of the sharpening")
    if not two or not np.isfinite(p1[0]):
        return Claim("counterfactual", statement, need_two, None, None)
    ok = np.isfinite(lam) & np.isfinite(p1)
    cf = lam * p1[0] / p1
    rise = float(np.nanmax(lam[ok]) / lam[0])
    rise_cf = float(np.nanmax(cf[ok]) / lam[0])
    gd = ""
    if solver == "gd" and lr:
        bound = 2.0 / lr
        gd = (f"; max λ1 with P^1 held {np.nanmax(cf[ok]):.4g} "
              f"{'<' if np.nanmax(cf[ok]) < bound else '≥'} 2/η = {bound:.4g}")
    if rise <= 1.0:
        return Claim("counterfactual", statement,
                     f"the sharpness did not rise after step {at[0]} (max ×{rise:.3g}); with P^1 held ×{rise_cf:.3g}{gd}",
                     None, None)
    share = 1.0 - math.log(max(rise_cf, 1e-300)) / math.log(rise)
    return Claim("counterfactual", statement,
                 f"sharpness ×{rise:.3g} actual, ×{rise_cf:.3g} with P^1 held: P^1 accounts for {share:.0%} "
                 f"of the rise (log scale){gd}", share, share >= P1_SHARE_AT_LEAST)


def claims_for_columns(steps: dict, snapshots: dict, meta: dict | None, config: dict | None) -> ClaimsReport:
    """The report of a run's columns, with its ``run.json`` (``meta``) and config."""
    cfg, meta = config or {}, meta or {}
    lr = meta.get("lr")
    return evaluate(steps, snapshots, depth=int(meta.get("depth") or (cfg.get("model") or {}).get("depth", 0)),
                    transient=int((cfg.get("metrics") or {}).get("transient_steps", 10)),
                    solver=str(meta.get("solver") or (cfg.get("train") or {}).get("solver", "")),
                    lr=_num(lr) if isinstance(lr, (int, float)) else None,
                    eig_every=int((cfg.get("eig") or {}).get("every", 1)))


def claims_for_run(run) -> ClaimsReport:
    """The report of an open run (:class:`engine.store.Run`)."""
    return claims_for_columns(run.steps(), run.snapshots(), run.meta, run.config)


def claims_for_view(view) -> ClaimsReport:
    """The report of an :class:`engine.analysis.series.RunView` (the rows a screen shows)."""
    return claims_for_columns(view.steps, view.snaps, dict(view.meta), dict(view.config or {}))


def run_summary(run) -> dict:
    """One row of a search table: how far the run went, its sharpening and P^1's share."""
    steps = run.steps()
    report = claims_for_run(run)
    by_key = {c.key: c for c in report.claims}
    at = np.asarray(report.snapshot_steps)
    lam = lambda_at_steps(steps, at, int((run.config or {}).get("eig", {}).get("every", 1)))
    lam0 = float(lam[0]) if len(lam) else math.nan
    lam_max = float(np.nanmax(lam)) if np.isfinite(lam).any() else math.nan
    p1 = by_key["factor_P_1"].number
    others = math.nan
    if report.peak_step is not None:
        growth = [by_key[f"factor_{k}"].number for k, _ in FACTORS if k != "P_1"]
        others = math.prod(growth) if all(g is not None for g in growth) else math.nan
    rise = lam_max / lam0 if lam0 and math.isfinite(lam0) else math.nan
    return {
        "status": run.status, "steps": int(len(steps["step"])),
        "t": float(steps["t"][-1]) if len(steps["t"]) else math.nan,
        "final_loss": float(steps["loss"][-1]) if len(steps["loss"]) else math.nan,
        "wall_s": float(steps["wall_s"][-1]) if len(steps["wall_s"]) else math.nan,
        "lambda_s0": lam0, "lambda_max": lam_max, "rise": rise,
        "P1_growth": p1 if p1 is not None else math.nan, "others_growth": others,
        "mechanism": "yes" if (rise >= 5 and p1 is not None and p1 > others) else "no",
        "claims_held": "{}/{}".format(*report.held()),
    }
