"""The plan of a sweep: dataset sizes × init seeds × subset seeds of one preset, one run each.

A run of the plan is named by its place, ``size=D/init=i/subset=j``, which is also its directory
under the sweep directory. Its config is the preset with the sweep's ``--set`` overrides, then
``data.size = D``, ``train.seed = seed + i`` and ``data.subset_seed = subset_seed + j`` (the
preset's seeds, 0 by default, are the offsets), and ``train.threads = 1`` unless set: a worker
is one process with one torch thread. The hash of the base config identifies the plan in the
sweep's manifest.
"""

from __future__ import annotations

import copy
import hashlib
import json
from dataclasses import dataclass, field

from engine.config import load_preset, resolve
from engine.errors import ConfigError

PER_RUN_KEYS = ("data.size",)  # chosen by --sizes, never by --set


@dataclass(frozen=True, order=True)
class RunSpec:
    """One run of a sweep, by its place in the plan."""

    size: int
    init: int
    subset: int

    @property
    def rel(self) -> str:
        """Its directory under the sweep directory, e.g. ``size=468/init=0/subset=1``."""
        return f"size={self.size}/init={self.init}/subset={self.subset}"

    @classmethod
    def parse(cls, rel: str) -> "RunSpec":
        parts = dict(p.split("=", 1) for p in rel.strip("/").split("/"))
        return cls(int(parts["size"]), int(parts["init"]), int(parts["subset"]))


def config_hash(cfg: dict) -> str:
    """A stable hash of a resolved config (canonical JSON; ``group`` is a label, not a setting)."""
    body = {k: v for k, v in cfg.items() if k != "group"}
    text = json.dumps(body, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


@dataclass
class SweepPlan:
    """Sizes × init seeds × subset seeds of ``preset`` with ``sets`` applied to every run."""

    preset: str
    sizes: list[int]
    init_seeds: int
    subset_seeds: int
    sets: list[str] = field(default_factory=list)
    base: dict = field(default_factory=dict)    # the resolved config shared by every run

    @property
    def hash(self) -> str:
        return config_hash(self.base)

    def runs(self) -> list[RunSpec]:
        """Every run, largest data set first (the longest runs start first: a shorter tail)."""
        return [RunSpec(size, i, j) for size in sorted(self.sizes, reverse=True)
                for i in range(self.init_seeds) for j in range(self.subset_seeds)]

    def config_for(self, spec: RunSpec, group: str | None = None) -> dict:
        """The resolved config of one run."""
        cfg = copy.deepcopy(self.base)
        cfg["data"]["size"] = spec.size
        cfg["train"]["seed"] = self.base["train"]["seed"] + spec.init
        cfg["data"]["subset_seed"] = self.base["data"]["subset_seed"] + spec.subset
        if group:
            cfg["group"] = group
        return cfg

    def to_json(self) -> dict:
        return {"preset": self.preset, "sizes": list(self.sizes), "init_seeds": self.init_seeds,
                "subset_seeds": self.subset_seeds, "sets": list(self.sets),
                "config_hash": self.hash, "config": self.base}

    @classmethod
    def from_json(cls, data: dict) -> "SweepPlan":
        try:
            base = resolve(data["config"])
            return cls(preset=str(data["preset"]), sizes=[int(s) for s in data["sizes"]],
                       init_seeds=int(data["init_seeds"]), subset_seeds=int(data["subset_seeds"]),
                       sets=[str(s) for s in data.get("sets", [])], base=base)
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise ConfigError(f"the sweep manifest is not a valid plan ({type(exc).__name__}: {exc})") from None

    def describe(self) -> str:
        sizes = ",".join(str(s) for s in sorted(self.sizes))
        return (f"{self.preset}: sizes {sizes} × {self.init_seeds} init seeds × "
                f"{self.subset_seeds} subset seeds = {len(self.runs())} runs")


def parse_count(value, what: str) -> int:
    """A positive integer count (``--init-seeds``, ``--workers`` ...), else a ConfigError."""
    try:
        if isinstance(value, bool):
            raise ValueError
        n = int(str(value).strip())
    except (TypeError, ValueError):
        raise ConfigError(f"{what} must be a positive integer, got {value!r}") from None
    if n < 1:
        raise ConfigError(f"{what} must be a positive integer, got {n}")
    return n


def parse_sizes(text: str | None) -> list[int] | None:
    """``"200,400,800"`` → ``[200, 400, 800]`` (sorted, unique); ``None`` stays ``None``."""
    if text is None:
        return None
    sizes = []
    for item in str(text).replace(" ", "").split(","):
        if not item:
            continue
        try:
            size = int(item)
        except ValueError:
            raise ConfigError(f"--sizes expects positive integers separated by commas, got {item!r}") from None
        if size < 1:
            raise ConfigError(f"--sizes: every dataset size must be a positive integer, got {size}")
        sizes.append(size)
    if not sizes:
        raise ConfigError("--sizes is empty: give positive integers separated by commas, e.g. 468,937")
    return sorted(set(sizes))


def make_plan(preset: str, *, sizes: list[int] | None, init_seeds, subset_seeds,
              sets: list[str] | None = None) -> SweepPlan:
    """Validate and resolve a sweep plan (nothing is written).

    ``sizes=None`` takes the paper's Table-1 sizes of the preset's data set. Raises
    :class:`ConfigError`/:class:`DataError` for an unknown preset or setting, a non-positive
    count, or a size larger than the data set.
    """
    init_seeds = parse_count(init_seeds, "--init-seeds")
    subset_seeds = parse_count(subset_seeds, "--subset-seeds")
    sets = list(sets or [])
    for item in sets:
        key = item.partition("=")[0].strip()
        if key in PER_RUN_KEYS:
            raise ConfigError(f"--set {key} is chosen per run by the sweep; use --sizes instead")
    overrides = [] if any(s.partition("=")[0].strip() == "train.threads" for s in sets) else ["train.threads=1"]
    base = load_preset(preset, overrides + sets)
    from engine.data import dataset_module

    module = dataset_module(base["data"]["name"])
    n_total = int(module.N_TRAIN)
    if sizes is None:
        sizes = [int(s) for s in module.PAPER_SIZES]
    else:
        sizes = sorted(set(int(s) for s in sizes))
        if any(s < 1 for s in sizes):
            raise ConfigError(f"--sizes: every dataset size must be a positive integer, got {min(sizes)}")
    too_big = [s for s in sizes if s > n_total]
    if too_big:
        raise ConfigError(f"--sizes: {', '.join(map(str, too_big))} larger than the {base['data']['name']} "
                          f"training set ({n_total} samples)")
    base["data"]["size"] = 0  # per run
    return SweepPlan(preset=preset, sizes=sizes, init_seeds=init_seeds, subset_seeds=subset_seeds,
                     sets=sets, base=base)
