"""Analysis of finished and running runs: fits across runs (the paper's power law) and reports.

Reads runs only through :mod:`engine.store`. One concept per module: :mod:`~engine.analysis.powerlaw`
(max P¹ per run and the power law over dataset size).
"""
