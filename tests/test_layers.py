"""The codebase's structure holds: one-way layers (import-linter), links that stay in the repo.

`lint-imports` checks the contracts of pyproject.toml (the engine never imports eos_tui; the
engine's, the solvers' and the run store's internal layers). The second test proves the check
can fail: the same contracts on a copy of the code with one upward import added.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
LINT = [sys.executable, "-c", "import sys; from importlinter.cli import lint_imports_command; "
        "sys.exit(lint_imports_command())"]


def _lint(cwd: Path) -> subprocess.CompletedProcess:
    env = {"PYTHONPATH": str(cwd), "PATH": "/usr/bin:/bin", "HOME": str(cwd)}
    return subprocess.run(LINT + ["--no-cache"], cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=120)


def test_import_contracts_are_kept():
    res = _lint(REPO)
    assert res.returncode == 0, res.stdout + res.stderr
    assert "0 broken" in res.stdout


@pytest.mark.parametrize("module, line", [
    ("engine/model.py", "import eos_tui.cli  # an upward import\n"),
    ("engine/solvers/base.py", "from engine.solvers import gd  # a cycle in the solvers\n"),
    ("engine/store/schema.py", "from engine.store import writer  # upward in the store\n"),
    ("engine/model.py", "from engine import trainer  # upward in the engine\n"),
    ("engine/analysis/series.py", "from engine.figures import style  # analysis below figures\n"),
    ("engine/figures/style.py", "from engine.figures import registry  # upward in the figures\n"),
])
def test_an_upward_import_breaks_a_contract(tmp_path, module, line):
    for part in ("engine", "eos_tui"):
        shutil.copytree(REPO / part, tmp_path / part,
                        ignore=shutil.ignore_patterns("__pycache__", "_presets"))
    shutil.copy(REPO / "pyproject.toml", tmp_path / "pyproject.toml")
    assert _lint(tmp_path).returncode == 0  # the copy itself is clean
    target = tmp_path / module
    target.write_text(target.read_text() + "\n" + line)
    res = _lint(tmp_path)
    assert res.returncode != 0, res.stdout
    assert "BROKEN" in res.stdout


def _markdown_files() -> list[Path]:
    skip = {".git", ".venv", ".v", "node_modules", "build", "dist"}
    return [p for p in REPO.rglob("*.md") if not skip.intersection(p.relative_to(REPO).parts)
            and not any(part.endswith(".egg-info") for part in p.parts)]


def test_every_markdown_link_resolves_inside_the_repository():
    bad = []
    for md in _markdown_files():
        for target in re.findall(r"\]\(([^)\s]+)\)", md.read_text(errors="ignore")):
            if re.match(r"^(https?:|mailto:|#)", target):
                continue
            path = (md.parent / target.split("#")[0]).resolve()
            if not path.is_relative_to(REPO) or not path.exists():
                bad.append(f"{md.relative_to(REPO)} → {target}")
    assert not bad, "dead or outside links: " + "; ".join(bad)
    assert len(_markdown_files()) >= 3  # README, docs/ARCHITECTURE.md, docs/metrics.md at least


def test_the_link_check_can_fail(tmp_path, monkeypatch):
    (tmp_path / "README.md").write_text("[spec](../shared/spec/metrics.md) [gone](docs/none.md)\n")
    monkeypatch.setattr(sys.modules[__name__], "REPO", tmp_path)
    with pytest.raises(AssertionError, match="spec/metrics.md.*none.md"):
        test_every_markdown_link_resolves_inside_the_repository()


def test_the_run_store_is_a_package_with_one_module_per_concept():
    assert not (REPO / "engine" / "store.py").exists()
    modules = {p.stem for p in (REPO / "engine" / "store").glob("*.py")}
    assert {"schema", "writer", "reader", "listing", "checkpoints", "liveness"} <= modules
    import engine.store as store

    for name in store.__all__:
        assert getattr(store, name) is not None
