"""Block products routed to numpy's BLAS agree with torch's, for every layout the engine uses."""

from __future__ import annotations

import pytest
import torch

from engine import blas


@pytest.fixture(params=["numpy", "torch"])
def backend(request):
    before = blas._CHOICE
    blas.set_backend(request.param)
    yield request.param
    blas.set_backend(before)


def _layouts(P, b, gen):
    row = torch.randn(P, b, dtype=torch.float64, generator=gen)
    col = torch.randn(b, P, dtype=torch.float64, generator=gen).T
    return {"row": row, "col": col}


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_mm_matches_torch_for_all_layouts(backend, dtype):
    gen = torch.Generator().manual_seed(0)
    A = {k: v.to(dtype) for k, v in _layouts(500, 7, gen).items()}
    B = {k: v.to(dtype) for k, v in _layouts(500, 7, gen).items()}
    S = torch.randn(7, 3, dtype=dtype, generator=gen)
    g = torch.randn(500, dtype=dtype, generator=gen)
    tol = 1e-12 if dtype == torch.float64 else 1e-4
    for a in A.values():
        torch.testing.assert_close(blas.mm(a, S), a @ S, rtol=tol, atol=tol)
        torch.testing.assert_close(blas.mm(a.T, g), a.T @ g, rtol=tol, atol=tol)
        for b in B.values():
            out = blas.mm(a.T, b)
            assert out.dtype == dtype and out.shape == (7, 7)
            torch.testing.assert_close(out, a.T @ b, rtol=tol, atol=tol)
    # a vector·vector product is a 0-d tensor either way
    assert blas.mm(g, g).shape == ()


def test_mm_keeps_autograd_and_integer_products_in_torch():
    blas.set_backend("numpy")
    try:
        a = torch.randn(4, 3, dtype=torch.float64, requires_grad=True)
        out = blas.mm(a, torch.ones(3, 2, dtype=torch.float64))
        out.sum().backward()  # would fail had the product gone through numpy
        assert torch.equal(a.grad, torch.ones(4, 3, dtype=torch.float64) * 2)
        i = torch.arange(6).reshape(2, 3)
        assert torch.equal(blas.mm(i, i.T), i @ i.T)
    finally:
        blas.set_backend(None)


def test_backend_env_override_and_bad_value(monkeypatch):
    before = blas._CHOICE
    try:
        for name in ("torch", "numpy"):
            blas.set_backend(None)
            monkeypatch.setenv("EOS_TUI_BLAS", name)
            assert blas.backend() == name
        blas.set_backend(None)
        monkeypatch.setenv("EOS_TUI_BLAS", "mkl")
        with pytest.raises(ValueError, match="EOS_TUI_BLAS"):
            blas.backend()
        with pytest.raises(ValueError):
            blas.set_backend("mkl")
        monkeypatch.setenv("EOS_TUI_BLAS", "auto")
        blas.set_backend(None)
        assert blas.backend() in ("numpy", "torch")
    finally:
        blas.set_backend(before)
