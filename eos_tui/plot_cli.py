"""``eos-tui plot TARGET... [--figure NAME] [--out FILE|DIR]``: paper-grade figures of runs and sweeps.

Registered by the CLI as ``app.command("plot")(user_errors(plot_command))``. The figures are
:mod:`engine.figures`'s; this module parses the options, reads the runs through
:func:`engine.analysis.series.load_views` and says what it wrote. Mistakes (unknown figure, data
the figure needs missing, a path that cannot be written, an unknown extension) raise
:class:`engine.figures.style.FigureError` (an ``EosError``: one ``error:`` line, exit 2).
"""

from __future__ import annotations

import re
import time
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console

__all__ = ["plot_command", "parse_layers", "parse_size"]

FIGURE_HELP = ("sharpness, overlap, alignment, layers, factors, compare, powerlaw, or all (every figure "
               "the data supports, into a folder)")


def parse_layers(text: Optional[str]) -> tuple[int, ...] | None:
    """``"1,3,5"`` → ``(1, 3, 5)``."""
    from engine.figures.style import FigureError

    if text is None:
        return None
    try:
        layers = tuple(int(p) for p in text.replace(" ", "").split(",") if p)
    except ValueError:
        raise FigureError(f"--layers takes layer numbers separated by commas, e.g. 1,3,5; got {text!r}") from None
    if not layers or min(layers) < 1:
        raise FigureError(f"--layers takes positive layer numbers (1-based), e.g. 1,3,5; got {text!r}")
    return layers


def parse_size(text: Optional[str]) -> tuple[float, float] | None:
    """``"12x4"`` or ``"12,4"`` (inches) → ``(12.0, 4.0)``."""
    from engine.figures.style import FigureError

    if text is None:
        return None
    parts = re.split(r"[x×,]", text.strip().lower())
    try:
        w, h = (float(p) for p in parts)
    except ValueError:
        raise FigureError(f"--size takes WIDTHxHEIGHT in inches, e.g. 12x4; got {text!r}") from None
    return w, h


def _default_out(targets: list[Path], figure: str) -> Path:
    from engine.figures.style import FigureError

    if len(targets) != 1:
        raise FigureError("several targets: say where the figure goes with --out FILE (or --out DIR for all)")
    folder = targets[0].expanduser() / "figures"
    return folder if figure == "all" else folder / f"{figure}.png"


def plot_command(
    targets: Annotated[list[Path], typer.Argument(help="Runs, folders of runs or sweep directories.", show_default=False)],
    figure: Annotated[str, typer.Option("--figure", "-f", help=FIGURE_HELP)] = "all",
    out: Annotated[Optional[Path], typer.Option(
        "--out", "-o", help="Image file (.png, .svg or .pdf) for one figure, a folder for all; its data goes "
        "beside it as .csv (default: TARGET/figures/).")] = None,
    formats: Annotated[str, typer.Option(
        "--format", help="With --figure all: the image formats, comma-separated (png, svg, pdf).")] = "png",
    xaxis: Annotated[str, typer.Option("--x", help="x axis: step or t (gradient-flow time); compare always uses t.")] = "step",
    logy: Annotated[Optional[bool], typer.Option(
        "--logy/--linear", help="Force log or linear y axes (default: each panel's own).", show_default=False)] = None,
    smooth: Annotated[int, typer.Option("--smooth", min=0, help="Moving average over N points; the raw curve stays faint.")] = 0,
    layers: Annotated[Optional[str], typer.Option("--layers", help="Layers for alignment, layers and factors, e.g. 1,3,5.")] = None,
    size: Annotated[Optional[str], typer.Option("--size", help="Figure size in inches, WIDTHxHEIGHT (e.g. 12x4).")] = None,
    dpi: Annotated[int, typer.Option("--dpi", help="Resolution of PNG files (dots per inch).")] = 150,
) -> None:
    """Draw paper-grade figures (matplotlib) of runs, with the plotted data beside each as CSV."""
    from engine.analysis.series import load_views
    from engine.figures.output import image_format, save_figure
    from engine.figures.registry import make_figure, names, write_all
    from engine.figures.style import FigureError, FigureOptions

    console = Console(highlight=False)
    if figure not in names():
        raise FigureError(f"unknown figure {figure!r}; choose one of {', '.join(names())}")
    opts = FigureOptions(xaxis=xaxis, logy=logy, smooth=smooth, layers=parse_layers(layers),
                         size=parse_size(size), dpi=dpi)
    fmts = [f.strip().lower() for f in formats.split(",") if f.strip()]
    for f in fmts:
        image_format(f"x.{f}")
    target = out if out is not None else _default_out(targets, figure)
    if figure != "all":
        image_format(target)
    elif target.suffix.lower() in (".png", ".svg", ".pdf"):
        raise FigureError(f"--figure all writes a folder of figures: give --out a folder, not {target}")
    t0 = time.perf_counter()
    runs = load_views(targets)
    what = f"{len(runs)} run{'s' if len(runs) != 1 else ''}"
    if figure == "all":
        def said(w) -> None:
            if w.files:
                console.print(f"wrote {w.name}: " + ", ".join(str(p) for p in w.files))
            else:
                console.print(f"[dim]skipped {w.name}: {w.skipped}[/]")

        done = write_all(runs, target, opts, fmts, on_figure=said)
        n = sum(1 for w in done if w.files)
        console.print(f"{n} figure{'s' if n != 1 else ''} of {what} in {target} ({time.perf_counter() - t0:.1f} s)")
        return
    files = save_figure(make_figure(figure, runs, opts), target)
    console.print(f"wrote {figure} of {what}: " + ", ".join(str(p) for p in files))
