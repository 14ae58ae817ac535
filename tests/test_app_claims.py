"""The claims panel (`c`) in the monitor and the replay: the paper's statements on the run shown."""

from app_fixtures import ee_run, gd_run, runs_root, screen_text, settle  # noqa: F401 - fixtures
from engine.analysis.claims import claims_for_run
from engine.store import open_run
from eos_tui.app import build_app
from eos_tui.app.widgets.claims import ClaimsPanel
from eos_tui.app.widgets.factors import FactorTable

SIZE = (160, 48)


async def test_c_swaps_the_factors_for_the_claims_of_the_run(ee_run):
    with open_run(ee_run) as run:
        expected = claims_for_run(run)
    app = build_app("monitor", [ee_run], live=False)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        screen = app.screen
        panel, factors = screen.query_one(ClaimsPanel), screen.query_one(FactorTable)
        assert not panel.display and factors.display
        await pilot.press("c")
        await settle(pilot)
        assert panel.display and not factors.display
        assert panel.row_count == len(expected.claims) == 11
        text = screen_text(app)
        assert "claims of the paper" in text and "λ1(G) ≈ λ1(H)" in text and "P^1 carries the rise" in text
        by_key = {c.key: c for c in expected.claims}
        assert by_key["g_vs_h"].brief in text  # the same numbers as `eos-tui claims`
        held, judged = expected.held()
        assert f"{held}/{judged} hold" in text
        await pilot.press("c")
        await settle(pilot)
        assert not panel.display and factors.display


async def test_the_replay_panel_follows_the_playhead(gd_run):
    app = build_app("replay", [gd_run])
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        screen = app.screen
        await pilot.press("c")
        await settle(pilot)
        panel = screen.query_one(ClaimsPanel)
        assert panel.row_count == 11 and "step 10 →" in str(panel.border_subtitle)
        screen.seek_step(5)  # inside the transient: nothing to judge yet
        screen.mark_dirty()
        await settle(pilot)
        assert panel.border_subtitle == "no snapshot after the transient yet"
        assert "–" in screen_text(app)


def test_snapshot_monitor_claims_panel(snap_compare, ee_run):
    """Layout of the claims panel in its cell (short names, values, marks, the border titles)."""
    from test_app_snapshots import SIZE as SNAP_SIZE, before

    assert snap_compare(build_app("monitor", [ee_run]), terminal_size=SNAP_SIZE, run_before=before("c"))
