"""Regenerate docs/gallery/: the figures of real runs trained on this machine.

    python -m eos_tui.gallery [--out docs/gallery] [--runs DIR] [--sweep SWEEP]

Trains, with the real engine and unchanged presets apart from the overrides below:

* ``compare/gd`` and ``compare/ee`` — ``dice-quick`` with GD and with exponential Euler from
  the same data and initial weights (what ``eos-tui run compare dice-quick`` trains), up to
  ``STEPS`` steps with a snapshot every ``SNAPSHOT_EVERY``;
* ``sweep/`` — the CPU sweep of docs/reproduction.md (``eos-tui sweep dice-showcase --sizes
  64,128,256,512 --init-seeds 2 --subset-seeds 2 --workers 2``, :data:`SWEEP_ARGS`), for the power
  law, unless ``--sweep`` names a sweep already run, whose runs are drawn instead;

then draws every figure with :mod:`engine.figures` (as ``eos-tui plot ... --figure all`` does) and
the monitor's view with the ``p`` key of the real app (headless), into ``--out`` at 100 dpi.
Runs already present under ``--runs`` are reused (the sweep command skips finished runs). About
18 minutes on 2 idle cores, 13½ of them the sweep.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import sys
import tempfile
from pathlib import Path

STEPS = 300
SNAPSHOT_EVERY = 20
SWEEP_ARGS = ["dice-showcase", "--sizes", "64,128,256,512", "--init-seeds", "2", "--subset-seeds", "2",
              "--workers", "2"]
DPI = 100


def train_runs(root: Path, sweep: Path | None = None) -> tuple[list[Path], Path]:
    """The compare pair and the sweep folder (trained unless already there, or ``sweep``)."""
    import torch

    from engine.config import load_preset
    from engine.store import is_run_dir
    from engine.trainer import train

    torch.set_num_threads(max(1, min(4, os.cpu_count() or 1)))

    def once(preset: str, path: Path, overrides: list[str]) -> Path:
        if not is_run_dir(path):
            if path.exists():
                shutil.rmtree(path)
            print(f"training {preset} {' '.join(overrides)} -> {path}", file=sys.stderr)
            train(load_preset(preset, overrides), path)
        return path

    pair = [once("dice-quick", root / "compare" / solver,
                 [f"train.solver={solver}", f"train.max_steps={STEPS}", f"metrics.snapshot_every={SNAPSHOT_EVERY}"])
            for solver in ("gd", "ee")]
    if sweep is not None:
        return pair, sweep
    import subprocess

    print(f"sweep {' '.join(SWEEP_ARGS)} -> {root / 'sweep'}", file=sys.stderr)
    subprocess.run([sys.executable, "-m", "eos_tui.cli", "sweep", *SWEEP_ARGS, "--out", str(root / "sweep"),
                    "--no-ui"], check=True)
    return pair, root / "sweep"


async def press_p(run: Path, out: Path) -> None:
    """The monitor's view of a finished run, saved by the real app's `p` key."""
    from eos_tui.app import build_app
    from eos_tui.app.pilot import settle

    app = build_app("replay", [run])
    async with app.run_test(size=(160, 48)) as pilot:
        await settle(pilot)
        screen = app.screen
        await pilot.press("p")
        for _ in range(1200):
            if screen.saved_figures:
                break
            await pilot.pause(0.1)
        for path in screen.saved_figures[-1]:
            shutil.copy(path, out / f"p-replay{path.suffix}")
        app.exit(0)


def draw(pair: list[Path], sweep: Path, out: Path) -> None:
    from engine.analysis.series import load_views
    from engine.figures.output import save_figure
    from engine.figures.registry import make_figure
    from engine.figures.style import FigureOptions

    opts = FigureOptions(dpi=DPI)
    gd, both = load_views(pair[:1]), load_views(pair)
    for name in ("sharpness", "overlap", "alignment", "layers", "factors"):
        save_figure(make_figure(name, gd, opts), out / f"gd-{name}.png")
    save_figure(make_figure("sharpness", load_views(pair[1:]), FigureOptions(dpi=DPI, xaxis="t")),
                out / "ee-sharpness.png")
    save_figure(make_figure("compare", both, opts), out / "compare.png")
    sweep_runs = load_views([sweep])
    save_figure(make_figure("powerlaw", sweep_runs, opts), out / "powerlaw.png")
    save_figure(make_figure("alignment", sweep_runs, FigureOptions(dpi=DPI, layers=(1,))), out / "sweep-alignment.png")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, default=Path("docs/gallery"))
    parser.add_argument("--runs", type=Path, default=None, help="where the runs are trained (kept); default: a temporary folder")
    parser.add_argument("--sweep", type=Path, default=None,
                        help="draw the power-law figures from this sweep directory instead of training a small one")
    args = parser.parse_args(argv)
    if args.sweep is not None and not args.sweep.is_dir():
        parser.error(f"--sweep {args.sweep} is not a directory")
    out = args.out
    out.mkdir(parents=True, exist_ok=True)
    tmp = None
    root = args.runs
    if root is None:
        tmp = tempfile.mkdtemp(prefix="eos-gallery-")
        root = Path(tmp)
    try:
        pair, sweep = train_runs(root, args.sweep)
        draw(pair, sweep, out)
        asyncio.run(press_p(pair[0], out))
    finally:
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)
    for path in sorted(out.glob("*.png")):
        print(f"{path}  {path.stat().st_size // 1024} KB")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
