"""Shared helpers of the benchmarks: timing, medians, result tables, machine description.

A benchmark module exposes ``run(quick: bool, console) -> dict`` and returns a JSON-able
result: ``{"name", "description", "tables": [{"title", "columns", "rows"}], "targets":
[{"name", "value", "target", "met"}], "notes": [...]}``. :func:`print_result` renders it.
Timings are wall-clock medians over repeats (``time.perf_counter``); nothing here asserts on
a timing.
"""

from __future__ import annotations

import gc
import math
import os
import platform
import statistics
import time
from dataclasses import dataclass, field
from typing import Any, Callable

import torch

try:  # rich is a dependency of the CLI; the engine itself does not need it
    from rich.console import Console
    from rich.table import Table
except ImportError:  # pragma: no cover
    Console = Table = None  # type: ignore[assignment]


def median(xs) -> float:
    xs = [float(x) for x in xs]
    return statistics.median(xs) if xs else math.nan


def percentile(xs, q: float) -> float:
    """``q``-th percentile (0..100) by linear interpolation."""
    xs = sorted(float(x) for x in xs)
    if not xs:
        return math.nan
    pos = (len(xs) - 1) * q / 100.0
    lo, hi = math.floor(pos), math.ceil(pos)
    return xs[lo] + (xs[hi] - xs[lo]) * (pos - lo)


def time_call(fn: Callable[[], Any], *, repeats: int, warmup: int = 1) -> list[float]:
    """Seconds of ``repeats`` calls of ``fn`` after ``warmup`` untimed calls."""
    for _ in range(warmup):
        fn()
    out = []
    for _ in range(repeats):
        gc.collect()
        t0 = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t0)
    return out


class Stopwatch:
    """``with Stopwatch() as sw: ...``; ``sw.seconds`` afterwards."""

    def __enter__(self) -> "Stopwatch":
        self.t0 = time.perf_counter()
        self.seconds = math.nan
        return self

    def __exit__(self, *exc) -> None:
        self.seconds = time.perf_counter() - self.t0


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.lower().startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _block_blas() -> str:
    from engine import blas

    return blas.backend()


def machine_info() -> dict:
    """CPU model, cores, torch threads and version, device, load average."""
    info = {
        "cpu": cpu_model(),
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "block_blas": _block_blas(),
        "device": "cpu",
        "python": platform.python_version(),
        "platform": platform.platform(),
    }
    try:
        info["loadavg_1m"] = round(os.getloadavg()[0], 2)
    except OSError:
        pass
    if torch.cuda.is_available():  # pragma: no cover - CPU machine in CI
        info["cuda_device"] = torch.cuda.get_device_name(0)
    return info


def fmt(value: Any) -> str:
    """Compact human formatting of a table cell."""
    if value is None:
        return "—"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        if math.isinf(value):
            return "inf"
        a = abs(value)
        if a == 0:
            return "0"
        if a >= 1e5 or a < 1e-3:
            return f"{value:.2e}"
        if a >= 100:
            return f"{value:.0f}"
        if a >= 10:
            return f"{value:.1f}"
        return f"{value:.3g}"
    return str(value)


@dataclass
class BenchResult:
    """Builder for the JSON-able result of one benchmark."""

    name: str
    description: str
    params: dict = field(default_factory=dict)
    tables: list = field(default_factory=list)
    targets: list = field(default_factory=list)
    notes: list = field(default_factory=list)
    skipped: str | None = None

    def table(self, title: str, rows: list[dict], columns: list[str] | None = None) -> None:
        columns = columns or (list(rows[0].keys()) if rows else [])
        self.tables.append({"title": title, "columns": columns, "rows": rows})

    def target(self, name: str, value: float, target: str, met: bool | None) -> None:
        self.targets.append({"name": name, "value": value, "target": target,
                             "met": None if met is None else bool(met)})

    def note(self, text: str) -> None:
        self.notes.append(text)

    def as_dict(self) -> dict:
        return {"name": self.name, "description": self.description, "params": self.params,
                "tables": self.tables, "targets": self.targets, "notes": self.notes,
                "skipped": self.skipped}


def render_table(title: str, columns: list[str], rows: list[dict]):
    table = Table(title=title, title_justify="left", header_style="bold")
    for c in columns:
        table.add_column(c, justify="left" if c in ("case", "method", "metric", "point") else "right")
    for row in rows:
        table.add_row(*(fmt(row.get(c)) for c in columns))
    return table


def print_result(console, result: dict) -> None:
    console.rule(f"[bold]{result['name']}[/]: {result['description']}")
    if result.get("skipped"):
        console.print(f"[yellow]skipped:[/] {result['skipped']}")
        return
    if result.get("params"):
        console.print("params: " + ", ".join(f"{k}={v}" for k, v in result["params"].items()),
                      highlight=False)
    for t in result["tables"]:
        console.print(render_table(t["title"], t["columns"], t["rows"]))
    if result["targets"]:
        rows = [{"metric": t["name"], "value": t["value"], "target": t["target"],
                 "met": ("n/a" if t["met"] is None else ("MET" if t["met"] else "MISSED"))}
                for t in result["targets"]]
        console.print(render_table("targets", ["metric", "value", "target", "met"], rows))
    for n in result["notes"]:
        console.print(f"note: {n}", highlight=False)


def print_machine(console, info: dict) -> None:
    console.print(
        f"[bold]machine:[/] {info['cpu']} · {info['cpu_count']} cores · torch {info['torch']} "
        f"({info['torch_threads']} threads) · block products via {info.get('block_blas', '?')} · device {info['device']} · python {info['python']}"
        + (f" · load {info['loadavg_1m']}" if "loadavg_1m" in info else ""), highlight=False)


def rel_diff(a: torch.Tensor, b: torch.Tensor, scale: torch.Tensor | None = None) -> float:
    """``‖a − b‖ / ‖scale‖`` (``scale`` defaults to ``b``)."""
    a = a.detach().double().flatten()
    b = b.detach().double().flatten()
    s = b if scale is None else scale.detach().double().flatten()
    den = float(s.norm())
    return float((a - b).norm()) / den if den > 0 else float((a - b).norm())


def max_rel_err(values: torch.Tensor, ref: torch.Tensor) -> float:
    """``max_j |v_j − r_j| / |r_j|`` over matched (sorted) eigenvalues."""
    v = torch.sort(values.detach().double().cpu(), descending=True).values
    r = torch.sort(ref.detach().double().cpu(), descending=True).values
    m = min(len(v), len(r))
    return float(((v[:m] - r[:m]).abs() / r[:m].abs().clamp_min(1e-300)).max())


# ---------------------------------------------------------------------------------------------
# Problems shared by the benchmarks


@dataclass
class Setup:
    """A training problem: network spec, criterion, data, loss problem and initial parameters."""

    label: str
    spec: Any
    criterion: Any
    X: torch.Tensor
    y: torch.Tensor
    problem: Any
    theta0: torch.Tensor

    @property
    def n(self) -> int:
        return int(self.X.shape[0])

    def describe(self) -> str:
        sizes = self.spec.sizes
        hidden = sizes[1:-1]
        body = f"{hidden[0]}×{len(hidden)}" if hidden and len(set(hidden)) == 1 else "×".join(map(str, hidden))
        return f"{self.label}: {sizes[0]}→{body}→{sizes[-1]} {self.spec.activation}, n={self.n}, P={self.spec.num_params}"

    def with_dtype(self, dtype: torch.dtype, chunk_size: int | None = None) -> "Setup":
        from engine.products import LossProblem

        X = self.X.to(dtype)
        return Setup(self.label, self.spec, self.criterion, X, self.y,
                     LossProblem(self.spec, self.criterion, X, self.y,
                                 chunk_size=chunk_size if chunk_size is not None else self.problem.chunk_size),
                     self.theta0.to(dtype))


def make_setup(label: str, X: torch.Tensor, y: torch.Tensor, *, width: int, depth: int,
               classes: int, criterion: str = "ce", activation: str = "elu", seed: int = 0,
               chunk_size: int | None = None) -> Setup:
    from engine.criteria import get_criterion
    from engine.model import MLPSpec, init_params
    from engine.products import LossProblem

    spec = MLPSpec.from_shape(int(X.shape[1]), width, depth, classes, activation)
    crit = get_criterion(criterion)
    problem = LossProblem(spec, crit, X, y, chunk_size=chunk_size)
    theta0 = init_params(spec, gain=math.sqrt(2.0), seed=seed, dtype=X.dtype)
    return Setup(label, spec, crit, X, y, problem, theta0)


def dice_setup(*, n: int, image_size: int = 32, width: int = 512, depth: int = 6,
               dtype: torch.dtype = torch.float64, seed: int = 0, label: str = "dice",
               chunk_size: int | None = None) -> Setup:
    """The Dice data set (embedded generator) with the paper's MLP shape by default (``dice-ce``)."""
    from engine.data import load_training_set

    data = load_training_set("dice", size=n, subset_seed=0, dtype=dtype,
                             options={"image_size": image_size})
    return make_setup(label, data.X, data.y, width=width, depth=depth, classes=data.num_classes,
                      seed=seed, chunk_size=chunk_size)


def random_setup(*, n: int, d0: int = 3072, classes: int = 10, width: int = 512, depth: int = 6,
                 dtype: torch.dtype = torch.float64, seed: int = 0, label: str = "cifar-shaped",
                 chunk_size: int | None = None) -> Setup:
    """CIFAR-shaped random data (``n × 3072`` standard-normal inputs, 10 random labels): timing only."""
    gen = torch.Generator().manual_seed(1234 + seed)
    X = torch.randn(n, d0, generator=gen, dtype=torch.float64).to(dtype)
    y = torch.randint(0, classes, (n,), generator=gen)
    return make_setup(label, X, y, width=width, depth=depth, classes=classes, seed=seed,
                      chunk_size=chunk_size)


def make_ee(setup: Setup, *, k: int, lr: float, tol: float | None = None, max_iters: int | None = None,
            oversample: int = 0, cold_max_iters: int | None = None, problem=None,
            eig_dtype: torch.dtype | None = None, reference_rule: bool = False,
            residual_tol: float | None = None):
    """The engine's exponential Euler solver with ``k+1`` tracked eigenpairs (engine defaults
    from ``engine.config.DEFAULTS`` unless overridden: certified eigenpairs, step-size control);
    ``eig_dtype``: the tracker's precision (``eig.dtype``), e.g. float32 products for a float64
    trajectory. ``reference_rule``: the plain exponential Euler step of the reference
    implementation (``τ = min(η, 1/|λ_{k+1}|)``, no error control, no correction), for comparing
    the same rule with ``stable-solvers``."""
    import math

    from engine.config import DEFAULTS
    from engine.solvers.base import EigTracker
    from engine.solvers.exp_euler import ExponentialEuler

    eig = DEFAULTS["eig"]
    problem = problem or setup.problem
    tracker = EigTracker(problem.with_dtype(eig_dtype or problem.dtype), k + 1, oversample=oversample,
                         tol=eig["tol"] if tol is None else tol,
                         max_iters=eig["warm_iters"] if max_iters is None else max_iters,
                         cold_max_iters=eig["max_iters"] if cold_max_iters is None else cold_max_iters,
                         residual_tol=(eig["residual_tol"] or None) if residual_tol is None else residual_tol)
    ee = DEFAULTS["ee"]
    if reference_rule:
        return ExponentialEuler(problem, tracker, lr, tol=math.inf, order=1)
    return ExponentialEuler(problem, tracker, lr, tol=ee["tol"], max_rejections=ee["max_rejections"],
                            order=ee["order"])


def tier(quick: bool) -> str:
    """``quick`` with ``--quick``; else ``$EOS_TUI_BENCH_TIER`` (``medium`` or ``full``, default ``full``).

    ``medium`` exists for shared or small machines: benchmarks whose full size takes tens of
    minutes there (``step``, ``scaling``) run reduced sizes and say so in their parameters.
    """
    if quick:
        return "quick"
    value = os.environ.get("EOS_TUI_BENCH_TIER", "full").strip().lower() or "full"
    return value if value in ("medium", "full") else "full"
