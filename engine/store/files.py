"""File formats of a run directory: atomic writes, the TOML writer and safetensors encoding.

Every file of ``RUN/`` other than the SQLite store is written whole, through
:func:`atomic_write` (a fsynced ``*.tmp`` file renamed into place), so a reader sees the old
file or the new one, never a torn one.
"""

from __future__ import annotations

import math
import numbers
import os
import re
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from engine.errors import RunStoreError, StorageError
from engine.store.schema import one_line

if TYPE_CHECKING:
    import torch

# --------------------------------------------------------------------------------------------
# Atomic files
# --------------------------------------------------------------------------------------------


def _fsync_dir(directory: Path) -> None:
    """Make a rename inside ``directory`` durable (best effort; not possible on every OS)."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def atomic_write(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` via a fsynced ``*.tmp`` file and ``os.replace``.

    Whatever stops the write (an OS error, a signal raising in this thread) removes the
    ``*.tmp`` file, so ``path`` is either the old file or the complete new one. An OS error
    (disk full, read-only folder) is a :class:`~engine.errors.StorageError`.
    """
    tmp = path.with_name(f"{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    try:
        with open(tmp, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException as exc:  # a full disk, or a signal mid-write: leave no partial file
        try:
            tmp.unlink(missing_ok=True)
        except OSError:
            pass
        if isinstance(exc, OSError):
            raise StorageError(f"cannot write {path}: {one_line(exc)}") from exc
        raise
    _fsync_dir(path.parent)


# --------------------------------------------------------------------------------------------
# TOML writer
# --------------------------------------------------------------------------------------------

_BARE_KEY_RE = re.compile(r"^[A-Za-z0-9_-]+$")
_TOML_ESCAPES = {'"': '\\"', "\\": "\\\\", "\b": "\\b", "\t": "\\t", "\n": "\\n", "\f": "\\f",
                 "\r": "\\r"}


def _toml_string(text: str) -> str:
    out = []
    for ch in text:
        if ch in _TOML_ESCAPES:
            out.append(_TOML_ESCAPES[ch])
        elif ord(ch) < 0x20 or ord(ch) == 0x7F:
            out.append(f"\\u{ord(ch):04X}")
        else:
            out.append(ch)
    return '"' + "".join(out) + '"'


def _toml_key(key: Any) -> str:
    if not isinstance(key, str):
        raise TypeError(f"TOML keys must be strings, got {key!r}")
    return key if _BARE_KEY_RE.match(key) else _toml_string(key)


def _toml_value(value: Any, where: str) -> str:
    if isinstance(value, (bool, np.bool_)):
        return "true" if value else "false"
    if isinstance(value, numbers.Integral):
        return str(int(value))
    if isinstance(value, numbers.Real):
        x = float(value)
        if math.isnan(x):
            return "nan"
        if math.isinf(x):
            return "inf" if x > 0 else "-inf"
        return repr(x)
    if isinstance(value, str):
        return _toml_string(value)
    if isinstance(value, os.PathLike):
        return _toml_string(os.fspath(value))
    if isinstance(value, Mapping):
        items = [f"{_toml_key(k)} = {_toml_value(v, f'{where}.{k}')}"
                 for k, v in value.items() if v is not None]
        return "{" + ", ".join(items) + "}"
    if isinstance(value, (list, tuple)):
        if any(v is None for v in value):
            raise TypeError(f"cannot write None inside the list at {where} to TOML")
        return "[" + ", ".join(_toml_value(v, f"{where}[]") for v in value) + "]"
    raise TypeError(f"cannot write {type(value).__name__} value at {where} to TOML")


def _emit_table(lines: list[str], prefix: tuple[str, ...], table: Mapping[str, Any]) -> None:
    scalars = [(k, v) for k, v in table.items() if v is not None and not isinstance(v, Mapping)]
    tables = [(k, v) for k, v in table.items() if isinstance(v, Mapping)]
    if prefix and (scalars or not tables):
        lines.append("")
        lines.append("[" + ".".join(_toml_key(k) for k in prefix) + "]")
    for key, value in scalars:
        lines.append(f"{_toml_key(key)} = {_toml_value(value, '.'.join(prefix + (key,)))}")
    for key, value in tables:
        _emit_table(lines, prefix + (key,), value)


def dumps_toml(data: Mapping[str, Any], header: str | None = None) -> str:
    """Serialise a nested dict of str/int/float/bool/list/dict to TOML; ``None`` is omitted.

    ``tomllib.loads(dumps_toml(d))`` equals ``d`` without its ``None`` values (tuples come back
    as lists, paths as strings). ``header`` is written as leading ``#`` comment lines.
    """
    lines = [f"# {line}".rstrip() for line in header.splitlines()] if header else []
    _emit_table(lines, (), data)
    while lines and lines[0] == "":
        lines.pop(0)
    return "\n".join(lines) + "\n"


# --------------------------------------------------------------------------------------------
# Tensors
# --------------------------------------------------------------------------------------------


def is_torch_tensor(value: Any) -> bool:
    return hasattr(value, "detach") and hasattr(value, "untyped_storage")


def encode_tensors(tensors: Mapping[str, Any], metadata: dict[str, str] | None) -> bytes:
    """Serialise torch tensors or numpy arrays to safetensors bytes.

    All-numpy input is written without importing torch (cheap writers and tests); anything
    else goes through torch. Tensors are moved to the CPU and copied so that views that share
    storage can be saved.
    """
    if not tensors:
        raise ValueError("cannot save an empty set of tensors")
    if not all(isinstance(v, np.ndarray) for v in tensors.values()):
        import torch
        from safetensors.torch import save

        prepared = {}
        for name, value in tensors.items():
            t = value.detach() if is_torch_tensor(value) else torch.as_tensor(value)
            t = t.cpu() if t.device.type != "cpu" else t.clone()
            prepared[name] = t.contiguous()
        return save(prepared, metadata=metadata)
    from safetensors.numpy import save as save_numpy

    return save_numpy({k: np.ascontiguousarray(v) for k, v in tensors.items()}, metadata=metadata)


def load_tensors(path: Path, what: str) -> dict[str, "torch.Tensor"]:
    from safetensors.torch import load_file

    try:
        return load_file(str(path))
    except FileNotFoundError as exc:
        raise RunStoreError(f"{what} {path} does not exist") from exc
    except Exception as exc:  # safetensors raises its own error type for corrupt headers
        raise RunStoreError(f"{what} {path} is unreadable: {one_line(exc)}") from exc
