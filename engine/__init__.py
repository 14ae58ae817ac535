"""eos-tui engine: training, curvature, per-layer metrics and run storage (no UI imports).

The public API is importable from here; heavy submodules load on first use. Every quantity the
engine records (its store name, formula, cost and accuracy) is defined in ``docs/metrics.md`` of
the repository; the layers and data path are in ``docs/ARCHITECTURE.md``.
"""

from __future__ import annotations

import importlib

__version__ = "0.1.0"

_LAZY = {
    "open_run": ("engine.store", "open_run"),
    "list_runs": ("engine.store", "list_runs"),
    "Run": ("engine.store", "Run"),
    "RunWriter": ("engine.store", "RunWriter"),
    "MLPSpec": ("engine.model", "MLPSpec"),
    "get_criterion": ("engine.criteria", "get_criterion"),
    "LossProblem": ("engine.products", "LossProblem"),
    "EosError": ("engine.errors", "EosError"),
}

__all__ = sorted(_LAZY) + ["__version__"]


def __getattr__(name: str):
    try:
        module, attr = _LAZY[name]
    except KeyError:
        raise AttributeError(f"module 'engine' has no attribute {name!r}") from None
    return getattr(importlib.import_module(module), attr)
