"""Running a sweep on Dask distributed: :func:`run_sweep` (the sweep client).

The client reads the plan from the manifest, scans the sweep directory, and submits one task
(:func:`engine.sweep.task.run_task`) per run that is not done, to a ``LocalCluster`` it starts
(``n_workers`` processes, one thread each) or to an existing scheduler (``scheduler``: any Dask
address, e.g. a ``dask-jobqueue`` cluster's). A task description is a config dict and a path;
the worker loads the data and writes the run directory itself, so the sweep directory must be a
path every worker sees.

A sweep directory has one client at a time (an exclusive lock, ``.client.lock``; released by the
kernel when the client dies). Each finished task is journalled (``events.jsonl``), reported to
``on_result``, and the sweep goes on whatever its status; a progress thread reports a
:class:`~engine.sweep.status.SweepStatus` to ``on_progress``. On ``KeyboardInterrupt`` (Ctrl-C,
or SIGTERM turned into it by the entry point) the client cancels what has not started, sends
``stop`` to the runs in progress (they end ``interrupted``, resumable) and waits a little for
them before closing the cluster; running the same sweep again continues where it stopped.
"""

from __future__ import annotations

import logging
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator

from engine.errors import ConfigError, EosError
from engine.resume import run_lock
from engine.store import send_control
from engine.sweep.manifest import ClientRecord, append_journal, read_plan
from engine.sweep.status import SweepScanner, SweepStatus
from engine.sweep.task import run_task, warm_worker

SCHEDULER_TIMEOUT_S = 5.0   # an unreachable scheduler is an error after this long
STOP_WAIT_S = 20.0          # after Ctrl-C: how long runs in progress get to end cleanly
WORKER_ENV = {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1",
              "OMP_WAIT_POLICY": "PASSIVE"}
LOCAL_NICENESS = 5          # local workers yield to the UI on a small machine
QUIET_LOGGERS = ("distributed", "tornado", "bokeh", "asyncio")


def quiet_logging(level: int = logging.ERROR) -> None:
    """Silence distributed's chatter (start-up, connection and shutdown messages) in this process."""
    import distributed  # noqa: F401 - configures its loggers on import; override them after

    names = [n for n in logging.root.manager.loggerDict if n.split(".")[0] in QUIET_LOGGERS]
    for name in {*QUIET_LOGGERS, *names}:
        logging.getLogger(name).setLevel(level)


def client_lock_path(sweep_dir: Path) -> Path:
    return Path(sweep_dir) / "client"  # engine.resume.run_lock → .client.lock


@contextmanager
def dask_client(workers: int, scheduler: str | None) -> Iterator[tuple]:
    """``(client, cluster)``: a new ``LocalCluster`` of ``workers`` processes (one thread each),
    or a connection to ``scheduler`` (``cluster`` is then ``None``). An unreachable scheduler is
    a :class:`ConfigError` within :data:`SCHEDULER_TIMEOUT_S` seconds."""
    quiet_logging()
    import warnings

    from distributed import Client, LocalCluster

    # a nanny restarting a lost worker asks for the default HTTP port, busy on a shared machine
    warnings.filterwarnings("ignore", message="Port .* is already in use", category=UserWarning)

    cluster = None
    if scheduler:
        try:
            client = Client(scheduler, timeout=f"{SCHEDULER_TIMEOUT_S:g}s", set_as_default=False)
        except Exception as exc:  # noqa: BLE001 - OSError, TimeoutError, ValueError (bad address) ...
            detail = " ".join(str(exc).split()) or type(exc).__name__
            raise ConfigError(f"cannot reach the Dask scheduler at {scheduler} within "
                              f"{SCHEDULER_TIMEOUT_S:g} s ({detail})") from None
    else:
        cluster = LocalCluster(n_workers=workers, threads_per_worker=1, processes=True,
                               dashboard_address=None, silence_logs=logging.ERROR, env=WORKER_ENV)
        client = Client(cluster, set_as_default=False)
    try:
        yield client, cluster
    finally:
        quiet_logging(logging.CRITICAL)  # connections closing during shutdown are expected
        client.close()
        if cluster is not None:
            cluster.close()


def _tcp_probe(scheduler: str) -> None:
    """A plain TCP connection to a ``tcp://`` / ``tls://`` (or bare ``host:port``) address, before
    Dask is even imported: a refused or silent port is a :class:`ConfigError` at once (or after
    :data:`SCHEDULER_TIMEOUT_S`). Other protocols are left to Dask."""
    import socket

    proto, _, rest = scheduler.rpartition("://")
    if proto not in ("", "tcp", "tls"):
        return
    host, _, port = rest.rpartition(":")
    try:
        port_n = int(port)
    except ValueError:
        raise ConfigError(f"--scheduler {scheduler!r} is not an address like tcp://host:8786") from None
    try:
        with socket.create_connection((host.strip("[]") or "localhost", port_n), timeout=SCHEDULER_TIMEOUT_S):
            pass
    except OSError as exc:
        reason = "timed out" if isinstance(exc, TimeoutError) else (exc.strerror or str(exc)).lower()
        raise ConfigError(f"cannot reach the Dask scheduler at {scheduler} within "
                          f"{SCHEDULER_TIMEOUT_S:g} s ({reason})") from None


def check_scheduler(scheduler: str) -> int:
    """Ask ``scheduler`` who it is, within :data:`SCHEDULER_TIMEOUT_S` (a :class:`ConfigError` if
    it cannot be reached or is not a Dask scheduler); its number of workers."""
    _tcp_probe(scheduler)
    quiet_logging()
    import asyncio

    from distributed.core import rpc

    async def identity() -> dict:
        async with rpc(scheduler, timeout=SCHEDULER_TIMEOUT_S) as remote:
            return await remote.identity()

    try:
        info = asyncio.run(asyncio.wait_for(identity(), SCHEDULER_TIMEOUT_S))
    except (OSError, asyncio.TimeoutError) as exc:
        detail = " ".join(str(exc).split()) or "timed out"
        raise ConfigError(f"cannot reach the Dask scheduler at {scheduler} within "
                          f"{SCHEDULER_TIMEOUT_S:g} s ({detail})") from None
    except Exception as exc:  # noqa: BLE001 - an answer that is not Dask's (another service on the port)
        raise ConfigError(f"{scheduler} answered, but not as a Dask scheduler ({type(exc).__name__})") from None
    if not isinstance(info, dict) or info.get("type") != "Scheduler":
        raise ConfigError(f"{scheduler} answered, but not as a Dask scheduler")
    return len(info.get("workers", {}))


@dataclass
class SweepOutcome:
    """What one :func:`run_sweep` did."""

    status: SweepStatus
    results: list[dict] = field(default_factory=list)   # one per submitted task
    skipped: int = 0            # runs already done before this client started
    cluster_s: float = 0.0      # starting the local cluster / connecting, and the workers' imports
    wall_s: float = 0.0         # first submit to last result
    workers: int = 0

    @property
    def ok(self) -> bool:
        return all(r.get("status") in ("finished", "diverged") for r in self.results)


def _task(plan, spec, sweep_dir: Path, *, nice: int, retry_failed: bool) -> dict:
    cfg = plan.config_for(spec, group=sweep_dir.name)
    return {"path": str(sweep_dir / spec.rel), "rel": spec.rel, "config": cfg,
            "threads": cfg["train"]["threads"] or 1, "nice": nice, "retry_failed": retry_failed}


def _todo(status: SweepStatus, retry_failed: bool) -> list:
    done = ("finished", "diverged") if retry_failed else ("finished", "diverged", "failed")
    return [r for r in status.runs if r.state not in done]


def run_sweep(sweep_dir: Path | str, *, workers: int = 1, scheduler: str | None = None,
              retry_failed: bool = False, on_result: Callable[[dict], None] | None = None,
              on_progress: Callable[[SweepStatus], None] | None = None,
              on_message: Callable[[str], None] | None = None,
              progress_interval: float = 2.0) -> SweepOutcome:
    """Run every run of the sweep at ``sweep_dir`` that is not done (see the module docstring).

    Runs already ``finished`` or ``diverged`` (and ``failed`` ones unless ``retry_failed``) are
    skipped without starting a cluster; ``interrupted`` ones continue from their checkpoint.
    """
    sweep_dir = Path(sweep_dir).expanduser()
    plan = read_plan(sweep_dir)
    say = on_message or (lambda text: None)
    with run_lock(client_lock_path(sweep_dir), wait=False) as locked:
        if not locked:
            other = ClientRecord.read(sweep_dir)
            who = f" (pid {other.pid} on {other.host})" if other else ""
            raise ConfigError(f"another eos-tui sweep client is running {sweep_dir}{who}; watch it "
                              f"with `eos-tui sweep watch {sweep_dir}`")
        record = ClientRecord.new(str(workers) if not scheduler else "scheduler's", scheduler)
        record.write(sweep_dir)
        scanner = SweepScanner(sweep_dir)
        outcome = SweepOutcome(status=scanner.scan())
        try:
            todo = _todo(outcome.status, retry_failed)
            outcome.skipped = len(outcome.status.runs) - len(todo)
            if todo:
                _execute(sweep_dir, plan, todo, outcome, workers=workers, scheduler=scheduler,
                         retry_failed=retry_failed, on_result=on_result, on_progress=on_progress,
                         say=say, interval=progress_interval)
            outcome.status = SweepScanner(sweep_dir).scan()
            record.state, record.message = "finished", outcome.status.summary()
        except KeyboardInterrupt:
            record.state, record.message = "interrupted", "interrupted: run the same command again to continue"
            raise
        except EosError as exc:
            record.state, record.message = "failed", str(exc)
            raise
        except BaseException as exc:
            record.state, record.message = "failed", f"{type(exc).__name__}: {exc}"
            raise
        finally:
            record.write(sweep_dir)
    return outcome


def _execute(sweep_dir: Path, plan, todo: list, outcome: SweepOutcome, *, workers: int,
             scheduler: str | None, retry_failed: bool, on_result, on_progress, say, interval) -> None:
    from distributed import as_completed

    t0 = time.perf_counter()
    where = f"the Dask scheduler at {scheduler}" if scheduler else f"a local Dask cluster of {workers} workers"
    say(f"starting {len(todo)} runs on {where}")
    stop_progress = threading.Event()
    with dask_client(workers, scheduler) as (client, cluster):
        outcome.workers = len(client.run(warm_worker))  # imports once per worker, in parallel
        outcome.cluster_s = time.perf_counter() - t0
        if scheduler and outcome.workers == 0:
            say("the scheduler has no workers yet: the runs wait for workers to join")
        nice = LOCAL_NICENESS if cluster is not None else 0
        t_submit = time.perf_counter()
        futures = {}
        for st in todo:
            task = _task(plan, st.spec, sweep_dir, nice=nice, retry_failed=retry_failed)
            key = f"eos-tui-run-{plan.hash[:12]}-{st.rel}"
            futures[client.submit(run_task, task, key=key, pure=False, retries=0)] = st.rel
        progress = None
        if on_progress is not None:
            progress = threading.Thread(target=_report_progress, name="sweep-progress", daemon=True,
                                        args=(sweep_dir, on_progress, stop_progress, interval))
            progress.start()
        try:
            for fut in as_completed(list(futures), loop=client.loop):
                try:
                    res = fut.result()
                except Exception as exc:  # noqa: BLE001 - a lost worker (KilledWorker) or a bug: recorded, go on
                    res = {"rel": futures[fut], "status": "lost", "action": "lost",
                           "message": f"{type(exc).__name__}: {' '.join(str(exc).split())}"}
                append_journal(sweep_dir, res)
                outcome.results.append(res)
                if on_result is not None:
                    on_result(res)
            outcome.wall_s = time.perf_counter() - t_submit
        except KeyboardInterrupt:
            client.cancel(list(futures))
            _stop_running(sweep_dir, say)
            raise
        finally:
            stop_progress.set()
            if progress is not None:
                progress.join(timeout=5)


def _report_progress(sweep_dir: Path, on_progress, stop: threading.Event, interval: float) -> None:
    scanner = SweepScanner(sweep_dir, bootstrap=0)  # progress lines: the fit without intervals
    while not stop.wait(interval):
        try:
            on_progress(scanner.scan())
        except EosError:
            continue


def _stop_running(sweep_dir: Path, say) -> None:
    """Send ``stop`` to the sweep's runs in progress and wait (up to :data:`STOP_WAIT_S`) for them
    to end ``interrupted`` with their data kept."""
    running = [r for r in SweepScanner(sweep_dir, bootstrap=0).scan().runs if r.state == "running"]
    for r in running:
        try:
            send_control(r.path, "stop")
        except EosError:
            pass
    if running:
        say(f"stopping {len(running)} runs in progress (they end 'interrupted'; run the sweep again to continue)")
    deadline = time.monotonic() + STOP_WAIT_S
    scanner = SweepScanner(sweep_dir, bootstrap=0)  # states only: no intervals while stopping
    while running and time.monotonic() < deadline:
        states = {r.rel: r.state for r in scanner.scan().runs}
        if all(states.get(r.rel) != "running" for r in running):
            break
        time.sleep(0.5)
