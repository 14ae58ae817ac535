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
    residual_top_eigenvalue,
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


@pytest.mark.parametrize("case", CASES[:2], ids=IDS[:2])
def test_ggn_route_matches_gram_route(case):
    sizes, act, cr, n, seed = case
    spec, crit, theta, X, y = make_problem(sizes, act, cr, n, seed=seed)
    problem = LossProblem(spec, crit, X, y)
    lam_gram = gram_top_eigenvalue(spec, crit, theta, X, y)
    lam, block = ggn_top_eigenvalue(problem, theta, tol=1e-13, max_iters=2000, oversample=6)
    assert lam == pytest.approx(lam_gram, rel=1e-8)
    assert block.shape == (spec.num_params, 7)
    # warm start from the returned block: converges at once
    count = problem.hvp_count
    lam2, _ = ggn_top_eigenvalue(problem, theta, V0=block, tol=1e-10, max_iters=2000, oversample=6)
    assert lam2 == pytest.approx(lam_gram, rel=1e-8)
    assert problem.hvp_count - count <= 3 * block.shape[1]


def test_residual_positive_case():
    spec, crit, theta, X, y = make_problem((4, 5, 3, 4, 3), "elu", "mse", 7, seed=0)
    pr = types.SimpleNamespace(spec=spec, criterion=crit, X=X, y=y)
    ev = torch.linalg.eigvalsh(dense_hessian(pr, theta) - dense_ggn(pr, theta))
    assert ev[-1] > abs(ev[0])  # the top-magnitude eigenvalue is positive here
    problem = LossProblem(spec, crit, X, y)
    lam, block = residual_top_eigenvalue(problem, theta, tol=1e-13, max_iters=3000, oversample=6)
    assert lam == pytest.approx(float(ev[-1]), rel=1e-8)
    lam2, _ = residual_top_eigenvalue(problem, theta, V0=block, tol=1e-10, max_iters=3000, oversample=6)
    assert lam2 == pytest.approx(float(ev[-1]), rel=1e-8)


def test_residual_negative_case_is_nan():
    spec, crit, theta, X, y = make_problem((5, 4, 4, 3), "tanh", "mse", 7, seed=0)
    pr = types.SimpleNamespace(spec=spec, criterion=crit, X=X, y=y)
    ev = torch.linalg.eigvalsh(dense_hessian(pr, theta) - dense_ggn(pr, theta))
    assert -ev[0] > ev[-1]  # the top-magnitude eigenvalue is negative here
    problem = LossProblem(spec, crit, X, y)
    lam, block = residual_top_eigenvalue(problem, theta, tol=1e-10, max_iters=3000, oversample=6)
    assert math.isnan(lam)
    assert block.shape[0] == spec.num_params


class DenseProblem:
    """A stand-in for LossProblem with given dense H and G."""

    def __init__(self, H, G):
        self.H, self.G, self.P, self.hvp_count = H, G, H.shape[0], 0

    def hvp(self, theta, V):
        self.hvp_count += V.shape[1]
        return self.H @ V

    def ggnvp(self, theta, V):
        self.hvp_count += V.shape[1]
        return self.G @ V


def test_residual_sign_with_constructed_spectra():
    gen = torch.Generator().manual_seed(0)
    P = 20
    Q = torch.linalg.qr(torch.randn(P, P, dtype=torch.float64, generator=gen)).Q
    R = torch.randn(P, P, dtype=torch.float64, generator=gen)
    G = R @ R.T
    theta = torch.zeros(P, dtype=torch.float64)
    spec_neg = torch.linspace(-1, 0.5, P, dtype=torch.float64)
    spec_neg[0] = -10.0
    prob = DenseProblem(G + Q @ torch.diag(spec_neg) @ Q.T, G)
    lam, _ = residual_top_eigenvalue(prob, theta, tol=1e-12, max_iters=500, oversample=3)
    assert math.isnan(lam)
    spec_pos = -spec_neg
    prob = DenseProblem(G + Q @ torch.diag(spec_pos) @ Q.T, G)
    lam, _ = residual_top_eigenvalue(prob, theta, tol=1e-12, max_iters=500, oversample=3)
    assert lam == pytest.approx(10.0, rel=1e-9)
    lam, _ = ggn_top_eigenvalue(prob, theta, tol=1e-12, max_iters=2000, oversample=3)
    assert lam == pytest.approx(float(torch.linalg.eigvalsh(G)[-1]), rel=1e-8)


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
