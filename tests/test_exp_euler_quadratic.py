"""Exponential Euler on a quadratic loss is the exact flow along the top-k directions (spec §6)."""

import math

import torch

from engine.solvers.exp_euler import exp_euler_update, flow_factors

torch.set_default_dtype(torch.float64)


def quadratic(P=12, k=3, seed=0, negative=False):
    gen = torch.Generator().manual_seed(seed)
    Q = torch.linalg.qr(torch.randn(P, P, generator=gen)).Q
    lam = torch.cat([torch.tensor([400.0, 150.0, 60.0]), torch.linspace(5.0, 0.1, P - 3)])
    if negative:
        lam[1] = -20.0
    A = Q @ torch.diag(lam) @ Q.T
    theta_star = torch.randn(P, generator=gen)
    return A, lam, Q, theta_star


def top_pairs(A, num):
    vals, vecs = torch.linalg.eigh(A)
    order = torch.argsort(vals.abs(), descending=True)[:num]
    return vals[order], vecs[:, order]


def test_flow_factors_are_stable_and_clamped():
    tau = 0.1
    lam = torch.tensor([1e-20, 1e-3, 10.0, 1e4, -5.0])
    phi = flow_factors(lam, tau)
    assert torch.allclose(phi[0], torch.tensor(tau))
    assert math.isclose(phi[1], -math.expm1(-1e-3 * tau) / 1e-3, rel_tol=1e-14)
    assert math.isclose(phi[2], (1 - math.exp(-1.0)) / 10.0, rel_tol=1e-14)
    assert math.isclose(phi[3], 1e-4, rel_tol=1e-12)
    assert phi[4] == tau  # negative eigenvalue: clamped at τ (the safeguard)


def test_top_k_components_follow_the_exact_flow_and_the_rest_an_euler_step():
    A, lam, Q, theta_star = quadratic()
    k = 3
    theta = torch.randn(A.shape[0], generator=torch.Generator().manual_seed(1))
    grad = A @ (theta - theta_star)
    values, vectors = top_pairs(A, k + 1)
    eta = 0.5
    new, tau = exp_euler_update(theta, grad, values, vectors, eta)
    assert math.isclose(tau, min(eta, 1 / abs(float(values[-1]))), rel_tol=1e-15)
    c0 = Q.T @ (theta - theta_star)
    c1 = Q.T @ (new - theta_star)
    # eigenvalues are stored ascending in lam order; top-3 are the first three entries
    exact = c0[:3] * torch.exp(-lam[:3] * tau)
    assert torch.allclose(c1[:3], exact, rtol=1e-10, atol=1e-13)
    euler = c0[3:] * (1 - lam[3:] * tau)
    assert torch.allclose(c1[3:], euler, rtol=1e-10, atol=1e-13)


def test_stable_far_above_two_over_tau():
    """GD with τ diverges on λ1 = 400 ≫ 2/τ; exponential Euler converges monotonically."""
    A, lam, Q, theta_star = quadratic()
    theta_ee = theta_gd = torch.zeros(A.shape[0])
    values, vectors = top_pairs(A, 4)
    loss = lambda th: 0.5 * (th - theta_star) @ A @ (th - theta_star)  # noqa: E731
    start = float(loss(theta_ee))
    for _ in range(50):
        theta_ee, tau = exp_euler_update(theta_ee, A @ (theta_ee - theta_star), values, vectors, 0.2)
        theta_gd = theta_gd - tau * (A @ (theta_gd - theta_star))
    assert lam[0] > 2 / tau
    assert float(loss(theta_ee)) < 0.05 * start
    assert float(loss(theta_gd)) > 1e6 * start


def test_negative_eigenvalue_uses_clamped_step():
    A, lam, Q, theta_star = quadratic(negative=True)
    theta = torch.randn(A.shape[0], generator=torch.Generator().manual_seed(2))
    grad = A @ (theta - theta_star)
    values, vectors = top_pairs(A, 4)
    new, tau = exp_euler_update(theta, grad, values, vectors, 0.5)
    j = int(torch.nonzero(values < 0)[0])
    v = vectors[:, j]
    # along the negative direction the step is the plain Euler step τ·g_j (φ clamped at τ)
    assert math.isclose(float(v @ (theta - new)), tau * float(v @ grad), rel_tol=1e-10)
