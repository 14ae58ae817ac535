"""Creates, writes and deletes runs in a folder for a while (the other side of the listing
churn test). Creation is slowed at its two windows (between the directory and the store,
and before ``run.json``) so that listings meet runs in every state of their creation.

usage: python churn.py ROOT SECONDS SEED
"""

from __future__ import annotations

import random
import shutil
import sys
import time
from pathlib import Path


def main() -> None:
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
    from engine.store import RunWriter, make_run_dir
    from engine.store import writer as writer_module
    from engine.store.schema import RUN_FILE

    root, seconds, seed = Path(sys.argv[1]), float(sys.argv[2]), int(sys.argv[3])
    rng = random.Random(seed)
    atomic_write = writer_module.atomic_write

    def slow_meta(path, data):
        if path.name == RUN_FILE:
            time.sleep(rng.uniform(0.0, 0.05))
        atomic_write(path, data)

    writer_module.atomic_write = slow_meta
    mine: list[Path] = []
    deadline = time.monotonic() + seconds
    i = 0
    while time.monotonic() < deadline:
        if len(mine) > 6 or (mine and rng.random() < 0.3):
            shutil.rmtree(mine.pop(rng.randrange(len(mine))), ignore_errors=True)
            continue
        path = make_run_dir(root, f"churn{seed}-{i:03d}")
        i += 1
        time.sleep(rng.uniform(0.0, 0.05))
        writer = RunWriter.create(path, config={"preset": "churn"}, meta={"preset": "churn", "solver": "gd"},
                                  num_eigs=2, heartbeat_interval=0.5)
        for step in range(rng.randint(1, 30)):
            writer.append_step({"step": step, "loss": 1.0 / (step + 1), "lambda_H": [2.0, 1.0]})
            if rng.random() < 0.2:
                writer.append_snapshot(step, {"P_1": 0.5})
            time.sleep(rng.uniform(0.0, 0.005))
        writer.close(rng.choice(["finished", "diverged", "interrupted"]))
        mine.append(path)
    print(i, flush=True)


if __name__ == "__main__":
    main()
