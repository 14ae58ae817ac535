"""``eos-tui data``: fetch, import, embed and list the data sets.

``fetch`` downloads (resumably, checksum-verified) and imports; ``import`` does the same from
a file fetched elsewhere (offline machines); ``embed sst`` prepares the RoBERTa embeddings;
``list`` shows which data sets are ready and where. Errors are raised as
:class:`~engine.errors.EosError`; the main CLI prints them as one line.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from types import ModuleType
from typing import Annotated, Optional

import typer
from rich.console import Console
from rich.progress import (
    BarColumn,
    DownloadColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)
from rich.table import Table
from rich.text import Text

from engine.errors import DataError

data_app = typer.Typer(
    help="Download, import and prepare data sets (CIFAR-10, AtrialFibrillation, SST).",
    no_args_is_help=True,
)
console = Console()

DOWNLOADABLE: dict[str, str] = {"cifar10": "engine.data.cifar", "af": "engine.data.ucr", "sst": "engine.data.sst"}
"""Data sets with files to fetch, and their modules."""

DataDir = Annotated[
    Optional[Path],
    typer.Option("--data-dir", help="Data directory (default: $EOS_TUI_DATA, then the user cache, ~/.cache/eos-tui)."),
]
Name = Annotated[str, typer.Argument(metavar="NAME", help=f"Data set: {', '.join(DOWNLOADABLE)}.", show_default=False)]


def say(text: str) -> None:
    """Print ``text`` as it is (paths may hold ``[`` and ``]``: never parsed as markup)."""
    console.print(Text(text), highlight=False, soft_wrap=True)


def _module(name: str) -> ModuleType:
    """The module of downloadable data set ``name`` (DataError for any other name)."""
    if name not in DOWNLOADABLE:
        raise DataError(
            f"{name!r} is not a downloadable data set: choose one of {', '.join(DOWNLOADABLE)} "
            "(see `eos-tui data list`)"
        )
    return importlib.import_module(DOWNLOADABLE[name])


def _root(data_dir: Path | None) -> Path:
    """The data directory: ``--data-dir``, then ``$EOS_TUI_DATA``, then the user cache.

    ``engine.data`` (and with it torch) is imported here, not at module import, so mounting
    this sub-app keeps ``eos-tui --help`` fast.
    """
    from engine.data.paths import resolve_data_dir

    return resolve_data_dir(data_dir)


@contextmanager
def _bar(description: str, *, unit: str) -> Iterator[Callable[[int, int | None], None]]:
    """A rich progress bar; yields ``update(done, total)``. ``unit``: ``"bytes"`` or ``"items"``."""
    counter = DownloadColumn() if unit == "bytes" else MofNCompleteColumn()
    rate = TransferSpeedColumn() if unit == "bytes" else TimeRemainingColumn()
    with Progress(TextColumn("{task.description}"), BarColumn(), counter, rate, console=console) as progress:
        task = progress.add_task(description, total=None)

        def update(done: int, total: int | None) -> None:
            progress.update(task, completed=done, total=total)

        yield update


@data_app.command("fetch")
def fetch_command(name: Name, data_dir: DataDir = None) -> None:
    """Download a data set (resumable, checksum-verified) and import it."""
    module = _module(name)
    root = _root(data_dir)
    with _bar(f"downloading {name}", unit="bytes") as update:
        path = module.fetch(root, progress=update)
    say(f"{name}: {module.status(root)} — in {path}")


@data_app.command("import")
def import_command(
    name: Name,
    paths: Annotated[list[Path], typer.Argument(
        metavar="PATH",
        help="cifar10: cifar-10-python.tar.gz; af: AtrialFibrillation.zip, its two .ts files or "
        "their folder; sst: SST-2.zip or its train.tsv.", show_default=False)],
    data_dir: DataDir = None,
) -> None:
    """Import a data set from files downloaded elsewhere (checks them like `fetch` does)."""
    module = _module(name)
    root = _root(data_dir)
    path = module.import_files(root, list(paths))
    say(f"{name}: {module.status(root)} — in {path}")


@data_app.command("embed")
def embed_command(
    name: Name,
    data_dir: DataDir = None,
    model: Annotated[str, typer.Option(help="Hugging Face model name or local folder.")] = "roberta-base",
) -> None:
    """Compute and cache the RoBERTa token embeddings of SST (needs the `embed` extra).

    States the disk and time it needs before it starts (and refuses when the disk lacks the
    room), then shows progress with an ETA. Without internet and without the model in the
    Hugging Face cache it fails within seconds."""
    if name != "sst":
        raise DataError(f"only sst has an embedding step, not {name!r}: run `eos-tui data embed sst`")
    module = _module(name)
    root = _root(data_dir)
    module.load_sentences(root)  # the sentences are imported and intact
    module.check_model(model)  # offline and not cached: fails within seconds
    say(module.plan_embedding(root, model=model).describe())
    say(f"loading {model} …")
    embedder = module.roberta_embedder(model)
    with _bar(f"embedding sst with {model}", unit="items") as update:
        path = module.embed(root, model=model, embedder=embedder, progress=update)
    say(f"sst: {module.status(root)} — in {path}")


@data_app.command("list")
def list_command(data_dir: DataDir = None) -> None:
    """Show every data set, whether it is ready, and where its files are."""
    from engine.data.registry import DATASETS, dataset_module

    root = _root(data_dir)
    table = Table(title=Text(f"data sets in {root}"), title_justify="left")
    table.add_column("name")
    table.add_column("status", overflow="fold")
    table.add_column("location", overflow="fold")
    for name in DATASETS:
        if name in DOWNLOADABLE:
            module = _module(name)
            table.add_row(*map(Text, (name, module.status(root), str(module.dataset_dir(root)))))
            continue
        try:
            module = dataset_module(name)
        except DataError as exc:
            table.add_row(*map(Text, (name, f"unavailable: {exc}", "-")))
            continue
        built_in = not module.NEEDS_DOWNLOAD
        state = "built in" if built_in else ("ready" if module.available(root) else "missing")
        table.add_row(*map(Text, (name, state, "generated" if built_in else str(root / name))))
    console.print(table)
