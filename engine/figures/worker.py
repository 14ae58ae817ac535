"""A figure-rendering process: ``python -m engine.figures.worker``.

Reads pickled requests ``(build, path, also)`` from stdin, one after another; for each calls
``build()`` (a picklable callable returning a matplotlib Figure, e.g.
:class:`engine.figures.panel.PanelFigure`), writes it with :func:`engine.figures.output.save_figure`
and answers on stdout with a pickled ``("ok", [files])`` or ``("error", exception)``. Ends at the
end of its input. Whatever a library prints goes to /dev/null, never into the answers.

The terminal UI keeps one such process for its ``p`` key (``eos_tui.app.screens.save``): a figure
rendered there cannot take the interpreter lock from the UI thread.
"""

from __future__ import annotations

import os
import pickle
import sys
import warnings

__all__ = ["serve"]


def serve(requests, answers) -> None:
    """Answer pickled requests from the binary stream ``requests`` on ``answers`` until EOF."""
    from engine.figures.output import save_figure

    while True:
        try:
            build, path, also = pickle.load(requests)
        except EOFError:
            return
        try:
            answer = ("ok", save_figure(build(), path, also=tuple(also)))
        except Exception as exc:  # noqa: BLE001 - every failure goes back to the caller
            answer = ("error", exc)
        try:
            data = pickle.dumps(answer)
        except Exception:  # noqa: BLE001 - an exception that does not pickle
            data = pickle.dumps(("error", RuntimeError(f"{type(answer[1]).__name__}: {answer[1]}")))
        answers.write(data)
        answers.flush()


def main() -> None:
    answers = os.fdopen(os.dup(sys.stdout.fileno()), "wb")
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    os.dup2(devnull, sys.stderr.fileno())
    warnings.simplefilter("ignore")
    import engine.figures.view  # noqa: F401 - the import is the slow part: do it before the first request

    serve(sys.stdin.buffer, answers)


if __name__ == "__main__":
    main()
