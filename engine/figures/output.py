"""Writing a figure: the image (PNG, SVG or PDF, chosen by the file's extension) and, beside it,
``FILE.csv`` with exactly the plotted series, so the figure can be redrawn in any tool.

The CSV is long (tidy) format, one row per plotted point::

    panel,series,run,solver,D,x_name,x,y,converged

``panel`` names the axes (the store column a time-series panel shows, or a screen panel's title),
``series`` the store column drawn (``lambda_H_1``, ``threshold``, ``P_1`` ...; derived ones are
``prod_s``, ``fit``, ``paper ...``, ``max_P1``, and ``NAME (smoothed N)`` next to the raw
``NAME`` under ``--smooth``), ``run`` the run's name, ``D`` its dataset size, ``x_name`` ``step``,
``t`` or ``D``, and ``converged`` the eigenvalue's flag where the run records one. Every finite
point is there, also where the drawn line of a long series is its min/max envelope. Table cells
of a screen (``p`` key) are rows with ``x_name = column``: ``x`` the column header, ``y`` the cell.
"""

from __future__ import annotations

import csv
import os
from pathlib import Path

from matplotlib.figure import Figure

from .style import FigureError, plotted

__all__ = ["FORMATS", "CSV_COLUMNS", "image_format", "prepare_dir", "save_figure", "write_csv"]

FORMATS = ("png", "svg", "pdf")
CSV_COLUMNS = ("panel", "series", "run", "solver", "D", "x_name", "x", "y", "converged")


def image_format(path: Path | str) -> str:
    """``png``, ``svg`` or ``pdf`` from the file name; anything else is a :class:`FigureError`."""
    suffix = Path(path).suffix.lower().lstrip(".")
    if suffix not in FORMATS:
        got = f"'.{suffix}'" if suffix else "no extension"
        raise FigureError(f"cannot write a figure to {path}: {got}; name the file .png, .svg or .pdf")
    return suffix


def prepare_dir(folder: Path | str) -> Path:
    """Create ``folder`` (and its parents) and check that files can be written into it."""
    folder = Path(folder).expanduser()
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise FigureError(f"cannot create the folder {folder}: {exc.strerror or exc}") from None
    if not folder.is_dir():
        raise FigureError(f"{folder} is not a folder")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise FigureError(f"cannot write into {folder}: permission denied")
    return folder


def write_csv(fig: Figure, path: Path | str) -> Path:
    """The plotted series of ``fig`` as CSV (see the module docstring)."""
    path = Path(path)
    try:
        with open(path, "w", newline="", encoding="utf-8") as fh:
            out = csv.writer(fh)
            out.writerow(CSV_COLUMNS)
            for s in plotted(fig):
                head = [s.panel, s.series, s.run, s.solver, "" if s.D is None else s.D, s.xname]
                conv = [""] * len(s.x) if s.converged is None else [int(c) for c in s.converged]
                out.writerows(head + [_cell(x), _cell(y), c] for x, y, c in zip(s.x, s.y, conv))
    except OSError as exc:
        raise FigureError(f"cannot write {path}: {exc.strerror or exc}") from None
    return path


def _cell(v):
    return repr(float(v)) if isinstance(v, float) else v


def save_figure(fig: Figure, path: Path | str, *, also: tuple[str, ...] = ()) -> list[Path]:
    """Write ``fig`` to ``path`` (format from its extension), in the ``also`` formats beside it
    (same name, other extension) and its data as ``.csv``; returns the files written."""
    path = Path(path).expanduser()
    formats = [image_format(path)] + [f for f in also if f != image_format(path)]
    for f in formats:
        image_format(f"x.{f}")
    prepare_dir(path.parent)
    written = []
    for f in formats:
        target = path.with_suffix(f".{f}")
        try:
            fig.savefig(target, format=f, metadata=_metadata(f))
        except OSError as exc:
            raise FigureError(f"cannot write {target}: {exc.strerror or exc}") from None
        written.append(target)
    written.append(write_csv(fig, path.with_suffix(".csv")))
    return written


def _metadata(fmt: str) -> dict:
    """No creation date in SVG/PDF files: the same data gives the same file."""
    return {"Date": None} if fmt in ("svg", "pdf") else {}
