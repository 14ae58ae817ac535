"""Analysis of finished and running runs: a run's series as drawn, fits across runs and reports.

Reads runs only through :mod:`engine.store`. One concept per module:
:mod:`~engine.analysis.series` (a run's columns as the terminal panels and the figures draw them),
:mod:`~engine.analysis.downsample` (the min/max envelope of a long series),
:mod:`~engine.analysis.powerlaw` (max P¹ per run and the power law over dataset size).
"""
