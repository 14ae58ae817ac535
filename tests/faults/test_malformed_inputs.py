"""Malformed inputs: truncated or garbage store files, configs with wrong types or unknown keys,
preset TOML syntax errors, NaN/inf or wrong-shape data, missing checkpoints ... Each gives one
clear ``error:`` line and a non-zero exit from the installed command, and modifies nothing (the
tree is hashed before and after)."""

from __future__ import annotations

import gzip
import json
import os
import shutil
import sqlite3
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from conftest import tiny_config
from datafiles import af_cases, ts_text, write_af_files, write_cifar_archive
from engine.errors import EosError
from faults.faultlib import FIGURES, eos_tui, tree_hash

# -- the cases -------------------------------------------------------------------------------
# Each case prepares its own folder ``w`` (the copied good run is ``w/run``) and returns the
# command's arguments; the command runs with EOS_TUI_RUNS=w/runs and EOS_TUI_DATA=w/data.


def _store(damage: Callable[[Path], None], command: str = "export") -> Callable[[Path], list]:
    def case(w: Path) -> list:
        damage(w / "run")
        return [command, w / "run"]
    return case


def _db(run: Path) -> Path:
    return run / "metrics.sqlite"


def _truncate(size: int | None = None, fraction: float | None = None):
    def damage(run: Path) -> None:
        raw = _db(run).read_bytes()
        _db(run).write_bytes(raw[: size if size is not None else int(len(raw) * fraction)])
    return damage


def _scramble_pages(run: Path) -> None:
    raw = bytearray(_db(run).read_bytes())
    raw[100:] = bytes((i * 37 + 11) % 251 for i in range(len(raw) - 100))
    _db(run).write_bytes(bytes(raw))


def _sql(statement: str):
    def damage(run: Path) -> None:
        with sqlite3.connect(_db(run)) as conn:
            conn.execute(statement)
        conn.close()
    return damage


def _foreign_db(run: Path) -> None:
    _db(run).unlink()
    with sqlite3.connect(_db(run)) as conn:
        conn.execute("CREATE TABLE steps (id INTEGER, name TEXT)")
        conn.execute("CREATE TABLE meta (key TEXT, value TEXT)")
    conn.close()


def _write(name: str, data: bytes | str):
    def damage(run: Path) -> None:
        (run / name).write_bytes(data if isinstance(data, bytes) else data.encode())
    return damage


def _remove(name: str):
    def damage(run: Path) -> None:
        target = run / name
        shutil.rmtree(target) if target.is_dir() else target.unlink()
    return damage


def _db_is_a_folder(run: Path) -> None:
    _db(run).unlink()
    _db(run).mkdir()


def _run_is_a_file(w: Path) -> list:
    shutil.rmtree(w / "run")
    (w / "run").write_text("not a run")
    return ["export", w / "run"]


def _compare_with_broken(w: Path) -> list:
    shutil.copytree(w / "run", w / "other")
    _truncate(fraction=0.5)(w / "other")
    return ["compare", w / "run", w / "other"]


def _run(*sets: str, preset: str = "dice-quick") -> Callable[[Path], list]:
    return lambda w: ["run", "preset", preset, "--no-ui", "--max-steps", "2", *[a for s in sets for a in ("--set", s)]]


def _preset_file(text: str | bytes, name: str = "mine.toml") -> Callable[[Path], list]:
    def case(w: Path) -> list:
        path = w / name
        path.write_bytes(text if isinstance(text, bytes) else text.encode())
        return ["run", "preset", path, "--no-ui", "--max-steps", "2"]
    return case


def _af(edit: Callable[[str], str]) -> Callable[[Path], list]:
    def case(w: Path) -> list:
        train, test, _, _ = write_af_files(w / "src")
        train.write_text(edit(train.read_text()))
        return ["data", "import", "af", train, test]
    return case


def _af_lines(edit: Callable[[str], str]) -> Callable[[str], str]:
    def apply(text: str) -> str:
        lines = text.splitlines()
        lines[-3] = edit(lines[-3])
        return "\n".join(lines) + "\n"
    return apply


def _af_altered_after_import(w: Path) -> list:
    from engine.data import ucr

    train, test, _, _ = write_af_files(w / "src")
    ucr.import_files(w / "data", [train, test])
    target = w / "data" / "af" / train.name
    target.write_text(target.read_text().replace("0.1", "0.2", 1))
    return ["run", "preset", "af-ce", "--no-ui", "--max-steps", "1", "--set", "model.width=16"]


def _cifar_archive(raw: Callable[[Path], bytes]) -> Callable[[Path], list]:
    def case(w: Path) -> list:
        fake = write_cifar_archive(w / "src" / "cifar-10-python.tar.gz", per_batch=2)
        fake.path.write_bytes(raw(fake.path))
        return ["data", "import", "cifar10", fake.path]
    return case


def _cifar_folder(w: Path) -> list:
    import tarfile

    fake = write_cifar_archive(w / "src" / "cifar-10-python.tar.gz", per_batch=2)
    with tarfile.open(fake.path) as tar:
        tar.extractall(w / "src", filter="data")
    return ["data", "import", "cifar10", w / "src" / "cifar-10-batches-py"]


TOML_OK = 'data.name = "dice"\n[model]\ndepth = 2\nwidth = 8\n'

CASES: dict[str, Callable[[Path], list]] = {
    # run stores
    "store: metrics.sqlite empty": _store(_truncate(size=0)),
    "store: metrics.sqlite cut to 100 bytes": _store(_truncate(size=100)),
    "store: metrics.sqlite cut in half": _store(_truncate(fraction=0.5)),
    "store: metrics.sqlite garbage": _store(_write("metrics.sqlite", b"\x00garbage\xff" * 500)),
    "store: metrics.sqlite pages scrambled": _store(_scramble_pages),
    "store: metrics.sqlite missing": _store(_remove("metrics.sqlite")),
    "store: metrics.sqlite a folder": _store(_db_is_a_folder),
    "store: another program's database": _store(_foreign_db),
    "store: written by a newer eos-tui": _store(_sql("UPDATE meta SET value = '99' WHERE key = 'schema_version'")),
    "store: steps table dropped": _store(_sql("DROP TABLE steps")),
    "store: run.json missing": _store(_remove("run.json")),
    "store: run.json truncated": _store(_write("run.json", '{"preset": "dice-qu')),
    "store: run.json a list": _store(_write("run.json", "[1, 2, 3]")),
    "store: config.toml syntax error": _store(_write("config.toml", "[model\ndepth = = 3\n")),
    "store: config.toml missing": _store(_remove("config.toml")),
    "store: config.toml not UTF-8": _store(_write("config.toml", b"depth = '\xff\xfe'\n")),
    "replay: garbage store": _store(_write("metrics.sqlite", b"garbage" * 100), "replay"),
    "compare: one store cut in half": _compare_with_broken,
    "export: a file, not a run": _run_is_a_file,
    "export: path with [/x] that does not exist": lambda w: ["export", w / "runs[/x]missing"],
    "export: unknown format": lambda w: ["export", w / "run", "--format", "xls"],
    "export: into a folder that does not exist": lambda w: ["export", w / "run", "--out", w / "nowhere" / "m.csv"],
    # configurations and presets
    "set: wrong type": _run("model.width=wide"),
    "set: a float for an integer": _run("model.width=1.5"),
    "set: unknown key": _run("train.lrr=1"),
    "set: NaN": _run("train.lr=nan"),
    "set: inf": _run("train.lr=inf"),
    "set: zero depth": _run("model.depth=0"),
    "set: no value": _run("justakey"),
    "set: unknown data set": _run("data.name=mnist"),
    "set: not a boolean": _run("metrics.layer_metrics=maybe"),
    "preset: unknown name": lambda w: ["run", "preset", "dice-quik", "--no-ui"],
    "preset file: TOML syntax error": _preset_file('[model\ndepth = = 2\n'),
    "preset file: wrong type": _preset_file('[model]\nwidth = "wide"\n'),
    "preset file: unknown key": _preset_file('[model]\nwidht = 8\n'),
    "preset file: unknown section": _preset_file(TOML_OK + '[modle]\ndepth = 2\n'),
    "preset file: not UTF-8": _preset_file(b'[model]\ndepth = "\xff"\n'),
    "preset file: missing": lambda w: ["run", "preset", w / "absent.toml", "--no-ui"],
    "option: --max-steps 0": lambda w: ["run", "preset", "dice-quick", "--no-ui", "--max-steps", "0"],
    "option: unknown": lambda w: ["run", "preset", "dice-quick", "--no-ui", "--fast"],
    "option: --device tpu": lambda w: ["run", "preset", "dice-quick", "--no-ui", "--device", "tpu"],
    # data files
    "af: NaN values": _af(_af_lines(lambda line: line.replace(",", ",NaN,", 1))),
    "af: inf values": _af(_af_lines(lambda line: line.replace(",", ",inf,", 1))),
    "af: missing values '?'": _af(_af_lines(lambda line: line.replace(",", ",?,", 1))),
    "af: a short dimension (wrong shape)": _af(_af_lines(lambda line: line.replace(",", ":", 1))),
    "af: 14 cases": _af(lambda text: "\n".join(text.splitlines()[:-1]) + "\n"),
    "af: truncated mid-line": _af(lambda text: text[: len(text) // 2]),
    "af: no @data": _af(lambda text: text.replace("@data\n", "")),
    "af: altered after import": _af_altered_after_import,
    "cifar10: garbage archive": _cifar_archive(lambda p: b"not a tar" * 100),
    "cifar10: truncated archive": _cifar_archive(lambda p: p.read_bytes()[:300]),
    "cifar10: gzip of garbage": _cifar_archive(lambda p: gzip.compress(b"garbage" * 100)),
    "cifar10: unofficial extracted folder": _cifar_folder,
    "cifar10: run without the data": lambda w: ["run", "preset", "cifar-ce", "--no-ui", "--max-steps", "1"],
    "sst: embed without sentences": lambda w: ["data", "embed", "sst"],
    "data: unknown data set": lambda w: ["data", "import", "mnist", w / "run"],
}


@pytest.fixture(scope="module")
def good_run(tmp_path_factory) -> Path:
    from engine.trainer import train

    path = tmp_path_factory.mktemp("good") / "run"
    train(tiny_config("train.max_steps=12", "metrics.snapshot_every=5"), path)
    return path


def _try(name: str, make: Callable[[Path], list], good: Path, root: Path) -> tuple[str, str | None]:
    w = root / f"case{list(CASES).index(name):02d}"
    shutil.copytree(good, w / "run")
    (w / "runs").mkdir()
    (w / "data").mkdir(exist_ok=True)
    args = make(w)
    before = tree_hash(w)
    env = dict(os.environ, EOS_TUI_RUNS=str(w / "runs"), EOS_TUI_DATA=str(w / "data"), HF_HUB_OFFLINE="1")
    res = eos_tui(*args, env=env)
    after = tree_hash(w)
    lines = [line for line in res.stderr.splitlines() if line.strip()]
    if "Traceback" in res.stderr:
        FIGURES["tracebacks"] += 1
    if before != after:
        FIGURES["trees modified"] += 1
        changed = sorted(set(before.items()) ^ set(after.items()))
        return name, f"modified {changed[:4]}"
    if res.returncode in (0, 1) or len(lines) != 1 or not lines[0].startswith("error: ") or res.stdout.strip():
        return name, f"exit {res.returncode}, stderr {res.stderr[-600:]!r}, stdout {res.stdout[-300:]!r}"
    FIGURES["one-line errors"] += 1
    return name, None


@pytest.mark.slow
def test_malformed_inputs_give_one_line_and_change_nothing(good_run: Path, tmp_path: Path) -> None:
    with ThreadPoolExecutor(max_workers=3) as pool:
        results = list(pool.map(lambda item: _try(*item, good_run, tmp_path), CASES.items()))
    FIGURES["inputs tried"] += len(CASES)
    problems = [f"{name}: {problem}" for name, problem in results if problem]
    assert not problems, "\n".join(problems)
    assert len(CASES) >= 30


# -- the same through the Python API: checkpoints and training tensors ------------------------

API_CASES = {
    "checkpoint at a step that has none": lambda run: run.checkpoint(3),
    "checkpoint file truncated": lambda run: (_cut(run.path / "checkpoints", 0.5), run.checkpoint(None)),
    "checkpoint file garbage": lambda run: (_garble(run.path / "checkpoints"), run.checkpoint(None)),
    "checkpoints folder missing": lambda run: (shutil.rmtree(run.path / "checkpoints"), run.checkpoint()),
    "training data missing": lambda run: ((run.path / "data.safetensors").unlink(), run.training_data()),
    "training data garbage": lambda run: ((run.path / "data.safetensors").write_bytes(b"x" * 64), run.training_data()),
    "snapshot at a step that has none": lambda run: run.snapshot_at(3),
}


def _cut(folder: Path, fraction: float) -> None:
    for f in folder.glob("*.safetensors"):
        f.write_bytes(f.read_bytes()[: int(f.stat().st_size * fraction)])


def _garble(folder: Path) -> None:
    for f in folder.glob("*.safetensors"):
        f.write_bytes(b"\xff" * f.stat().st_size)


@pytest.mark.parametrize("name", list(API_CASES))
def test_malformed_checkpoints_and_tensors_through_the_api(good_run: Path, tmp_path: Path, name: str) -> None:
    from engine.store import open_run

    run_dir = tmp_path / "run"
    shutil.copytree(good_run, run_dir)
    FIGURES["inputs tried"] += 1
    with open_run(run_dir) as run:
        with pytest.raises(EosError) as info:
            API_CASES[name](run)
    message = str(info.value)
    assert "\n" not in message and str(run_dir) in message, message
    FIGURES["one-line errors"] += 1


def test_the_cases_cover_what_the_issue_names() -> None:
    names = " ".join(CASES)
    for kind in ("truncated", "garbage", "wrong type", "unknown key", "TOML syntax error", "NaN", "inf",
                 "wrong shape"):
        assert kind.lower() in names.lower().replace("cut", "truncated"), kind
    assert any("checkpoint" in n for n in API_CASES)
