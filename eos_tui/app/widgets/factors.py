"""Table of the five factors of E‖K_1‖² and their growth since the first non-transient snapshot."""

from __future__ import annotations

import time

from rich.text import Text
from textual.widgets import DataTable

from engine.figures.panel import Panel

from ..estimates import fmt_num
from ..figures import FactorRow

__all__ = ["FactorTable", "factor_panel", "COLUMNS", "TITLE"]

TITLE = "factors of E‖K₁‖²"
COLUMNS = ("factor", "first", "now", "growth ×")


def factor_panel(rows: list[FactorRow], first_step: int | None, last_step: int | None) -> Panel:
    """The table as a panel (for the figure the ``p`` key saves): the same rows and numbers."""
    subtitle = "no snapshot yet" if first_step is None else f"step {first_step} → {last_step}"
    return Panel(title=f"{TITLE} ({subtitle})", columns=list(COLUMNS),
                 rows=[[r.name, fmt_num(r.first), fmt_num(r.now), fmt_num(r.growth, 3)] for r in rows],
                 message="no snapshot yet")


class FactorTable(DataTable):
    """``E‖K_1‖² = a_L · Π s_j · P^1 · m_1 · κ_1`` (spec §4): value at first and last snapshot."""

    DEFAULT_CSS = """
    FactorTable { height: 1fr; }
    """

    can_focus = False  # never steal the screen's keys (arrows, home/end)

    def __init__(self, **kwargs) -> None:
        super().__init__(cursor_type="none", zebra_stripes=True, **kwargs)
        self._shown: tuple | None = None
        self._last_update = 0.0

    def on_mount(self) -> None:
        self.border_title = TITLE
        for label, key, width in zip(COLUMNS, ("factor", "first", "now", "growth"), (9, 10, 10, 9)):
            self.add_column(label, key=key, width=width)

    MIN_INTERVAL = 1.0  # seconds between updates while a live run streams in (a DataTable repaint is costly)

    def update_rows(self, rows: list[FactorRow], first_step: int | None, last_step: int | None,
                    *, rate_limit: bool = False) -> bool:
        """Show ``rows``; returns False if the update was deferred by the rate limit."""
        key = tuple((r.name, r.first, r.now) for r in rows) + (first_step, last_step)
        if key == self._shown:
            return True
        now = time.monotonic()
        if rate_limit and now - self._last_update < self.MIN_INTERVAL:
            return False
        self._last_update = now
        self._shown = key
        subtitle = "no snapshot yet" if first_step is None else f"step {first_step} → {last_step}"
        if self.border_subtitle != subtitle:
            self.border_subtitle = subtitle
        names = [r.name for r in rows]
        if [k.value for k in self.rows] != names:
            self.clear()
            for r in rows:
                self.add_row(*self._cells(r), key=r.name)
            return True
        for r in rows:  # same rows: update the cells in place (no relayout)
            for col, value in zip(("first", "now", "growth"), self._cells(r)[1:]):
                self.update_cell(r.name, col, value)
        return True

    @staticmethod
    def _cells(r: FactorRow) -> tuple:
        g = r.growth
        style = "bold red" if g == g and (g > 10 or g < 0.1) else ""
        return r.name, fmt_num(r.first), fmt_num(r.now), Text(fmt_num(g, 3), style=style)
