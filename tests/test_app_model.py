"""The UI data model and the store reader: columnar buffers, coalescing messages, polling."""

import numpy as np

from app_fixtures import synthetic_rows, synthetic_run, synthetic_snapshot
from engine.store import RunWriter
from eos_tui.app.messages import RunFailed, RunUpdated
from eos_tui.app.reader import poll_once, read_loop
from eos_tui.app.series import Columns, RunData


def test_columns_append_grow_and_views_are_stable():
    c = Columns()
    c.append({"step": np.arange(3), "loss": np.ones(3)})
    view = c.view()
    for i in range(1, 200):
        c.append({"step": np.array([2 + i]), "loss": np.array([0.5])})
    assert len(c) == 202
    assert view["step"].tolist() == [0, 1, 2]  # an earlier view is unaffected by growth
    assert c.column("loss")[-1] == 0.5
    c.append({"step": np.array([300]), "extra": np.array([7.0])})  # new column, missing old one
    assert np.isnan(c.column("extra")[:-1]).all() and c.column("extra")[-1] == 7.0
    assert np.isnan(c.column("loss")[-1])
    assert c.last("loss") == 0.5
    assert np.isnan(c.column("nope")).all()
    assert len(c.view(stop=5)["step"]) == 5


def test_run_updated_coalesces_per_run():
    a1, a2, b = RunUpdated("a", 1), RunUpdated("a", 2), RunUpdated("b", 1)
    assert a2.can_replace(a1)
    assert not b.can_replace(a1)
    assert not a1.can_replace(RunFailed("a", "x"))


def test_poll_once_reads_incrementally(tmp_path):
    w = RunWriter.create(tmp_path / "r", config={"preset": "x"}, meta={"solver": "gd"}, num_eigs=2,
                         heartbeat_interval=None)
    from engine.store import open_run

    run = open_run(tmp_path / "r")
    data = RunData(key="r", path=tmp_path / "r")
    w.append_steps(synthetic_rows(20))
    w.append_snapshot(0, synthetic_snapshot(0, 3))
    assert poll_once(run, data)
    assert len(data.steps) == 20 and len(data.snaps) == 1 and data.status == "running"
    assert not poll_once(run, data)  # nothing new
    w.append_steps(synthetic_rows(5, start=20))
    w.append_snapshot(20, synthetic_snapshot(20, 3))
    assert poll_once(run, data)
    assert data.steps.column("step").tolist() == list(range(25))
    assert data.snaps.column("step").tolist() == [0, 20]
    w.close("finished")
    assert poll_once(run, data) and data.status == "finished" and not data.live
    run.close()


def test_read_loop_ends_with_final_status_and_reports_errors(tmp_path):
    path = synthetic_run(tmp_path / "done", steps=30)
    data = RunData(key="k", path=path)
    posted = []
    read_loop(data, posted.append, lambda: False, interval=0.01)
    assert len(data.steps) == 30 and data.status == "finished"
    assert any(isinstance(m, RunUpdated) for m in posted)

    bad = RunData(key="bad", path=tmp_path / "missing")
    posted = []
    read_loop(bad, posted.append, lambda: False)
    assert isinstance(posted[-1], RunFailed) and "does not exist" in posted[-1].error
