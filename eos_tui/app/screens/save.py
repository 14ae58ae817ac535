"""The ``p`` key: save what a screen shows as a figure — PNG and SVG, with its data as CSV — without
stalling the UI.

A screen that derives from :class:`SavesFigure` (every :class:`~eos_tui.app.screens.base.RunScreen`
does) gets the key and says what to save by implementing **one method**,
:meth:`SavesFigure.figure_for_view`, which returns a :class:`FigureRequest`: the folder (a run's
``figures/``), a file stem, and a function that builds the matplotlib figure. The method runs on
the UI thread and must be cheap: it captures the current view (the panels' series are read-only
views of the data, the playhead's range, the axes the user chose). The key returns at once; a
worker thread hands the build function to a separate render process (:class:`RenderProcess`:
one, started on the first press and kept), which builds the figure and writes the files.
Rendering a figure takes a second or more of pure-Python and C work that would otherwise compete with the UI thread
for the interpreter lock; in its own process it cannot stall a key. The build function must
therefore be picklable — a module-level function or a ``functools.partial`` of one with its data:
monitor, replay and compare return ``engine.figures.panel.PanelFigure(panels, title)``;
a sweep screen would return, e.g., ``partial(engine.figures.powerlaw.powerlaw, views)``. If the
render process cannot be used (a build that does not pickle, a process that died), the figure is
rendered in the worker thread instead.
"""

from __future__ import annotations

import atexit
import os
import pickle
import subprocess
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from textual.binding import Binding
from textual.screen import Screen

if TYPE_CHECKING:
    from matplotlib.figure import Figure

__all__ = ["FigureRequest", "SavesFigure", "FIGURES_DIR", "RenderProcess", "RENDERER", "render"]

FIGURES_DIR = "figures"  # inside a run directory
_SAVE_LOCK = threading.Lock()  # one figure at a time (a second press waits for the first)


@dataclass
class FigureRequest:
    """What ``p`` saves: ``build()`` (picklable; run in the render process) →
    ``FOLDER/STEM.png`` + ``.svg`` + ``.csv``."""

    folder: Path
    stem: str
    build: Callable[[], "Figure"]
    formats: tuple[str, ...] = ("png", "svg")


class RenderProcessError(RuntimeError):
    """The render process could not be started or reached, or it died."""


class RenderProcess:
    """One ``python -m engine.figures.worker`` process, started on first use and kept: requests
    and answers are pickles over its stdin and stdout (see :mod:`engine.figures.worker`).

    Not ``multiprocessing``: under Textual ``sys.stderr`` is redirected, so multiprocessing's
    resource tracker cannot start, and a spawned child would re-import the caller's main script.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._proc: subprocess.Popen | None = None

    def _start(self) -> subprocess.Popen:
        import engine

        root = str(Path(engine.__file__).resolve().parent.parent)
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(p for p in (root, env.get("PYTHONPATH", "")) if p)
        return subprocess.Popen([sys.executable, "-m", "engine.figures.worker"], stdin=subprocess.PIPE,
                                stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=env,
                                start_new_session=True)

    def render(self, build: Callable[[], "Figure"], path: Path, also: tuple[str, ...]) -> list[Path]:
        """Render in the process (:class:`RenderProcessError` if it cannot be reached or died);
        the build's own exceptions are raised here as they were raised there."""
        with self._lock:
            if self._proc is None or self._proc.poll() is not None:
                try:
                    self._proc = self._start()
                except OSError as exc:
                    raise RenderProcessError(f"cannot start the render process: {exc}") from None
            proc = self._proc
            try:
                pickle.dump((build, Path(path), tuple(also)), proc.stdin)
                proc.stdin.flush()
                status, value = pickle.load(proc.stdout)
            except (OSError, EOFError, pickle.UnpicklingError) as exc:
                self._proc = None
                proc.kill()
                raise RenderProcessError(f"the render process stopped: {exc}") from None
        if status == "error":
            raise value
        return value

    def close(self) -> None:
        with self._lock:
            proc, self._proc = self._proc, None
        if proc is not None and proc.poll() is None:
            proc.stdin.close()  # the worker ends at the end of its input
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                proc.kill()


RENDERER = RenderProcess()
atexit.register(RENDERER.close)


def render_files(build: Callable[[], "Figure"], path: Path, also: tuple[str, ...]) -> list[Path]:
    """Build the figure and write it here (``path`` and the ``also`` formats, plus its CSV)."""
    from engine.figures.output import save_figure

    return save_figure(build(), path, also=also)


def render(request: FigureRequest, path: Path) -> list[Path]:
    """Write the requested figure from the render process; in this thread if the build does not
    pickle or the process cannot be used."""
    try:
        pickle.dumps(request.build)
    except Exception:  # noqa: BLE001 - e.g. a lambda: render here
        return render_files(request.build, path, request.formats[1:])
    try:
        return RENDERER.render(request.build, path, request.formats[1:])
    except RenderProcessError:
        return render_files(request.build, path, request.formats[1:])


def unique_stem(folder: Path, stem: str, formats: tuple[str, ...]) -> str:
    """``stem``, or ``stem-2``, ``stem-3`` ... so that a press never overwrites an earlier one."""
    candidate, n = stem, 1
    while any((folder / f"{candidate}.{f}").exists() for f in (*formats, "csv")):
        n += 1
        candidate = f"{stem}-{n}"
    return candidate


class SavesFigure(Screen):
    """Mix-in screen: ``p`` saves :meth:`figure_for_view` off the UI thread and says where."""

    BINDINGS = [Binding("p", "save_figure", "save figure")]

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.saved_figures: list[list[Path]] = []  # files of each finished save (tests, bench)
        self.saving = 0  # saves in flight

    def figure_for_view(self) -> FigureRequest | None:
        """The figure of what is on screen now (``None``: nothing to save yet). Override this."""
        return None

    def action_save_figure(self) -> None:
        request = self.figure_for_view()
        if request is None:
            self.notify("nothing to save yet")
            return
        self.saving += 1
        self.run_worker(lambda: self._save_figure(request), thread=True, group="save-figure",
                        exit_on_error=False)

    def _save_figure(self, request: FigureRequest) -> None:
        from engine.errors import EosError

        files: list[Path] = []
        try:
            with _SAVE_LOCK:
                folder = Path(request.folder)
                folder.mkdir(parents=True, exist_ok=True)
                stem = unique_stem(folder, request.stem, request.formats)
                files = render(request, folder / f"{stem}.{request.formats[0]}")
        except OSError as exc:
            message, severity = f"cannot save the figure in {request.folder}: {exc.strerror or exc}", "error"
        except EosError as exc:
            message, severity = f"cannot save the figure: {exc}", "error"
        except Exception as exc:  # noqa: BLE001 - a failed save must not take the app down
            message, severity = f"cannot save the figure: {type(exc).__name__}: {exc}", "error"
        else:
            names = ", ".join(p.name for p in files)
            message, severity = f"saved {names} in {files[0].parent}", "information"
        try:
            self.app.call_from_thread(self._figure_saved, files, message, severity)
        except RuntimeError:  # the app is closing
            pass

    def _figure_saved(self, files: list[Path], message: str, severity: str) -> None:
        self.saving -= 1
        if files:
            self.saved_figures.append(files)
        self.notify(message, title="figure", severity=severity, timeout=8)
