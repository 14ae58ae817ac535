"""MetricsScreen: every snapshot metric of the run at the latest shown snapshot, per layer."""

from __future__ import annotations

from typing import Callable

import numpy as np
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.widgets import DataTable, Footer, Static

from ..estimates import fmt_num
from ..series import RunData
from .base import SizedScreen

__all__ = ["MetricsScreen"]

LAYER_METRICS = [("EK2_layer", "E‖K_i‖²"), ("a", "a_i"), ("s", "s_i"), ("r", "r_i"), ("P", "P^i"),
                 ("m", "m_i"), ("kappa", "κ_i")]
GLOBAL_METRICS = [("lambda_G1", "λ1(G)"), ("lambda_HmG1", "λ1(H−G)"), ("overlap_ratio", "overlap ρ"),
                  ("EK2", "E‖K‖²"), ("a_L", "a_L")]


class MetricsScreen(SizedScreen):
    MIN_SIZE = (80, 16)
    BINDINGS = [Binding("escape,m", "app.pop_screen", "back")]

    DEFAULT_CSS = """
    MetricsScreen #title { height: 1; padding: 0 1; background: $boost; }
    MetricsScreen DataTable { height: auto; max-height: 1fr; margin: 1 1 0 1; }
    """

    def __init__(self, data: RunData, stop: Callable[[], int | None]) -> None:
        super().__init__()
        self.data = data
        self.stop = stop
        self._shown = None

    def compose(self) -> ComposeResult:
        yield Static(id="title")
        yield DataTable(id="global", cursor_type="none", zebra_stripes=True)
        yield DataTable(id="layers", cursor_type="row", zebra_stripes=True)
        yield Footer()

    def on_mount(self) -> None:
        g = self.query_one("#global", DataTable)
        for _, label in GLOBAL_METRICS:
            g.add_column(label)
        t = self.query_one("#layers", DataTable)
        t.add_column("layer")
        for _, label in LAYER_METRICS:
            t.add_column(label)
        self.refresh_table()
        self.set_interval(0.5, self.refresh_table)

    def refresh_table(self) -> None:
        stop = self.stop()
        key = (self.data.version if stop is None else stop, len(self.data.snaps))
        if key == self._shown:
            return
        self._shown = key
        s = self.data.view(stop).snaps
        steps = s.get("step", np.empty(0))
        title = self.query_one("#title", Static)
        g = self.query_one("#global", DataTable)
        t = self.query_one("#layers", DataTable)
        g.clear()
        t.clear()
        if len(steps) == 0:
            title.update(Text(f"{self.data.name}: no snapshot yet"))
            return
        title.update(Text(f"{self.data.name}: snapshot metrics at step {int(steps[-1])} (spec §2–4)"))

        def val(name: str) -> str:
            col = s.get(name)
            return fmt_num(col[-1]) if col is not None else "—"

        g.add_row(*(val(name) for name, _ in GLOBAL_METRICS))
        for i in range(1, self.data.depth + 1):
            t.add_row(str(i), *(val(f"{name}_{i}") for name, _ in LAYER_METRICS), key=str(i))
