"""Run directory: the append-only, crash-safe record of one training run.

A run directory is written by exactly one :class:`RunWriter` (the training engine, usually a
separate process) and read concurrently by any number of :class:`Run` readers (the live UI in
follow mode, replay, export, ``eos-tui runs``). Killing the writer with ``kill -9`` loses at most
the step in flight; the run still opens, replays and reports itself ``interrupted``.

Layout of ``RUN/``
==================

``config.toml``
    The resolved configuration (nested tables ``[model]``, ``[data]``, ``[train]`` ..., plus a
    top-level ``preset`` string), written once at creation by :func:`dumps_toml`. ``None``
    values are omitted. Read back with :mod:`tomllib` as :attr:`Run.config`.
``run.json``
    Static metadata passed to :meth:`RunWriter.create` (preset, solver, device, ``num_eigs``,
    depth, ``num_params``, ``created`` ISO time, versions ...). ``num_eigs`` is always present.
    Read back as :attr:`Run.meta`.
``metrics.sqlite``
    SQLite in WAL mode (``journal_mode=WAL``, ``synchronous=NORMAL``: every commit survives a
    crash of the process). One transaction per appended step. Tables:

    ``steps`` -- one row per recorded training step::

        step INTEGER PRIMARY KEY, t REAL, loss REAL, accuracy REAL, grad_norm REAL, lr REAL,
        tau REAL, threshold REAL, wall_s REAL, hvp_count INTEGER, transient INTEGER,
        neg_eigs INTEGER, eig_resid REAL, eig_iters INTEGER, eig_refinements INTEGER,
        ee_rejections INTEGER, ee_err REAL, lambda_H_1 REAL, ..., lambda_H_K REAL, packed BLOB

      ``K = num_eigs`` is fixed at creation. SQLite cannot store NaN (it becomes NULL), so
      every NaN or missing value is stored as NULL and read back as ``nan``. For eigenvalues
      the two cases stay distinguishable through ``neg_eigs``: the number of top eigenvalues
      recorded as NaN (negative) that step; ``NULL`` when no spectrum was computed. Steps are
      strictly increasing. ``transient = 1`` flags the initial transient (spec section 7):
      stored, but excluded from :class:`RunSummary`. ``eig_resid`` .. ``ee_err`` (schema 2) are
      the certificate of the step's eigenpairs and exponential Euler's step control
      (``docs/metrics.md`` §2); a store of schema 1 lacks them and reads them as NaN. ``packed`` is a read accelerator
      redundant with the typed columns: the row's ``17 + K`` values in column order as
      little-endian float64 (NULL -> NaN), so :meth:`Run.steps` decodes 100k rows with one
      ``numpy.frombuffer`` instead of building millions of Python floats. Other tools should
      query the typed columns; rows without a valid ``packed`` fall back to them.
    ``snapshots`` -- long format ``(step INTEGER, name TEXT, value REAL, PRIMARY KEY(step,
      name))``; names as in spec section 7 with 1-based layer suffixes: ``lambda_G1``,
      ``lambda_HmG1``, ``overlap_ratio``, ``EK2``, ``a_L``, ``EK2_layer_1``, ``s_1``, ``r_1``,
      ``P_1``, ``m_1``, ``kappa_1`` ..., and each eigenvalue's certificate ``lambda_G1_resid``,
      ``lambda_G1_converged`` ... NaN is stored as NULL.
    ``events`` -- ``(id INTEGER PRIMARY KEY, step INTEGER, wall REAL, kind TEXT, message
      TEXT)``: the run's log lines (``wall`` is unix time, ``step`` may be NULL).
    ``meta`` -- ``(key TEXT PRIMARY KEY, value TEXT)``: ``schema_version``, ``num_eigs``,
      ``created``, ``status``, ``status_message``, ``pid``, ``hostname``, ``heartbeat`` (unix
      time of the writer's last sign of life), ``finished_at`` (ISO, set with a final status).
``checkpoints/step_00000100.safetensors``
    Weight checkpoints (the trainer writes ``theta`` = θ_s, the solver's ``state_dict()`` before
    step ``s`` — ``eig_block``, ``eig_values``, ``eig_residuals``, ``steps_taken``,
    ``ee_tau_next`` ... — plus ``hvp_count`` and the snapshot computer's warm starts
    ``snapshot.*``, from which :mod:`engine.resume` recomputes row ``s`` and continues exactly),
    step zero-padded to 8 digits. Written to a ``*.tmp`` file, fsynced and renamed, so a checkpoint appears
    under its final name only when complete; leftover ``*.tmp`` files are ignored.
``data.safetensors``
    The exact training tensors of the run: ``X`` ``(n, d_0)``, ``y`` ``(n,)``, ``indices``
    (int64 indices into the full training set). Written atomically.
``.starting``
    Present only while the run is being created: JSON naming the creating process (``pid``,
    ``host``, ``time``), written by :func:`make_run_dir` (the directory is created exclusively,
    with a ``-2``, ``-3`` ... suffix when the name is taken) and removed by the writer once
    ``run.json`` exists. ``.reserve`` (256 KiB) is held by an open writer to record the final
    status on a full disk.
``control``
    One word, ``run``, ``pause`` or ``stop``, written atomically by :func:`send_control` (the
    UI) and polled by the engine with :meth:`RunWriter.poll_control`. Missing means ``run``.

Status
======

``status`` is one of :data:`STATUSES`. A run whose stored status is ``running`` but whose
writer is gone (its pid is not alive on this host, or its heartbeat is older than
``stale_after`` seconds, default 30) is reported as ``interrupted`` with
:attr:`Run.crashed` true; readers never modify the store. The writer refreshes the heartbeat
from a background thread (every 5 s by default) and on :meth:`RunWriter.heartbeat`, so long
steps do not look like crashes. :func:`list_runs` also reports ``starting`` (a run being
created: ``run.json``, written last, does not exist yet and its creator is alive) and
``corrupt`` (files that stay unreadable while nobody changes them); a run killed before it
was complete reads ``interrupted``.

Errors
======

Problems a user can cause (missing or corrupt run, non-empty output directory, bad control
command, missing checkpoint) raise :class:`engine.errors.RunStoreError` with a one-line
message. Programming errors (unknown step field, non-increasing step, bad status) raise
``ValueError`` or ``TypeError``.

Modules
=======

One concept each: :mod:`~engine.store.schema` (layout, columns, SQL schema and its version
checks), :mod:`~engine.store.files` (atomic writes, TOML, safetensors),
:mod:`~engine.store.writer` (:class:`RunWriter`), :mod:`~engine.store.reader` (:class:`Run`,
:func:`open_run`), :mod:`~engine.store.listing` (:func:`list_runs`),
:mod:`~engine.store.checkpoints` (checkpoints and the training tensors) and
:mod:`~engine.store.liveness` (heartbeat, writer pid, control channel).
"""

from engine.store.files import dumps_toml
from engine.store.listing import LISTING_STATUSES, list_runs
from engine.store.liveness import creation_state, make_run_dir, send_control
from engine.store.reader import Run, RunSummary, open_run
from engine.store.schema import (
    CONTROL_COMMANDS,
    DEFAULT_STALE_AFTER,
    FINAL_STATUSES,
    SCALAR_COLUMNS,
    STATUSES,
    is_run_dir,
)
from engine.store.writer import RunWriter

__all__ = [
    "STATUSES",
    "FINAL_STATUSES",
    "CONTROL_COMMANDS",
    "SCALAR_COLUMNS",
    "DEFAULT_STALE_AFTER",
    "RunWriter",
    "Run",
    "RunSummary",
    "open_run",
    "list_runs",
    "LISTING_STATUSES",
    "make_run_dir",
    "creation_state",
    "is_run_dir",
    "send_control",
    "dumps_toml",
]
