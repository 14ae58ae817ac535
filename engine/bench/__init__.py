"""Performance benchmarks of the engine (``eos-tui bench``).

One module per benchmark, each with ``NAME``, ``DESCRIPTION`` and ``run(quick, console) -> dict``
(see :mod:`engine.bench.common` for the result format). Modules are imported on first use so that
``eos-tui bench step`` does not import Textual or stable-solvers.

The engine never imports the interface: benchmarks of the UI live in ``eos_tui`` and are added
to the list by :func:`register` when the CLI's bench command is loaded.
"""

from __future__ import annotations

import importlib

from engine.errors import ConfigError

# name -> importable module, in the order `eos-tui bench` runs them
BENCHMARKS: dict[str, str] = {
    "step": "engine.bench.step",
    "stable-solvers": "engine.bench.stable_solvers_peer",
    "eigensolver": "engine.bench.eigensolver",
    "snapshot": "engine.bench.snapshot",
    "stepcontrol": "engine.bench.step_control",
    "sweep": "engine.bench.sweep",
    "scaling": "engine.bench.scaling",
}


def register(name: str, module_name: str, *, before: str | None = None) -> None:
    """Add benchmark ``name`` implemented by module ``module_name`` (run before ``before``)."""
    items = [(k, v) for k, v in BENCHMARKS.items() if k != name]
    at = next((i for i, (k, _) in enumerate(items) if k == before), len(items))
    items.insert(at, (name, module_name))
    BENCHMARKS.clear()
    BENCHMARKS.update(items)


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
    return importlib.import_module(BENCHMARKS[resolve([name])[0]])


def run_benchmark(name: str, *, quick: bool = False, console=None) -> dict:
    """Run one benchmark and return its JSON-able result."""
    return module(name).run(quick=quick, console=console)
