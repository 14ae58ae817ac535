"""What one plot panel shows, as data: its series, thresholds, cursor and scales.

The terminal's panels (``eos_tui.app.figures`` builds them, ``eos_tui.app.widgets.plot`` draws
them with plotext) and the figure that the ``p`` key saves (:func:`engine.figures.view.view_figure`
draws the same objects with matplotlib) share these descriptions, so the saved figure shows the
series, scales and range of the panels on screen. No plotting library is imported here.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

__all__ = ["Line", "Panel", "PanelFigure"]


@dataclass
class Line:
    x: np.ndarray
    y: np.ndarray
    label: str | None = None
    color: str | None = None  # a terminal colour name (plotext's); the figures map it
    right: bool = False  # draw against the right-hand y axis
    dashed: bool = False  # thresholds and reference lines
    converged: np.ndarray | None = None  # per-point flags aligned with x, y (False: not converged)
    marker: str | None = None  # unconnected points with this (terminal) marker: a scatter plot


@dataclass
class Panel:
    title: str = ""
    xlabel: str = ""
    lines: list[Line] = field(default_factory=list)
    ylog: bool = False
    ylog_right: bool = False
    vline: float | None = None  # cursor position on the x axis
    message: str = ""  # said in the title when there is nothing to draw
    # a table instead of lines (the monitor's factor table, the compare screen's gap table)
    columns: list[str] = field(default_factory=list)
    rows: list[list[str]] = field(default_factory=list)


@dataclass
class PanelFigure:
    """A recipe for the figure of a screen's panels: calling it draws them with matplotlib
    (:func:`engine.figures.view.view_figure`, imported only then). Picklable, so the ``p`` key can
    hand it to a render process without the UI ever importing matplotlib."""

    panels: list[Panel]
    title: str
    ncols: int = 2

    def __call__(self):
        from engine.figures.view import view_figure

        return view_figure(self.panels, self.title, ncols=self.ncols)
