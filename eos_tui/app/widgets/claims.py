"""The claims panel: the paper's statements checked on the run shown (engine.analysis.claims).

Toggled with ``c`` in the monitor and the replay, in the place of the factors table. One row per
claim: a short name, the run's value, and ✓ (holds) / ✗ (does not hold) / – (cannot tell yet).
``eos-tui claims RUN`` prints the same report with the full statements.
"""

from __future__ import annotations

import time

from rich.text import Text
from textual.widgets import DataTable

from engine.analysis.claims import ClaimsReport, claims_for_view

from ..series import RunData

__all__ = ["ClaimsPanel", "report_for"]

MARKS = {True: Text("✓", style="bold green"), False: Text("✗", style="bold red"), None: Text("–", style="dim")}


def report_for(data: RunData, stop: int | None) -> ClaimsReport:
    """The claims of the rows shown (``stop``: the replay's playhead; ``None`` = all)."""
    return claims_for_view(data.view(stop))


class ClaimsPanel(DataTable):
    """The claims report as a compact table (updated at most once a second while a run streams)."""

    DEFAULT_CSS = """
    ClaimsPanel { height: 1fr; }
    """

    can_focus = False  # never steal the screen's keys
    MIN_INTERVAL = 1.0

    def __init__(self, **kwargs) -> None:
        super().__init__(cursor_type="none", zebra_stripes=True, **kwargs)
        self._shown: tuple | None = None
        self._last_update = 0.0

    def on_mount(self) -> None:
        self.border_title = "claims of the paper (c)"
        self.add_column("claim", key="claim", width=24)
        self.add_column("this run", key="value", width=13)
        self.add_column("", key="mark", width=1)

    def update_report(self, report: ClaimsReport, *, rate_limit: bool = False) -> bool:
        """Show ``report``; returns False if the update was deferred by the rate limit."""
        key = tuple((c.key, c.brief, c.holds) for c in report.claims) + (report.reference_step, report.peak_step)
        if key == self._shown:
            return True
        now = time.monotonic()
        if rate_limit and now - self._last_update < self.MIN_INTERVAL:
            return False
        self._last_update, self._shown = now, key
        held, judged = report.held()
        self.border_subtitle = ("no snapshot after the transient yet" if report.reference_step is None
                                else f"{held}/{judged} hold · step {report.reference_step}"
                                + (f" → {report.peak_step}" if report.peak_step is not None else ""))
        if [k.value for k in self.rows] != [c.key for c in report.claims]:
            self.clear()
            for c in report.claims:
                self.add_row(c.label, c.brief, MARKS[c.holds], key=c.key)
            return True
        for c in report.claims:  # same rows: update in place (no relayout)
            self.update_cell(c.key, "value", c.brief)
            self.update_cell(c.key, "mark", MARKS[c.holds])
        return True
