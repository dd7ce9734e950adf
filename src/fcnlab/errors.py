"""Error types that the CLI turns into one clear line and exit code 2 (usage/data errors)."""

from __future__ import annotations

import pickle
import re


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


def torch_load_error(e: Exception) -> str:
    """What ``torch.load(weights_only=True)`` found wrong, in a few words.

    torch's own messages run to several sentences and suggest ``weights_only=False``, which would run code
    from the file; fcnlab never does that, so the advice is left out.
    """
    text = str(e)
    found = re.search(r"Unsupported global: GLOBAL ([\w.]+)", text)
    if found:  # e.g. a checkpoint that pickled an argparse.Namespace
        return (
            f"it holds a pickled {found.group(1)} object; fcnlab loads only tensors and plain data, never "
            f"code from the file"
        )
    if isinstance(e, pickle.UnpicklingError):
        return "not a PyTorch checkpoint file"
    first = text.splitlines()[0].split(". ")[0] if text else ""
    return f"{type(e).__name__}: {first}" if first else type(e).__name__
