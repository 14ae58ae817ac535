"""Typed messages from the store reader threads to the UI."""

from __future__ import annotations

from textual.message import Message

__all__ = ["RunUpdated", "RunFailed"]


class RunUpdated(Message):
    """New rows (or a new status) for a run are in its :class:`~eos_tui.app.series.RunData`.

    The data itself lives in the shared ``RunData``; the message only says "look again", so a
    newer message for the same run may replace an older one still in the queue.
    """

    def __init__(self, key: str, version: int) -> None:
        super().__init__()
        self.key = key
        self.version = version

    def can_replace(self, message: Message) -> bool:
        return isinstance(message, RunUpdated) and message.key == self.key


class RunFailed(Message):
    """The store of a run could not be read (missing or corrupt); ``error`` is one line."""

    def __init__(self, key: str, error: str) -> None:
        super().__init__()
        self.key = key
        self.error = error
