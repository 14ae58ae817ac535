"""``scaling``: step time against n and width, peak memory, and what chunking does to it.

Every point runs in its own child process (``python -m engine.bench.scaling --point JSON``) so
that its memory high-water mark (``ru_maxrss`` / ``VmHWM``) belongs to that point alone. A point
builds a CIFAR-shaped random problem (timing only), takes one untimed step and then times warm
exponential Euler steps whose eigen-solve is capped at one Rayleigh–Ritz iteration (k+1 = 11
HVPs in the fused pass: the steady-state cost of a converged warm step, independent of how
many iterations the stopping rule would ask for at that point of a trajectory).

Reported: seconds per step, seconds per step per sample, and the peak resident memory above
the process's baseline after building the problem. The exponent of step time in n is fitted by
least squares in log–log space (1 = linear).
"""

from __future__ import annotations

import json
import math
import os
import resource
import subprocess
import sys
from pathlib import Path

NAME = "scaling"
DESCRIPTION = "step time vs n and width, peak memory, chunking"


def _rss_kib() -> tuple[int, int]:
    """(current RSS, high-water mark) in KiB from /proc (falls back to ru_maxrss)."""
    cur = hwm = 0
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("VmRSS:"):
                    cur = int(line.split()[1])
                elif line.startswith("VmHWM:"):
                    hwm = int(line.split()[1])
    except OSError:
        pass
    if not hwm:
        hwm = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return cur, hwm


def _reset_hwm() -> bool:
    """Reset the kernel's VmHWM (Linux: write 5 to /proc/self/clear_refs); True if it worked."""
    try:
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")
        return True
    except OSError:
        return False


def measure_point(point: dict) -> dict:
    """Run one point in this process (called in the child)."""
    import time

    import torch

    from engine import blas
    from engine.bench.common import make_ee, median, random_setup

    torch.set_num_threads(int(point.get("threads", 1)))
    blas.set_threads(int(point.get("threads", 1)))
    setup = random_setup(n=point["n"], d0=point["d0"], width=point["width"], depth=point["depth"],
                         chunk_size=point.get("chunk"))
    ee = make_ee(setup, k=10, lr=0.05, max_iters=1, cold_max_iters=1)
    theta = setup.theta0.clone()
    ee.tracker.current_block(theta)
    base, _ = _rss_kib()
    reset = _reset_hwm()
    theta, _ = ee.step(theta)  # untimed
    times = []
    for _ in range(point["repeats"]):
        t0 = time.perf_counter()
        theta, _ = ee.step(theta)
        times.append(time.perf_counter() - t0)
    cur, hwm = _rss_kib()
    return {"step_s": median(times), "times": times, "base_MiB": base / 1024, "peak_MiB": hwm / 1024,
            "extra_MiB": (hwm - base) / 1024 if reset else math.nan, "hwm_reset": reset,
            "P": setup.spec.num_params}


def run_point(point: dict, timeout: float = 1800) -> dict:
    root = Path(__file__).resolve().parents[2]
    env = dict(os.environ)
    env["PYTHONPATH"] = str(root) + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    proc = subprocess.run([sys.executable, "-m", "engine.bench.scaling", "--point", json.dumps(point)],
                          capture_output=True, text=True, timeout=timeout, cwd=str(root), env=env)
    if proc.returncode != 0:
        raise RuntimeError(f"scaling point {point} failed: {proc.stderr[-1000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _fit_exponent(xs, ys) -> float:
    lx = [math.log(x) for x in xs]
    ly = [math.log(y) for y in ys]
    mx, my = sum(lx) / len(lx), sum(ly) / len(ly)
    sxx = sum((a - mx) ** 2 for a in lx)
    return sum((a - mx) * (b - my) for a, b in zip(lx, ly)) / sxx if sxx > 0 else math.nan


def run(quick: bool = False, console=None) -> dict:
    import torch

    from engine.bench.common import BenchResult, tier

    res = BenchResult(NAME, DESCRIPTION)
    level = tier(quick)
    threads = torch.get_num_threads()
    if level == "quick":
        d0, depth, width, repeats = 96, 4, 32, 2
        ns, widths, chunk_n, chunk = [64, 256], [32, 64], 256, 64
    elif level == "medium":
        d0, depth, width, repeats = 768, 6, 128, 2
        ns, widths, chunk_n, chunk = [390, 781, 1562, 3125, 6250], [64, 128, 256, 512], 6250, 512
    else:
        d0, depth, width, repeats = 3072, 6, 512, 2
        ns, widths, chunk_n, chunk = [390, 781, 1562, 3125, 6250], [64, 128, 256, 512], 6250, 512
    res.params = {"tier": level, "input": d0, "depth": depth, "width": width, "k+1": 11,
                  "repeats": repeats, "threads": threads, "dtype": "float64",
                  "step": "warm exp-Euler step, eigen-solve capped at 1 iteration"}
    base = {"d0": d0, "depth": depth, "repeats": repeats, "threads": threads}
    rows_n = []
    for n in ns:
        r = run_point({**base, "n": n, "width": width})
        rows_n.append({"n": n, "width": width, "chunk": None, **r, "us_per_sample": 1e6 * r["step_s"] / n})
        if console is not None:
            console.log(f"scaling: n={n} width={width}: {r['step_s']:.3g} s")
    rows_w = []
    for w in widths:
        if w == width:  # the first n-point is this width point
            rows_w.append(dict(rows_n[0]))
            continue
        r = run_point({**base, "n": ns[0], "width": w})
        rows_w.append({"n": ns[0], "width": w, "chunk": None, **r})
        if console is not None:
            console.log(f"scaling: n={ns[0]} width={w}: {r['step_s']:.3g} s")
    rows_c = [dict(next(r for r in rows_n if r["n"] == chunk_n))] if chunk_n in ns else []
    r = run_point({**base, "n": chunk_n, "width": width, "chunk": chunk})
    rows_c.append({"n": chunk_n, "width": width, "chunk": chunk, **r, "us_per_sample": 1e6 * r["step_s"] / chunk_n})
    cols = ["n", "width", "chunk", "P", "step_s", "us_per_sample", "extra_MiB", "peak_MiB"]
    res.table("step time and memory vs n", rows_n, cols)
    res.table(f"step time and memory vs width (n={ns[0]})", rows_w,
              ["n", "width", "P", "step_s", "extra_MiB", "peak_MiB"])
    res.table(f"chunking at n={chunk_n} (chunk_size={chunk})", rows_c, cols)
    expo = _fit_exponent([r["n"] for r in rows_n], [r["step_s"] for r in rows_n])
    res.target("exponent of step time in n (log-log fit)", expo, "≈ 1 (linear)", 0.8 <= expo <= 1.2)
    if len(rows_c) == 2 and rows_c[0]["extra_MiB"] == rows_c[0]["extra_MiB"]:
        ratio = rows_c[1]["extra_MiB"] / max(rows_c[0]["extra_MiB"], 1e-9)
        res.target("chunked / unchunked extra memory", ratio, "< 1 (bounded by the chunk)", ratio < 1)
    res.note("inputs are random of CIFAR's shape: timing only. extra_MiB = high-water mark during the "
             "steps minus the resident size after building the problem (VmHWM reset through "
             "/proc/self/clear_refs); peak_MiB = the whole process.")
    return res.as_dict()


def main(argv: list[str] | None = None) -> int:
    import argparse

    parser = argparse.ArgumentParser(description="one scaling point (internal)")
    parser.add_argument("--point", required=True)
    args = parser.parse_args(argv)
    print(json.dumps(measure_point(json.loads(args.point))))
    return 0


if __name__ == "__main__":
    sys.exit(main())
