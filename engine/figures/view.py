"""The figure of a terminal screen: its panels (:class:`~engine.figures.panel.Panel`) drawn with
matplotlib — the same series, labels, scales, right-hand axes, cursor and tables as on screen,
over the rows the screen shows (a replay's playhead). What the ``p`` key saves."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from .panel import Panel
from .style import FigureOptions, PlottedSeries, draw_series, new_figure, plotted, style_axes

__all__ = ["view_figure", "TERMINAL_COLORS"]

# the terminal's colour names (plotext's) on a white page
TERMINAL_COLORS = {"red": "tab:red", "orange": "tab:orange", "yellow": "goldenrod", "green": "tab:green",
                   "cyan": "darkcyan", "blue": "tab:blue", "magenta": "tab:purple", "white": "0.15",
                   "gray": "0.55", "grey": "0.55"}


def view_figure(panels: Sequence[Panel], title: str, *, ncols: int = 2,
                opts: FigureOptions = FigureOptions(max_points=2000, dpi=100)) -> Figure:
    """One axes per panel, in the screen's order, ``ncols`` to a row (a large figure: 100 dpi
    keeps its PNG near 150 KB; the SVG beside it is vector)."""
    twin = any(line.right for p in panels for line in p.lines)
    fig, axes = new_figure(opts, len(panels), ncols=ncols, panel_size=(5.6, 3.0), wgap=1.15 if twin else None,
                           right=0.6 if twin else None)
    for ax, panel in zip(axes, panels):
        if panel.columns:
            _table(fig, ax, panel)
        else:
            _lines(fig, ax, panel, opts)
    fig.suptitle(title, fontsize="medium")
    return fig


def _lines(fig: Figure, ax: Axes, panel: Panel, opts: FigureOptions) -> None:
    right_ax: Axes | None = None
    if panel.ylog:
        ax.set_yscale("log")
    handles = []
    drawn = 0
    for line in panel.lines:
        target = ax
        log = panel.ylog
        if line.right:
            if right_ax is None:
                right_ax = ax.twinx()
                if panel.ylog_right:
                    right_ax.set_yscale("log")
            target, log = right_ax, panel.ylog_right
        color = TERMINAL_COLORS.get(line.color or "", line.color or "0.2")
        drawn_line = draw_series(fig, target, opts, panel=panel.title, series=line.label or "", run=None,
                                 x=line.x, y=line.y, xname=panel.xlabel, color=color, log=log,
                                 label=line.label, dashed=line.dashed, converged=line.converged,
                                 smoothable=False, lw=1.2, points=line.marker is not None)
        if drawn_line is not None:
            drawn += 1
            handles.append(drawn_line)
    if panel.vline is not None and drawn:
        ax.axvline(float(panel.vline), color="0.35", lw=0.9, ls=":", gid="cursor")
    title = panel.title if drawn else f"{panel.title}  ({panel.message or 'no data yet'})"
    style_axes(ax, title=title, xlabel=panel.xlabel)
    if right_ax is not None:
        right_ax.tick_params(which="both", labelsize="x-small")
    if handles:
        ax.legend(handles=handles, fontsize="x-small", frameon=False, loc="best")


def _table(fig: Figure, ax: Axes, panel: Panel) -> None:
    ax.axis("off")
    ax.set_title(panel.title, fontsize="small")
    if not panel.rows:
        ax.text(0.5, 0.5, panel.message or "no data yet", ha="center", va="center", fontsize="small",
                transform=ax.transAxes)
        return
    table = ax.table(cellText=panel.rows, colLabels=panel.columns, loc="center", cellLoc="right")
    table.auto_set_font_size(False)
    table.set_fontsize(7.5)
    table.scale(1.0, 1.25)
    # the CSV holds every cell: one series per row, the column header as x
    for row in panel.rows:
        label = str(row[0])
        for header, cell in zip(panel.columns[1:], row[1:]):
            plotted(fig).append(PlottedSeries(panel.title, label, "", np.array([header], dtype=object),
                                              np.array([cell], dtype=object), "column"))
