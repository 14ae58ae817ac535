"""Continue an interrupted run from its last checkpoint (``eos-tui resume RUN``, sweeps).

A checkpoint of step ``c`` holds θ_c, the solver's state *before* step ``c`` (warm eigen-block,
Ritz values, steps taken, curvature-product count) and the snapshot computer's state before the
snapshot of ``c`` (:mod:`engine.trainer`): everything that decides row ``c`` and what follows.
Resuming rebuilds the trainer from the run's ``config.toml``, loads that state and runs the
loop again from step ``c``, writing into the same run directory (its writer reopened), so the
trajectory after the checkpoint is the one the uninterrupted run would have followed.

The store is append-only and usually already holds rows after ``c`` (up to the last step
``m`` before the interruption). Those rows are **computed again and compared, never
rewritten**: rows ``c..m`` and the snapshots already stored are recomputed (so the warm starts
advance exactly as in the uninterrupted run), compared with the stored values, and not
appended; rows after ``m`` are appended. The largest relative difference is recorded in an
event (``resumed``); above :data:`REPLAY_TOL` the event is a ``warning`` (a different machine
or thread count changes the last bits, and the stored rows keep the original values). Step
rows agree to rounding (a deterministic recomputation: they are equal on one machine);
snapshot values to ``metrics.norm_tol``, because the per-sample warm vectors of the layer
norms are not checkpointed (``n × d`` per layer) and restart cold.

Only one process may write a run: :func:`run_lock` (an exclusive ``flock`` on a file beside the
run directory, released by the kernel when its holder dies) guards both a resume and a sweep
worker's fresh start, and a run whose writer is still alive is refused.
"""

from __future__ import annotations

import fcntl
import math
import os
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator

import numpy as np

from engine.config import resolve
from engine.errors import RunStoreError
from engine.store import RunWriter, open_run, send_control
from engine.store.checkpoints import checkpoint_path
from engine.store.liveness import read_control
from engine.store.schema import CONTROL_FILE

REPLAY_TOL = 1e-9  # relative difference of recomputed and stored rows above which a warning is logged
RESUMABLE = ("interrupted", "failed")
COMPARED = ("t", "loss", "grad_norm", "tau", "accuracy")
TRAINER_KEYS = ("theta", "hvp_count")  # checkpoint keys of the trainer; ``snapshot.*``; the rest: solver


def lock_path(run_dir: Path) -> Path:
    """The lock file of a run: ``.NAME.lock`` beside it (the run directory itself stays as the
    store defines it, and the lock exists before the run does)."""
    run_dir = Path(run_dir)
    return run_dir.parent / f".{run_dir.name}.lock"


@contextmanager
def run_lock(run_dir: Path, *, wait: bool = True, poll: float = 0.5,
             waiting: Callable[[], None] | None = None) -> Iterator[bool]:
    """Hold the exclusive lock of ``run_dir`` for the block; yields whether it was acquired
    (``wait=False``: False at once when another process holds it). ``waiting`` is called once
    if the lock is busy and we wait for it."""
    path = lock_path(run_dir)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        told = False
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if not wait:
                    yield False
                    return
                if waiting is not None and not told:
                    waiting()
                    told = True
                time.sleep(poll)
        try:
            yield True
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


@dataclass
class ResumePoint:
    """What a resume starts from: the checkpoint step and the stored rows around it."""

    path: Path
    config: dict
    step: int                   # the checkpoint: row ``step`` is recomputed first
    last_step: int              # the last row the store holds
    steps: dict[str, np.ndarray]        # stored rows with step >= checkpoint step
    snapshot_steps: set[int]            # every stored snapshot's step
    checkpoint_steps: set[int]          # every stored checkpoint's step
    snapshots: dict[str, np.ndarray]    # stored snapshots with step >= checkpoint step
    loss0: float
    max_steps: int


def _is_resumable_checkpoint(tensors_keys) -> bool:
    return "theta" in tensors_keys and "steps_taken" in tensors_keys


def find_resume_point(path: Path | str) -> ResumePoint:
    """Check that the run at ``path`` can be resumed and read where from.

    Raises :class:`RunStoreError` (one line) for a run that is still being written, ended
    (finished or diverged), has nothing left to do, or has no checkpoint with solver state.
    """
    path = Path(path).expanduser()
    with open_run(path) as run:
        status = run.status
        if status == "running":
            raise RunStoreError(f"run {path} is still being written by a live process; stop it "
                                "first (`q` in its monitor) or wait for it to end")
        if status not in RESUMABLE:
            raise RunStoreError(f"run {path} has ended ({status}): there is nothing to resume")
        cfg = resolve(dict(run.config))
        if run.meta.get("group"):
            cfg["group"] = run.meta["group"]
        last = run.last_step()
        if last is None:
            raise RunStoreError(f"run {path} has no recorded step: start it again instead")
        if last >= cfg["train"]["max_steps"] - 1:
            raise RunStoreError(f"run {path} already recorded all {cfg['train']['max_steps']} steps")
        checkpoints = run.checkpoint_steps()
        candidates = [s for s in checkpoints if s <= last]
        point = None
        for step in reversed(candidates):
            try:
                keys = run.checkpoint(step).keys()
            except RunStoreError:
                continue  # an unreadable checkpoint: try the one before
            if _is_resumable_checkpoint(keys):
                point = step
                break
        if point is None:
            raise RunStoreError(
                f"run {path} has no checkpoint with the solver's state (written by an older "
                "eos-tui, or interrupted before its first checkpoint): it cannot be resumed exactly")
        steps = run.steps(since=point - 1)
        snaps = run.snapshots(since=point - 1)
        first = run.steps(columns=["loss"])
        return ResumePoint(path=path, config=cfg, step=point, last_step=int(last), steps=steps,
                           snapshot_steps={int(s) for s in run.snapshot_steps()},
                           checkpoint_steps={int(s) for s in checkpoints},
                           snapshots=snaps, loss0=float(first["loss"][0]),
                           max_steps=cfg["train"]["max_steps"])


def _rel(a: float, b: float) -> float:
    if math.isnan(a) and math.isnan(b):
        return 0.0
    if math.isnan(a) or math.isnan(b):
        return math.inf
    return abs(a - b) / max(abs(b), 1e-300)


class ReplayWriter:
    """The run's reopened writer, except that rows and snapshots the store already holds are
    compared with the recomputed ones instead of appended (the store is append-only)."""

    def __init__(self, writer: RunWriter, point: ResumePoint) -> None:
        self.writer = writer
        self.point = point
        index = {int(s): i for i, s in enumerate(point.steps["step"])}
        self._rows = {s: {k: float(v[i]) for k, v in point.steps.items() if k != "step"}
                      for s, i in index.items() if s >= point.step}
        snaps = point.snapshots
        self._snaps = {int(s): {k: float(v[i]) for k, v in snaps.items() if k != "step"}
                       for i, s in enumerate(snaps.get("step", []))}
        self.max_row_diff = 0.0
        self.max_snapshot_diff = 0.0
        self.compared_rows = 0
        self._reported = False

    def __getattr__(self, name):
        return getattr(self.writer, name)

    def append_step(self, row: dict) -> None:
        step = int(row["step"])
        stored = self._rows.get(step)
        if stored is None:
            self.report()
            self.writer.append_step(row)
            return
        diffs = [_rel(float(row[k]), stored[k]) for k in COMPARED if row.get(k) is not None]
        for i, lam in enumerate(row.get("lambda_H") or []):
            key = f"lambda_H_{i + 1}"
            if key in stored:
                diffs.append(_rel(float(lam), stored[key]))
        self.max_row_diff = max([self.max_row_diff, *diffs])
        self.compared_rows += 1

    def append_snapshot(self, step: int, values: dict) -> None:
        stored = self._snaps.get(int(step))
        if stored is None:
            self.writer.append_snapshot(step, values)
            return
        diffs = [_rel(float(v), stored[k]) for k, v in values.items()
                 if k in stored and k != "snapshot_seconds"]
        self.max_snapshot_diff = max([self.max_snapshot_diff, *diffs])

    def save_checkpoint(self, step: int, tensors) -> Path:
        """A checkpoint the store already holds is kept as written (the store is append-only);
        the recomputed state is the same up to rounding."""
        if int(step) in self.point.checkpoint_steps:
            return checkpoint_path(self.writer.path, int(step))
        return self.writer.save_checkpoint(step, tensors)

    def report(self) -> None:
        """Log how well the recomputed rows agree with the stored ones (once)."""
        if self._reported:
            return
        self._reported = True
        p = self.point
        ok = self.max_row_diff <= REPLAY_TOL
        text = (f"resumed from the checkpoint of step {p.step}: rows {p.step}..{p.last_step} "
                f"recomputed ({self.compared_rows} compared) agree with the stored rows to "
                f"{self.max_row_diff:.2g} (relative; snapshots {self.max_snapshot_diff:.2g})")
        if not ok:
            text += (f", more than {REPLAY_TOL:g}: the stored rows keep their values (another "
                     "machine or thread count?)")
        self.writer.log_event(p.step, "resumed" if ok else "warning", text)

    def close(self, status: str | None = None, message: str | None = None) -> None:
        if not self.writer.closed:
            self.report()
        self.writer.close(status, message)


def _apply_checkpoint(trainer, point: ResumePoint):
    """Load the checkpoint of ``point.step`` into ``trainer``; the :class:`Start` of the loop."""
    import torch

    from engine.trainer import Start

    with open_run(point.path) as run:
        tensors = run.checkpoint(point.step)
        stored = run.training_data()["indices"]
    if not torch.equal(stored.to(torch.int64).cpu(), trainer.data.indices.to(torch.int64).cpu()):
        raise RunStoreError(f"the training data of {point.path} differ from what its config loads "
                            "here (another data directory or data version?): cannot resume exactly")
    device, dtype = trainer.device, trainer.dtype

    def place(v: "torch.Tensor") -> "torch.Tensor":
        return v.to(device=device, dtype=dtype) if v.is_floating_point() else v.to(device)

    solver_state = {k: place(v) for k, v in tensors.items()
                    if k not in TRAINER_KEYS and not k.startswith("snapshot.")}
    if "eig_block" in solver_state and trainer.solver.tracker.problem is not trainer.problem:
        solver_state["eig_block"] = solver_state["eig_block"].to(trainer.solver.tracker.problem.dtype)
    trainer.solver.load_state_dict(solver_state)
    trainer.snapshots.load_state_dict({k.removeprefix("snapshot."): place(v)
                                       for k, v in tensors.items() if k.startswith("snapshot.")})
    if "hvp_count" in tensors:  # curvature products before step c, so the column continues
        trainer.problem.hvp_count = int(tensors["hvp_count"])
        if trainer.solver.tracker.problem is not trainer.problem:
            trainer.solver.tracker.problem.hvp_count = 0
    # the snapshots before the checkpoint, so the cadence of full and cheap snapshots continues
    trainer._snapshotted = {s for s in point.snapshot_steps if s < point.step}  # noqa: SLF001
    rows = point.steps
    i = int(np.nonzero(rows["step"] == point.step)[0][0])
    return Start(step=point.step, theta=place(tensors["theta"]), t=float(rows["t"][i]),
                 loss0=point.loss0, wall_s=float(rows["wall_s"][i]))


def resume_run(path: Path | str, *, on_step: Callable[[dict], None] | None = None,
               on_event: Callable[[str, str], None] | None = None):
    """Continue the interrupted run at ``path`` from its last checkpoint; the
    :class:`engine.trainer.TrainResult` of the continued run."""
    path = Path(path).expanduser()
    with run_lock(path, wait=False) as locked:
        if not locked:
            raise RunStoreError(f"run {path} is being resumed or trained by another process")
        return resume_run_locked(path, on_step=on_step, on_event=on_event)


def resume_run_locked(path: Path, *, on_step: Callable[[dict], None] | None = None,
                      on_event: Callable[[str, str], None] | None = None, point: ResumePoint | None = None):
    """:func:`resume_run` for a caller that holds the run's lock (a sweep task); ``point``: what
    :func:`find_resume_point` already read under that lock."""
    from engine.trainer import Trainer

    point = point or find_resume_point(path)
    trainer = Trainer(point.config, path, on_step=on_step, on_event=on_event)
    start = _apply_checkpoint(trainer, point)
    if read_control(path / CONTROL_FILE) != "run":  # a run stopped from its monitor: go on
        send_control(path, "run")
    writer = ReplayWriter(RunWriter.reopen(path), point)
    return trainer.run(writer=writer, start=start)
