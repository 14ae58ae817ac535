"""User-facing error types.

Every error a user can cause (bad config, missing data, corrupt run directory) is raised as a
subclass of :class:`EosError`. The CLI prints its message on one line and exits non-zero
(:attr:`EosError.exit_code`: 2 for bad input, 5 when the system refuses to store data); it
never shows a traceback for these.
"""


class EosError(Exception):
    """Base class for errors caused by user input or the environment, not by bugs."""

    exit_code = 2


class ConfigError(EosError):
    """Invalid preset, override or configuration value."""


class DataError(EosError):
    """A data set is missing, corrupt or fails its checksum."""


class RunStoreError(EosError):
    """A run directory is missing, corrupt or cannot be written."""


class StorageError(RunStoreError):
    """The file system refused a write or read the run needs: disk full, read-only or
    unwritable folder, I/O error. Not the user's input: retrying elsewhere may work."""

    exit_code = 5
