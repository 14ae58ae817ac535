"""Shared fixtures: tiny real configurations that train in about a second."""

from __future__ import annotations

import pytest

from engine.config import load_preset

TINY = [
    "data.image_size=8",
    "data.size=60",
    "model.depth=3",
    "model.width=12",
    "model.init_gain=0.5",
    "train.lr=0.5",
    "train.max_steps=30",
    "metrics.snapshot_every=10",
]


def tiny_config(*overrides: str, preset: str = "dice-quick") -> dict:
    """A real dice config small enough to train in about a second."""
    return load_preset(preset, [*TINY, *overrides])


@pytest.fixture
def tiny():
    return tiny_config


def pytest_configure(config):
    # Tests use tiny problems: one thread avoids OpenMP contention on small shared machines.
    import torch

    torch.set_num_threads(1)
