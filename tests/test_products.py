"""LossProblem: loss, gradient, HVP, GGN-vector products against dense autograd references."""

from __future__ import annotations

import pytest
import torch

from engine.criteria import get_criterion
from engine.errors import ConfigError
from engine.model import MLPSpec, forward, init_params
from engine.products import LossProblem, activation_second_derivative
from tests.dense_reference import dense_ggn, dense_gradient, dense_hessian, per_sample_jacobians

RTOL = 1e-10  # float64; the spec asks for ≤ 1e-8 relative agreement
SIZES = (5, 4, 4, 3)
N = 7


def make_problem(crit="ce", act="elu", *, n=N, chunk_size=None, method="manual", dtype=torch.float64, seed=0):
    spec = MLPSpec(SIZES, act)
    gen = torch.Generator().manual_seed(seed)
    X = torch.randn(n, SIZES[0], generator=gen, dtype=torch.float64).to(dtype)
    y = torch.randint(0, SIZES[-1], (n,), generator=gen)
    theta = init_params(spec, seed=seed + 1, dtype=dtype)
    # non-zero biases so that every term of the products is exercised
    theta = theta + 0.3 * torch.randn(spec.num_params, generator=gen, dtype=torch.float64).to(dtype)
    return LossProblem(spec, get_criterion(crit), X, y, chunk_size=chunk_size, method=method), theta


def block(P, b, seed=1, dtype=torch.float64):
    gen = torch.Generator().manual_seed(seed)
    return torch.randn(P, b, generator=gen, dtype=torch.float64).to(dtype)


def rel(a, b):
    return float((a - b).norm() / b.norm())


CASES = [(c, a) for c in ("ce", "mse") for a in ("elu", "tanh", "relu")]
# the torch.func implementation is a cross-check: a subset of the cases keeps the suite fast
METHOD_CASES = [(c, a, "manual") for c, a in CASES] + [("ce", "elu", "func"), ("mse", "tanh", "func")]


@pytest.mark.parametrize("crit,act", CASES)
def test_loss_grad_accuracy_match_autograd(crit, act):
    prob, theta = make_problem(crit, act)
    loss0, g0 = dense_gradient(prob, theta)
    loss, g = prob.loss_and_grad(theta)
    assert isinstance(loss, float)
    assert loss == pytest.approx(loss0, rel=1e-13)
    assert prob.loss(theta) == pytest.approx(loss0, rel=1e-13)
    assert g.shape == (prob.P,)
    assert rel(g, g0) < RTOL
    z = forward(prob.spec, theta, prob.X)
    assert prob.accuracy(theta) == pytest.approx(float((z.argmax(1) == prob.y).double().mean()))


@pytest.mark.parametrize("crit,act,method", METHOD_CASES)
def test_hvp_and_fused_match_dense_hessian(crit, act, method):
    prob, theta = make_problem(crit, act, method=method)
    H = dense_hessian(prob, theta)
    V = block(prob.P, 4)
    HV_ref = H @ V
    HV = prob.hvp(theta, V)
    assert HV.shape == (prob.P, 4)
    for j in range(4):  # column by column, each to full relative accuracy
        assert rel(HV[:, j], HV_ref[:, j]) < RTOL
    loss, g, HV2 = prob.grad_and_hvp(theta, V)
    loss0, g0 = dense_gradient(prob, theta)
    assert loss == pytest.approx(loss0, rel=1e-13)
    assert rel(g, g0) < RTOL
    for j in range(4):
        assert rel(HV2[:, j], HV_ref[:, j]) < RTOL


@pytest.mark.parametrize("crit,act,method", METHOD_CASES)
def test_ggnvp_matches_dense_ggn(crit, act, method):
    prob, theta = make_problem(crit, act, method=method)
    G = dense_ggn(prob, theta)
    V = block(prob.P, 3)
    GV = prob.ggnvp(theta, V)
    for j in range(3):
        assert rel(GV[:, j], (G @ V)[:, j]) < RTOL


@pytest.mark.parametrize("crit,act", [("ce", "elu"), ("mse", "tanh")])
def test_hessian_and_ggn_differ_so_the_checks_discriminate(crit, act):
    """At the test points H − G is not small: an HVP that returned G V would fail above."""
    prob, theta = make_problem(crit, act)
    H, G = dense_hessian(prob, theta), dense_ggn(prob, theta)
    assert rel(H, G) > 1e-2
    # and the dense GGN reference agrees with its definition through the Jacobians
    J = per_sample_jacobians(prob.spec, theta, prob.X)
    assert J.shape == (N, SIZES[-1], prob.P)


def test_dense_ggn_equals_hessian_for_linear_model_mse():
    """Sanity of the references: for a linear model with MSE, H = G exactly."""
    spec = MLPSpec((3, 2))
    gen = torch.Generator().manual_seed(0)
    X = torch.randn(5, 3, generator=gen, dtype=torch.float64)
    y = torch.randint(0, 2, (5,), generator=gen)
    prob = LossProblem(spec, get_criterion("mse"), X, y)
    theta = init_params(spec, seed=3)
    assert rel(dense_ggn(prob, theta), dense_hessian(prob, theta)) < 1e-13


@pytest.mark.parametrize("crit,act", [("ce", "elu"), ("mse", "tanh"), ("ce", "relu")])
def test_chunking_gives_the_same_results(crit, act):
    full, theta = make_problem(crit, act)
    chunked, _ = make_problem(crit, act, chunk_size=3)  # chunks of 3, 3, 1
    V = block(full.P, 5)
    l1, g1, h1 = full.grad_and_hvp(theta, V)
    l2, g2, h2 = chunked.grad_and_hvp(theta, V)
    assert l2 == pytest.approx(l1, rel=1e-14)
    assert rel(g2, g1) < 1e-13
    assert rel(h2, h1) < 1e-13
    assert rel(chunked.ggnvp(theta, V), full.ggnvp(theta, V)) < 1e-13
    assert chunked.loss(theta) == pytest.approx(full.loss(theta), rel=1e-14)
    assert chunked.accuracy(theta) == full.accuracy(theta)
    one, _ = make_problem(crit, act, chunk_size=1)
    assert rel(one.hvp(theta, V), h1) < 1e-13


def test_hvp_count_counts_columns():
    prob, theta = make_problem()
    assert prob.hvp_count == 0
    prob.loss_and_grad(theta)
    prob.loss(theta)
    assert prob.hvp_count == 0
    prob.hvp(theta, block(prob.P, 4))
    assert prob.hvp_count == 4
    prob.grad_and_hvp(theta, block(prob.P, 3))
    assert prob.hvp_count == 7
    prob.ggnvp(theta, block(prob.P, 2))
    assert prob.hvp_count == 9
    prob.hvp(theta, block(prob.P, 1))
    assert prob.hvp_count == 10


@pytest.mark.parametrize("method", ["manual", "func"])
def test_float32(method):
    p64, t64 = make_problem("ce", "elu", method=method)
    p32, t32 = make_problem("ce", "elu", method=method, dtype=torch.float32)
    V = block(p64.P, 3)
    l64, g64, h64 = p64.grad_and_hvp(t64, V)
    l32, g32, h32 = p32.grad_and_hvp(t32, V.float())
    assert g32.dtype == h32.dtype == torch.float32
    assert l32 == pytest.approx(l64, rel=1e-5)
    assert rel(g32.double(), g64) < 1e-4
    assert rel(h32.double(), h64) < 1e-4
    gv32 = p32.ggnvp(t32, V.float())
    assert gv32.dtype == torch.float32
    assert rel(gv32.double(), p64.ggnvp(t64, V)) < 1e-4


@pytest.mark.parametrize("method", ["manual", "func"])
def test_empty_block(method):
    prob, theta = make_problem(method=method)
    V = torch.zeros(prob.P, 0, dtype=torch.float64)
    loss, g, HV = prob.grad_and_hvp(theta, V)
    assert HV.shape == (prob.P, 0) and prob.ggnvp(theta, V).shape == (prob.P, 0)
    assert rel(g, dense_gradient(prob, theta)[1]) < RTOL
    assert prob.hvp_count == 0


def test_products_are_linear_and_symmetric():
    prob, theta = make_problem("ce", "tanh")
    V = block(prob.P, 6)
    HV = prob.hvp(theta, V)
    T = V.T @ HV
    assert rel(T, T.T) < 1e-12
    a, b = 0.7, -1.3
    combo = prob.hvp(theta, a * V[:, :1] + b * V[:, 1:2])
    assert rel(combo[:, 0], a * HV[:, 0] + b * HV[:, 1]) < 1e-12


def test_layouts_of_V_do_not_matter():
    prob, theta = make_problem()
    V = block(prob.P, 4)
    HV = prob.hvp(theta, V)
    Vf = V.T.contiguous().T  # column-major (as returned by QR)
    assert rel(prob.hvp(theta, Vf), HV) < 1e-15


@pytest.mark.parametrize("act", ["elu", "tanh", "relu"])
def test_activation_second_derivative(act):
    from engine.model import activation_derivative

    z = torch.linspace(-3, 3, 61, dtype=torch.float64)[torch.arange(61) != 30]  # skip the kink at 0
    if act == "relu":
        d2 = torch.zeros_like(z)
    else:
        zz = z.clone().requires_grad_(True)
        (d2,) = torch.autograd.grad(activation_derivative(act, zz).sum(), zz)
    assert torch.allclose(activation_second_derivative(act, z), d2, rtol=1e-12, atol=1e-14)


def test_bad_inputs_raise():
    prob, theta = make_problem()
    with pytest.raises(ValueError):
        prob.hvp(theta, torch.zeros(prob.P + 1, 2, dtype=torch.float64))
    with pytest.raises(ValueError):
        prob.loss_and_grad(theta[:-1])
    spec = prob.spec
    with pytest.raises(ConfigError):
        LossProblem(spec, prob.criterion, prob.X[:, :3], prob.y)
    with pytest.raises(ConfigError):
        LossProblem(spec, prob.criterion, prob.X, prob.y, chunk_size=0)
    with pytest.raises(ConfigError):
        LossProblem(spec, prob.criterion, prob.X, prob.y, method="nope")


def test_a_primal_pass_too_large_to_keep_is_made_chunk_by_chunk(monkeypatch):
    """Above PRIMAL_CACHE_BYTES nothing is kept (memory bounded by chunk_size): the products are
    the same as with the cache, against the dense Hessian."""
    import engine.products as products

    monkeypatch.setattr(products, "PRIMAL_CACHE_BYTES", 0)
    prob, theta = make_problem("ce", "elu", chunk_size=3)
    H = dense_hessian(prob, theta)
    V = block(prob.P, 3)
    loss, g, HV = prob.grad_and_hvp(theta, V)
    assert prob._primal_cache is None  # noqa: SLF001
    loss0, g0 = dense_gradient(prob, theta)
    assert loss == pytest.approx(loss0, rel=1e-13) and rel(g, g0) < RTOL
    for j in range(3):
        assert rel(HV[:, j], (H @ V)[:, j]) < RTOL
        assert rel(prob.hvp(theta, V)[:, j], (H @ V)[:, j]) < RTOL
