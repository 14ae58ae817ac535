"""Export a run's metrics as one table (spec §7, §9 column names).

One row per step with the per-step scalars and ``lambda_H_1..K``; the snapshot columns
(``lambda_G1``, ``overlap_ratio``, ``EK2``, ``P_1``, ``r_3``, …) are filled at snapshot steps
and empty elsewhere.
"""

from __future__ import annotations

import csv
import math
from pathlib import Path

import numpy as np

from engine.errors import ConfigError
from engine.store import open_run

FORMATS = ("csv", "parquet")


def metrics_table(run) -> tuple[list[str], dict[str, np.ndarray]]:
    """Column names and columnar arrays of the merged step/snapshot table."""
    steps = run.steps()
    snaps = run.snapshots()
    columns = list(steps)
    step_index = {int(s): i for i, s in enumerate(steps["step"])}
    n = len(steps["step"])
    merged = dict(steps)
    for name, values in snaps.items():
        if name == "step":
            continue
        col = np.full(n, np.nan)
        for s, v in zip(snaps["step"], values):
            i = step_index.get(int(s))
            if i is not None:
                col[i] = v
        merged[name] = col
        columns.append(name)
    return columns, merged


FLAG_SUFFIX = "_converged"  # certificate flags (1/0, empty where not computed): written as integers


def _cell(value, flag: bool = False) -> str:
    if isinstance(value, (float, np.floating)):
        if math.isnan(value):
            return ""
        return str(int(value)) if flag else repr(float(value))
    return str(int(value)) if isinstance(value, (np.integer, int)) else str(value)


def export_run(run_dir: Path, fmt: str = "csv", out: Path | None = None) -> Path:
    """Write the table of ``run_dir`` as ``fmt``; returns the file written."""
    if fmt not in FORMATS:
        raise ConfigError(f"--format must be one of {', '.join(FORMATS)}, got {fmt!r}")
    with open_run(run_dir) as run:
        columns, data = metrics_table(run)
    out = Path(out) if out else Path(run_dir) / f"metrics.{fmt}"
    if fmt == "csv":
        with open(out, "w", newline="") as f:
            writer = csv.writer(f)
            writer.writerow(columns)
            flags = [c.endswith(FLAG_SUFFIX) for c in columns]
            for i in range(len(data["step"])):
                writer.writerow([_cell(data[c][i], flag) for c, flag in zip(columns, flags)])
        return out
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq
    except ImportError:
        raise ConfigError("parquet export needs pyarrow: pip install pyarrow (or use --format csv)") from None
    def _array(name):
        if name.endswith(FLAG_SUFFIX):
            values = data[name]
            missing = np.isnan(values)
            return pa.array(np.where(missing, 0, values).astype(np.int8), mask=missing)
        return data[name]

    pq.write_table(pa.table({c: _array(c) for c in columns}), out)
    return out
