"""Prints the fault suite's figures at the end of the session (and writes them as JSON to
``$EOS_TUI_FAULTS_REPORT`` when that is set)."""

from __future__ import annotations

import json
import os


def _line(figures) -> str:
    killed = figures["runs killed"]
    by = ", ".join(f"{k.split(': ', 1)[1]} {v}" for k, v in sorted(figures.items()) if k.startswith("killed by: "))
    at = ", ".join(f"{k.split(': ', 1)[1]} {v}" for k, v in sorted(figures.items()) if k.startswith("killed at: "))
    return (f"fault suite: runs killed {killed} ({by}; {at}), recovered {figures['runs recovered']}, "
            f"rows lost {figures['rows lost']}; disk-full runs {figures['disk-full runs']} "
            f"(clear status {figures['disk-full clear status']}, store intact {figures['disk-full store intact']}); "
            f"replay reads during writes {figures['replay reads']} (torn {figures['torn reads']}); "
            f"listings during churn {figures['listings']} (corrupt {figures['listed corrupt']}, "
            f"starting seen {figures['listed starting']}); malformed inputs tried {figures['inputs tried']}, "
            f"one-line errors {figures['one-line errors']}, tracebacks {figures['tracebacks']}, "
            f"trees modified {figures['trees modified']}")


def pytest_terminal_summary(terminalreporter, exitstatus, config):  # noqa: ARG001 - pytest hook
    from faults.faultlib import FIGURES

    if not FIGURES:
        return
    terminalreporter.write_sep("-", "fault suite figures")
    terminalreporter.write_line(_line(FIGURES))
    path = os.environ.get("EOS_TUI_FAULTS_REPORT")
    if path:
        with open(path, "w", encoding="utf-8") as f:
            json.dump({"figures": dict(FIGURES), "line": _line(FIGURES)}, f, indent=1, sort_keys=True)
