"""CompareScreen: two runs side by side and overlaid on gradient-flow time t, linked cursor."""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import numpy as np
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Grid, Horizontal
from textual.widgets import DataTable, Footer, Static

from engine.errors import EosError
from engine.figures.panel import PanelFigure
from engine.store import send_control

from ..compare import common_range, gap_rows, quantity
from ..estimates import fmt_num
from ..figures import sharpness_figure
from ..series import RunData
from ..widgets.header import EE_NOTE, RunHeader
from ..widgets.plot import Line, Panel, SeriesPlot
from .base import RunScreen
from .save import FIGURES_DIR, FigureRequest

__all__ = ["CompareScreen"]

GAP_ROWS = 8
GAP_TITLE = "gap at equal t (B − A), interpolated onto common t"
GAP_COLUMNS = ("", "t", "loss A", "loss B", "Δ loss", "λ1 A", "λ1 B", "Δ λ1", "P^1 A", "P^1 B", "Δ P^1")
COLORS = {"a": "cyan", "b": "orange"}


class CompareScreen(RunScreen):
    """``live=True``: both runs belong to this session (space pauses both, s stops both, quit asks)."""

    BINDINGS = [
        Binding("left", "cursor(-0.01)", "cursor ←", key_display="←"),
        Binding("right", "cursor(0.01)", "cursor →", key_display="→"),
        Binding("shift+left", "cursor(-0.1)", "cursor ←×10", show=False),
        Binding("shift+right", "cursor(0.1)", "cursor →×10", show=False),
        Binding("home", "cursor_to(0)", "t start", show=False),
        Binding("end", "cursor_to(1)", "t end", show=False),
        Binding("l", "toggle_log", "log loss"),
        Binding("space", "toggle_pause", "pause/resume"),
        Binding("s", "stop_runs", "stop"),
        Binding("escape", "back", "back", show=False),
    ]

    DEFAULT_CSS = """
    CompareScreen #heads { height: 2; }
    CompareScreen #heads RunHeader { width: 1fr; }
    CompareScreen #heads #head-b { background: $panel; }
    CompareScreen #notes { height: 1; padding: 0 1; }
    CompareScreen #cmp-panels { grid-size: 2 2; grid-rows: 1fr 1fr; grid-columns: 1fr 1fr; }
    CompareScreen #gap { height: 12; border: round $primary-darken-2; }
    """

    def __init__(self, a: RunData, b: RunData, *, live: bool = False, **kwargs) -> None:
        super().__init__([a, b], **kwargs)
        self.a, self.b = a, b
        self.live = live
        self.frac: float | None = None  # cursor position in the common t range (None: at its end)
        self.ylog = True
        self._gap_key = None
        self._notes_shown: Text | None = None

    def compose(self) -> ComposeResult:
        with Horizontal(id="heads"):
            yield RunHeader(id="head-a")
            yield RunHeader(id="head-b")
        yield Static(id="notes")
        with Grid(id="cmp-panels"):
            yield SeriesPlot(id="sharp-a")
            yield SeriesPlot(id="sharp-b")
            yield SeriesPlot(id="loss-overlay")
            yield SeriesPlot(id="lambda-overlay")
        gap = DataTable(id="gap", cursor_type="row", zebra_stripes=True)
        gap.can_focus = False
        yield gap
        yield Footer()

    def on_mount(self) -> None:
        super().on_mount()
        table = self.query_one("#gap", DataTable)
        table.border_title = GAP_TITLE
        for label in GAP_COLUMNS:
            table.add_column(label, width=2 if not label else 10)

    # -- cursor ------------------------------------------------------------------------------

    def cursor_t(self) -> float | None:
        rng = common_range(self.a, self.b)
        if rng is None:
            return None
        lo, hi = rng
        frac = 1.0 if self.frac is None else self.frac
        return lo + frac * (hi - lo)

    def action_cursor(self, delta: float) -> None:
        self.frac = float(np.clip((1.0 if self.frac is None else self.frac) + delta, 0.0, 1.0))
        self.redraw_now()

    def action_cursor_to(self, frac: float) -> None:
        self.frac = float(frac)
        self.redraw_now()

    # -- drawing -----------------------------------------------------------------------------

    def _sharp_title(self, data: RunData, label: str, t: float | None) -> str:
        if t is None:
            return f"{label}: {data.name}"
        tt, lam = quantity(data, "lambda")
        from ..downsample import value_at

        lam_t = value_at(tt, lam, t)
        thr = value_at(data.steps.column("t"), data.steps.column("threshold"), t)
        loss = value_at(*quantity(data, "loss"), t)
        return (f"{label} {data.name}: λ1={fmt_num(lam_t)} {data.threshold_label}={fmt_num(thr)} "
                f"loss={fmt_num(loss)} @t={fmt_num(t)}")

    def _overlay(self, name: str, title: str, ylog: bool, t: float | None) -> Panel:
        lines = []
        for key, data in (("a", self.a), ("b", self.b)):
            x, y = quantity(data, name)
            lines.append(Line(x, y, f"{key.upper()} {data.solver}", COLORS[key]))
        if name == "lambda":
            for key, data in (("a", self.a), ("b", self.b)):
                lines.append(Line(data.steps.column("t"), data.steps.column("threshold"),
                                  f"{key.upper()} {data.threshold_label}", COLORS[key], dashed=True))
        return Panel(title=title, xlabel="t (gradient-flow time)", lines=lines, ylog=ylog, vline=t)

    def redraw(self) -> None:
        a, b = self.a, self.b
        t = self.cursor_t()
        self.query_one("#head-a", RunHeader).update_from(a, None, "A")
        self.query_one("#head-b", RunHeader).update_from(b, None, "B")
        notes = Text()
        notes.append(f"cursor t = {fmt_num(t)}" if t is not None else "waiting for data", "bold")
        notes.append("  (←/→ move, shift ×10)  ", "dim")
        if "ee" in (a.solver, b.solver):
            notes.append(EE_NOTE, "italic")
        for data in (a, b):
            if data.error:
                notes.append(f"  {data.error}", "bold red")
        if notes != self._notes_shown:
            self._notes_shown = notes
            self.query_one("#notes", Static).update(notes, layout=False)
        ver = (a.version, b.version)
        q = self.query_one
        self.draw_plots([(q(f"#{pid}", SeriesPlot), make, view, ver) for pid, make, view in self.panel_jobs(t)])
        self._update_gap(t)

    def panel_jobs(self, t: float | None) -> list[tuple[str, Callable[[], Panel], tuple]]:
        """``(plot id, panel factory, view signature)`` of the four plots, cursor at ``t``."""
        a, b, ylog = self.a, self.b, self.ylog

        def sharp(data: RunData, label: str):
            def make() -> Panel:
                fig = sharpness_figure(data, None, "t", False, vline=t)
                fig.title = self._sharp_title(data, label, t)
                return fig
            return make

        return [
            ("sharp-a", sharp(a, "A"), (t,)),
            ("sharp-b", sharp(b, "B"), (t,)),
            ("loss-overlay",
             lambda: self._overlay("loss", "loss A vs B against t" + (" (log)" if ylog else ""), ylog, t), (t, ylog)),
            ("lambda-overlay",
             lambda: self._overlay("lambda", "λ1(H) A vs B against t (dashed: thresholds)", False, t), (t,)),
        ]

    def gap_cells(self, t: float | None) -> tuple[list[list[str]], int]:
        """The gap table's rows (formatted as shown) at the common times and the cursor, and
        the cursor's row."""
        rng = common_range(self.a, self.b)
        if rng is None or t is None:
            return [], 0
        ts = sorted(set(np.linspace(rng[0], rng[1], GAP_ROWS)) | {t})
        cells, cursor_row = [], 0
        for i, g in enumerate(gap_rows(self.a, self.b, np.array(ts))):
            if g.t == t:
                cursor_row = i
            row = ["▶" if g.t == t else "", fmt_num(g.t)]
            for name in ("loss", "lambda", "P1"):
                row += [fmt_num(g.a[name]), fmt_num(g.b[name]), fmt_num(g.diff(name))]
            cells.append(row)
        return cells, cursor_row

    def figure_for_view(self) -> FigureRequest | None:
        """The four plots and the gap table, cursor included, into run A's ``figures/``."""
        t = self.cursor_t()
        if t is None:
            return None
        panels = [make() for _, make, _ in self.panel_jobs(t)]
        rows, _ = self.gap_cells(t)
        panels.append(Panel(title=GAP_TITLE, columns=list(GAP_COLUMNS), rows=rows))
        title = f"compare A {self.a.name} ({self.a.solver}) vs B {self.b.name} ({self.b.solver}) at t = {fmt_num(t)}"

        stem = f"compare-{self.b.name}-t{fmt_num(t)}".replace("/", "_").replace(" ", "")
        return FigureRequest(Path(self.a.path) / FIGURES_DIR, stem, PanelFigure(panels, title))

    def _update_gap(self, t: float | None) -> None:
        key = (self.a.version, self.b.version, t)
        if key == self._gap_key:
            return
        self._gap_key = key
        table = self.query_one("#gap", DataTable)
        table.clear()
        cells, cursor_row = self.gap_cells(t)
        for i, row in enumerate(cells):
            style = "bold reverse" if i == cursor_row and row[0] else ""
            table.add_row(*(Text(c, style=style) for c in row))
        if cells:
            table.move_cursor(row=cursor_row, animate=False)

    # -- run control -------------------------------------------------------------------------

    def action_toggle_log(self) -> None:
        self.ylog = not self.ylog
        self.redraw_now()

    def _control(self, command: str) -> None:
        for data in self.owned_live_runs():
            try:
                send_control(data.path, command)
                data.control = command
            except EosError as exc:
                self.notify(str(exc), severity="error", markup=False)
        self.redraw_now()

    def action_toggle_pause(self) -> None:
        live = self.owned_live_runs()
        if not live:
            self.notify("no run of this session is training")
            return
        paused = all(d.control == "pause" for d in live)
        self._control("run" if paused else "pause")
        self.notify("resumed" if paused else "paused both runs (space resumes)")

    def action_stop_runs(self) -> None:
        if not self.owned_live_runs():
            self.notify("no run of this session is training")
            return
        self._control("stop")
        self.notify("stop sent to both runs: they end 'interrupted' and keep their data")

    def action_back(self) -> None:
        if len(self.app.screen_stack) > 2:
            self.app.pop_screen()

    def owned_live_runs(self) -> list[RunData]:
        return [d for d in (self.a, self.b) if self.live and d.live]
