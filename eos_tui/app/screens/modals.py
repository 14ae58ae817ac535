"""Small modal screens: quit confirmation, go-to-step input, terminal-too-small notice."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen, Screen
from textual.widgets import Button, Input, Label, Static

__all__ = ["ConfirmQuit", "GotoStep", "TooSmall"]


class ConfirmQuit(ModalScreen[bool]):
    """Ask before quitting while runs of this session are still training."""

    BINDINGS = [
        Binding("y,enter", "answer(True)", "yes, stop and quit"),
        Binding("n,escape", "answer(False)", "no"),
    ]

    DEFAULT_CSS = """
    ConfirmQuit { align: center middle; }
    ConfirmQuit > Vertical { width: 64; height: auto; border: thick $warning; background: $surface; padding: 1 2; }
    ConfirmQuit Horizontal { height: auto; align-horizontal: center; margin-top: 1; }
    ConfirmQuit Button { margin: 0 1; }
    """

    def __init__(self, names: list[str]) -> None:
        super().__init__()
        self.names = names

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Label(f"Training is still running: {', '.join(self.names)}")
            yield Label("Quit and stop it? The run ends 'interrupted' and keeps all its data.")
            with Horizontal():
                yield Button("Stop and quit (y)", variant="warning", id="yes")
                yield Button("Keep watching (n)", id="no")

    def on_button_pressed(self, event: Button.Pressed) -> None:
        self.dismiss(event.button.id == "yes")

    def action_answer(self, answer: bool) -> None:
        self.dismiss(answer)


class GotoStep(ModalScreen[int | None]):
    """Ask for a step to jump to."""

    BINDINGS = [Binding("escape", "cancel", "cancel")]

    DEFAULT_CSS = """
    GotoStep { align: center middle; }
    GotoStep > Vertical { width: 48; height: auto; border: thick $primary; background: $surface; padding: 1 2; }
    """

    def __init__(self, first: int, last: int) -> None:
        super().__init__()
        self.first, self.last = first, last

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Label(f"jump to step ({self.first}…{self.last}):")
            yield Input(placeholder="step", type="integer", id="step")

    def on_input_submitted(self, event: Input.Submitted) -> None:
        try:
            self.dismiss(int(event.value))
        except ValueError:
            self.notify("type a whole number", severity="warning")

    def action_cancel(self) -> None:
        self.dismiss(None)


class TooSmall(Screen):
    """Shown instead of a broken layout while the terminal is smaller than the app needs."""

    BINDINGS = [Binding("q,ctrl+c", "app.request_quit", "quit")]

    DEFAULT_CSS = """
    TooSmall { align: center middle; }
    TooSmall Static { width: auto; height: auto; color: $warning; text-style: bold; }
    """

    def __init__(self, need: tuple[int, int]) -> None:
        super().__init__()
        self.need = need

    def compose(self) -> ComposeResult:
        yield Static(id="msg")

    def on_mount(self) -> None:
        self.update_size()

    def on_resize(self, event) -> None:
        self.update_size(event.size)

    def update_size(self, have=None) -> None:
        w, h = self.need
        have = have or self.app.size
        self.query_one("#msg", Static).update(
            f"terminal too small: need at least {w}x{h} (now {have.width}x{have.height})\n"
            "enlarge the window, or press q to quit"
        )
