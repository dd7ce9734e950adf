"""Where the demo writes (:class:`DemoLayout`) and the output folder's safety: the ``.fcnlab-demo`` marker and
:func:`prepare_demo_dir`, which refuses a folder holding anything the demo did not write."""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fcnlab.demo.plan import DemoPlan
from fcnlab.errors import ConfigError
from fcnlab.runtime.files import atomic_write_text, make_folder

MARKER = ".fcnlab-demo"
MARKER_FORMAT = "fcnlab-demo"


@dataclass
class DemoLayout:
    """Where the demo puts its data and runs inside the output folder."""

    root: Path
    plan: DemoPlan = field(default_factory=DemoPlan)

    @property
    def p1_data(self) -> Path:
        return self.root / "data" / "p1"

    @property
    def p2_data(self) -> Path:
        return self.root / "data" / "p2"

    @property
    def p1_run(self) -> Path:
        return self.root / f"p1_{self.plan.p1_model}"

    def p2_run(self, model: str) -> Path:
        return self.root / f"p2_{model}"

    @property
    def p2_runs(self) -> list[Path]:
        return [self.p2_run(m) for m in self.plan.p2_models]

    def entries(self) -> list[str]:
        """Top-level names the demo writes (recorded in the marker)."""
        runs = [self.p1_run.name, *[r.name for r in self.p2_runs]]
        return [MARKER, "data", *runs, "compare.md", "report.html", "summary.md"]


# ----------------------------------------------------------------------------------------- folder safety
def _read_marker(root: Path) -> dict[str, Any] | None:
    path = root / MARKER
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return None
    return data if isinstance(data, dict) and data.get("format") == MARKER_FORMAT else None


def _is_temp_of(name: str, known: set[str]) -> bool:
    """``.report.html.abc123.html``: a temporary file that an atomic write of a known entry left behind."""
    return name.startswith(".") and any(name.startswith(f".{k}.") for k in known)


def prepare_demo_dir(root: str | Path, layout: DemoLayout) -> Path:
    """Create ``root`` (or clear a previous demo's entries from it) and write the demo marker.

    Refuses, with a :class:`ConfigError` naming the folder and the offending entries, a path that is a
    file, or a folder that holds anything other than what an earlier demo wrote. Nothing is deleted
    unless the marker proves the folder is a demo folder and every entry in it is one of the demo's.
    """
    root = Path(root)
    if root.is_dir():
        present = sorted(p.name for p in root.iterdir())
        if present:
            marker = _read_marker(root)
            if marker is None:
                raise ConfigError(
                    f"--out {root}: folder already holds files ({_preview(present)}) and is "
                    f"not an earlier demo folder; choose a new or empty folder (the demo never "
                    f"deletes other files)"
                )
            known = set(layout.entries()) | {str(n) for n in marker.get("entries", []) if isinstance(n, str)}
            foreign = [n for n in present if (n not in known and not _is_temp_of(n, known)) or (root / n).is_symlink()]
            if foreign:
                raise ConfigError(
                    f"--out {root}: is an earlier demo folder but also holds "
                    f"{_preview(foreign)}, which the demo did not write; move those away or "
                    f"choose another folder"
                )
            for name in present:
                if name == MARKER:
                    continue
                path = root / name
                if path.is_dir():
                    shutil.rmtree(path)
                else:
                    path.unlink()
    make_folder(root)
    atomic_write_text(
        root / MARKER, json.dumps({"format": MARKER_FORMAT, "version": 1, "entries": layout.entries()}, indent=1) + "\n"
    )
    return root


def _preview(names: list[str], k: int = 5) -> str:
    shown = ", ".join(names[:k])
    return shown + (f" and {len(names) - k} more" if len(names) > k else "")
