"""Where a result came from: fcnlab version, git commit of the source when known, and the command line.

Stored in a run folder's ``env.json`` and shown by the report, so a number can be traced to the code and the
command that produced it.
"""

from __future__ import annotations

import datetime as _dt
import shlex
import subprocess
import sys
from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path
from typing import Any

_command: list[str] | None = None


def set_command(argv: Sequence[str]) -> None:
    """Record the command being run (the ``fcnlab`` CLI calls this with ``["fcnlab", *argv]``)."""
    global _command
    _command = list(argv)


def command_args() -> list[str]:
    """The recorded command's arguments after the program (what :func:`fcnlab.cli.main.main` was given)."""
    return list(_command[1:]) if _command else list(sys.argv[1:])


def command_line() -> str:
    """The recorded command, else this process's own command line, quoted for a shell."""
    if _command is not None:
        return shlex.join(_command)
    argv = list(sys.argv)
    first = Path(argv[0]) if argv else Path()
    if first.name == "fcnlab" or (first.name == "__main__.py" and first.parent.name == "fcnlab"):
        return shlex.join(["fcnlab", *argv[1:]])
    return shlex.join([Path(sys.executable).name, *argv])


@lru_cache(maxsize=1)
def git_commit() -> tuple[str | None, bool]:
    """``(commit, dirty)`` of the git checkout holding fcnlab's source; ``(None, False)`` for an installed copy
    or when git is missing (a short timeout: never a reason for a run to hang)."""
    source = Path(__file__).resolve().parents[1]
    try:
        top = subprocess.run(
            ["git", "-C", str(source), "rev-parse", "--show-toplevel", "HEAD"],
            capture_output=True,
            text=True,
            timeout=5,
            check=False,
        )
        if top.returncode != 0:
            return None, False
        root, commit = top.stdout.split()[:2]
        if not (Path(root) / "pyproject.toml").is_file() or not source.is_relative_to(Path(root).resolve()):
            return None, False
        status = subprocess.run(
            ["git", "-C", root, "status", "--porcelain", "--untracked-files=no", "--", "src"],
            capture_output=True,
            text=True,
            timeout=5,
            check=False,
        )
        return commit, bool(status.stdout.strip())
    except (OSError, subprocess.SubprocessError, ValueError):
        return None, False


def provenance() -> dict[str, Any]:
    """``{"fcnlab", "git_commit", "git_dirty", "command"}`` of this process."""
    from fcnlab import __version__

    commit, dirty = git_commit()
    return {"fcnlab": __version__, "git_commit": commit, "git_dirty": dirty, "command": command_line()}


def now_text() -> str:
    """The current UTC time, ISO 8601 to the second."""
    return _dt.datetime.now(_dt.timezone.utc).replace(microsecond=0).isoformat()


def command_entry(what: str, **extra: Any) -> dict[str, Any]:
    """One entry of env.json's ``commands``: what it did (train, resume, eval ...), the command line, the time,
    the fcnlab version and git commit, then ``extra``. Here rather than beside the evaluation records, so
    training (a lower stage) can write its own entry too."""
    me = provenance()
    return {
        "what": what,
        "command": me["command"],
        "time": now_text(),
        "fcnlab": me["fcnlab"],
        "git_commit": me["git_commit"],
        **extra,
    }


def commit_text(info: dict[str, Any]) -> str:
    """``abc1234`` (``abc1234+changes`` with uncommitted edits), or ``-`` when unknown."""
    commit = info.get("git_commit")
    if not commit:
        return "-"
    return str(commit)[:10] + ("+changes" if info.get("git_dirty") else "")
