"""Where downloaded and prepared data sets live.

Precedence (highest first): the ``--data-dir`` command-line value, the ``EOS_TUI_DATA``
environment variable, then the per-user cache directory:

- Linux and other POSIX systems: ``$XDG_CACHE_HOME/eos-tui`` (``~/.cache/eos-tui`` when
  ``XDG_CACHE_HOME`` is unset or not absolute, as the XDG spec requires);
- macOS: ``~/Library/Caches/eos-tui``;
- Windows: ``%LOCALAPPDATA%\\eos-tui\\Cache``.

Nothing here creates directories: commands that write data (``eos-tui data fetch``) create
them, everything else only reads.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

ENV_VAR = "EOS_TUI_DATA"
"""Environment variable that overrides the default data directory."""

APP_NAME = "eos-tui"


def user_cache_dir() -> Path:
    """The per-user cache directory of eos-tui (platformdirs conventions, no dependency)."""
    if sys.platform == "win32":
        base = os.environ.get("LOCALAPPDATA")
        root = Path(base) if base else Path.home() / "AppData" / "Local"
        return root / APP_NAME / "Cache"
    if sys.platform == "darwin":
        return Path.home() / "Library" / "Caches" / APP_NAME
    xdg = os.environ.get("XDG_CACHE_HOME", "")
    root = Path(xdg) if xdg and Path(xdg).is_absolute() else Path.home() / ".cache"
    return root / APP_NAME


def default_data_dir() -> Path:
    """``$EOS_TUI_DATA`` if set and non-empty, else :func:`user_cache_dir`."""
    env = os.environ.get(ENV_VAR, "").strip()
    if env:
        return Path(env).expanduser()
    return user_cache_dir()


def resolve_data_dir(cli_value: str | Path | None) -> Path:
    """The data directory to use: ``cli_value`` if given (non-empty), else :func:`default_data_dir`."""
    if cli_value is not None and str(cli_value).strip():
        return Path(cli_value).expanduser()
    return default_data_dir()
