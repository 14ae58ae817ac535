"""Static figures (engine.figures): tested on the figure objects, not pixels.

The lines' data must equal the store's series (read here independently through
``engine.store.open_run``), one line per run, the axes scaled and labelled as asked, a colour bar
exactly when the runs differ in size, unconverged points hollow, and every plotted point in the
CSV beside the image.
"""

from __future__ import annotations

import csv
import math

import numpy as np
import pytest

from app_fixtures import synthetic_run
from engine.analysis.powerlaw import fit_power_law
from engine.analysis.series import load_view, load_views
from engine.figures import powerlaw, solvers, timeseries
from engine.figures.output import CSV_COLUMNS, save_figure
from engine.figures.registry import make_figure, names, write_all
from engine.figures.style import FigureError, FigureOptions, plotted, smooth
from engine.store import open_run


def lines(fig, panel: str, series: str | None = None) -> dict[str, object]:
    """The data lines of ``panel`` (and ``series``) by run name, from their gids."""
    out = {}
    for ax in fig.axes:
        for line in ax.get_lines():
            gid = line.get_gid() or ""
            parts = gid.split("|")
            if len(parts) == 3 and parts[0] == panel and (series is None or parts[1] == series):
                out[parts[2]] = line
    return out


def axes_of(fig, panel: str):
    return next(ax for ax in fig.axes for line in ax.get_lines() if (line.get_gid() or "").startswith(panel + "|"))


def finite(x, y):
    x, y = np.asarray(x, float), np.asarray(y, float)
    keep = np.isfinite(x) & np.isfinite(y)
    return x[keep], y[keep]


@pytest.fixture(scope="module")
def gd(tmp_path_factory):
    return synthetic_run(tmp_path_factory.mktemp("fig") / "gd", steps=60, k=2, depth=4, snapshot_every=10)


@pytest.fixture(scope="module")
def ee(tmp_path_factory):
    return synthetic_run(tmp_path_factory.mktemp("fig") / "ee", steps=60, solver="ee", depth=4, snapshot_every=10)


def test_sharpness_lines_are_the_stored_series(gd):
    fig = timeseries.sharpness([load_view(gd)])
    with open_run(gd) as run:
        steps, snaps = run.steps(), run.snapshots()
    lam = lines(fig, "lambda_H_1", "lambda_H_1")["gd"]
    np.testing.assert_array_equal(np.c_[lam.get_xdata(), lam.get_ydata()],
                                  np.c_[finite(steps["step"], steps["lambda_H_1"])])
    thr = lines(fig, "lambda_H_1", "threshold")["gd"]
    assert thr.get_linestyle() == "--"
    np.testing.assert_array_equal(thr.get_ydata(), steps["threshold"])
    g = lines(fig, "lambda_G1")["gd"]
    np.testing.assert_array_equal(g.get_xdata(), snaps["step"])
    np.testing.assert_array_equal(g.get_ydata(), snaps["lambda_G1"])
    ax = axes_of(fig, "lambda_H_1")
    assert ax.get_xlabel() == "step" and ax.get_yscale() == "linear" and ax.get_title() == "λ₁(H)"
    assert [len(lines(fig, p)) for p in ("lambda_H_1", "lambda_G1", "lambda_HmG1")] == [1, 1, 1]
    assert "sharpness — gd" in fig._suptitle.get_text()
    assert any("transient" == p.get_gid() for ax in fig.axes for p in ax.patches)


def test_t_axis_log_scale_and_ee_runs_have_no_2_over_eta(ee):
    view = load_view(ee)
    fig = timeseries.sharpness([view], FigureOptions(xaxis="t", logy=True))
    with open_run(ee) as run:
        steps, snaps = run.steps(), run.snapshots()
    lam = lines(fig, "lambda_H_1", "lambda_H_1")["ee"]
    np.testing.assert_array_equal(lam.get_xdata(), finite(steps["t"], steps["lambda_H_1"])[0])
    g = lines(fig, "lambda_G1")["ee"]  # snapshot steps mapped to t through the step table
    np.testing.assert_allclose(g.get_xdata(), np.interp(snaps["step"], steps["step"], steps["t"]), rtol=1e-15)
    ax = axes_of(fig, "lambda_H_1")
    assert ax.get_yscale() == "log" and ax.get_xlabel() == "t (gradient-flow time)"
    assert not lines(fig, "lambda_H_1", "threshold")  # 2/η is drawn for GD runs only


def test_one_line_per_run_and_a_colour_bar_when_sizes_differ(tmp_path):
    for D in (500, 1000, 2000):
        synthetic_run(tmp_path / "sweep" / f"size={D}", steps=30, depth=3, meta={"n_train": D})
    runs = load_views([tmp_path / "sweep"])
    fig = timeseries.overlap(runs)
    for panel in ("lambda_G1", "EK2", "overlap_ratio"):
        assert sorted(lines(fig, panel)) == ["size=1000", "size=2000", "size=500"]
    bars = [ax for ax in fig.axes if ax.get_ylabel() == "dataset size D"]
    assert len(bars) == 1
    colors = {name: line.get_color() for name, line in lines(fig, "EK2").items()}
    assert len({tuple(c) for c in colors.values()}) == 3
    assert axes_of(fig, "EK2").get_yscale() == "log" and axes_of(fig, "overlap_ratio").get_yscale() == "linear"
    # same size: no colour bar, the runs named in a legend
    same = [synthetic_run(tmp_path / f"same{i}", steps=30, depth=3) for i in range(2)]
    fig = timeseries.overlap(load_views(same))
    assert not [ax for ax in fig.axes if ax.get_ylabel() == "dataset size D"]
    legend = fig.axes[0].get_legend()
    assert {"same0", "same1"} <= {t.get_text() for t in legend.get_texts()}


def test_alignment_and_layers_take_the_chosen_layers(gd):
    view = load_view(gd)
    fig = timeseries.alignment([view], FigureOptions(layers=(1, 3)))
    assert {ax.get_title() for ax in fig.axes} == {"alignment ratio r₁", "alignment ratio r₃"}
    with open_run(gd) as run:
        snaps = run.snapshots()
    np.testing.assert_array_equal(lines(fig, "r_3")["gd"].get_ydata(), snaps["r_3"])
    assert all(ax.get_yscale() == "log" for ax in fig.axes)
    assert all(ax.get_yscale() == "linear"
               for ax in timeseries.alignment([view], FigureOptions(logy=False)).axes)
    fig = timeseries.layers([view])
    assert sorted({ax.get_title() for ax in fig.axes}) == [f"E‖K{c}‖² (layer {i})" for i, c in enumerate("₁₂₃₄", 1)]
    with pytest.raises(FigureError, match="layers 1..3"):
        timeseries.alignment([view], FigureOptions(layers=(4,)))  # r_L does not exist


def test_factors_are_the_five_factors_and_their_product(gd):
    fig = timeseries.factors([load_view(gd)])
    with open_run(gd) as run:
        s = run.snapshots()
    np.testing.assert_allclose(lines(fig, "prod_s")["gd"].get_ydata(), s["s_1"] * s["s_2"] * s["s_3"], rtol=1e-15)
    for key in ("a_L", "P_1", "m_1", "kappa_1", "EK2_layer_1"):
        np.testing.assert_array_equal(lines(fig, key)["gd"].get_ydata(), s[key])
    assert len(fig.axes) == 6 and all(ax.get_yscale() == "log" for ax in fig.axes)


def test_compare_puts_gd_and_ee_on_t(gd, ee):
    with pytest.raises(FigureError, match="one GD run and one exponential Euler run"):
        solvers.compare([load_view(gd)])
    fig = solvers.compare(load_views([gd, ee]))
    for name in ("gd", "ee"):
        with open_run(gd if name == "gd" else ee) as run:
            steps = run.steps()
        np.testing.assert_array_equal(lines(fig, "loss")[name].get_xdata(), steps["t"])
        np.testing.assert_array_equal(lines(fig, "lambda_H_1", "threshold")[name].get_ydata(), steps["threshold"])
    assert axes_of(fig, "loss").get_yscale() == "log" and axes_of(fig, "P_1").get_xlabel() == "t (gradient-flow time)"


def test_powerlaw_shows_the_analysis_fit_and_the_paper_line(tmp_path):
    sizes = [468, 937, 1875, 3750]
    for i, D in enumerate(sizes):
        for seed in range(2):
            value = 0.0017 * D ** 0.23 * (1.05 if seed else 0.95)
            synthetic_run(tmp_path / f"size={D}" / f"init={seed}", steps=30, depth=3, meta={"n_train": D},
                          snapshot_extra=lambda s, v=value: {"P_1": v if s > 10 else 50.0})
    runs = load_views([tmp_path])
    fig = powerlaw.powerlaw(runs)
    ax = fig.axes[0]
    assert ax.get_xscale() == "log" and ax.get_yscale() == "log"
    points = lines(fig, "max_P1_vs_D", "max_P1")
    assert len(points) == 8  # one point per run, the transient's 50.0 excluded
    D, y, _ = powerlaw.points(runs)
    fit = fit_power_law(D, y)
    line = lines(fig, "max_P1_vs_D", "fit")[""]
    np.testing.assert_allclose(line.get_ydata(), fit.c1 * line.get_xdata() ** fit.c2, rtol=1e-12)
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert any(f"R² = {fit.r2:.3f}" in t for t in labels) and any("paper Table 2 (dice-ce)" in t for t in labels)
    with pytest.raises(FigureError, match="at least 2 dataset sizes"):
        powerlaw.powerlaw(runs[:1])


def test_unconverged_points_are_hollow_and_flagged_in_the_csv(tmp_path):
    run = synthetic_run(tmp_path / "r", steps=60, depth=3,
                        snapshot_extra=lambda s: {"lambda_G1_converged": float(s != 30)})
    fig = timeseries.sharpness([load_view(run)])
    hollow = lines(fig, "lambda_G1")  # keyed by the last gid part: "r|unconverged" is not 3 parts
    ax = axes_of(fig, "lambda_G1")
    marks = [ln for ln in ax.get_lines() if (ln.get_gid() or "").endswith("|unconverged")]
    assert len(marks) == 1 and marks[0].get_markerfacecolor() == "none"
    np.testing.assert_array_equal(marks[0].get_xdata(), [30])
    assert "r" in hollow
    save_figure(fig, tmp_path / "f.png")
    rows = [r for r in csv.DictReader(open(tmp_path / "f.csv")) if r["series"] == "lambda_G1"]
    assert [r["converged"] for r in rows] == ["1", "1", "1", "0", "1", "1"]


def test_smooth_keeps_the_raw_curve_faint(gd):
    fig = timeseries.sharpness([load_view(gd)], FigureOptions(smooth=5))
    raw = [ln for ln in fig.axes[0].get_lines() if ln.get_gid() == "lambda_H_1|lambda_H_1|gd|raw"][0]
    main = lines(fig, "lambda_H_1", "lambda_H_1 (smoothed 5)")["gd"]
    assert raw.get_alpha() < 0.5 and main.get_alpha() == 1.0
    np.testing.assert_allclose(main.get_ydata(), smooth(raw.get_ydata(), 5))
    assert smooth(np.array([1.0, 2, 3, 4, 5]), 3).tolist() == [1.5, 2.0, 3.0, 4.0, 4.5]


def test_a_long_series_is_drawn_as_its_envelope_and_recorded_whole(gd):
    fig = timeseries.sharpness([load_view(gd)], FigureOptions(max_points=10))
    lam = lines(fig, "lambda_H_1", "lambda_H_1")["gd"]
    rec = next(s for s in plotted(fig) if s.series == "lambda_H_1")
    assert len(lam.get_xdata()) <= 10 < len(rec.x) == 30  # λ every 2nd of 60 steps
    assert lam.get_ydata().max() == rec.y.max() and lam.get_ydata().min() == rec.y.min()


def test_files_are_valid_and_the_csv_holds_every_plotted_point(gd, tmp_path):
    fig = timeseries.sharpness([load_view(gd)])
    for ext, magic in (("png", b"\x89PNG"), ("svg", b"<svg"), ("pdf", b"%PDF")):
        files = save_figure(fig, tmp_path / f"f.{ext}")
        data = files[0].read_bytes()
        assert files[0].stat().st_size > 1000 and magic in data[:400]
    rows = list(csv.DictReader(open(tmp_path / "f.csv")))
    assert tuple(rows[0]) == CSV_COLUMNS
    assert len(rows) == sum(len(s.x) for s in plotted(fig))
    lam = [(float(r["x"]), float(r["y"])) for r in rows if r["series"] == "lambda_H_1"]
    with open_run(gd) as run:
        steps = run.steps()
    assert lam == list(zip(*finite(steps["step"], steps["lambda_H_1"])))


def test_registry_all_writes_what_the_data_supports(gd, ee, tmp_path):
    done = write_all(load_views([gd, ee]), tmp_path / "figs", formats=("png", "pdf"))
    written = {w.name for w in done if w.files}
    assert written == {"sharpness", "overlap", "alignment", "layers", "factors", "compare"}
    assert "dataset sizes" in next(w.skipped for w in done if w.name == "powerlaw")
    assert (tmp_path / "figs" / "compare.pdf").stat().st_size > 0 and (tmp_path / "figs" / "compare.csv").exists()
    with pytest.raises(FigureError, match="unknown figure 'nope'"):
        make_figure("nope", [])
    assert names()[-1] == "all"
    assert math.isfinite(float(next(csv.DictReader(open(tmp_path / "figs" / "layers.csv")))["y"]))


def test_a_figure_and_the_terminal_panel_it_mirrors_show_the_same_numbers(gd):
    """Both read the engine's RunView: the UI from its growing buffers, the figure from the store."""
    from eos_tui.app.figures import curvature_figure, factor_rows, layer_figure, sharpness_figure
    from eos_tui.app.reader import poll_once
    from eos_tui.app.series import RunData

    data = RunData(key="a", path=gd)
    with open_run(gd) as run:
        poll_once(run, data)
    view = load_view(gd)
    panel = {ln.label: ln for ln in sharpness_figure(data, None, "t", False).lines}
    fig = timeseries.sharpness([view], FigureOptions(xaxis="t"))
    lam = lines(fig, "lambda_H_1", "lambda_H_1")["gd"]
    np.testing.assert_array_equal(np.c_[lam.get_xdata(), lam.get_ydata()], np.c_[finite(panel["λ1(H)"].x, panel["λ1(H)"].y)])
    g = {ln.label: ln for ln in curvature_figure(data, None, "t").lines}["λ1(G)"]
    np.testing.assert_array_equal(lines(fig, "lambda_G1")["gd"].get_xdata(), g.x)
    fig = timeseries.factors([view])
    rows, first, last = factor_rows(data)
    pi = list(view.snaps["step"]).index(last)
    assert rows[1].now == lines(fig, "prod_s")["gd"].get_ydata()[pi]
    r = {ln.label: ln for ln in layer_figure(data, None, "step", 2).lines}["r2"]
    np.testing.assert_array_equal(r.y, lines(timeseries.alignment([view]), "r_2")["gd"].get_ydata())


def test_no_pyplot_and_figures_render_in_threads_at_once(gd, ee):
    """The object-oriented API only: no pyplot state is involved, so two threads can draw."""
    import io
    import subprocess
    import sys
    from concurrent.futures import ThreadPoolExecutor

    code = ("import sys, engine.figures.registry, engine.figures.view, engine.figures.worker; "
            "print('matplotlib.pyplot' in sys.modules)")
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True).stdout.strip() == "False"

    def render(path):
        buf = io.BytesIO()
        timeseries.factors([load_view(path)]).savefig(buf, format="png")
        return buf.getvalue()

    with ThreadPoolExecutor(2) as pool:
        images = list(pool.map(render, [gd, ee, gd, ee]))
    assert all(img[:4] == b"\x89PNG" for img in images) and images[0] == images[2]
