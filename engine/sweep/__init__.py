"""Dataset-size sweeps on Dask distributed (the paper's Table 2).

One concept a module: :mod:`~engine.sweep.plan` (sizes × init seeds × subset seeds of a preset,
each run's config and directory), :mod:`~engine.sweep.manifest` (the sweep directory:
``sweep.json``, the journal, the client record; its layout is documented there),
:mod:`~engine.sweep.task` (one run on a Dask worker: idempotent, resumes interrupted runs),
:mod:`~engine.sweep.execute` (the client: ``LocalCluster`` or a scheduler address, progress,
Ctrl-C), :mod:`~engine.sweep.status` (where a sweep stands, read from its directory, with ETA and
the live power-law fit). ``python -m engine.sweep SWEEP`` runs the client of a planned sweep (the
live sweep screen spawns it).

Import from the modules (``from engine.sweep.plan import make_plan``): this package imports
nothing itself, so that reaching a scheduler does not wait for torch to load.
"""
