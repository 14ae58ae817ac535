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
GLOBAL_METRICS = [("lambda_G1", "λ1(G)"), ("lambda_HmG1", "λ1(H−G) max"), ("lambda_HmG_mag", "λ(H−G) max |·|"),
                  ("overlap_ratio", "overlap ρ"), ("EK2", "E‖K‖²"), ("a_L", "a_L")]
# the certificate of a value (its relative residual ‖Au − θu‖/|θ|, flagged when not converged)
CERTIFIED = {"lambda_G1": "lambda_G1", "lambda_HmG1": "lambda_HmG1", "lambda_HmG_mag": "lambda_HmG_mag",
             "overlap_ratio": "lambda_G1", "s": "s", "r": "s", "P": "s"}


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
        g.add_column("")
        for _, label in GLOBAL_METRICS:
            g.add_column(label)
        t = self.query_one("#layers", DataTable)
        t.add_column("layer")
        for _, label in LAYER_METRICS:
            t.add_column(label)
        t.add_column("s_i residual")
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
        kind = {1.0: "full", 0.0: "cheap: no λ(H−G)"}.get(float(s.get("snapshot_full", [np.nan])[-1]), "")
        title.update(Text(f"{self.data.name}: snapshot metrics at step {int(steps[-1])} (spec §2–4)"
                          + (f", {kind}" if kind else "") + "; ○ = not converged to its tolerance"))

        def last(name: str) -> float:
            col = s.get(name)
            return float(col[-1]) if col is not None else np.nan

        def val(name: str, cert: str | None) -> Text | str:
            if name not in s:
                return "—"
            text = fmt_num(last(name))
            if cert is not None and last(f"{cert}_converged") == 0:
                return Text(f"○ {text}", style="dim")
            return text

        def resid(cert: str | None) -> str:
            if cert is None or f"{cert}_resid" not in s:
                return ""
            r = last(f"{cert}_resid")
            return "exact" if r == 0 else fmt_num(r, 2)

        g.add_row("value", *(val(name, CERTIFIED.get(name)) for name, _ in GLOBAL_METRICS))
        g.add_row("residual", *(resid(CERTIFIED.get(name)) for name, _ in GLOBAL_METRICS))
        for i in range(1, self.data.depth + 1):
            cells = [val(f"{name}_{i}", f"s_{i}" if name in CERTIFIED else None) for name, _ in LAYER_METRICS]
            t.add_row(str(i), *cells, resid(f"s_{i}") if i < self.data.depth else "", key=str(i))
