"""Regenerate the SVG screenshots of the real app from a real short training run.

    python -m eos_tui.screenshots [--out screenshots/] [--steps 200] [--set key=value ...] [--sweep SWEEP]

Trains a GD and an exponential-Euler run of the ``dice-quick`` presets (shrunk by the
overrides below so that it takes a minute or two on a laptop CPU) into a temporary runs folder,
then drives the app headless (``App.run_test``) and saves ``monitor.svg``, ``monitor-ee.svg``,
``monitor-claims.svg`` (the paper's claims panel, ``c``), ``replay.svg``, ``compare.svg``,
``runs.svg`` and ``help.svg``; with ``--sweep`` (a finished sweep directory, e.g. the CPU sweep of
docs/reproduction.md) also ``sweep.svg``.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
from pathlib import Path

SIZE = (160, 48)
OVERRIDES = ["model.width=32", "model.depth=3", "data.size=500", "metrics.snapshot_every=20", "eig.every=2"]


def train_runs(root: Path, steps: int, extra: list[str]) -> tuple[Path, Path]:
    import torch

    from engine.config import load_preset
    from engine.trainer import train

    torch.set_num_threads(max(1, min(4, os.cpu_count() or 1)))
    paths = []
    for preset, name in (("dice-quick", "gd"), ("dice-quick-ee", "ee")):
        cfg = load_preset(preset, OVERRIDES + [f"train.max_steps={steps}"] + extra)
        print(f"training {preset} ({steps} steps) ...", file=sys.stderr)
        train(cfg, root / name)
        paths.append(root / name)
    return paths[0], paths[1]


async def shoot(app, path: Path, keys: list[str], size=SIZE, wait_rows: int = 0) -> None:
    from eos_tui.app.pilot import settle

    async with app.run_test(size=size) as pilot:
        await settle(pilot, timeout=60)
        if wait_rows:
            table = app.screen.query_one("#runs")
            for _ in range(400):
                if table.row_count >= wait_rows:
                    break
                await pilot.pause(0.05)
        for key in keys:
            await pilot.press(key)
            await settle(pilot, timeout=60)
        app.clear_notifications()
        await pilot.pause()
        app.save_screenshot(filename=path.name, path=str(path.parent))
    print(f"wrote {path}", file=sys.stderr)


async def shoot_all(gd: Path, ee: Path, root: Path, out: Path, sweep: Path | None = None) -> None:
    from eos_tui.app import build_app

    await shoot(build_app("monitor", [gd]), out / "monitor.svg", [])
    await shoot(build_app("monitor", [ee]), out / "monitor-ee.svg", ["e"])
    await shoot(build_app("monitor", [ee]), out / "monitor-claims.svg", ["c"])
    await shoot(build_app("replay", [gd]), out / "replay.svg", ["home"] + ["pagedown"])
    await shoot(build_app("compare", [gd, ee]), out / "compare.svg", ["left"] * 40)
    cwd = Path.cwd()
    os.chdir(root.parent)
    try:
        await shoot(build_app("browser", [root]), out / "runs.svg", ["c"], size=(160, 20), wait_rows=2)
    finally:
        os.chdir(cwd)
    await shoot(build_app("monitor", [gd]), out / "help.svg", ["question_mark"])
    if sweep is not None:
        await shoot(build_app("sweep", [sweep]), out / "sweep.svg", [], size=(170, 44))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("screenshots"))
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument("--runs", type=Path, default=None,
                        help="keep the runs in this folder (gd/ and ee/); reuse them if they exist")
    parser.add_argument("--sweep", type=Path, default=None, help="also shoot the sweep screen of this sweep directory")
    args = parser.parse_args(argv)
    if args.sweep is not None and not args.sweep.is_dir():
        parser.error(f"--sweep {args.sweep} is not a directory")
    out = args.out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="eos-tui-shots-") as tmp:
        if args.runs and (args.runs / "gd").exists() and (args.runs / "ee").exists():
            root = args.runs.resolve()
            gd, ee = root / "gd", root / "ee"
        elif args.runs:
            root = args.runs.resolve()
            gd, ee = train_runs(root, args.steps, args.overrides)
        else:
            root = Path(tmp) / "runs"
            gd, ee = train_runs(root, args.steps, args.overrides)
        asyncio.run(shoot_all(gd, ee, root, out, args.sweep.resolve() if args.sweep else None))
    return 0


if __name__ == "__main__":
    sys.exit(main())
