"""The figures by name, and ``all``: every figure the runs' data supports, written into a folder."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from matplotlib.figure import Figure

from engine.analysis.series import RunView

from . import powerlaw, solvers, timeseries
from .output import image_format, prepare_dir, save_figure
from .style import FigureError, FigureOptions

__all__ = ["FIGURES", "names", "make_figure", "write_all", "Written"]

FIGURES: dict[str, tuple[Callable[[Sequence[RunView], FigureOptions], Figure], str]] = {
    "sharpness": (timeseries.sharpness, "λ1(H) with 2/η dashed for GD runs, λ1(G), λ1(H−G) (paper Figs 1, 6–9)"),
    "overlap": (timeseries.overlap, "λ1(G) = ρ·E‖K‖²: λ1(G), E‖K‖² and the overlap ratio ρ (Figs 2, 10–13)"),
    "alignment": (timeseries.alignment, "alignment ratios r_i of the chosen layers (Fig 3)"),
    "layers": (timeseries.layers, "E‖K_i‖² of every layer (Figs 14–18)"),
    "factors": (timeseries.factors, "the five factors of E‖K_1‖²: a_L, Π s_j, P^1, m_1, κ_1 (Fig 4)"),
    "compare": (solvers.compare, "GD vs exponential Euler on t: loss, λ1 with 2/η and 2/τ, P^1"),
    "powerlaw": (powerlaw.powerlaw, "max P^1 vs dataset size D, log–log, with the fit, R² and the paper's line"),
}


def names() -> list[str]:
    """Every figure name ``eos-tui plot --figure`` accepts (``all`` last)."""
    return [*FIGURES, "all"]


def make_figure(name: str, runs: Sequence[RunView], opts: FigureOptions = FigureOptions()) -> Figure:
    """Figure ``name`` of ``runs``; :class:`FigureError` for an unknown name or missing data."""
    if name not in FIGURES:
        raise FigureError(f"unknown figure {name!r}; choose one of {', '.join(names())}")
    return FIGURES[name][0](list(runs), opts)


@dataclass
class Written:
    """What ``all`` did with one figure: the files written, or why it was skipped."""

    name: str
    files: list[Path] = field(default_factory=list)
    skipped: str = ""


def write_all(runs: Sequence[RunView], folder: Path | str, opts: FigureOptions = FigureOptions(),
              formats: Sequence[str] = ("png",), on_figure: Callable[[Written], None] | None = None) -> list[Written]:
    """Every figure the runs support, as ``FOLDER/NAME.FORMAT`` plus ``FOLDER/NAME.csv``.

    A figure the data does not support is skipped with its reason; when none is supported this
    is a :class:`FigureError` naming each reason.
    """
    formats = [image_format(f"x.{f}") for f in formats] or ["png"]
    folder = prepare_dir(folder)
    done: list[Written] = []
    for name in FIGURES:
        try:
            fig = make_figure(name, runs, opts)
        except FigureError as exc:
            result = Written(name, skipped=str(exc))
        else:
            result = Written(name, save_figure(fig, folder / f"{name}.{formats[0]}", also=tuple(formats[1:])))
        done.append(result)
        if on_figure is not None:
            on_figure(result)
    if not any(w.files for w in done):
        raise FigureError("no figure can be drawn from these runs: "
                          + "; ".join(f"{w.name}: {w.skipped}" for w in done))
    return done
