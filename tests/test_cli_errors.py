"""Error lines are printed verbatim (never as rich markup), usage errors are one line, every
help text shows what it says, and every exit code is in the README."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from eos_tui.cli import EXIT_CODES, app

ROOT = Path(__file__).resolve().parent.parent
runner = CliRunner()

NASTY = ["[/x]", "[bold]x[/bold]", "a]b[c", "[", "]", "[red]", "[link=file:///etc]z", "\\[/x]"]


def _lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.strip()]


@pytest.mark.parametrize("name", NASTY)
def test_error_line_with_brackets_is_verbatim(tmp_path: Path, name: str) -> None:
    missing = tmp_path / f"run{name}missing"
    for args in (["export", str(missing)], ["replay", str(missing)], ["runs", str(missing), "--no-ui"],
                 ["compare", str(missing), str(tmp_path / "other")]):
        result = runner.invoke(app, args)
        assert result.exit_code == 2, result.output
        lines = _lines(result.output)
        assert len(lines) == 1 and "Traceback" not in result.output, result.output
        assert lines[0].startswith("error: ") and str(missing) in lines[0], lines[0]


@pytest.mark.parametrize("value", NASTY)
def test_config_error_messages_keep_their_brackets(value: str) -> None:
    result = runner.invoke(app, ["run", "preset", "dice-quick", "--no-ui", "--set", f"model.width={value}"])
    assert result.exit_code == 2
    lines = _lines(result.output)
    assert lines == [f"error: model.width must be an integer, got {value.strip()!r}"]


def test_the_embed_hint_survives(capsys) -> None:
    from eos_tui.cli import print_error

    print_error("`eos-tui data embed sst` needs the optional package transformers: run `pip install 'eos-tui[embed]'`")
    assert "`pip install 'eos-tui[embed]'`" in capsys.readouterr().err


def test_print_error_is_one_line_for_multiline_messages(capsys) -> None:
    from eos_tui.cli import print_error

    print_error("first [/x]\nsecond [bold]line[/]")
    err = capsys.readouterr().err
    assert err == "error: first [/x] second [bold]line[/]\n"


def _commands(group, path=()):
    """(command path, click command) for every command of the tree."""
    for name, cmd in sorted(getattr(group, "commands", {}).items()):
        yield (*path, name), cmd
        yield from _commands(cmd, (*path, name))


def _norm(text: str) -> str:
    return " ".join(text.replace("│", " ").split())


def test_every_help_text_is_shown_as_written() -> None:
    """Rich markup would eat ``[...]`` in help texts (typer's default markup mode): every
    command's help must show its own description and every option's help, verbatim."""
    root = typer.main.get_command(app)
    checked = 0
    for path, cmd in _commands(root):
        result = runner.invoke(app, [*path, "--help"], terminal_width=400, env={"COLUMNS": "400"})
        assert result.exit_code == 0, (path, result.output)
        shown = _norm(result.output)
        texts = [(cmd.help or "").split("\n\n")[0]] + [p.help for p in cmd.params if getattr(p, "help", None)]
        for text in texts:
            assert _norm(text) in shown, (path, text)
            checked += 1
    assert checked > 30


def test_runs_dir_default_is_shown() -> None:
    result = runner.invoke(app, ["run", "preset", "--help"], terminal_width=400, env={"COLUMNS": "400"})
    assert "$EOS_TUI_RUNS or ./runs" in result.output and "Parent of new run directories." in result.output


@pytest.mark.parametrize("args, message", [
    (["run", "preset", "dice-quick", "--max-steps", "0"], "--max-steps"),
    (["runs", "--bogus"], "No such option: --bogus"),
    (["export"], "Missing argument"),
    (["run", "preset", "dice-quick", "--set"], "requires an argument"),
    (["data", "import"], "Missing argument"),
])
def test_usage_errors_are_one_line_from_the_installed_command(args: list[str], message: str) -> None:
    res = subprocess.run([sys.executable, "-m", "eos_tui.cli", *args], capture_output=True, text=True,
                         timeout=120, cwd=ROOT)
    assert res.returncode == 2, res.stderr
    lines = _lines(res.stderr)
    assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0], res.stderr
    assert "(see `" in lines[0] and "--help`)" in lines[0]


def test_a_closed_pipe_stops_quietly(tmp_path: Path) -> None:
    from engine.store import make_run_dir

    for i in range(2000):  # a listing (~120 KB) longer than the pipe's buffer (64 KiB)
        make_run_dir(tmp_path, f"run{i:04d}")
    proc = subprocess.Popen([sys.executable, "-m", "eos_tui.cli", "runs", str(tmp_path), "--no-ui"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=ROOT, bufsize=0)
    proc.stdout.read(10)
    proc.stdout.close()
    err = proc.stderr.read().decode()
    assert proc.wait(timeout=60) == 141 and "Traceback" not in err and "error" not in err, err


def test_no_arguments_shows_the_help() -> None:
    res = subprocess.run([sys.executable, "-m", "eos_tui.cli"], capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert res.returncode == 2 and "Usage" in res.stdout + res.stderr and "Traceback" not in res.stderr


def test_every_exit_code_is_in_the_readme() -> None:
    from engine.launch import RUN_EXIT_CODES

    readme = (ROOT / "README.md").read_text()
    table = readme[readme.index("### Exit codes"):]
    table = table[:table.index("\n## ")]
    documented = {int(code) for code in re.findall(r"^\| `(\d+)` \|", table, flags=re.M)}
    assert documented == set(EXIT_CODES)
    assert set(RUN_EXIT_CODES.values()) <= documented
