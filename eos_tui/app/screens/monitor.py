"""MonitorScreen: one run, live (the engine is writing it) — sharpness, loss, alignment."""

from __future__ import annotations

from pathlib import Path
from typing import Callable

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Grid
from textual.widgets import Footer, Static

from engine.errors import EosError
from engine.figures.panel import PanelFigure
from engine.store import send_control

from ..figures import (
    curvature_figure, factor_rows, layer_figure, loss_figure, sharpness_figure, stepsize_figure,
)
from ..series import RunData
from ..widgets.claims import ClaimsPanel, report_for
from ..widgets.factors import FactorTable, factor_panel
from ..widgets.header import EE_NOTE, RunHeader, step_control_note
from ..widgets.plot import Panel, SeriesPlot
from .base import RunScreen
from .save import FIGURES_DIR, FigureRequest

__all__ = ["MonitorBase", "MonitorScreen", "VIEW_BINDINGS"]

VIEW_BINDINGS = [
    Binding("x", "toggle_x", "x: step/t"),
    Binding("l", "toggle_log", "log loss"),
    Binding("left_square_bracket", "layer(-1)", "layer-", key_display="["),
    Binding("right_square_bracket", "layer(1)", "layer+", key_display="]"),
    Binding("e", "toggle_eigs", "top-k"),
    Binding("m", "metrics", "metrics"),
    Binding("c", "toggle_claims", "claims of the paper (panel)", show=False),
]


class MonitorBase(RunScreen):
    """The panels of one run and the view keys; :class:`MonitorScreen` and ``ReplayScreen`` add
    their own keys."""

    BINDINGS = VIEW_BINDINGS

    DEFAULT_CSS = """
    MonitorBase #notes { height: 1; padding: 0 1; color: $text-muted; }
    MonitorBase #panels { grid-size: 2 3; grid-rows: 1fr 1fr 1fr; grid-columns: 1fr 1fr; }
    MonitorBase FactorTable, MonitorBase ClaimsPanel { border: round $primary-darken-2; }
    MonitorBase ClaimsPanel { display: none; }
    MonitorBase.-claims ClaimsPanel { display: block; }
    MonitorBase.-claims FactorTable { display: none; }
    """

    def __init__(self, data: RunData, **kwargs) -> None:
        super().__init__([data], **kwargs)
        self.data = data
        self.xaxis = "step"
        self.ylog = True
        self.layer_i = 1
        self.extra_eigs = False
        self._notes_shown: Text | None = None

    # -- layout ------------------------------------------------------------------------------

    def compose(self) -> ComposeResult:
        yield RunHeader(id="header")
        yield Static(id="notes")
        with Grid(id="panels"):
            yield SeriesPlot(id="sharpness")
            yield SeriesPlot(id="loss")
            yield SeriesPlot(id="layer")
            yield SeriesPlot(id="curvature")
            yield SeriesPlot(id="stepsize")
            yield FactorTable(id="factors")
            yield ClaimsPanel(id="claims")
        yield Footer()

    # -- what is shown -------------------------------------------------------------------------

    def stop_rows(self) -> int | None:
        """Rows shown (``None``: all of them, following the run)."""
        return None

    def notes(self) -> Text:
        text = Text()
        if self.data.solver == "ee":
            text.append(EE_NOTE, "italic")
            text.append(step_control_note(self.data, self.stop_rows()))
        if self.data.error:
            text.append(f"  {self.data.error}", "bold red")
        return text

    def header_extra(self) -> str:
        return f"x: {self.xaxis}  layer {self.layer_i}"

    def panel_jobs(self) -> list[tuple[str, Callable[[], Panel], tuple]]:
        """``(plot id, panel factory, view signature)`` of the plot panels, as drawn now."""
        data, stop = self.data, self.stop_rows()
        x, eigs, ylog, layer = self.xaxis, self.extra_eigs, self.ylog, self.layer_i
        return [
            ("sharpness", lambda: sharpness_figure(data, stop, x, eigs), (x, eigs)),
            ("loss", lambda: loss_figure(data, stop, x, ylog), (x, ylog)),
            ("layer", lambda: layer_figure(data, stop, x, layer), (x, layer)),
            ("curvature", lambda: curvature_figure(data, stop, x), (x,)),
            ("stepsize", lambda: stepsize_figure(data, stop), ()),
        ]

    def redraw(self) -> None:
        data, stop = self.data, self.stop_rows()
        ver = data.version if stop is None else (stop, len(data.snaps), data.loaded)
        self.query_one(RunHeader).update_from(data, stop, self.header_extra())
        notes = self.notes()
        if notes != self._notes_shown:  # fixed height: repaint without a relayout
            self._notes_shown = notes
            self.query_one("#notes", Static).update(notes, layout=False)
        self.layer_i = max(1, min(self.layer_i, data.depth))
        q = self.query_one
        self.draw_plots([(q(f"#{pid}", SeriesPlot), make, view, ver) for pid, make, view in self.panel_jobs()])
        rate_limit = stop is None and data.live
        if self.has_class("-claims"):
            report = report_for(data, stop)
            if not q(ClaimsPanel).update_report(report, rate_limit=rate_limit):
                self._dirty = True
            return
        rows, first, last = factor_rows(data, stop)
        if not q(FactorTable).update_rows(rows, first, last, rate_limit=rate_limit):
            self._dirty = True

    def figure_for_view(self) -> FigureRequest | None:
        """The five panels and the factor table over the rows shown (the playhead's range)."""
        data, stop = self.data, self.stop_rows()
        steps = data.steps.column("step", stop)
        if not len(steps):
            return None
        last = int(steps[-1])
        panels = [make() for _, make, _ in self.panel_jobs()]
        panels.append(factor_panel(*factor_rows(data, stop)))
        kind = type(self).__name__.removesuffix("Screen").lower()
        title = f"{data.name} — {kind} at step {last} (x: {self.xaxis}, layer {self.layer_i})"

        return FigureRequest(Path(data.path) / FIGURES_DIR, f"{kind}-step{last}", PanelFigure(panels, title))

    # -- view actions --------------------------------------------------------------------------

    def action_toggle_x(self) -> None:
        self.xaxis = "t" if self.xaxis == "step" else "step"
        self.redraw_now()

    def action_toggle_log(self) -> None:
        self.ylog = not self.ylog
        self.redraw_now()

    def action_layer(self, delta: int) -> None:
        self.layer_i = (self.layer_i - 1 + delta) % max(self.data.depth, 1) + 1
        self.redraw_now()

    def action_toggle_eigs(self) -> None:
        self.extra_eigs = not self.extra_eigs
        if self.data.num_eigs <= 1:
            self.notify("this run records only λ1(H)")
        self.redraw_now()

    def action_toggle_claims(self) -> None:
        self.toggle_class("-claims")
        self.redraw_now()

    def action_metrics(self) -> None:
        from .metrics import MetricsScreen

        self.app.push_screen(MetricsScreen(self.data, self.stop_rows))

    def owned_live_runs(self) -> list[RunData]:
        return []


class MonitorScreen(MonitorBase):
    """A run this session is training: space pauses/resumes the engine, s stops it, and
    quitting asks first (then stops it: the run ends ``interrupted`` with its data kept)."""

    BINDINGS = [
        Binding("space", "toggle_pause", "pause/resume"),
        Binding("s", "stop_run", "stop"),
    ]

    def __init__(self, data: RunData, *, live: bool = True, **kwargs) -> None:
        super().__init__(data, **kwargs)
        self.live = live

    # -- engine control ------------------------------------------------------------------------

    def _control(self, command: str) -> None:
        try:
            send_control(self.data.path, command)
        except EosError as exc:
            self.notify(str(exc), severity="error", markup=False)
            return
        self.data.control = command
        self.redraw_now()

    def action_toggle_pause(self) -> None:
        if not self.data.live:
            self.notify(f"the run is {self.data.status}: nothing to pause")
            return
        if self.data.control == "pause":
            self._control("run")
            self.notify("resumed")
        else:
            self._control("pause")
            self.notify("paused: the engine waits (space resumes)")

    def action_stop_run(self) -> None:
        if not self.data.live:
            self.notify(f"the run is already {self.data.status}")
            return
        self._control("stop")
        self.notify("stop sent: the engine ends the run 'interrupted' and keeps its data")

    def owned_live_runs(self) -> list[RunData]:
        """Runs this screen would stop on quit (live runs owned by this session)."""
        return [self.data] if self.live and self.data.live else []
