"""Tall-skinny block products on the faster of the two CPU BLAS libraries in this process.

torch's CPU wheels multiply with Intel MKL, numpy's with OpenBLAS. Square-ish GEMMs run at the
same speed through both (16 GFLOP/s per thread, float64, on this project's AMD EPYC), but the
eigensolver's tall-skinny Gram products ``VᵀW`` (``P ≈ 10⁵–10⁶`` rows, 11 columns) take MKL's
slow paths: measured at ``P = 165 770``, 13–119 ms through torch depending on the operands'
memory layouts, 7–8 ms through numpy, one thread each.

:func:`mm` multiplies CPU float tensors through numpy when that is the faster library here
(zero-copy views in, the result wrapped back without a copy); everything else goes to torch.
The choice is made once per process by timing both on such a product, or forced with
``EOS_TUI_BLAS=torch|numpy`` (``auto`` is the default). Only gradient-free code calls
:func:`mm` (numpy products are invisible to autograd).
"""

from __future__ import annotations

import os
import time

import numpy as np
import torch

_CHOICE: str | None = None
_LIMITS = None  # keeps the threadpoolctl limit alive
_NUMPY_DTYPES = (torch.float64, torch.float32)


def _time(fn, repeats: int = 3) -> float:
    fn()
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def calibrate() -> str:
    """Time a tall-skinny Gram ``VᵀW`` (32768×11, mixed layouts) both ways; ``"numpy"`` if ≥ 1.2× faster."""
    gen = torch.Generator().manual_seed(0)
    V = torch.randn(32768, 11, dtype=torch.float64, generator=gen)
    W = torch.randn(11, 32768, dtype=torch.float64, generator=gen).T
    Vn, Wn = V.numpy(), W.numpy()
    t_torch = _time(lambda: V.T @ W)
    t_numpy = _time(lambda: Vn.T @ Wn)
    return "numpy" if t_numpy * 1.2 < t_torch else "torch"


def backend() -> str:
    """``"numpy"`` or ``"torch"``: the library :func:`mm` uses for CPU float products."""
    global _CHOICE
    if _CHOICE is None:
        wanted = os.environ.get("EOS_TUI_BLAS", "auto").strip().lower()
        if wanted not in ("auto", "torch", "numpy"):
            raise ValueError(f"EOS_TUI_BLAS must be auto, torch or numpy, got {wanted!r}")
        _CHOICE = calibrate() if wanted == "auto" else wanted
    return _CHOICE


def set_backend(name: str | None) -> None:
    """Force ``"numpy"`` / ``"torch"``, or ``None`` to decide again on next use."""
    global _CHOICE
    if name not in (None, "numpy", "torch"):
        raise ValueError(f"unknown BLAS backend {name!r}")
    _CHOICE = name


def set_threads(n: int) -> None:
    """Limit numpy's BLAS to ``n`` threads (torch's are set with ``torch.set_num_threads``)."""
    global _LIMITS
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # pragma: no cover - a dependency of scikit-learn, which we require
        return
    _LIMITS = threadpool_limits(limits=int(n), user_api="blas")


def mm(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """``a @ b`` for 2-D (or 1-D) tensors, through the faster BLAS when both are CPU floats."""
    if (a.device.type == "cpu" and b.device.type == "cpu" and a.dtype == b.dtype
            and a.dtype in _NUMPY_DTYPES and not (a.requires_grad or b.requires_grad)
            and backend() == "numpy"):
        return torch.from_numpy(np.asarray(np.matmul(a.numpy(), b.numpy())))
    return a @ b
