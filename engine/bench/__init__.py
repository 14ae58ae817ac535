"""Performance benchmarks of the engine (``eos-tui bench``).

One module per benchmark, each with ``NAME``, ``DESCRIPTION`` and ``run(quick, console) -> dict``
(see :mod:`engine.bench.common` for the result format). Modules are imported on first use so that
``eos-tui bench step`` does not import Textual or stable-solvers.
"""

from __future__ import annotations

import importlib

from engine.errors import ConfigError

# name -> module under engine.bench, in the order `eos-tui bench` runs them
BENCHMARKS: dict[str, str] = {
    "step": "step",
    "stable-solvers": "stable_solvers_peer",
    "eigensolver": "eigensolver",
    "snapshot": "snapshot",
    "ui": "ui",
    "scaling": "scaling",
}


def names() -> list[str]:
    return list(BENCHMARKS)


def resolve(requested: list[str] | None) -> list[str]:
    """The benchmarks to run (all if none requested); unknown names raise ConfigError."""
    if not requested:
        return names()
    unknown = [n for n in requested if n not in BENCHMARKS]
    if unknown:
        raise ConfigError(f"unknown benchmark {', '.join(repr(u) for u in unknown)}; "
                          f"valid names: {', '.join(BENCHMARKS)}")
    seen: list[str] = []
    for n in requested:
        if n not in seen:
            seen.append(n)
    return seen


def module(name: str):
    return importlib.import_module(f"engine.bench.{BENCHMARKS[resolve([name])[0]]}")


def run_benchmark(name: str, *, quick: bool = False, console=None) -> dict:
    """Run one benchmark and return its JSON-able result."""
    return module(name).run(quick=quick, console=console)
