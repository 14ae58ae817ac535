"""RunsScreen: the run browser — sortable, filterable table; Enter replays, two marks compare."""

from __future__ import annotations

from pathlib import Path

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.widgets import DataTable, Footer, Input, Static

from engine.errors import EosError
from engine.store import RunSummary, list_runs

from ..estimates import fmt_num
from ..series import RunData
from ..widgets.header import status_style
from .base import SizedScreen

__all__ = ["RunsScreen", "COLUMNS"]

# (key, label, attribute or callable)
COLUMNS = [
    ("mark", "✓", None),
    ("name", "run", "name"),
    ("status", "status", "status"),
    ("preset", "preset", "preset"),
    ("solver", "solver", "solver"),
    ("steps", "steps", "steps"),
    ("t", "t", "t"),
    ("final_loss", "final loss", "final_loss"),
    ("max_lambda", "max λ1", "max_lambda"),
    ("max_P1", "max P^1", "max_P1"),
    ("started", "started", "started"),
]
SORTABLE = [c[0] for c in COLUMNS if c[2]]
UNOPENABLE = ("corrupt", "starting")  # no store to read yet / an unreadable one


def display_path(path: Path) -> str:
    """``path`` relative to the working directory when inside it, else with ``~`` for home."""
    path = Path(path).resolve()
    try:
        rel = path.relative_to(Path.cwd().resolve())
        return str(rel) if str(rel) != "." else "."
    except ValueError:
        pass
    try:
        return "~/" + str(path.relative_to(Path.home().resolve()))
    except ValueError:
        return str(path)


def _sort_value(summary: RunSummary, key: str):
    v = getattr(summary, key)
    if v is None:
        return (1, 0)
    return (0, v if not isinstance(v, str) else v.lower())


class RunsScreen(SizedScreen):
    MIN_SIZE = (80, 12)
    BINDINGS = [
        Binding("enter", "open", "replay", show=True),
        Binding("c", "mark", "mark (2 → compare)"),
        Binding("o", "sort_next", "sort by"),
        Binding("r", "sort_reverse", "reverse"),
        Binding("slash", "focus_filter", "filter", key_display="/"),
        Binding("R", "reload", "reload", key_display="R"),
        Binding("escape", "focus_table", "table", show=False),
    ]

    DEFAULT_CSS = """
    RunsScreen #title { height: 1; padding: 0 1; background: $boost; }
    RunsScreen Input { height: 3; }
    RunsScreen DataTable { height: 1fr; }
    """

    def __init__(self, root: Path) -> None:
        super().__init__()
        self.root = Path(root)
        self.summaries: list[RunSummary] = []
        self.sort_key = "started"
        self.sort_desc = True
        self.marked: list[Path] = []
        self.filter_text = ""

    def compose(self) -> ComposeResult:
        yield Static(id="title")
        yield Input(placeholder="filter: text in name, status, preset or solver (/ to focus, esc back)",
                    id="filter")
        yield DataTable(id="runs", cursor_type="row", zebra_stripes=True)
        yield Footer()

    def on_mount(self) -> None:
        table = self.query_one("#runs", DataTable)
        for key, label, _ in COLUMNS:
            table.add_column(label, key=key)
        table.focus()
        self.action_reload()
        self.set_interval(5.0, self.action_reload)

    # -- loading (off the UI thread) -----------------------------------------------------------

    @work(thread=True, exclusive=True, group="list-runs")
    def action_reload(self) -> None:
        try:
            summaries = list_runs(self.root)
        except EosError as exc:
            self.app.call_from_thread(self.notify, str(exc), severity="error", markup=False)
            return
        self.app.call_from_thread(self._loaded, summaries)

    def _loaded(self, summaries: list[RunSummary]) -> None:
        self.summaries = summaries
        self.populate()

    # -- table -------------------------------------------------------------------------------

    def visible(self) -> list[RunSummary]:
        text = self.filter_text.lower().strip()
        rows = [s for s in self.summaries
                if not text or any(text in str(v or "").lower() for v in (s.name, s.status, s.preset, s.solver))]
        return sorted(rows, key=lambda s: _sort_value(s, self.sort_key), reverse=self.sort_desc)

    def populate(self) -> None:
        table = self.query_one("#runs", DataTable)
        current = None
        if table.row_count and table.cursor_row is not None and table.cursor_row < table.row_count:
            current = table.coordinate_to_cell_key((table.cursor_row, 0)).row_key.value
        table.clear()
        for s in self.visible():
            mark = "✓" if s.path in self.marked else ""
            table.add_row(
                Text(mark, style="bold green"), s.name, Text(s.status, style=status_style(s.status)),
                s.preset or "—", s.solver or "—", str(s.steps), fmt_num(s.t), fmt_num(s.final_loss),
                fmt_num(s.max_lambda), fmt_num(s.max_P1), (s.started or "—")[:19].replace("T", " "),
                key=str(s.path),
            )
        if current is not None:
            try:
                table.move_cursor(row=table.get_row_index(current), animate=False)
            except Exception:
                pass
        arrow = "↓" if self.sort_desc else "↑"
        self.query_one("#title", Static).update(Text(  # a plain Text: [ ] in paths stay as they are
            f"runs in {display_path(self.root)}  ({len(table.rows)}/{len(self.summaries)} shown, sorted by "
            f"{self.sort_key} {arrow}, {len(self.marked)} marked)"))

    def selected(self) -> RunSummary | None:
        table = self.query_one("#runs", DataTable)
        if not table.row_count:
            return None
        key = table.coordinate_to_cell_key((table.cursor_row, 0)).row_key.value
        return next((s for s in self.summaries if str(s.path) == key), None)

    @on(Input.Changed, "#filter")
    def _filter(self, event: Input.Changed) -> None:
        self.filter_text = event.value
        self.populate()

    @on(Input.Submitted, "#filter")
    def _filter_done(self) -> None:
        self.query_one("#runs", DataTable).focus()

    @on(DataTable.HeaderSelected)
    def _header(self, event: DataTable.HeaderSelected) -> None:
        key = event.column_key.value
        if key not in SORTABLE:
            return
        if key == self.sort_key:
            self.sort_desc = not self.sort_desc
        else:
            self.sort_key, self.sort_desc = key, key != "name"
        self.populate()

    @on(DataTable.RowSelected, "#runs")
    def _row_selected(self) -> None:
        self.action_open()

    # -- actions -------------------------------------------------------------------------------

    def action_sort_next(self) -> None:
        i = SORTABLE.index(self.sort_key) if self.sort_key in SORTABLE else -1
        self.sort_key = SORTABLE[(i + 1) % len(SORTABLE)]
        self.populate()
        self.notify(f"sorted by {self.sort_key}")

    def action_sort_reverse(self) -> None:
        self.sort_desc = not self.sort_desc
        self.populate()

    def action_focus_filter(self) -> None:
        self.query_one("#filter", Input).focus()

    def action_focus_table(self) -> None:
        self.query_one("#runs", DataTable).focus()

    def action_open(self) -> None:
        s = self.selected()
        if s is None:
            return
        if s.status in UNOPENABLE:
            self.notify(f"{s.name}: {s.message}", title="cannot open run", severity="error", markup=False)
            return
        from .replay import ReplayScreen

        self.app.push_screen(ReplayScreen(RunData(key=str(s.path), path=s.path), follow=s.status == "running"))

    def action_mark(self) -> None:
        s = self.selected()
        if s is None:
            return
        if s.path in self.marked:
            self.marked.remove(s.path)
        elif s.status in UNOPENABLE:
            self.notify(f"{s.name}: {s.message}", severity="error", markup=False)
            return
        else:
            self.marked.append(s.path)
        self.populate()
        if len(self.marked) == 2:
            from .compare import CompareScreen

            a, b = self.marked
            self.marked = []
            self.populate()
            self.app.push_screen(CompareScreen(RunData(key="a", path=a), RunData(key="b", path=b)))
