"""`eos-tui plot`: files written for real runs, the data beside them, and one-line errors (exit 2)."""

from __future__ import annotations

import csv

import pytest
from typer.testing import CliRunner

from app_fixtures import ee_run, gd_run, runs_root, synthetic_run  # noqa: F401 - fixtures
from eos_tui.cli import app

runner = CliRunner()


def plot(*args: str):
    return runner.invoke(app, ["plot", *map(str, args)])


def test_one_figure_in_each_format_with_its_csv(gd_run, tmp_path):
    for ext, magic in (("png", b"\x89PNG"), ("svg", b"<svg"), ("pdf", b"%PDF")):
        result = plot(gd_run, "--figure", "sharpness", "--out", tmp_path / f"f.{ext}", "--x", "t", "--smooth", "3")
        assert result.exit_code == 0, result.output
        assert magic in (tmp_path / f"f.{ext}").read_bytes()[:400]
    rows = list(csv.DictReader(open(tmp_path / "f.csv")))
    assert {r["x_name"] for r in rows} == {"t"} and {r["run"] for r in rows} == {"gd"}
    assert {"lambda_H_1", "lambda_H_1 (smoothed 3)", "threshold", "lambda_G1"} <= {r["series"] for r in rows}


def test_all_of_a_gd_and_an_ee_run_of_the_real_engine(runs_root, tmp_path):
    """`run compare`'s layout (a folder with a GD and an EE run): every figure but the power law."""
    result = plot(runs_root / "gd", runs_root / "ee", "--figure", "all", "--out", tmp_path / "figs",
                  "--format", "png,svg", "--layers", "1,2")
    assert result.exit_code == 0, result.output
    for name in ("sharpness", "overlap", "alignment", "layers", "factors", "compare"):
        for ext in ("png", "svg", "csv"):
            assert (tmp_path / "figs" / f"{name}.{ext}").stat().st_size > 0, (name, ext)
    assert "skipped powerlaw" in result.output and "6 figures of 2 runs" in result.output


def test_default_out_is_the_runs_figures_folder(tmp_path):
    run = synthetic_run(tmp_path / "r", steps=30, depth=3)
    result = plot(run, "--figure", "layers", "--dpi", "60", "--size", "6x3")
    assert result.exit_code == 0, result.output
    assert (run / "figures" / "layers.png").exists() and (run / "figures" / "layers.csv").exists()


@pytest.mark.parametrize("args, message", [
    (["--figure", "nope"], "unknown figure 'nope'; choose one of sharpness"),
    (["--figure", "powerlaw", "--out", "{tmp}/p.png"], "needs runs of at least 2 dataset sizes"),
    (["--figure", "sharpness", "--out", "{tmp}/file/f.png"], "cannot create the folder"),
    (["--figure", "sharpness", "--out", "{tmp}/f.jpg"], "'.jpg'; name the file .png, .svg or .pdf"),
    (["--figure", "alignment", "--layers", "1,x"], "--layers takes layer numbers"),
    (["--figure", "alignment", "--layers", "9", "--out", "{tmp}/a.png"], "--layers 9: the alignment ratio"),
    (["--x", "time"], "unknown x axis 'time'"),
    (["--size", "big"], "--size takes WIDTHxHEIGHT"),
    (["--format", "gif"], "'.gif'"),
    (["--figure", "all", "--out", "{tmp}/figs.png"], "give --out a folder"),
])
def test_bad_input_is_one_error_line_and_exit_2(tmp_path, args, message):
    run = synthetic_run(tmp_path / "r", steps=30, depth=3)
    (tmp_path / "file").write_text("a file, not a folder")
    result = plot(run, *[a.replace("{tmp}", str(tmp_path)) for a in args])
    assert result.exit_code == 2, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:") and message in " ".join(result.output.split())


def test_missing_target_and_a_folder_without_runs(tmp_path):
    for target in (tmp_path / "nope", tmp_path):
        result = plot(target, "--out", tmp_path / "x")
        assert result.exit_code == 2 and result.output.startswith("error:"), result.output
