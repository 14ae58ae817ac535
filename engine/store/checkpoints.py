"""Weight checkpoints and the training tensors of a run (``checkpoints/``, ``data.safetensors``).

A checkpoint is ``checkpoints/step_XXXXXXXX.safetensors`` (step zero-padded to 8 digits), written
through :func:`engine.store.files.atomic_write`: it appears under its final name only when
complete, and leftover ``*.tmp`` files are ignored by :func:`checkpoint_steps`.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from engine.errors import RunStoreError
from engine.store.files import atomic_write, encode_tensors, is_torch_tensor, load_tensors
from engine.store.schema import CHECKPOINT_DIR, DATA_FILE, one_line

if TYPE_CHECKING:
    import torch

_CHECKPOINT_RE = re.compile(r"^step_(\d+)\.safetensors$")


def checkpoint_path(run_dir: Path, step: int) -> Path:
    return Path(run_dir) / CHECKPOINT_DIR / f"step_{int(step):08d}.safetensors"


def save_checkpoint(run_dir: Path, step: int, tensors: Mapping[str, Any]) -> Path:
    """Atomically write the checkpoint of ``step``; values are torch tensors or numpy arrays."""
    step = int(step)
    if step < 0:
        raise ValueError(f"checkpoint step must be >= 0, got {step}")
    path = checkpoint_path(run_dir, step)
    atomic_write(path, encode_tensors(tensors, {"step": str(step)}))
    return path


def checkpoint_steps(run_dir: Path) -> list[int]:
    """Steps with a complete checkpoint, ascending (``*.tmp`` leftovers are ignored)."""
    try:
        names = os.listdir(Path(run_dir) / CHECKPOINT_DIR)
    except FileNotFoundError:
        return []
    except OSError as exc:
        raise RunStoreError(f"cannot list checkpoints of {run_dir}: {one_line(exc)}") from exc
    return sorted(int(m.group(1)) for m in map(_CHECKPOINT_RE.match, names) if m)


def format_steps(steps: Sequence[int]) -> str:
    """A short list of steps for a message (the first five and the last three of a long one)."""
    if not steps:
        return "none"
    if len(steps) <= 10:
        return ", ".join(str(s) for s in steps)
    head = ", ".join(str(s) for s in steps[:5])
    tail = ", ".join(str(s) for s in steps[-3:])
    return f"{head}, ..., {tail} ({len(steps)} in all)"


def load_checkpoint(run_dir: Path, step: int | None = None) -> dict[str, "torch.Tensor"]:
    """Tensors of the checkpoint at ``step`` (``None``: the latest)."""
    steps = checkpoint_steps(run_dir)
    if not steps:
        raise RunStoreError(f"run {run_dir} has no checkpoints")
    if step is None:
        step = steps[-1]
    elif int(step) not in steps:
        raise RunStoreError(f"no checkpoint at step {step} in {run_dir}; checkpoints exist "
                            f"at steps {format_steps(steps)}")
    return load_tensors(checkpoint_path(run_dir, step), "checkpoint")


def save_training_data(run_dir: Path, X: Any, y: Any, indices: Any) -> None:
    """Atomically write ``data.safetensors`` with ``X``, ``y`` and int64 ``indices``."""
    if is_torch_tensor(indices):
        import torch

        indices = indices.detach().to(torch.int64)
    else:
        indices = np.asarray(indices, dtype=np.int64)
    atomic_write(Path(run_dir) / DATA_FILE,
                 encode_tensors({"X": X, "y": y, "indices": indices}, None))


def load_training_data(run_dir: Path) -> dict[str, "torch.Tensor"]:
    """The exact training tensors ``X``, ``y``, ``indices`` of the run."""
    path = Path(run_dir) / DATA_FILE
    if not path.is_file():
        raise RunStoreError(f"run {run_dir} has no training data ({DATA_FILE} is missing)")
    return load_tensors(path, "training data")
