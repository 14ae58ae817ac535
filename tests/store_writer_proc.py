"""Writer process used by tests/test_store.py (concurrent reads and ``kill -9`` safety).

Creates a run and appends deterministic rows (:func:`expected_row`), printing each step to
stdout right after its commit, so the parent knows which steps are durable. Every
``--checkpoint-every`` steps it saves a numpy checkpoint (:func:`expected_theta`) *before*
printing the step. Runs until killed when ``--steps 0``; otherwise closes as ``finished``.
It does not import torch, so it starts quickly.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

NUM_EIGS = 3


def expected_row(step: int) -> dict:
    """The row the writer appends at ``step`` (every third step has a NaN eigenvalue)."""
    spectrum = [10.0 + step, float("nan") if step % 3 == 0 else 1.0 / (step + 1)]
    return {
        "step": step, "t": 0.01 * step, "loss": 1.0 / (step + 1), "accuracy": step / 1000.0,
        "grad_norm": float(step) ** 0.5, "lr": 0.01, "tau": 0.01, "threshold": 200.0,
        "wall_s": 0.001 * step, "hvp_count": 7 * step, "transient": int(step < 10),
        "lambda_H": spectrum,
    }


def expected_theta(step: int) -> np.ndarray:
    return np.arange(5, dtype=np.float64) * step + 0.25


def main(argv: list[str] | None = None) -> None:
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from engine.store import RunWriter

    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("run_dir", type=Path)
    parser.add_argument("--steps", type=int, default=0, help="0: append until killed")
    parser.add_argument("--checkpoint-every", type=int, default=10)
    parser.add_argument("--sleep", type=float, default=0.0)
    args = parser.parse_args(argv)

    writer = RunWriter.create(args.run_dir, config={"preset": "proc", "train": {"steps": 0}},
                              meta={"preset": "proc", "solver": "gd"}, num_eigs=NUM_EIGS,
                              heartbeat_interval=0.5)
    step = 0
    while args.steps == 0 or step < args.steps:
        writer.append_step(expected_row(step))
        writer.heartbeat()
        if step % args.checkpoint_every == 0:
            writer.save_checkpoint(step, {"theta": expected_theta(step)})
        print(step, flush=True)
        if args.sleep:
            time.sleep(args.sleep)
        step += 1
    writer.close()


if __name__ == "__main__":
    main()
