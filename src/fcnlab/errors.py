"""Error types that the CLI turns into one clear line and exit code 2 (usage/data errors)."""

from __future__ import annotations


class FcnlabError(Exception):
    """A problem with the user's input (file, folder, option) that fcnlab reports in one line.

    The message must name the file or option and, where possible, the fix. The CLI prints
    ``fcnlab: error: <message>`` and exits with :attr:`exit_code` (2) without a traceback.
    """

    exit_code = 2


class DataError(FcnlabError):
    """A data file or folder is missing, unreadable, or not in the expected format."""


class ConfigError(FcnlabError):
    """A configuration key or value is invalid."""


class OutputError(FcnlabError):
    """A result could not be written (full disk, read-only file system, no permission, lock held).

    Write failures set :attr:`path` (the file) and :attr:`happened` (e.g. "the disk is full").
    """

    path: object = None
    happened: str = ""


class TrainingDiverged(FcnlabError):
    """The loss became NaN or Inf; the message names epoch, step and the last good checkpoint."""

    exit_code = 3
