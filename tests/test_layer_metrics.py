"""engine.layer_metrics against brute force (spec §2–§4).

The reference builds everything from autograd on the flat θ and never uses the layer structure:
per-sample Jacobians ``J_n`` (c×P) by ``torch.autograd.functional.jacobian``, ``K_n = Hℓ^{1/2} J_n``,
per-layer column blocks ``K_i``, ``Δ_i = ∂f/∂z_i`` and ``J_i = ∂z_{i+1}/∂z_i`` by autograd
Jacobians of the partial network maps, and ``‖·‖²_op`` by dense ``eigvalsh``.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch.autograd.functional import jacobian

from engine.criteria import get_criterion
from engine.errors import ConfigError
from engine.layer_metrics import (
    LayerMetricsComputer,
    batched_lanczos_top,
    batched_power_top,
    weighted_preactivation_jacobians,
)
from engine.model import MLPSpec, activation, forward, init_params, unflatten

CASES = [
    ((5, 4, 4, 3), "elu", "ce", 7),
    ((5, 4, 4, 3), "tanh", "mse", 6),
    ((4, 5, 3, 4, 3), "elu", "mse", 8),
    ((4, 5, 3, 4, 3), "tanh", "ce", 8),
]
RTOL = 1e-8


def make_problem(sizes, act, crit_name, n, seed=0):
    spec = MLPSpec(sizes, act)
    gen = torch.Generator().manual_seed(seed)
    theta = init_params(spec, seed=seed) + 0.3 * torch.randn(spec.num_params, dtype=torch.float64, generator=gen)
    X = torch.randn(n, sizes[0], dtype=torch.float64, generator=gen)
    y = torch.randint(0, sizes[-1], (n,), generator=gen)
    return spec, get_criterion(crit_name), theta, X, y


def top(M):
    return torch.linalg.eigvalsh(0.5 * (M + M.transpose(-1, -2)))[..., -1]


def brute(spec, crit, theta, X, y):
    """Every §2–§4 quantity by autograd + dense eigvalsh (no layer-structure shortcuts)."""
    L, n = spec.depth, X.shape[0]
    layers = unflatten(spec, theta)
    J = jacobian(lambda t: forward(spec, t, X), theta, vectorize=True)  # (n, c, P)
    z_out = forward(spec, theta, X)
    S = crit.hessian_sqrt(z_out, y)
    K = S @ J
    K2 = top(K @ K.transpose(1, 2))
    G = torch.einsum("ncp,ncq->pq", K, K) / n
    K2_layer = []
    for w, b in spec.layer_slices:
        Ki = K[:, :, w.start : b.stop]
        K2_layer.append(top(Ki @ Ki.transpose(1, 2)))
    K2_layer = torch.stack(K2_layer, dim=1)

    # per-sample pre-activations and partial maps, autograd only
    def z_list(x):
        zs, h = [], x
        for i, (W, bb) in enumerate(layers):
            z = W @ h + bb
            zs.append(z)
            h = activation(spec.activation, z)
        return zs

    def tail(i):  # z_i ↦ f  (0-based i)
        def f(z):
            h = z
            for j in range(i + 1, L):
                h = layers[j][0] @ activation(spec.activation, h) + layers[j][1]
            return h

        return f

    def step(i):  # z_i ↦ z_{i+1}
        return lambda z: layers[i + 1][0] @ activation(spec.activation, z) + layers[i + 1][1]

    A2 = torch.zeros(n, L, dtype=torch.float64)
    J2 = torch.zeros(n, L - 1, dtype=torch.float64)
    AJ2 = torch.zeros(n, L - 1, dtype=torch.float64)
    x2p1 = torch.zeros(n, L, dtype=torch.float64)
    for s in range(n):
        zs = z_list(X[s])
        xs = [X[s]] + [activation(spec.activation, z) for z in zs[:-1]]
        Hl = crit.hessian(z_out[s : s + 1], y[s : s + 1])[0]
        As = []
        for i in range(L):
            Delta = torch.eye(spec.num_outputs, dtype=torch.float64) if i == L - 1 else jacobian(tail(i), zs[i])
            As.append(S[s] @ Delta)
            A2[s, i] = top(As[i] @ As[i].T) if i < L - 1 else torch.linalg.eigvalsh(Hl)[-1]
            x2p1[s, i] = xs[i] @ xs[i] + 1
        for i in range(L - 1):
            Ji = jacobian(step(i), zs[i])
            J2[s, i] = top(Ji.T @ Ji)
            AJ = As[i + 1] @ Ji
            AJ2[s, i] = top(AJ @ AJ.T)
    a = A2.mean(0)
    s_ = J2.mean(0)
    r = AJ2.mean(0) / (a[1:] * s_)
    P = torch.ones(L, dtype=torch.float64)
    for i in range(L - 2, -1, -1):
        P[i] = r[i] * P[i + 1]
    m = x2p1.mean(0)
    kappa = (A2 * x2p1).mean(0) / (a * m)
    return dict(
        EK2=K2.mean(), K2=K2, EK2_layer=K2_layer.mean(0), K2_layer=K2_layer, a=a, s=s_, r=r, P=P, m=m,
        kappa=kappa, A2=A2, J2=J2, AJ2=AJ2, lambda_G1=torch.linalg.eigvalsh(G)[-1],
    )


def close(x, ref, rtol=RTOL):
    np.testing.assert_allclose(np.asarray(x, dtype=float), torch.as_tensor(ref).numpy(), rtol=rtol, atol=0)


@pytest.fixture(scope="module", params=range(len(CASES)), ids=[f"{c[0]}-{c[1]}-{c[2]}" for c in CASES])
def case(request):
    spec, crit, theta, X, y = make_problem(*CASES[request.param], seed=request.param)
    return spec, crit, theta, X, y, brute(spec, crit, theta, X, y)


@pytest.mark.parametrize("method", ["auto", "lanczos", "power"])
def test_against_brute_force(case, method):
    spec, crit, theta, X, y, ref = case
    comp = LayerMetricsComputer(spec, crit, norm_method=method, power_tol=1e-14, power_max_iters=20000)
    lm = comp.compute(theta, X, y, keep_per_sample=True)
    L = spec.depth
    assert lm.norm_method == (("exact",) * (L - 1) if method == "auto" else (method,) * (L - 1))
    assert lm.norm_converged.all()
    close(lm.EK2, ref["EK2"])
    close(lm.EK2_layer, ref["EK2_layer"])
    close(lm.a, ref["a"])
    close(lm.a_L, ref["a"][-1])
    close(lm.s, ref["s"])
    close(lm.r, ref["r"])
    close(lm.P, ref["P"])
    close(lm.m, ref["m"])
    close(lm.kappa, ref["kappa"])
    ps = lm.per_sample
    close(ps["K2"], ref["K2"])
    close(ps["K2_layer"], ref["K2_layer"])
    close(ps["J2"], ref["J2"])
    # exact identity A_{i+1} J_i = A_i: the explicit product has the same norm as A_i
    close(ps["A2"][:, :-1], ref["AJ2"])


def test_identities_and_bounds(case):
    spec, crit, theta, X, y, ref = case
    lm = LayerMetricsComputer(spec, crit).compute(theta, X, y, keep_per_sample=True)
    L = spec.depth
    for i in range(1, L + 1):  # five-factor identity, to round-off
        assert lm.five_factor_product(i) == pytest.approx(lm.EK2_layer[i - 1], rel=1e-12, abs=0)
    assert lm.P[-1] == 1.0
    # triangle inequality, in expectation and per sample
    assert lm.EK2 <= lm.EK2_layer.sum() * (1 + 1e-12)
    ps = lm.per_sample
    assert (ps["K2"] <= ps["K2_layer"].sum(1) * (1 + 1e-12)).all()
    assert (ps["K2"] >= ps["K2_layer"].max(1) * (1 - 1e-12)).all()
    # per-sample alignment ratios lie in [0, 1]
    assert ((ps["ratio"] >= 0) & (ps["ratio"] <= 1 + 1e-12)).all()
    # overlap ratio ρ = λ1(G)/E‖K‖² ∈ (0, 1]
    rho = float(ref["lambda_G1"]) / lm.EK2
    assert 0 < rho <= 1 + 1e-12
    assert 0 < lm.kappa.min()


def test_as_dict_names(case):
    spec, crit, theta, X, y, _ = case
    lm = LayerMetricsComputer(spec, crit).compute(theta, X, y)
    d = lm.as_dict()
    L = spec.depth
    expected = {"EK2", "a_L"}
    for name, count in (("EK2_layer", L), ("a", L), ("s", L - 1), ("r", L - 1), ("P", L), ("m", L), ("kappa", L)):
        expected |= {f"{name}_{i}" for i in range(1, count + 1)}
    expected |= {f"s_{i}_resid" for i in range(1, L)}  # the certificate of each s_i
    assert set(d) == expected
    assert d["P_1"] == lm.P[0] and d[f"s_{L - 1}"] == lm.s[-1] and d["a_L"] == lm.a[-1]
    assert all(isinstance(v, float) for v in d.values())


@pytest.mark.parametrize("method", ["auto", "lanczos", "power"])
def test_chunking_invariance(method):
    spec, crit, theta, X, y = make_problem((4, 5, 3, 4, 3), "tanh", "ce", 11, seed=3)
    kw = dict(norm_method=method, power_tol=1e-14, power_max_iters=20000)
    full = LayerMetricsComputer(spec, crit, **kw).compute(theta, X, y)
    for chunk, norm_batch in ((1, 512), (3, 512), (4, 512), (None, 3), (5, 2)):
        part = LayerMetricsComputer(spec, crit, chunk_size=chunk, norm_batch=norm_batch, **kw).compute(theta, X, y)
        rtol = 1e-12 if method == "auto" else 1e-10
        for name in ("EK2_layer", "a", "s", "r", "P", "m", "kappa"):
            np.testing.assert_allclose(getattr(part, name), getattr(full, name), rtol=rtol)
        assert part.EK2 == pytest.approx(full.EK2, rel=1e-12)


@pytest.mark.parametrize("method", ["lanczos", "power"])
def test_warm_start(method):
    spec, crit, theta, X, y = make_problem((5, 9, 8, 7, 3), "elu", "ce", 9, seed=5)
    comp = LayerMetricsComputer(spec, crit, norm_method=method, power_tol=1e-10, power_max_iters=5000)
    first = comp.compute(theta, X, y)
    assert first.norm_iterations.min() > 2
    second = comp.compute(theta, X, y)
    assert (second.norm_iterations <= 2).all()
    np.testing.assert_allclose(second.s, first.s, rtol=1e-8)
    # chunked / sub-batched warm start uses the same per-sample vectors
    comp.chunk_size = 4
    comp.norm_batch = 3
    third = comp.compute(theta, X, y)
    assert (third.norm_iterations <= 2).all()
    # a different n is a cold start, not an error
    assert comp.compute(theta, X[:5], y[:5]).norm_iterations.max() > 2


@pytest.mark.parametrize("sizes", [(6, 40, 30, 3), (6, 30, 10, 12, 3)])
def test_iterative_paths_wider(sizes):
    """Lanczos with restarts (krylov_dim < d) and the factored ``W D² Wᵀ`` side vs exact eigvalsh."""
    spec, crit, theta, X, y = make_problem(sizes, "elu", "mse", 10, seed=7)
    exact = LayerMetricsComputer(spec, crit, norm_method="exact").compute(theta, X, y, keep_per_sample=True)
    lan = LayerMetricsComputer(spec, crit, norm_method="lanczos", krylov_dim=6, power_tol=1e-13, power_max_iters=3000)
    if sizes[2] * 2 < sizes[1]:
        assert lan.layer_norm_plan()[0] == ("lanczos", "out")
    res = lan.compute(theta, X, y, keep_per_sample=True)
    assert res.norm_converged.all()
    np.testing.assert_allclose(res.per_sample["J2"], exact.per_sample["J2"], rtol=1e-8)
    pw = LayerMetricsComputer(spec, crit, norm_method="power", power_tol=1e-13, power_max_iters=20000)
    res = pw.compute(theta, X, y)
    assert res.norm_converged.all()
    np.testing.assert_allclose(res.s, exact.s, rtol=1e-7)


def test_batched_solvers_direct():
    """Batched Lanczos/power on random PSD matrices, including a zero and a rank-one operator."""
    gen = torch.Generator().manual_seed(0)
    B, d = 6, 12
    R = torch.randn(B, d, d, dtype=torch.float64, generator=gen)
    M = R @ R.transpose(1, 2)
    M[0] = 0.0
    u = torch.randn(d, dtype=torch.float64, generator=gen)
    M[1] = torch.outer(u, u)
    ref = torch.linalg.eigvalsh(M)[:, -1]

    def op(Mb, U):
        return torch.bmm(Mb, U.unsqueeze(2)).squeeze(2)

    V0 = torch.randn(B, d, dtype=torch.float64, generator=gen)
    lan = batched_lanczos_top(op, M, V0, tol=1e-14, max_iters=500, krylov_dim=5, generator=gen)
    assert lan.converged.all()
    np.testing.assert_allclose(lan.values, ref, rtol=1e-10, atol=1e-12)
    pw = batched_power_top(op, M, V0, tol=1e-15, max_iters=100000, generator=gen)
    np.testing.assert_allclose(pw.values, ref, rtol=1e-8, atol=1e-12)
    # budget exhausted → not converged, still a lower bound
    few = batched_lanczos_top(op, M, V0, tol=0.0, max_iters=2, krylov_dim=5, generator=gen)
    assert not few.converged[2:].all() and (few.values <= ref + 1e-12).all()


def test_weighted_jacobians_chain_rule():
    spec, crit, theta, X, y = make_problem((5, 4, 4, 3), "elu", "ce", 4, seed=1)
    A, inter = weighted_preactivation_jacobians(spec, crit, theta, X, y)
    layers = unflatten(spec, theta)
    for i in range(spec.depth - 1):  # A_{i+1} J_i = A_i with J_i = W_{i+1} diag(φ'(z_i))
        Ji = layers[i + 1][0].unsqueeze(0) * inter.dphi[i].unsqueeze(1)
        torch.testing.assert_close(A[i + 1] @ Ji, A[i], rtol=1e-14, atol=1e-15)


def test_float32_and_config_errors():
    spec, crit, theta, X, y = make_problem((5, 4, 4, 3), "relu", "ce", 6, seed=2)
    lm64 = LayerMetricsComputer(spec, crit).compute(theta, X, y)
    lm32 = LayerMetricsComputer(spec, crit).compute(theta.float(), X.float(), y)
    np.testing.assert_allclose(lm32.EK2_layer, lm64.EK2_layer, rtol=1e-4)
    with pytest.raises(ConfigError):
        LayerMetricsComputer(spec, crit, norm_method="svd")
    with pytest.raises(ConfigError):
        LayerMetricsComputer(spec, crit, chunk_size=0)
