"""One run of a sweep, executed on a Dask worker: :func:`run_task`.

The client ships only a small description (the run's config dict and its directory); the worker
loads the data and writes the run directory itself. A task is idempotent, so Dask may run it
again (a lost worker) and a rerun of the sweep may submit it again:

* it holds the run's lock (:func:`engine.resume.run_lock`) while it works, and waits for it when
  another process has it (an orphaned worker of a killed client still training the run);
* a run that ended ``finished`` or ``diverged`` is left as it is (``skipped``), and so is a
  ``failed`` one unless ``retry_failed``;
* a run whose writer is still alive elsewhere (another host) is waited for;
* an ``interrupted`` run continues from its last checkpoint (:func:`engine.resume.resume_run`);
  a partial directory without a usable checkpoint (its creation or first step was cut) is
  cleared and trained from the start;
* anything else trains a new run.

The result is a small dict (status, message, steps, host, pid, timings: ``run_s`` the run's wall
time, ``cpu_s`` its CPU time in this worker process, ``task_s`` the whole task, ``started`` /
``ended`` unix times) for the client's journal.
"""

from __future__ import annotations

import os
import shutil
import socket
import time
from pathlib import Path

from engine.errors import EosError

_NICED = False


def _prepare_process(threads: int, nice: int) -> None:
    """One torch thread per worker process (each run is one thread), lower priority locally."""
    global _NICED
    import torch

    torch.set_num_threads(max(1, int(threads)))
    if nice and not _NICED:
        try:
            os.nice(nice)
        except OSError:
            pass
        _NICED = True


def warm_worker() -> int:
    """Import what a task needs (torch, the trainer) in a worker process, before any task runs:
    the client calls it on every worker after connecting, so start-up is paid once per worker
    and in parallel, not inside the first run of each. Returns the worker's pid."""
    import engine.resume  # noqa: F401
    import engine.trainer  # noqa: F401

    return os.getpid()


def _stored_status(path: Path) -> str | None:
    """The run's status through the store, ``None`` when there is no readable run."""
    from engine.store import is_run_dir, open_run

    if not is_run_dir(path):
        return None
    try:
        with open_run(path) as run:
            return run.status
    except EosError:
        return "corrupt"


def _wait_for_writer(path: Path, poll: float = 2.0) -> str | None:
    """While another live process writes the run (another host: its heartbeat is fresh), wait."""
    status = _stored_status(path)
    while status == "running":
        time.sleep(poll)
        status = _stored_status(path)
    return status


def run_task(task: dict) -> dict:
    """Execute one planned run (see the module docstring); never raises for a run that fails.

    ``task``: ``path`` (the run directory), ``rel``, ``config`` (resolved config dict),
    ``threads`` (torch threads, default 1), ``nice`` (niceness increment, default 0),
    ``retry_failed`` (bool).
    """
    t0 = time.perf_counter()
    started = time.time()
    path = Path(task["path"])
    _prepare_process(task.get("threads", 1), task.get("nice", 0))
    out = {"rel": task.get("rel", path.name), "host": socket.gethostname(), "pid": os.getpid(), "started": started,
           "action": "", "status": "", "message": "", "steps": 0, "run_s": 0.0, "wait_s": 0.0}
    from engine.resume import find_resume_point, resume_run_locked, run_lock
    from engine.trainer import train

    waited = time.perf_counter()
    with run_lock(path):
        out["wait_s"] = time.perf_counter() - waited
        status = _wait_for_writer(path)
        if status in ("finished", "diverged") or (status == "failed" and not task.get("retry_failed")):
            out.update(action="skipped", status=status, message=f"already {status}")
            return _done(out, t0)
        if status == "corrupt":
            out.update(action="none", status="failed",
                       message=f"{path} holds an unreadable run; remove it to run it again")
            return _done(out, t0)
        action, point = "trained", None
        if status in ("interrupted", "failed"):
            try:
                point = find_resume_point(path)
                action = "resumed"
            except EosError as exc:
                out["message"] = f"restarted from scratch ({exc})"
        if action == "trained" and path.exists():
            shutil.rmtree(path)  # a partial run that cannot be continued: recomputed identically
        run_t0, cpu_t0 = time.perf_counter(), time.process_time()
        try:
            if action == "resumed":
                result = resume_run_locked(path, point=point)
            else:
                result = train(task["config"], path)
            out.update(status=result.status, message=result.message, steps=result.steps)
        except EosError as exc:
            out.update(status="failed", message=str(exc))
        except Exception as exc:  # noqa: BLE001 - the trainer has recorded it in the run; the sweep goes on
            out.update(status="failed", message=f"{type(exc).__name__}: {exc}")
        out["run_s"] = time.perf_counter() - run_t0
        out["cpu_s"] = time.process_time() - cpu_t0  # this worker process: the run, on a shared machine
        out["action"] = action
    return _done(out, t0)


def _done(out: dict, t0: float) -> dict:
    out["task_s"] = time.perf_counter() - t0
    out["ended"] = time.time()
    return out
