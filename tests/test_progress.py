"""The headless progress line (`eos-tui run --no-ui`, resume, logs): λ1 is the latest tracked value,
even when the printed row is not an eigen step."""

from __future__ import annotations

import io

from eos_tui.progress import HeadlessProgress


def rows(n: int, every: int):
    for s in range(n):
        row = {"step": s, "t": 0.1 * s, "loss": 1.0 / (1 + s), "threshold": 4.0}
        if s % every == 0:
            row["lambda_H"] = [1.0 + s]
        yield row


def test_the_line_shows_the_latest_lambda_between_eigen_steps():
    out = io.StringIO()
    with HeadlessProgress("run", 10, stream=out, interval=3600, force_plain=True) as progress:
        for row in rows(10, every=5):
            progress(row)
    lines = out.getvalue().splitlines()
    assert lines[0].startswith("run step      0/10") and "λ1=1 " in lines[0]
    # the last line is row 9: λ1 comes from row 5 (the last eigen step), and so does the ratio
    assert lines[-1].startswith("run step      9/10") and "λ1=6 " in lines[-1] and "λ1/thr=1.500" in lines[-1]


def test_a_negative_or_missing_top_value_keeps_the_last_one():
    out = io.StringIO()
    with HeadlessProgress("run", 3, stream=out, interval=3600, force_plain=True) as progress:
        progress({"step": 0, "t": 0.0, "loss": 1.0, "threshold": 4.0, "lambda_H": [2.0]})
        progress({"step": 1, "t": 0.1, "loss": 0.9, "threshold": 4.0, "lambda_H": [float("nan")]})
        progress({"step": 2, "t": 0.2, "loss": 0.8, "threshold": 4.0})
    assert "λ1=2 " in out.getvalue().splitlines()[-1]
