"""Paper-grade static figures (matplotlib, Agg): one function per figure, data in, Figure out.

Importing this package imports no plotting library: :mod:`~engine.figures.panel` (the panel
descriptions the terminal UI shares) is light, and the modules that draw import matplotlib's
object-oriented API only — never ``pyplot`` and its global state — so figures can be rendered
from any thread (the UI's ``p`` key renders in a worker).

Modules, one concept each:

* :mod:`~engine.figures.panel` — :class:`Line`/:class:`Panel`, what a panel shows (also the TUI's).
* :mod:`~engine.figures.style` — options, colours by dataset size, transient shading, smoothing,
  long-series envelopes and the record of every plotted series (the CSV beside a figure).
* :mod:`~engine.figures.timeseries` — ``sharpness``, ``overlap``, ``alignment``, ``layers``,
  ``factors`` (paper Figs 1–4, 6–18): one curve per run against step or ``t``.
* :mod:`~engine.figures.solvers` — ``compare``: GD against exponential Euler on ``t``.
* :mod:`~engine.figures.powerlaw` — ``powerlaw``: max P¹ against D with the fit of
  :mod:`engine.analysis.powerlaw` and the paper's Table-2 line.
* :mod:`~engine.figures.view` — the figure of a terminal screen's panels (the ``p`` key).
* :mod:`~engine.figures.registry` — names, what data each figure needs, ``all``.
* :mod:`~engine.figures.output` — writing PNG/SVG/PDF and the CSV of the plotted data.
* :mod:`~engine.figures.worker` — a render process (``python -m engine.figures.worker``) that the
  terminal UI's ``p`` key hands figures to, so that drawing never holds the UI's interpreter lock.

Data comes from :mod:`engine.analysis.series` (:class:`~engine.analysis.series.RunView`), the
same extraction the terminal panels use.
"""
