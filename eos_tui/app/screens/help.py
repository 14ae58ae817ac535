"""HelpScreen (`?`): the keys of the screen underneath, and what the panels mean."""

from __future__ import annotations

from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import ModalScreen, Screen
from textual.widgets import Static

__all__ = ["HelpScreen", "screen_bindings"]

PANELS = """\
sharpness   λ1(H) (and the top-k eigenvalues with e) against the stability threshold 2/η (GD) or 2/τ
            (exponential Euler, which is stable above 2/τ: it integrates the top-k directions exactly)
loss        training loss (l: log/linear) with the target loss, accuracy on the right axis
layer i     E‖K_i‖², s_i = E‖J_i‖², alignment ratio r_i and product P^i ([ and ] choose the layer)
curvature   λ1(G) (Gauss–Newton), λ1(H−G), overlap ratio ρ = λ1(G)/E‖K‖²
step size   η (GD) or the step τ actually taken (exponential Euler) against gradient-flow time t
factors     E‖K_1‖² = a_L · Π s_j · P^1 · m_1 · κ_1, first non-transient snapshot → now
claims      (c, in place of factors) the paper's statements checked on this run: ✓ holds, ✗ does not,
            – cannot tell yet; `eos-tui claims RUN` prints them in full"""

METRICS_DOC = ("every number's definition, formula, cost and accuracy guarantee: docs/metrics.md "
               "in the eos-tui repository (names as in `eos-tui export`)")


def screen_bindings(screen: Screen) -> list[tuple[str, str]]:
    """(key, description) of the bindings declared by ``screen``'s classes and the app."""
    seen: dict[str, str] = {}
    own = [c for c in type(screen).__mro__ if c.__module__.startswith("eos_tui")]
    sources = [c.__dict__.get("BINDINGS", []) for c in own] + [type(screen.app).__dict__.get("BINDINGS", [])]
    for bindings in sources:
        for b in bindings:
            if isinstance(b, Binding) and b.description:
                key = b.key_display or b.key.replace("left_square_bracket", "[").replace(
                    "right_square_bracket", "]").replace("question_mark", "?")
                seen.setdefault(key, b.description)
    return list(seen.items())


class HelpScreen(ModalScreen):
    BINDINGS = [Binding("escape,question_mark,q", "dismiss", "close")]

    DEFAULT_CSS = """
    HelpScreen { align: center middle; }
    HelpScreen > VerticalScroll { width: 110; max-width: 95%; height: auto; max-height: 90%;
        border: thick $primary; background: $surface; padding: 0 1; }
    """

    def __init__(self, under: Screen) -> None:
        super().__init__()
        self.under = under

    def compose(self) -> ComposeResult:
        keys = Table.grid(padding=(0, 2))
        keys.add_column(style="bold cyan")
        keys.add_column()
        for key, desc in screen_bindings(self.under):
            keys.add_row(key, desc)
        with VerticalScroll():
            yield Static(Text(f"keys — {type(self.under).__name__}", style="bold"))
            yield Static(keys)
            yield Static(Text("\npanels", style="bold"))
            yield Static(Text(PANELS))
            yield Static(Text(f"\n{METRICS_DOC}", style="italic"))
            yield Static(Text("\nescape or ? closes this help", style="dim"))
