"""Headless progress for ``--no-ui`` runs.

On a terminal: a rich live line (step, t, loss, λ1, threshold, steps/s). Otherwise (a pipe, a
log file, CI): one plain line at most every ``interval`` seconds, plus the first and last step.
"""

from __future__ import annotations

import math
import sys
import time
from typing import TextIO

from rich.console import Console
from rich.live import Live
from rich.text import Text


def _fmt(value: float | None, spec: str = ".4g") -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    return format(value, spec)


class HeadlessProgress:
    """Receives step rows from the trainer and shows them."""

    def __init__(self, label: str, max_steps: int, *, stream: TextIO | None = None, interval: float = 2.0,
                 force_plain: bool = False) -> None:
        self.label = label
        self.max_steps = max_steps
        self.stream = stream or sys.stdout
        self.interval = interval
        self.console = Console(file=self.stream)
        self.plain = force_plain or not self.console.is_terminal
        self.live: Live | None = None
        self.start = time.perf_counter()
        self.last_print = -math.inf
        self.last_lambda: float | None = None
        self.rows = 0
        self.last_row: dict | None = None

    def __enter__(self) -> "HeadlessProgress":
        if not self.plain:
            self.live = Live(Text(f"{self.label}: starting…"), console=self.console, refresh_per_second=4,
                             transient=False)
            self.live.__enter__()
        return self

    def __exit__(self, *exc) -> None:
        if self.live is not None:
            if self.last_row is not None:
                self.live.update(Text(self.line(self.last_row)))
            self.live.__exit__(*exc)
        elif self.last_row is not None and self.last_printed_step != self.last_row["step"]:
            print(self.line(self.last_row), file=self.stream, flush=True)

    last_printed_step: int | None = None

    def line(self, row: dict) -> str:
        elapsed = time.perf_counter() - self.start
        rate = self.rows / elapsed if elapsed > 0 else 0.0
        ratio = (self.last_lambda / row["threshold"]) if self.last_lambda and row.get("threshold") else None
        return (f"{self.label} step {row['step']:>6}/{self.max_steps}  t={_fmt(row['t'], '.4g')}  "
                f"loss={_fmt(row['loss'])}  λ1={_fmt(self.last_lambda)}  threshold={_fmt(row.get('threshold'))}"
                f"  λ1/thr={_fmt(ratio, '.3f')}  {rate:.1f} steps/s  {elapsed:.0f}s")

    def __call__(self, row: dict) -> None:
        self.rows += 1
        self.last_row = row
        lam = row.get("lambda_H")  # only on eigen steps: kept for the lines of the rows between
        if lam and lam[0] is not None and math.isfinite(lam[0]):
            self.last_lambda = lam[0]
        now = time.perf_counter()
        if self.live is not None:
            if now - self.last_print >= 0.25:
                self.live.update(Text(self.line(row)))
                self.last_print = now
        elif row["step"] == 0 or now - self.last_print >= self.interval:
            print(self.line(row), file=self.stream, flush=True)
            self.last_print = now
            self.last_printed_step = row["step"]
