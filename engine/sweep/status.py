"""Where a sweep stands, read from its directory: :class:`SweepScanner`.

Every planned run is read through the store: its state (``pending`` until its directory holds a
run, then the store's status), last step, loss, λ1, max P^1 after the transient so far and
wall-clock time. Runs that ended are read once and cached; running ones on every scan. The
scan also gives the overall progress, an ETA and the current power-law fit, so ``eos-tui sweep
status``, the headless progress line and the live sweep screen all show the same numbers.

Progress counts work as ``n_train × steps`` (a step's cost grows with the data set). A run stops
at ``max_steps`` or, usually much earlier, at the target loss, so its expected number of steps is
estimated: an ended run's are its own; a run in progress extrapolates its loss (the slope of
``log loss`` over its last :data:`TREND_ROWS` rows) to the target loss; a run not started yet
takes the median of the ended runs of its size (or of the nearest size; before any run ended,
of the runs in progress' extrapolations); each is capped by
``max_steps``. The ETA divides the remaining expected work by the speed the runs themselves
recorded (work per second of ``wall_s``) times the number of runs in progress, so it is
available as soon as a watcher attaches. It is an estimate, and says so (``ETA ~``).
"""

from __future__ import annotations

import math
import os
import socket
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from engine.analysis.powerlaw import max_p1
from engine.analysis.sweep import RunResult, SweepAnalysis, summarize
from engine.errors import EosError
from engine.store import is_run_dir, open_run
from engine.store.schema import FINAL_STATUSES
from engine.sweep.manifest import ClientRecord, read_journal, read_plan
from engine.sweep.plan import RunSpec, SweepPlan

STATES = ("pending", "running", "finished", "diverged", "interrupted", "failed", "corrupt")
ENDED = ("finished", "diverged", "failed")
TREND_ROWS = 50  # rows of a run's recent loss used to extrapolate when it reaches the target


@dataclass
class RunState:
    """One planned run as its directory shows it now."""

    spec: RunSpec
    path: Path
    state: str = "pending"
    step: int | None = None          # last recorded step
    max_steps: int = 0
    loss: float = math.nan
    lambda1: float = math.nan
    threshold: float = math.nan
    max_P1: float = math.nan         # after the transient, so far
    wall_s: float = 0.0
    message: str = ""
    result: RunResult | None = None
    expected_steps: float = 0.0      # estimated total steps (see the module docstring); 0: unknown
    trend_steps: float = 0.0         # a run in progress: its own extrapolation to the target loss

    @property
    def rel(self) -> str:
        return self.spec.rel

    @property
    def steps_done(self) -> int:
        return 0 if self.step is None else self.step + 1

    @property
    def fraction(self) -> float:
        """Progress of this run in [0, 1] (1 once it ended)."""
        if self.state in ENDED:
            return 1.0
        total = self.expected_steps or self.max_steps
        return min(1.0, self.steps_done / total) if total else 0.0


@dataclass
class SweepStatus:
    """A scan of the sweep."""

    sweep_dir: Path
    plan: SweepPlan
    runs: list[RunState]
    client: ClientRecord | None
    client_alive: bool
    analysis: SweepAnalysis
    fraction: float                 # of the planned work
    eta_s: float | None             # None: not known (nothing measured or nothing running)
    scanned_at: float = field(default_factory=time.time)
    journal: list[dict] = field(default_factory=list)

    def count(self, state: str) -> int:
        return sum(r.state == state for r in self.runs)

    @property
    def counts(self) -> dict[str, int]:
        return {s: self.count(s) for s in STATES if self.count(s)}

    @property
    def done(self) -> bool:
        return all(r.state in ENDED for r in self.runs)

    def summary(self) -> str:
        """``16 runs: 9 finished, 2 running, 5 pending · 61% · ETA 3m20s``."""
        parts = ", ".join(f"{n} {s}" for s, n in self.counts.items())
        text = f"{len(self.runs)} runs: {parts} · {100 * self.fraction:.0f}% of the work"
        if self.eta_s is not None and not self.done:
            text += f" · ETA ~{format_duration(self.eta_s)}"
        return text


def format_duration(seconds: float) -> str:
    seconds = max(0, int(round(seconds)))
    h, rem = divmod(seconds, 3600)
    m, s = divmod(rem, 60)
    return f"{h}h{m:02d}m" if h else f"{m}m{s:02d}s" if m else f"{s}s"


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:
        return True
    return True


def client_alive(record: ClientRecord | None, stale_after: float = 30.0) -> bool:
    """Whether the recorded sweep client still drives the sweep (a live pid on this host;
    elsewhere, a record refreshed within ``stale_after`` seconds)."""
    if record is None or record.state != "running":
        return False
    if record.host == socket.gethostname():
        return _pid_alive(record.pid)
    return time.time() - record.updated <= stale_after


class SweepScanner:
    """Reads a sweep directory again and again (cheaply: ended runs are cached)."""

    def __init__(self, sweep_dir: Path | str, *, bootstrap: int = 1000) -> None:  # as `eos-tui analyze`
        self.sweep_dir = Path(sweep_dir).expanduser()
        self.plan = read_plan(self.sweep_dir)
        self.bootstrap = bootstrap
        max_steps = self.plan.base["train"]["max_steps"]
        self.states = {spec.rel: RunState(spec, self.sweep_dir / spec.rel, max_steps=max_steps)
                       for spec in self.plan.runs()}
        self._fit_key: tuple | None = None
        self._analysis: SweepAnalysis | None = None

    def _read(self, st: RunState) -> None:
        if not is_run_dir(st.path):
            st.state = "pending"
            return
        try:
            with open_run(st.path) as run:
                status = run.status
                last = run.last_step()
                st.step = last
                if last is not None:
                    cols = [c for c in ("loss", "lambda_H_1", "threshold", "wall_s") if c in run.step_columns]
                    rows = run.steps(since=max(-1, last - TREND_ROWS), columns=cols)
                    st.trend_steps = _steps_to_target(rows, float(run.meta.get("target_loss") or 0.0))
                    st.loss = float(rows["loss"][-1])
                    st.threshold = float(rows["threshold"][-1])
                    st.wall_s = float(rows["wall_s"][-1])
                    lam = rows.get("lambda_H_1", np.array([]))
                    finite = lam[np.isfinite(lam)]
                    if finite.size:
                        st.lambda1 = float(finite[-1])
                st.max_P1 = max_p1(run)
                st.message = run.status_message or ""
                st.state = status
                if status in FINAL_STATUSES:
                    st.result = RunResult(
                        label=st.rel, path=st.path, status=status,
                        n_train=int(run.meta.get("n_train", st.spec.size)),
                        init_seed=run.config.get("train", {}).get("seed"),
                        subset_seed=run.config.get("data", {}).get("subset_seed"),
                        max_P1=st.max_P1, dataset=run.meta.get("dataset"),
                        criterion=run.meta.get("criterion"), message=st.message)
        except EosError as exc:
            st.state, st.message = "corrupt", str(exc)

    def scan(self) -> SweepStatus:
        for st in self.states.values():
            if st.state in ENDED:
                continue  # final: read once (a --retry-failed rerun of the sweep starts a new scanner)
            self._read(st)
        runs = list(self.states.values())
        _expect_steps(runs)
        record = ClientRecord.read(self.sweep_dir)
        return SweepStatus(sweep_dir=self.sweep_dir, plan=self.plan, runs=runs, client=record,
                           client_alive=client_alive(record), analysis=self._analyze(runs),
                           fraction=self._fraction(runs), eta_s=self._eta(runs),
                           journal=read_journal(self.sweep_dir)[-50:])

    def _analyze(self, runs: list[RunState]) -> SweepAnalysis:
        results = [r.result or RunResult(label=r.rel, path=r.path, status=r.state, n_train=r.spec.size,
                                         max_P1=r.max_P1) for r in runs]
        key = tuple((r.label, r.status, r.max_P1) for r in results if r.status in ENDED)
        if key != self._fit_key or self._analysis is None:
            self._fit_key = key
            self._analysis = summarize(self.sweep_dir, results, bootstrap=self.bootstrap)
        else:
            self._analysis.runs = results
        return self._analysis

    @staticmethod
    def _work(r: RunState) -> tuple[float, float]:
        total = r.spec.size * (r.expected_steps or r.max_steps)
        return total, total * r.fraction

    def _fraction(self, runs: list[RunState]) -> float:
        total = sum(self._work(r)[0] for r in runs)
        return sum(self._work(r)[1] for r in runs) / total if total else 1.0

    def _eta(self, runs: list[RunState]) -> float | None:
        measured = [(r.spec.size * r.steps_done, r.wall_s) for r in runs if r.steps_done > 1 and r.wall_s > 0]
        running = sum(r.state == "running" for r in runs)
        if not measured or running == 0:
            return None
        speed = sum(w for w, _ in measured) / sum(s for _, s in measured)  # work per run-second
        remaining = sum(t - d for t, d in map(self._work, runs))
        return remaining / (speed * running)


def _steps_to_target(rows: dict, target: float) -> float:
    """Total steps at which the loss of these recent rows, extrapolated along the slope of
    ``log loss``, reaches ``target`` (0 when it cannot be told: too few rows, or no descent)."""
    loss, step = rows["loss"], rows["step"]
    ok = np.isfinite(loss) & (loss > 0)
    if target <= 0 or ok.sum() < 10:
        return 0.0
    x, y = step[ok].astype(float), np.log(loss[ok])
    slope = np.polyfit(x, y, 1)[0]
    if not slope < 0:
        return 0.0
    return float(x[-1] + 1 + max(0.0, (y[-1] - math.log(target)) / -slope))


def _expect_steps(runs: list[RunState]) -> None:
    """Fill ``expected_steps`` of every run (see the module docstring)."""
    ended: dict[int, list[float]] = {}  # steps of the ended runs by size, else the running runs' trends
    for r in runs:
        if r.state in ENDED and r.steps_done:
            ended.setdefault(r.spec.size, []).append(r.steps_done)
    if not ended:
        for r in runs:
            if r.state == "running" and r.trend_steps:
                ended.setdefault(r.spec.size, []).append(min(r.trend_steps, r.max_steps))
    for r in runs:
        if r.state in ENDED:
            r.expected_steps = r.steps_done or r.max_steps
            continue
        guess = r.trend_steps if r.state == "running" else 0.0
        if not guess and ended:
            nearest = min(ended, key=lambda d: (abs(math.log(d / r.spec.size)), -d))
            guess = float(np.median(ended[nearest]))
        guess = guess or r.max_steps
        r.expected_steps = float(min(r.max_steps, max(guess, r.steps_done + 1)))


def sweep_status(sweep_dir: Path | str) -> SweepStatus:
    """One scan of the sweep at ``sweep_dir``."""
    return SweepScanner(sweep_dir).scan()
