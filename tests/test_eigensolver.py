"""Block subspace iteration with Rayleigh–Ritz (spec §5) against torch.linalg.eigh."""

from __future__ import annotations

import pytest
import torch

from engine.criteria import get_criterion
from engine.eigensolver import (
    EigResult,
    lanczos_top,
    orthonormalize,
    subspace_iteration,
    top_eigenpairs,
)
from engine.model import MLPSpec, init_params
from engine.products import LossProblem
from tests.dense_reference import dense_hessian

RTOL = 1e-8


def sym_matrix(eigenvalues, seed=0):
    ev = torch.as_tensor(eigenvalues, dtype=torch.float64)
    gen = torch.Generator().manual_seed(seed)
    Q = torch.linalg.qr(torch.randn(len(ev), len(ev), generator=gen, dtype=torch.float64)).Q
    return (Q * ev) @ Q.T


def reference_top_k(A, k):
    """Top-k by magnitude from eigh, in descending algebraic order, with eigenvectors."""
    lam, U = torch.linalg.eigh(A)
    idx = torch.argsort(lam.abs(), descending=True)[:k]
    lam, U = lam[idx], U[:, idx]
    order = torch.argsort(lam, descending=True)
    return lam[order], U[:, order]


def check_against_eigh(res: EigResult, A, k, rtol=RTOL, vec_tol=1e-6):
    lam, U = reference_top_k(A, k)
    assert res.values.shape == (k,) and res.vectors.shape == (A.shape[0], k)
    assert torch.allclose(res.values, lam, rtol=rtol, atol=0), (res.values, lam)
    # orthonormal Ritz vectors, aligned (up to sign) with the true eigenvectors
    assert torch.allclose(res.vectors.T @ res.vectors, torch.eye(k, dtype=A.dtype), atol=1e-12)
    overlap = (res.vectors * U).sum(0).abs()
    assert torch.all(1 - overlap < vec_tol), overlap


SPECTRUM = [10.0, -9.0, 7.0, 5.0, -4.0] + torch.linspace(-1.0, 1.0, 75).tolist()


def test_known_spectrum_with_large_negative_eigenvalues():
    A = sym_matrix(SPECTRUM)
    res = top_eigenpairs(lambda V: A @ V, A.shape[0], 4, oversample=3, tol=1e-12, max_iters=500, seed=3)
    assert res.converged
    check_against_eigh(res, A, 4)
    # by magnitude: 10, −9, 7, 5 — returned in descending algebraic order
    assert res.values.tolist() == pytest.approx([10.0, 7.0, 5.0, -9.0], rel=1e-10)
    assert res.matvecs == res.iterations * 7
    assert res.block.shape == (A.shape[0], 7)
    assert torch.allclose(res.block.T @ res.block, torch.eye(7, dtype=A.dtype), atol=1e-12)
    assert torch.all(res.residuals < 1e-5)


def test_negative_dominant_spectrum():
    A = sym_matrix([-20.0, -15.0, 3.0, 2.0] + [0.1 * i for i in range(-20, 20)], seed=1)
    res = top_eigenpairs(lambda V: A @ V, A.shape[0], 3, oversample=2, tol=1e-12, max_iters=500)
    check_against_eigh(res, A, 3)
    assert res.values[-1] == pytest.approx(-20.0, rel=1e-10)


@pytest.mark.parametrize("act,crit", [("elu", "ce"), ("tanh", "mse")])
def test_top_k_of_a_tiny_mlp_hessian(act, crit):
    spec = MLPSpec((5, 4, 4, 3), act)
    gen = torch.Generator().manual_seed(0)
    X = torch.randn(7, 5, generator=gen, dtype=torch.float64)
    y = torch.randint(0, 3, (7,), generator=gen)
    prob = LossProblem(spec, get_criterion(crit), X, y)
    theta = init_params(spec, seed=2)
    H = dense_hessian(prob, theta)
    k = 3
    res = top_eigenpairs(lambda V: prob.hvp(theta, V), prob.P, k, oversample=4, tol=1e-13, max_iters=1000)
    assert res.converged
    check_against_eigh(res, H, k)
    assert prob.hvp_count == res.matvecs


def test_warm_start_with_prev_values_stops_after_one_iteration():
    A = sym_matrix(SPECTRUM)
    matmat = lambda V: A @ V  # noqa: E731
    cold = top_eigenpairs(matmat, A.shape[0], 4, oversample=3, tol=1e-12, max_iters=500)
    # warm start, product of the block already known (fused pass): no products at all
    warm = subspace_iteration(
        matmat, cold.block, k=4, tol=1e-10, first_product=A @ cold.block, prev_values=cold.values
    )
    assert warm.iterations == 1 and warm.matvecs == 0 and warm.converged
    check_against_eigh(warm, A, 4)
    # warm start without the fused product: one block of products
    warm2 = subspace_iteration(matmat, cold.block, k=4, tol=1e-10, prev_values=cold.values)
    assert warm2.iterations == 1 and warm2.matvecs == 7 and warm2.converged
    # without prev_values it cannot stop after one iteration
    warm3 = subspace_iteration(matmat, cold.block, k=4, tol=1e-10)
    assert warm3.iterations == 2 and warm3.converged
    # prev_values from a different operator: the first comparison fails, iteration continues
    warm4 = subspace_iteration(matmat, cold.block, k=4, tol=1e-10, prev_values=cold.values * 1.1)
    assert warm4.iterations == 2


def test_warm_start_tracks_a_perturbed_operator():
    A = sym_matrix(SPECTRUM)
    cold = top_eigenpairs(lambda V: A @ V, A.shape[0], 4, oversample=3, tol=1e-12, max_iters=500)
    B = A + 1e-3 * sym_matrix(torch.linspace(-1, 1, A.shape[0]).tolist(), seed=5)
    warm = subspace_iteration(lambda V: B @ V, cold.block, k=4, tol=1e-12, max_iters=500, prev_values=cold.values)
    assert warm.converged and warm.iterations > 1
    check_against_eigh(warm, B, 4)
    fresh = top_eigenpairs(lambda V: B @ V, B.shape[0], 4, oversample=3, tol=1e-12, max_iters=500)
    assert warm.matvecs < fresh.matvecs


@pytest.mark.parametrize("scale", [1.0, 3.0])
def test_first_product_saves_exactly_one_block(scale):
    A = sym_matrix(SPECTRUM)
    gen = torch.Generator().manual_seed(7)
    V0 = torch.randn(A.shape[0], 6, generator=gen, dtype=torch.float64)
    if scale == 1.0:
        V0 = torch.linalg.qr(V0).Q  # orthonormal start
    else:
        V0 = V0 * scale  # non-orthonormal start: A Q = A V0 R⁻¹
    calls = []

    def matmat(V):
        calls.append(V.shape[1])
        return A @ V

    plain = subspace_iteration(matmat, V0, k=4, tol=1e-12, max_iters=500)
    n_plain = sum(calls)
    calls.clear()
    fused = subspace_iteration(matmat, V0, k=4, tol=1e-12, max_iters=500, first_product=A @ V0)
    assert plain.matvecs == n_plain and fused.matvecs == sum(calls)
    assert fused.iterations == plain.iterations
    assert fused.matvecs == plain.matvecs - 6
    assert torch.allclose(fused.values, plain.values, rtol=1e-12, atol=0)
    check_against_eigh(fused, A, 4)


def test_max_iters_reached_is_reported():
    A = sym_matrix([1.0, 0.999, 0.998] + [0.5] * 30)
    res = top_eigenpairs(lambda V: A @ V, A.shape[0], 2, oversample=0, tol=1e-15, max_iters=5)
    assert not res.converged
    assert res.iterations == 5 and res.matvecs == 10


def test_rank_deficient_operator_and_start_block():
    # rank-2 operator, block of 5: W = A V has rank 2, QR must be repaired with random columns
    gen = torch.Generator().manual_seed(0)
    u = torch.linalg.qr(torch.randn(40, 2, generator=gen, dtype=torch.float64)).Q
    A = (u * torch.tensor([4.0, -2.0], dtype=torch.float64)) @ u.T
    V0 = torch.randn(40, 5, generator=gen, dtype=torch.float64)
    V0[:, 3] = V0[:, 0]  # duplicated column
    V0[:, 4] = 0.0  # zero column
    res = subspace_iteration(lambda V: A @ V, V0, k=2, tol=1e-12, max_iters=50)
    assert res.converged
    assert res.values.tolist() == pytest.approx([4.0, -2.0], rel=1e-12)
    assert torch.isfinite(res.block).all()
    assert torch.allclose(res.block.T @ res.block, torch.eye(5, dtype=torch.float64), atol=1e-12)
    # the zero operator: every column is dependent
    Z = subspace_iteration(lambda V: torch.zeros_like(V), V0, k=2, tol=1e-12, max_iters=3)
    assert torch.isfinite(Z.values).all() and torch.isfinite(Z.block).all()


def test_orthonormalize_full_rank_keeps_span():
    gen = torch.Generator().manual_seed(1)
    W = torch.randn(30, 4, generator=gen, dtype=torch.float64)
    Q = orthonormalize(W)
    assert torch.allclose(Q.T @ Q, torch.eye(4, dtype=torch.float64), atol=1e-13)
    assert torch.allclose(Q @ (Q.T @ W), W, atol=1e-12)


def test_lanczos_baseline_matches_eigh():
    A = sym_matrix(SPECTRUM)
    res = lanczos_top(lambda V: A @ V, A.shape[0], 4, seed=0)
    check_against_eigh(res, A, 4, rtol=1e-10)
    assert res.matvecs > 0


def test_float32_operator():
    A = sym_matrix(SPECTRUM).float()
    res = top_eigenpairs(lambda V: A @ V, A.shape[0], 3, oversample=3, tol=1e-5, max_iters=500, dtype=torch.float32)
    assert res.values.dtype == torch.float32
    assert res.values.tolist() == pytest.approx([10.0, 7.0, -9.0], rel=1e-4)


def test_bad_arguments_raise():
    A = sym_matrix(SPECTRUM)
    V0 = torch.randn(A.shape[0], 3, dtype=torch.float64)
    with pytest.raises(ValueError):
        subspace_iteration(lambda V: A @ V, V0, k=4)
    with pytest.raises(ValueError):
        subspace_iteration(lambda V: A @ V, V0, k=2, first_product=torch.zeros(5, 3, dtype=torch.float64))


def test_residual_tolerance_stops_an_accurate_warm_start_after_one_iteration():
    """When the operator moved but the block is still accurate, the free residual check stops."""
    gen = torch.Generator().manual_seed(5)
    P, k = 40, 3
    Q = torch.linalg.qr(torch.randn(P, P, generator=gen, dtype=torch.float64)).Q
    lam = torch.cat([torch.tensor([50.0, 30.0, 20.0], dtype=torch.float64), torch.linspace(5, 0.1, P - 3, dtype=torch.float64)])
    A = Q @ torch.diag(lam) @ Q.T
    V0 = Q[:, :k].clone()
    stale = torch.tensor([40.0, 25.0, 10.0], dtype=torch.float64)  # previous call's values, far off
    loose = subspace_iteration(lambda V: A @ V, V0, k=k, tol=1e-12, max_iters=30, prev_values=stale,
                               residual_tol=1e-6)
    assert loose.iterations == 1 and loose.converged
    assert torch.allclose(loose.values, lam[:3], rtol=1e-12)
    strict = subspace_iteration(lambda V: A @ V, V0, k=k, tol=1e-12, max_iters=30, prev_values=stale)
    assert strict.iterations >= 2


def test_factored_ritz_vectors_project_and_combine_like_the_dense_ones():
    from engine.eigensolver import RitzVectors

    gen = torch.Generator().manual_seed(4)
    basis = torch.linalg.qr(torch.randn(60, 6, dtype=torch.float64, generator=gen)).Q
    coeffs = torch.linalg.qr(torch.randn(6, 6, dtype=torch.float64, generator=gen)).Q[:, :4]
    ritz = RitzVectors(basis, coeffs)
    U = basis @ coeffs
    g = torch.randn(60, dtype=torch.float64, generator=gen)
    c = torch.randn(4, dtype=torch.float64, generator=gen)
    assert ritz.shape == (60, 4)
    torch.testing.assert_close(ritz.dense(), U, rtol=0, atol=1e-14)
    torch.testing.assert_close(ritz.project(g), U.T @ g, rtol=0, atol=1e-13)
    torch.testing.assert_close(ritz.combine(c), U @ c, rtol=0, atol=1e-13)
    order = torch.tensor([2, 0, 3, 1])
    torch.testing.assert_close(ritz.select(order).dense(), U[:, order], rtol=0, atol=1e-14)
    plain = RitzVectors(U)
    torch.testing.assert_close(plain.select(order).project(g), U[:, order].T @ g, rtol=0, atol=1e-13)


def test_residuals_from_the_gram_matrix_match_explicit_ones():
    A = sym_matrix(SPECTRUM, seed=5)
    gen = torch.Generator().manual_seed(1)
    V0 = torch.randn(A.shape[0], 6, dtype=torch.float64, generator=gen)
    res = subspace_iteration(lambda V: A @ V, V0, k=4, tol=0.0, max_iters=3)
    U = res.vectors
    explicit = (A @ U - U * res.values).norm(dim=0) / res.values.abs()
    torch.testing.assert_close(res.residuals, explicit, rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("span", [1e2, 1e3, 1e6])
def test_next_block_stays_orthonormal_for_an_ill_conditioned_block(span):
    # |λ| spanning 1e3 leaves one CholeskyQR pass 2.5e-9 from orthonormal (a second pass is
    # needed), 1e6 is too ill-conditioned for Cholesky (the robust QR takes over)
    from engine.eigensolver import _next_block, _rayleigh_ritz

    A = sym_matrix(torch.logspace(0, float(torch.log10(torch.tensor(span))), 7).tolist() + [1e-3] * 43, seed=2)
    gen = torch.Generator().manual_seed(3)
    V = torch.linalg.qr(torch.randn(A.shape[0], 7, dtype=torch.float64, generator=gen)).Q
    W = A @ V
    lam, S, G = _rayleigh_ritz(V, W)
    B = _next_block(W, S, G, gen)
    torch.testing.assert_close(B.T @ B, torch.eye(7, dtype=torch.float64), rtol=0, atol=1e-12)
    # same span as orth(W S)
    P = B @ B.T
    torch.testing.assert_close(P @ (W @ S), W @ S, rtol=0, atol=1e-9 * float(W.norm()))
    res = subspace_iteration(lambda X: A @ X, V, k=5, tol=0.0, max_iters=4)
    torch.testing.assert_close(res.block.T @ res.block, torch.eye(7, dtype=torch.float64), rtol=0, atol=1e-12)


def test_lanczos_matches_eigh_cold_and_warm():
    from engine.eigensolver import lanczos

    A = sym_matrix(SPECTRUM, seed=7)
    gen = torch.Generator().manual_seed(2)
    cold = lanczos(lambda V: A @ V, torch.randn(A.shape[0], dtype=torch.float64, generator=gen), 4,
                   tol=1e-14, max_steps=80)
    assert cold.converged
    check_against_eigh(cold, A, 4)
    explicit = (A @ cold.vectors - cold.vectors * cold.values).norm(dim=0) / cold.values.abs()
    torch.testing.assert_close(cold.residuals, explicit, rtol=1e-6, atol=1e-12)
    # a slightly perturbed operator, warm-started from the previous Ritz vectors: fewer products
    B = A + 1e-3 * sym_matrix(torch.linspace(-1, 1, A.shape[0]).tolist(), seed=8)
    warm = lanczos(lambda V: B @ V, cold.block, 4, tol=1e-10, max_steps=80)
    again = lanczos(lambda V: B @ V, torch.randn(A.shape[0], dtype=torch.float64, generator=gen), 4,
                    tol=1e-10, max_steps=80)
    assert warm.converged and again.converged
    check_against_eigh(warm, B, 4, rtol=1e-9, vec_tol=1e-4)
    assert warm.matvecs < again.matvecs


def test_lanczos_on_a_low_rank_operator_restarts_after_breakdown():
    from engine.eigensolver import lanczos

    # rank 3: the Krylov space of a generic start vector is invariant after 3 steps
    A = sym_matrix([5.0, -3.0, 2.0] + [0.0] * 27, seed=4)
    res = lanczos(lambda V: A @ V, torch.ones(30, dtype=torch.float64), 3, tol=1e-12, max_steps=30)
    assert res.values.tolist() == pytest.approx([5.0, 2.0, -3.0], rel=1e-10)
    res5 = lanczos(lambda V: A @ V, torch.ones(30, dtype=torch.float64), 5, tol=1e-12, max_steps=30)
    assert torch.allclose(res5.vectors.T @ res5.vectors, torch.eye(5, dtype=torch.float64), atol=1e-10)
    assert res5.values[:2].tolist() == pytest.approx([5.0, 2.0], rel=1e-10)
