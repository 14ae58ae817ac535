"""The training loop: one solver step per iteration, recorded into a run directory.

Row ``s`` of the store describes the parameters ``θ_s``: their loss, accuracy, gradient
norm, top eigenvalues and gradient-flow time ``t_s`` (``t_0 = 0``), plus the step size that
took ``θ_s`` to ``θ_{s+1}``. Every ``snapshot_every`` steps (and at the end) the full metric
set of spec §2–4 is recorded and ``θ_s`` is checkpointed, with the solver's state *before* step
``s`` and the snapshot computer's state before snapshot ``s``: everything needed to recompute
row ``s`` and continue (:mod:`engine.resume`, through :class:`Start`). The loop stops at the target loss,
``max_steps`` rows, ``max_time_s``, divergence (non-finite loss or loss above
``divergence_factor`` × its start: status ``diverged``), or a ``stop`` on the control channel
(status ``interrupted``). Ctrl-C (``KeyboardInterrupt``) also leaves the run ``interrupted``
with every committed row kept.

Definitions, costs and accuracy of the recorded quantities: ``docs/metrics.md``.
"""

from __future__ import annotations

import math
import platform
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable

import torch

import engine
from engine import blas
from engine.config import SOLVER_NAMES, num_eigs, stiff_dim
from engine.criteria import get_criterion
from engine.data import TrainingSet, load_training_set, resolve_data_dir
from engine.eigensolver import NonFiniteError
from engine.errors import ConfigError, EosError, RunStoreError
from engine.lr_rule import resolve_lr
from engine.model import MLPSpec, init_params
from engine.products import LossProblem
from engine.snapshot import SnapshotComputer
from engine.solvers import StepSizeError, make_solver
from engine.store import RunWriter

DTYPES = {"float64": torch.float64, "float32": torch.float32}


@dataclass
class Start:
    """Where :meth:`Trainer.run` continues a run (``engine.resume``): row ``step`` is computed
    again from ``theta`` = θ_step at flow time ``t``; ``loss0`` is the loss of row 0 (the
    divergence test) and ``wall_s`` the wall clock of row ``step``. The caller has loaded the
    solver's and the snapshot computer's state from the checkpoint of ``step``."""

    step: int
    theta: torch.Tensor
    t: float
    loss0: float
    wall_s: float


@dataclass
class TrainResult:
    run_dir: Path
    status: str
    message: str
    steps: int
    final_loss: float


def data_options(cfg: dict) -> dict:
    """The loader options that apply to the configured data set (only Dice takes ``image_size``)."""
    return {"image_size": cfg["data"]["image_size"]} if cfg["data"]["name"] == "dice" else {}


SMALL_PROBLEM = 2e8  # n·P below which one CPU thread is faster than several


def configure_threads(requested: int, n: int, num_params: int) -> int:
    """Set torch's CPU threads: ``requested`` if > 0, else 1 for small problems, else the default.

    On a small machine shared with the UI, OpenMP threads of tiny kernels mostly wait on
    each other; measured here, a tiny run took 50 s with 2 threads under load and 1.7 s with 1.
    """
    if requested > 0:
        torch.set_num_threads(requested)
    elif n * num_params < SMALL_PROBLEM:
        torch.set_num_threads(1)
    threads = torch.get_num_threads()
    blas.set_threads(threads)  # numpy's BLAS does the eigensolver's tall-skinny products
    return threads


def resolve_device(name: str) -> torch.device:
    """``cpu`` or ``cuda``; a clear error when CUDA is asked for but absent."""
    if name == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"--device cuda was requested but CUDA is not available to torch {torch.__version__}")
    return torch.device(name)


class Trainer:
    """Builds data, model, loss and solver from a resolved config and runs the loop."""

    def __init__(self, cfg: dict, run_dir: Path, *, on_step: Callable[[dict], None] | None = None,
                 on_event: Callable[[str, str], None] | None = None, data: TrainingSet | None = None) -> None:
        """``data``: train on these tensors instead of loading the configured data set (timing)."""
        self.cfg = cfg
        self.run_dir = Path(run_dir)
        self.on_step = on_step
        self.on_event = on_event
        tr, md, dc = cfg["train"], cfg["model"], cfg["data"]
        self.device = resolve_device(tr["device"])
        self.dtype = DTYPES[md["dtype"]]
        self.data = data if data is not None else load_training_set(
            dc["name"], size=dc["size"] or None, subset_seed=dc["subset_seed"],
            data_dir=resolve_data_dir(dc["data_dir"] or None), dtype=self.dtype, device=self.device,
            options=data_options(cfg),
        )
        self.spec = MLPSpec.from_shape(self.data.X.shape[1], md["width"], md["depth"],
                                       self.data.num_classes, md["activation"])
        configure_threads(tr["threads"], self.data.X.shape[0], self.spec.num_params)
        self.criterion = get_criterion(tr["criterion"])
        self.problem = LossProblem(self.spec, self.criterion, self.data.X, self.data.y,
                                   chunk_size=tr["chunk_size"] or None)
        self.num_eigs = num_eigs(cfg, self.spec.num_outputs)
        self.theta = init_params(self.spec, gain=md["init_gain"], seed=tr["seed"], dtype=self.dtype,
                                 device=self.device, distribution=md["init"])
        self.lr_rule = resolve_lr(cfg, self.problem, self.theta)  # train.lr = "auto" → a number
        if self.lr_rule is not None:
            self.cfg = cfg = {**cfg, "train": {**cfg["train"], "lr": self.lr_rule.lr}}
        self.solver = make_solver(cfg, self.problem, self.num_eigs)
        self.target_loss = tr["target_loss"] or self.criterion.default_target_loss
        self.snapshots = SnapshotComputer(self.spec, self.criterion, self.problem, cfg)
        self._snapshotted: set[int] = set()
        self._pre_step_state: dict = {}   # the solver's state before the current step
        self._pre_snapshot_state: dict = {}  # the snapshot computer's state before the last snapshot

    def meta(self) -> dict:
        cfg = self.cfg
        return {
            "name": self.run_dir.name,
            "preset": cfg.get("preset") or None,
            "description": cfg.get("description") or None,
            "solver": cfg["train"]["solver"],
            "solver_name": SOLVER_NAMES[cfg["train"]["solver"]],
            "criterion": cfg["train"]["criterion"],
            "dataset": self.data.name,
            "dataset_description": self.data.description,
            "n_train": int(self.data.X.shape[0]),
            "n_total": int(self.data.n_total),
            "input_shape": list(self.data.input_shape),
            "device": str(self.device),
            "dtype": cfg["model"]["dtype"],
            "lr": cfg["train"]["lr"],
            "lr_rule": self.lr_rule.as_dict() if self.lr_rule else None,
            "k": stiff_dim(cfg, self.spec.num_outputs),
            "num_eigs": self.num_eigs,
            "depth": self.spec.depth,
            "sizes": list(self.spec.sizes),
            "num_outputs": self.spec.num_outputs,
            "num_params": self.spec.num_params,
            "target_loss": self.target_loss,
            "group": cfg.get("group") or None,
            "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "eos_tui_version": engine.__version__,
            "torch_version": torch.__version__,
            "threads": torch.get_num_threads(),
            "host": platform.node(),
        }

    def run(self, writer: RunWriter | None = None, start: Start | None = None) -> TrainResult:
        """Train into a new run directory, or (``engine.resume``) continue from ``start`` into
        the run's existing ``writer``."""
        cfg = self.cfg
        tr, mc = cfg["train"], cfg["metrics"]
        record = {k: v for k, v in cfg.items() if k != "group"}
        fresh = writer is None
        if fresh:
            writer = RunWriter.create(self.run_dir, config=record, meta=self.meta(), num_eigs=self.num_eigs)
        status, message, step, loss = "interrupted", "", -1, math.nan
        try:
            if fresh:
                writer.save_training_data(self.data.X.cpu(), self.data.y.cpu(), self.data.indices.cpu())
            theta, t, loss0 = (self.theta, 0.0, None) if start is None else (start.theta, start.t, start.loss0)
            start_wall = time.perf_counter() - (0.0 if start is None else start.wall_s)
            try:
                for step in range(0 if start is None else start.step, tr["max_steps"]):
                    command = self._wait_while_paused(writer)
                    if command == "stop":
                        status, message = "interrupted", "stopped from the control channel"
                        step -= 1
                        break
                    self._pre_step_state = {**self.solver.state_dict(),
                                            "hvp_count": torch.tensor(self.solver.hvp_count)}
                    new_theta, info = self.solver.step(theta)
                    loss = info.loss
                    if loss0 is None:
                        loss0 = loss
                    row = self._row(step, t, info, theta, time.perf_counter() - start_wall)
                    writer.append_step(row)
                    if self.on_step:
                        self.on_step(row)
                    diverged = not math.isfinite(loss) or loss > tr["divergence_factor"] * max(loss0, 1e-30)
                    done = loss <= self.target_loss
                    out_of_time = tr["max_time_s"] and time.perf_counter() - start_wall >= tr["max_time_s"]
                    last = step == tr["max_steps"] - 1
                    if diverged:
                        status, message = "diverged", f"loss {loss:.4g} at step {step} (started at {loss0:.4g})"
                        break
                    if done or out_of_time or last:
                        status = "finished"
                        message = (f"reached target loss {self.target_loss:g}" if done else
                                   f"reached max_time_s={tr['max_time_s']:g}" if out_of_time else
                                   f"reached max_steps={tr['max_steps']}")
                        self._snapshot(writer, step, theta, last=True)
                        break
                    if self.is_snapshot_step(step):
                        self._snapshot(writer, step, theta)
                    elif step == 0:
                        self._checkpoint(writer, step, theta)
                    theta = new_theta
                    t += info.step_size
            except (NonFiniteError, StepSizeError) as exc:  # a NaN/inf product, or no acceptable step
                status, message = "diverged", f"at step {step}: {exc}"
                step = -1 if writer.last_step is None else writer.last_step
            self.theta = theta
            writer.log_event(max(step, 0), status, message)
            if self.on_event:
                self.on_event(status, message)
            writer.close(status, message)
        except KeyboardInterrupt as exc:  # Ctrl-C, or SIGTERM/SIGHUP via engine.launch
            _end_run(writer, step, "interrupted", str(exc) or "interrupted by SIGINT (Ctrl-C)")
            raise
        except BaseException as exc:
            _end_run(writer, step, "failed", str(exc) if isinstance(exc, EosError)
                     else f"{type(exc).__name__}: {exc}")
            raise
        return TrainResult(self.run_dir, status, message, step + 1, loss)

    def is_snapshot_step(self, step: int) -> bool:
        """Snapshots at the end of the initial transient and every ``snapshot_every`` steps.

        The first one comes at step ``transient_steps`` (spec §7: the transient is excluded from
        summaries, so growth is measured from there), which also keeps the expensive first,
        cold snapshot from delaying the first steps of a live run.
        """
        mc = self.cfg["metrics"]
        return step == mc["transient_steps"] or (step > 0 and step % mc["snapshot_every"] == 0)

    def _wait_while_paused(self, writer: RunWriter) -> str:
        command = writer.poll_control()
        writer.heartbeat()
        while command == "pause":
            time.sleep(0.1)
            writer.heartbeat()
            command = writer.poll_control()
        return command

    def _row(self, step: int, t: float, info, theta: torch.Tensor, wall: float) -> dict:
        mc = self.cfg["metrics"]
        row = {
            "step": step,
            "t": t,
            "loss": info.loss,
            "grad_norm": info.grad_norm,
            "lr": self.cfg["train"]["lr"],
            "tau": info.step_size,
            "threshold": info.threshold,
            "wall_s": wall,
            "hvp_count": self.solver.hvp_count,
            "transient": int(step < mc["transient_steps"]),
        }
        if step % mc["metrics_every"] == 0:
            row["accuracy"] = info.accuracy if info.accuracy is not None else self.problem.accuracy(theta)
        if info.eigenvalues is not None:
            vals = sorted((float(v) for v in info.eigenvalues), key=abs, reverse=True)[: self.num_eigs]
            row["lambda_H"] = [v if v >= 0 else math.nan for v in vals]
            row["neg_eigs"] = sum(v < 0 for v in vals)
            row["eig_resid"] = info.eig_residual
            row["eig_iters"] = info.eig_iterations
            row["eig_refinements"] = info.eig_refinements
        if info.rejections is not None:
            row["ee_rejections"] = info.rejections
            row["ee_err"] = info.error_estimate
        return row

    def _snapshot(self, writer: RunWriter, step: int, theta: torch.Tensor, *, last: bool = False) -> None:
        if step in self._snapshotted:
            return
        full = last or len(self._snapshotted) % self.cfg["metrics"]["full_every"] == 0
        self._snapshotted.add(step)
        self._pre_snapshot_state = self.snapshots.state_dict()
        writer.append_snapshot(step, self.snapshots.compute(theta, full=full))
        self._checkpoint(writer, step, theta)

    def _checkpoint(self, writer: RunWriter, step: int, theta: torch.Tensor) -> None:
        """θ_step, the solver's state before step ``step`` and the snapshot computer's before
        the snapshot of ``step`` (``snapshot.*``): row ``step`` can be recomputed from it."""
        state = {**self._pre_step_state,
                 **{f"snapshot.{k}": v for k, v in self._pre_snapshot_state.items()}}
        writer.save_checkpoint(step, {"theta": theta.detach().cpu(),
                                      **{k: v.detach().cpu() for k, v in state.items()}})


def _end_run(writer: RunWriter, step: int, status: str, message: str) -> None:
    """Record how an aborted run ended. Best effort, for the exception that ends it is
    re-raised: on a full disk the event may not fit, the status still does (the writer's
    reserve), and if neither can be written the run reads ``interrupted`` once this process is
    gone."""
    try:
        writer.log_event(max(step, 0), status, message)
    except RunStoreError:
        pass
    try:
        writer.close(status, message)
    except RunStoreError:
        pass


def train(cfg: dict, run_dir: Path | str, *, on_step: Callable[[dict], None] | None = None,
          on_event: Callable[[str, str], None] | None = None) -> TrainResult:
    """Train from a resolved config into ``run_dir`` (created; must not exist or be empty)."""
    return Trainer(cfg, Path(run_dir), on_step=on_step, on_event=on_event).run()
