"""Run configuration: defaults, TOML presets and ``--set key=value`` overrides.

A config is a nested dict with the sections below; every key has a default in
:data:`DEFAULTS`, so a preset only states what differs. Values are validated and typed when
the config is resolved; any mistake is a :class:`~engine.errors.ConfigError` with one line
(an unknown key suggests the closest valid one).

Sections (spec references in brackets):

- ``model``: ``depth`` L, ``width``, ``activation`` (elu/relu/tanh), ``init`` (normal/uniform),
  ``init_gain`` (**[choice]** 0.75, decided by measurement: docs/metrics.md §5; the spec's
  first choice was √2, under which the paper net does not sharpen), ``dtype`` (float64/float32).
- ``data``: ``name`` (dice/digits/cifar10/af/sst), ``size`` (0 = the smallest paper size),
  ``subset_seed`` (separate from the init seed, §8), ``image_size`` (Dice), ``data_dir``.
- ``train``: ``criterion`` (ce/mse), ``solver`` (gd/ee/rk4), ``lr`` η (GD step size; maximum
  step for exponential Euler and RK4): a number, or ``"auto"``: η = ``lr_factor`` · 2/λ1(θ0)
  from a certified eigen-solve at initialisation (``engine.lr_rule``; the resolved η and the
  rule are recorded in the run), ``lr_factor`` (> 0; used only by ``lr = "auto"``), ``seed``
  (init), ``max_steps``, ``expected_steps`` (steps a full run of the preset took when measured,
  for the cost estimate of ``eos-tui presets``; 0 = unknown), ``max_time_s``, ``target_loss``
  (0 = the criterion's default: 0.01 CE, 0.02 MSE), ``divergence_factor`` (stop when the
  loss exceeds this multiple of its start), ``device``, ``chunk_size`` (samples per chunk in
  curvature products, 0 = all), ``rk4_alpha`` (RK4: τ = α/λ1), ``threads`` (torch CPU
  threads; 0 = automatic: one thread for small problems, where thread start-up and contention
  with the UI cost more than they gain).
- ``eig``: ``k`` (exponential Euler uses the top k+1 eigenpairs, 0 = number of outputs c),
  ``num`` (eigenvalues tracked for GD, 0 = k+1), ``every`` (GD: λ1 every N steps),
  ``residual_tol`` (the per-step certificate: a step's tracked Ritz pairs are refined until
  every relative residual ‖Hu − λu‖/|λ| is at most this; 0 = no certificate, stop by ``tol``),
  ``tol`` (only with ``residual_tol = 0``: stop when the top Ritz values change by less than
  this, relatively), ``max_iters`` (Rayleigh–Ritz iterations of the first, cold solve),
  ``warm_iters`` (the most iterations of a warm-started call: the first one's products come
  from the fused gradient pass, the cost floor; the others are refinements, taken only while a
  residual is above ``residual_tol``), ``oversample`` (extra block columns for convergence),
  ``dtype`` (``same``, or ``float32``: the tracked eigenpairs of a float64 run come from
  float32 Hessian-vector products while the gradient, the update and the trajectory stay
  float64; then a step is one float64 gradient pass plus a float32 fused pass instead of one
  float64 fused pass — see ``eos-tui bench step``).
- ``ee``: ``warmup_iters``, ``warmup_factor``: for the first ``warmup_iters`` steps the maximum
  step size is ``warmup_factor · η`` (e.g. 0.1), as in the reference ``stable-solvers``;
  ``order``: 2 (default) corrects each exponential Euler step to second order (ETD2RK) with the
  gradient its error estimate needs anyway; 1 takes the plain exponential Euler step (the
  paper's rule, first order); ``tol``: the step-size controller's bound on the embedded
  estimate of the exponential Euler step's relative local error (‖e‖ ≤ tol·‖Δθ‖; with
  ``order = 2`` the step taken is the corrected one, far more accurate than that bound);
  ``max_rejections``: trials of one step before the run stops ``diverged``.
- ``metrics``: ``metrics_every`` (cheap scalars), ``snapshot_every`` (full metric set +
  checkpoint, §7), ``transient_steps`` (first steps flagged, §7), ``layer_metrics`` (bool),
  ``residual`` (compute λ1(H−G) at snapshots), ``full_every`` (every N-th snapshot is *full*;
  the others are *cheap*: all but λ1(H−G), the dearest eigen-solve; the first and the last
  are always full, and ``snapshot_full`` records which is which), ``eig_tol`` (the relative residual every
  snapshot eigenvalue is solved to: λ1(G), λ1(H−G), the per-sample ‖J_i‖ pairs),
  ``snapshot_eig_iters`` (the cap of products of one snapshot eigen-solve; a value that did not
  reach ``eig_tol`` within it is recorded unconverged), ``norm_tol`` (the per-sample ‖J_i‖
  Lanczos also stops when its top Ritz value changes by less than this, relatively).
"""

from __future__ import annotations

import copy
import difflib
import math
import tomllib
from pathlib import Path
from typing import Any

from engine.errors import ConfigError

DEFAULTS: dict[str, dict[str, Any]] = {
    "model": {
        "depth": 6,
        "width": 512,
        "activation": "elu",
        "init": "normal",
        "init_gain": 0.75,
        "dtype": "float64",
    },
    "data": {
        "name": "dice",
        "size": 0,
        "subset_seed": 0,
        "image_size": 32,
        "data_dir": "",
    },
    "train": {
        "criterion": "ce",
        "solver": "gd",
        "lr": 0.01,
        "lr_factor": 0.5,
        "seed": 0,
        "max_steps": 10000,
        "expected_steps": 0,
        "max_time_s": 0.0,
        "target_loss": 0.0,
        "divergence_factor": 1000.0,
        "device": "cpu",
        "chunk_size": 0,
        "rk4_alpha": 0.1,
        "threads": 0,
    },
    "eig": {
        "k": 0,
        "num": 0,
        "every": 1,
        "tol": 1e-3,
        "residual_tol": 1e-2,
        "max_iters": 20,
        "warm_iters": 10,
        "oversample": 0,
        "dtype": "same",
    },
    "ee": {
        "warmup_iters": 0,
        "warmup_factor": 1.0,
        "tol": 0.1,
        "max_rejections": 30,
        "order": 2,
    },
    "metrics": {
        "metrics_every": 1,
        "snapshot_every": 100,
        "transient_steps": 10,
        "layer_metrics": True,
        "residual": True,
        "norm_tol": 1e-8,
        "snapshot_eig_iters": 100,
        "eig_tol": 1e-3,
        "full_every": 1,
    },
}

TOP_LEVEL = {"preset": "", "description": ""}

CHOICES: dict[str, tuple[str, ...]] = {
    "model.activation": ("elu", "relu", "tanh"),
    "model.init": ("normal", "uniform"),
    "model.dtype": ("float64", "float32"),
    "eig.dtype": ("same", "float32"),
    "data.name": ("dice", "digits", "cifar10", "af", "sst"),
    "train.criterion": ("ce", "mse"),
    "train.solver": ("gd", "ee", "rk4"),
    "train.device": ("cpu", "cuda"),
}

POSITIVE = {"model.depth", "model.width", "train.lr", "model.init_gain", "data.image_size",
            "eig.every", "eig.max_iters", "eig.warm_iters", "eig.tol", "metrics.metrics_every",
            "metrics.snapshot_every", "metrics.norm_tol", "metrics.snapshot_eig_iters", "train.divergence_factor", "train.rk4_alpha",
            "ee.warmup_factor", "ee.tol", "ee.max_rejections", "metrics.eig_tol", "metrics.full_every", "train.lr_factor"}
BELOW_ONE = {"eig.tol", "eig.residual_tol", "ee.tol", "metrics.eig_tol", "metrics.norm_tol"}  # relative tolerances
NON_NEGATIVE = {"data.size", "train.max_steps", "train.expected_steps", "train.max_time_s", "train.target_loss",
                "train.chunk_size", "eig.k", "eig.num", "eig.oversample", "eig.residual_tol", "ee.warmup_iters",
                "metrics.transient_steps", "data.subset_seed", "train.seed", "train.threads"}

AUTO_LR = "auto"
"""``train.lr = "auto"``: η = ``train.lr_factor`` · 2/λ1(θ0), resolved when training starts."""

SOLVER_NAMES = {"gd": "gradient descent", "ee": "exponential Euler", "rk4": "RK4 gradient flow"}


def all_keys() -> list[str]:
    """Every settable ``section.key``."""
    return [f"{s}.{k}" for s, sec in DEFAULTS.items() for k in sec] + list(TOP_LEVEL)


def _suggest(key: str) -> str:
    close = difflib.get_close_matches(key, all_keys(), n=1, cutoff=0.5)
    if not close and "." in key:
        close = difflib.get_close_matches(key.split(".")[-1], [k.split(".")[-1] for k in all_keys()], n=1)
        close = [k for k in all_keys() if close and k.endswith("." + close[0])][:1]
    return f" (did you mean {close[0]!r}?)" if close else ""


def _coerce(key: str, value: Any, default: Any) -> Any:
    """Convert ``value`` to the type of ``default`` (strings from ``--set`` are parsed)."""
    if isinstance(default, bool):
        if isinstance(value, bool):
            return value
        text = str(value).strip().lower()
        if text in ("true", "1", "yes", "on"):
            return True
        if text in ("false", "0", "no", "off"):
            return False
        raise ConfigError(f"{key} must be true or false, got {value!r}")
    if isinstance(default, int):
        if isinstance(value, bool):
            raise ConfigError(f"{key} must be an integer, got {value!r}")
        if isinstance(value, int):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
        try:
            return int(str(value).strip().replace("_", ""))
        except ValueError:
            raise ConfigError(f"{key} must be an integer, got {value!r}") from None
    if isinstance(default, float):
        if isinstance(value, bool):
            raise ConfigError(f"{key} must be a number, got {value!r}")
        try:
            out = float(value)
        except (TypeError, ValueError):
            raise ConfigError(f"{key} must be a number, got {value!r}") from None
        if not math.isfinite(out):
            raise ConfigError(f"{key} must be a finite number, got {value!r}")
        return out
    if not isinstance(value, str):
        raise ConfigError(f"{key} must be a string, got {value!r}")
    return value


def _set(cfg: dict, key: str, value: Any) -> None:
    if key == "train.lr":
        if isinstance(value, str) and value.strip().lower() == AUTO_LR:
            cfg["train"]["lr"] = AUTO_LR
            return
        try:
            cfg["train"]["lr"] = _coerce(key, value, DEFAULTS["train"]["lr"])
        except ConfigError:
            raise ConfigError(f'train.lr must be a number or "{AUTO_LR}", got {value!r}') from None
        return
    if key in TOP_LEVEL:
        cfg[key] = str(value)
        return
    section, _, name = key.partition(".")
    if section not in DEFAULTS or name not in DEFAULTS[section]:
        raise ConfigError(f"unknown setting {key!r}{_suggest(key)}")
    cfg[section][name] = _coerce(key, value, DEFAULTS[section][name])


def _validate(cfg: dict) -> None:
    for key, choices in CHOICES.items():
        section, name = key.split(".")
        if cfg[section][name] not in choices:
            raise ConfigError(f"{key} must be one of {', '.join(choices)}, got {cfg[section][name]!r}")
    for key in POSITIVE:
        section, name = key.split(".")
        if key == "train.lr" and cfg[section][name] == AUTO_LR:
            continue
        if not cfg[section][name] > 0:
            raise ConfigError(f"{key} must be > 0, got {cfg[section][name]!r}")
    for key in NON_NEGATIVE:
        section, name = key.split(".")
        if cfg[section][name] < 0:
            raise ConfigError(f"{key} must be >= 0, got {cfg[section][name]!r}")
    if cfg["ee"]["order"] not in (1, 2):
        raise ConfigError(f"ee.order must be 1 (exponential Euler) or 2 (with its ETD2 correction), "
                          f"got {cfg['ee']['order']!r}")
    for key in BELOW_ONE:
        section, name = key.split(".")
        if not cfg[section][name] < 1:
            raise ConfigError(f"{key} is a relative tolerance and must be below 1, got {cfg[section][name]!r}")
    if cfg["data"]["image_size"] < 8:
        raise ConfigError(f"data.image_size must be at least 8, got {cfg['data']['image_size']}")


def resolve(raw: dict, overrides: list[str] | None = None) -> dict:
    """Defaults ← ``raw`` (a parsed preset) ← ``overrides`` (``key=value`` strings), validated."""
    cfg = copy.deepcopy(DEFAULTS)
    cfg.update(copy.deepcopy(TOP_LEVEL))
    for key, value in raw.items():
        if isinstance(value, dict):
            if key not in DEFAULTS:
                raise ConfigError(f"unknown section [{key}]{_suggest(key)}")
            for name, v in value.items():
                _set(cfg, f"{key}.{name}", v)
        else:
            _set(cfg, key, value)
    for item in overrides or []:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"--set expects key=value, got {item!r}")
        _set(cfg, key.strip(), value.strip())
    _validate(cfg)
    return cfg


# ---------------------------------------------------------------------------------------------
# Presets


PACKAGED_PRESETS = "_presets"  # engine/_presets/: the copy of presets/ that a build ships


def presets_dir() -> Path:
    """The folder of ``*.toml`` presets.

    An installed package (wheel, ``pip install .``) carries a copy of the repository's
    ``presets/`` as ``engine/_presets/`` (made by the build, see ``setup.py``); a checkout or an
    editable install reads the repository's ``presets/`` itself, the one place to edit them.
    """
    return find_presets_dir(Path(__file__).resolve().parent)


def find_presets_dir(package: Path) -> Path:
    """The presets of the ``engine`` package at ``package``: packaged copy first, then checkout."""
    packaged, checkout = package / PACKAGED_PRESETS, package.parent / "presets"
    if packaged.is_dir():
        return packaged
    if checkout.is_dir():
        return checkout
    raise ConfigError(f"no presets found: neither {packaged} (an installed package) nor {checkout} "
                      "(a checkout) exists; reinstall eos-tui")


def preset_names() -> list[str]:
    return sorted(p.stem for p in presets_dir().glob("*.toml"))


def read_preset(name: str) -> dict:
    """The raw (unresolved) TOML of preset ``name``."""
    path = presets_dir() / f"{name}.toml"
    names = preset_names()
    if not path.is_file():
        close = difflib.get_close_matches(name, names, n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise ConfigError(f"unknown preset {name!r}{hint}; valid presets: {', '.join(names)}")
    try:
        raw = tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"preset {name!r} is not valid TOML: {exc}") from None
    raw.setdefault("preset", name)
    return raw


def load_preset(name: str, overrides: list[str] | None = None) -> dict:
    """Resolved config of preset ``name`` with ``overrides`` applied."""
    return resolve(read_preset(name), overrides)


def load_config_file(path: Path, overrides: list[str] | None = None) -> dict:
    """Resolved config from a TOML file (e.g. a run's ``config.toml``)."""
    try:
        raw = tomllib.loads(Path(path).read_text())
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"cannot read config {path}: {exc}") from None
    return resolve(raw, overrides)


def lr_is_auto(cfg: dict) -> bool:
    """Whether η is set by the rule at initialisation (``train.lr = "auto"``)."""
    return cfg["train"]["lr"] == AUTO_LR


def describe_lr(cfg: dict) -> str:
    """η for listings: the number, or ``auto ×F`` (η = F · 2/λ1(θ0))."""
    if lr_is_auto(cfg):
        return f"auto ×{cfg['train']['lr_factor']:g}"
    return f"{cfg['train']['lr']:g}"


def stiff_dim(cfg: dict, num_outputs: int) -> int:
    """k: exponential Euler integrates the top k directions exactly (default c, spec §6)."""
    return cfg["eig"]["k"] or num_outputs


def num_eigs(cfg: dict, num_outputs: int) -> int:
    """How many top Hessian eigenvalues the run tracks: k+1 (GD: ``eig.num`` if set)."""
    if cfg["train"]["solver"] != "ee" and cfg["eig"]["num"]:
        return cfg["eig"]["num"]
    return stiff_dim(cfg, num_outputs) + 1
