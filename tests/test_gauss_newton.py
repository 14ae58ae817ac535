"""engine.gauss_newton against dense brute force (spec §2, §5).

Reference: per-sample Jacobians by ``torch.autograd.functional.jacobian`` on the flat θ
(``tests/dense_reference.py``), ``K_n = Hℓ^{1/2} J_n``, ``G = mean K_nᵀ K_n``, ``H`` by
``torch.autograd.functional.hessian``, dense ``eigvalsh``.
"""

from __future__ import annotations

import math
import types

import numpy as np
import pytest
import torch

from engine.errors import ConfigError
from engine.gauss_newton import (
    ggn_top_eigenvalue,
    gram_matrix,
    gram_top_eigenvalue,
    overlap_ratio,
    residual_eigenvalues,
)
from engine.layer_metrics import LayerMetricsComputer
from engine.model import forward
from engine.products import LossProblem
from tests.dense_reference import dense_ggn, dense_hessian, per_sample_jacobians
from tests.test_layer_metrics import make_problem

CASES = [
    ((5, 4, 4, 3), "elu", "ce", 7, 0),
    ((5, 4, 4, 3), "tanh", "mse", 6, 1),
    ((4, 5, 3, 4, 3), "elu", "mse", 8, 2),
    ((4, 5, 3, 4, 3), "tanh", "ce", 8, 3),
]
IDS = [f"{c[0]}-{c[1]}-{c[2]}" for c in CASES]


def dense_K(spec, crit, theta, X, y):
    J = per_sample_jacobians(spec, theta, X)  # (n, c, P)
    S = crit.hessian_sqrt(forward(spec, theta, X), y)
    return S @ J


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_gram_route_matches_dense_ggn(case):
    sizes, act, cr, n, seed = case
    spec, crit, theta, X, y = make_problem(sizes, act, cr, n, seed=seed)
    K = dense_K(spec, crit, theta, X, y)
    G = torch.einsum("ncp,ncq->pq", K, K) / n
    lam_ref = float(torch.linalg.eigvalsh(G)[-1])
    # the same G via the independent dense_ggn (J^T Hl J)
    pr = types.SimpleNamespace(spec=spec, criterion=crit, X=X, y=y)
    assert float(torch.linalg.eigvalsh(dense_ggn(pr, theta))[-1]) == pytest.approx(lam_ref, rel=1e-12)

    Gram = gram_matrix(spec, crit, theta, X, y)
    Kf = K.reshape(n * spec.num_outputs, -1)
    torch.testing.assert_close(Gram, Kf @ Kf.T / n, rtol=1e-10, atol=1e-12)

    lam = gram_top_eigenvalue(spec, crit, theta, X, y)
    assert lam == pytest.approx(lam_ref, rel=1e-8)
    # chunked, and the eigsh branch
    assert gram_top_eigenvalue(spec, crit, theta, X, y, chunk_size=3) == pytest.approx(lam_ref, rel=1e-10)
    assert gram_top_eigenvalue(spec, crit, theta, X, y, chunk_size=2, dense_max_dim=0) == pytest.approx(lam_ref, rel=1e-10)

    # overlap ratio ρ = λ1(G)/E‖K‖² ∈ (0, 1]
    EK2 = LayerMetricsComputer(spec, crit).compute(theta, X, y).EK2
    rho = overlap_ratio(lam, EK2)
    assert 0 < rho <= 1 + 1e-12
    assert rho == pytest.approx(lam_ref / float(torch.linalg.eigvalsh(K @ K.transpose(1, 2))[:, -1].mean()), rel=1e-8)


def _true_residual(matmat, value, vector):
    """‖A u − θ u‖/|θ| computed explicitly from a stored vector (not the solver's estimate)."""
    u = vector / vector.norm()
    return float((matmat(u[:, None])[:, 0] - value * u).norm()) / abs(value)


@pytest.mark.parametrize("case", CASES[:2], ids=IDS[:2])
def test_ggn_route_matches_gram_route(case):
    sizes, act, cr, n, seed = case
    spec, crit, theta, X, y = make_problem(sizes, act, cr, n, seed=seed)
    problem = LossProblem(spec, crit, X, y)
    lam_gram = gram_top_eigenvalue(spec, crit, theta, X, y)
    lam, block = ggn_top_eigenvalue(problem, theta, tol=1e-9, max_steps=500)
    assert lam.converged and lam.residual <= 1e-9
    assert lam.value == pytest.approx(lam_gram, rel=1e-10)
    assert block.shape == (spec.num_params, 1)
    # the recorded residual is honest: recomputed from the returned vector
    G = lambda V: problem.ggnvp(theta, V)  # noqa: E731
    assert _true_residual(G, lam.value, block[:, 0]) == pytest.approx(lam.residual, rel=1e-2, abs=1e-12)
    # warm start from the returned block: converges at once
    count = problem.hvp_count
    lam2, _ = ggn_top_eigenvalue(problem, theta, start=block, tol=1e-6, max_steps=500)
    assert lam2.converged and lam2.value == pytest.approx(lam_gram, rel=1e-10)
    assert problem.hvp_count - count <= 3


def _dense_residual_spectrum(spec, crit, theta, X, y):
    pr = types.SimpleNamespace(spec=spec, criterion=crit, X=X, y=y)
    return torch.linalg.eigvalsh(dense_hessian(pr, theta) - dense_ggn(pr, theta))


def test_residual_positive_case():
    spec, crit, theta, X, y = make_problem((4, 5, 3, 4, 3), "elu", "mse", 7, seed=0)
    ev = _dense_residual_spectrum(spec, crit, theta, X, y)
    assert ev[-1] > abs(ev[0])  # the top-magnitude eigenvalue is positive here
    problem = LossProblem(spec, crit, X, y)
    top, mag, block = residual_eigenvalues(problem, theta, tol=1e-9, max_steps=500)
    assert top.converged and mag.converged
    assert top.value == pytest.approx(float(ev[-1]), rel=1e-9)
    assert mag.value == top.value
    top2, _, _ = residual_eigenvalues(problem, theta, start=block, tol=1e-6, max_steps=500)
    assert top2.value == pytest.approx(float(ev[-1]), rel=1e-9)


def test_residual_negative_case_reports_both_senses():
    spec, crit, theta, X, y = make_problem((5, 4, 4, 3), "tanh", "mse", 7, seed=0)
    ev = _dense_residual_spectrum(spec, crit, theta, X, y)
    assert -ev[0] > ev[-1]  # the top-magnitude eigenvalue is negative here
    problem = LossProblem(spec, crit, X, y)
    top, mag, block = residual_eigenvalues(problem, theta, tol=1e-9, max_steps=500)
    assert top.value == pytest.approx(float(ev[-1]), rel=1e-9)  # largest algebraic
    assert mag.value == pytest.approx(float(ev[0]), rel=1e-9)  # largest magnitude, negative
    assert block.shape == (spec.num_params, 2)
    HmG = lambda V: problem.residual_hvp(theta, V)  # noqa: E731
    assert _true_residual(HmG, mag.value, block[:, 1]) <= 1e-8


class DenseProblem:
    """A stand-in for LossProblem with given dense H and G."""

    def __init__(self, H, G):
        self.H, self.G, self.P, self.hvp_count = H, G, H.shape[0], 0

    def residual_hvp(self, theta, V):
        self.hvp_count += V.shape[1]
        return (self.H - self.G) @ V

    def ggnvp(self, theta, V):
        self.hvp_count += V.shape[1]
        return self.G @ V


def _constructed(sign):
    gen = torch.Generator().manual_seed(0)
    P = 20
    Q = torch.linalg.qr(torch.randn(P, P, dtype=torch.float64, generator=gen)).Q
    R = torch.randn(P, P, dtype=torch.float64, generator=gen)
    G = R @ R.T
    spectrum = torch.linspace(-1, 0.5, P, dtype=torch.float64)
    spectrum[0] = -10.0
    return DenseProblem(G + Q @ torch.diag(sign * spectrum) @ Q.T, G), torch.zeros(P, dtype=torch.float64), G


def test_residual_sign_with_constructed_spectra():
    prob, theta, G = _constructed(1.0)
    top, mag, _ = residual_eigenvalues(prob, theta, tol=1e-10, max_steps=500)
    assert top.value == pytest.approx(0.5, rel=1e-9) and mag.value == pytest.approx(-10.0, rel=1e-9)
    prob, theta, G = _constructed(-1.0)
    top, mag, _ = residual_eigenvalues(prob, theta, tol=1e-10, max_steps=500)
    assert top.value == pytest.approx(10.0, rel=1e-9) and mag.value == top.value
    lam, _ = ggn_top_eigenvalue(prob, theta, tol=1e-10, max_steps=500)
    assert lam.value == pytest.approx(float(torch.linalg.eigvalsh(G)[-1]), rel=1e-9)


def test_a_tolerance_not_met_within_the_cap_is_recorded_unconverged():
    prob, theta, _ = _constructed(1.0)
    top, mag, _ = residual_eigenvalues(prob, theta, tol=1e-12, max_steps=3)
    assert not top.converged and top.residual > 1e-12
    lam, _ = ggn_top_eigenvalue(prob, theta, tol=1e-14, max_steps=2)
    assert not lam.converged and lam.residual > 1e-14


def test_overlap_ratio_and_limits():
    assert overlap_ratio(2.0, 4.0) == 0.5
    assert math.isnan(overlap_ratio(math.nan, 4.0))
    assert math.isnan(overlap_ratio(1.0, 0.0))
    spec, crit, theta, X, y = make_problem((5, 4, 4, 3), "elu", "ce", 7, seed=0)
    with pytest.raises(ConfigError):
        gram_top_eigenvalue(spec, crit, theta, X, y, max_dim=20)
    # float32 inputs with float64 θ, and a float32 θ
    lam64 = gram_top_eigenvalue(spec, crit, theta, X.float(), y)
    lam32 = gram_top_eigenvalue(spec, crit, theta.float(), X.float(), y)
    assert np.isclose(lam32, lam64, rtol=1e-4)
