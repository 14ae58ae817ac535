"""Entry points for the CLI: input checks before the app starts, too-small terminals, serve."""

import sys
import types

import pytest

from app_fixtures import gd_run, runs_root, screen_text, synthetic_run  # noqa: F401 - fixtures
from engine.errors import EosError
from eos_tui import app as eos_app
from eos_tui.app import build_app, run_browser, run_compare, run_monitor, run_replay
from eos_tui.app.screens.modals import TooSmall
from eos_tui.app.screens.replay import ReplayScreen


def test_unknown_run_is_an_eos_error(tmp_path):
    with pytest.raises(EosError, match="does not exist"):
        run_replay(tmp_path / "nope")
    with pytest.raises(EosError, match="does not exist"):
        run_compare(tmp_path / "nope", tmp_path / "nope2")
    with pytest.raises(EosError):
        run_monitor([tmp_path / "nope"])
    with pytest.raises(EosError, match="one or two runs"):
        run_monitor([tmp_path / "a", tmp_path / "b", tmp_path / "c"])


def test_corrupt_store_is_an_eos_error(tmp_path):
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "run.json").write_text("{}")
    (bad / "metrics.sqlite").write_bytes(b"this is not sqlite" * 100)
    (bad / "config.toml").write_text("")
    with pytest.raises(EosError):
        run_replay(bad)


def test_compare_with_itself(tmp_path):
    run = synthetic_run(tmp_path / "r", steps=20)
    with pytest.raises(EosError, match="itself"):
        run_compare(run, tmp_path / "." / "r")
    with pytest.raises(EosError, match="itself"):
        run_monitor([run, run])


def test_browser_missing_root(tmp_path):
    with pytest.raises(EosError):
        run_browser(tmp_path / "missing")


async def test_terminal_too_small_message_and_recovery(gd_run):
    app = build_app("replay", [gd_run])
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause(0.2)
        assert isinstance(app.screen, TooSmall)
        assert "terminal too small: need at least 100x30 (now 80x24)" in screen_text(app)
        await pilot.resize_terminal(120, 40)
        await pilot.pause(0.2)
        assert isinstance(app.screen, ReplayScreen)
        await pilot.resize_terminal(99, 40)
        await pilot.pause(0.2)
        assert isinstance(app.screen, TooSmall)
        await pilot.press("q")
    assert app.return_code == 0


def test_serve_uses_textual_serve(monkeypatch):
    calls = {}

    class FakeServer:
        def __init__(self, command, host, port, title):
            calls.update(command=command, host=host, port=port, title=title)

        def serve(self):
            calls["served"] = True

    fake = types.ModuleType("textual_serve.server")
    fake.Server = FakeServer
    monkeypatch.setitem(sys.modules, "textual_serve.server", fake)
    eos_app.serve("eos-tui replay runs/x", port=8123)
    assert calls == {"command": "eos-tui replay runs/x", "host": "localhost", "port": 8123,
                     "title": "eos-tui", "served": True}


def test_run_monitor_waits_for_the_run_directory_and_engine(tmp_path, monkeypatch):
    """run_monitor with a process that died before creating its run: a clear EosError."""
    import subprocess

    proc = subprocess.Popen([sys.executable, "-c", "raise SystemExit(3)"])
    proc.wait()
    with pytest.raises(EosError, match="exited"):
        run_monitor([tmp_path / "never"], processes=[proc])


def test_serve_command_serves_the_cli_with_this_interpreter(monkeypatch):
    seen = {}
    monkeypatch.setattr(eos_app, "serve", lambda command, **kw: seen.update(command=command, **kw))
    eos_app.serve_command(["replay", "runs/my run"], port=9000)
    assert seen["command"].endswith("-m eos_tui.cli replay 'runs/my run'")
    assert seen["command"].startswith(sys.executable.replace("\\", "/")) or sys.executable in seen["command"]
    assert seen["port"] == 9000 and seen["host"] == "localhost"
    with pytest.raises(EosError):
        eos_app.serve_command([])
    with pytest.raises(EosError):
        eos_app.serve_command(["serve", "x"])
