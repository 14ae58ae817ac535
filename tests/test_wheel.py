"""A regular install works anywhere: a built wheel, installed into a fresh virtual environment
outside the checkout, lists the presets and runs one from another directory (the way sweep
workers on other machines install eos-tui)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]

pytestmark = pytest.mark.timeout(600)


def _run(cmd: list[str], cwd: Path, **kw) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "EOS_TUI_RUNS")}
    env["PIP_DISABLE_PIP_VERSION_CHECK"] = "1"
    res = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=300, **kw)
    assert res.returncode == 0, f"{' '.join(map(str, cmd))}\n{res.stdout}\n{res.stderr}"
    return res


def test_wheel_installed_outside_the_checkout_runs_presets(tmp_path):
    wheels = tmp_path / "wheels"
    _run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation",
          str(REPO), "-w", str(wheels)], cwd=tmp_path)
    wheel = next(wheels.glob("eos_tui-*.whl"))
    venv = tmp_path / "venv"
    # The dependencies (torch, textual, ...) come from this interpreter; eos-tui itself only from
    # the wheel (--ignore-installed: never the editable install of the checkout).
    _run([sys.executable, "-m", "venv", "--system-site-packages", str(venv)], cwd=tmp_path)
    bin_dir = venv / "bin"
    _run([str(bin_dir / "python"), "-m", "pip", "install", "-q", "--no-deps", "--ignore-installed",
          str(wheel)], cwd=tmp_path)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    where = _run([str(bin_dir / "python"), "-c",
                  "import engine.config as c; print(c.__file__); print(c.presets_dir())"],
                 cwd=elsewhere).stdout.split()
    assert all(Path(p).is_relative_to(venv) for p in where), where
    listing = _run([str(bin_dir / "eos-tui"), "presets"], cwd=elsewhere).stdout
    for name in ("dice-quick", "dice-ce", "cifar-ce", "digits-ce"):
        assert name in listing
    out = elsewhere / "run"
    res = _run([str(bin_dir / "eos-tui"), "run", "preset", "dice-quick", "--no-ui", "--max-steps", "2",
                "--out", str(out)], cwd=elsewhere)
    assert "finished" in res.stdout
    steps = _run([str(bin_dir / "python"), "-c",
                  f"import engine; print(engine.open_run({str(out)!r}).num_steps())"], cwd=elsewhere)
    assert steps.stdout.strip() == "2"
