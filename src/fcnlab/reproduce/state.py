"""What ``fcnlab reproduce`` has done in its output folder: one small marker file per step.

``OUT/.fcnlab-reproduce/<step>.started`` is written before a step first runs, ``<step>.done`` (JSON: the
command and its seconds) after it succeeded, ``train-<run>.cut`` when the time budget stopped a training run
(its ``last.pt`` resumes it). Each marker is written atomically, so a rerun after a kill, a crash or a full
disk knows exactly which steps finished. A path reproduce would write that exists without its ``.started``
marker belongs to someone else: the command refuses it before it starts anything.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from fcnlab.errors import ConfigError
from fcnlab.runtime.files import atomic_write_text, make_folder

STATE = ".fcnlab-reproduce"


class State:
    """The markers of one output folder."""

    def __init__(self, out: Path):
        self.folder = out / STATE

    def _path(self, key: str, kind: str) -> Path:
        return self.folder / f"{key}.{kind}"

    def has(self, key: str, kind: str) -> bool:
        """Whether marker ``kind`` (started, done, cut) of step ``key`` exists."""
        return self._path(key, kind).is_file()

    def mark(self, key: str, kind: str, info: dict[str, Any] | None = None) -> None:
        """Write marker ``kind`` of step ``key`` atomically (with ``info`` and the time, as JSON)."""
        make_folder(self.folder)
        atomic_write_text(self._path(key, kind), json.dumps({"time": time.time(), **(info or {})}) + "\n")

    def clear(self, key: str, *kinds: str) -> None:
        """Remove markers of step ``key`` (its output is about to be written again)."""
        for kind in kinds:
            self._path(key, kind).unlink(missing_ok=True)

    def read(self, key: str, kind: str) -> dict[str, Any]:
        """The JSON of a marker ({} when absent or unreadable)."""
        try:
            data = json.loads(self._path(key, kind).read_text())
        except (OSError, ValueError):
            return {}
        return data if isinstance(data, dict) else {}


def check_outputs(state: State, owned: dict[str, Path]) -> None:
    """Refuse, before anything runs, an output (``{step key: path}``) that exists without its step's marker:
    a file or folder reproduce did not write, which it would otherwise overwrite or train into."""
    foreign = [str(p) for key, p in owned.items() if p.exists() and not state.has(key, "started")]
    if foreign:
        raise ConfigError(
            f"--out: {', '.join(foreign)} already exist(s) but were not written by fcnlab reproduce "
            f"into this folder; move them away or choose another --out"
        )
