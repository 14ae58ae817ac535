"""The run status bar: identity of the run and its progress (all derived from stored data)."""

from __future__ import annotations

import math

from rich.text import Text
from textual.widgets import Static

from ..estimates import eta_seconds, eta_steps_to_target, fmt_duration, fmt_num, steps_per_second
from ..series import RunData

__all__ = ["RunHeader", "status_style", "progress_fields"]

_STATUS_STYLE = {
    "starting": "bold blue",
    "running": "bold green",
    "paused": "bold yellow",
    "finished": "bold cyan",
    "diverged": "bold red",
    "interrupted": "bold yellow",
    "failed": "bold red",
    "crashed": "bold red",
}

EE_NOTE = "exponential Euler is stable above 2/τ: it integrates the top-k directions exactly"


def status_style(status: str) -> str:
    return _STATUS_STYLE.get(status, "bold")


def progress_fields(data: RunData, stop: int | None = None) -> dict[str, str]:
    """Step, t, steps/s, elapsed, ETA and HVP count of ``data`` up to row ``stop``."""
    v = data.steps.view(stop)
    n = len(v.get("step", ()))
    if n == 0:
        return {"step": "—", "t": "—", "steps/s": "—", "elapsed": "—", "ETA": "—", "HVPs": "—"}
    step, wall = v["step"], v.get("wall_s")
    rate = steps_per_second(step, wall) if wall is not None else float("nan")
    elapsed = float(wall[-1]) if wall is not None else float("nan")
    left = eta_steps_to_target(step, v.get("loss", step * math.nan), data.target_loss())
    if left == 0:
        eta = "reached"
    elif not data.live:
        eta = "—"  # a finished (or replayed) run: no estimate
    else:
        eta = fmt_duration(eta_seconds(left, rate))
    hvps = v.get("hvp_count")
    return {
        "step": f"{int(step[-1])}",
        "t": fmt_num(v["t"][-1]) if "t" in v else "—",
        "steps/s": fmt_num(rate, 3),
        "elapsed": fmt_duration(elapsed),
        "ETA": eta,
        "HVPs": f"{int(hvps[-1])}" if hvps is not None and math.isfinite(hvps[-1]) else "—",
    }


class RunHeader(Static):
    """Two lines: who the run is, and where it is."""

    DEFAULT_CSS = """
    RunHeader { height: 2; background: $boost; padding: 0 1; }
    """

    def update_from(self, data: RunData, stop: int | None = None, extra: str = "") -> None:
        meta = data.meta
        line1 = Text.assemble(
            (data.name, "bold"),
            "  preset ", (str(meta.get("preset", "—")), "bold"),
            "  solver ", (str(meta.get("solver", "—")), "bold"),
            "  η ", (fmt_num(meta.get("lr")), "bold"),
            "  device ", (str(meta.get("device", "—")), "bold"),
            "  status ", (data.display_status, status_style(data.display_status.split("/")[0])),
        )
        if data.status_message:
            line1.append(f"  {data.status_message}", "dim")
        fields = progress_fields(data, stop)
        line2 = Text()
        for k, val in fields.items():
            line2.append(f"{k} ", "dim")
            line2.append(f"{val}  ", "bold")
        if extra:
            line2.append(extra, "italic")
        text = Text("\n").join([line1, line2])
        text.no_wrap = True
        text.overflow = "ellipsis"
        if text != getattr(self, "_shown", None):  # fixed height: repaint without a relayout
            self._shown = text
            self.update(text, layout=False)
