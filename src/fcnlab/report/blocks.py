"""The report as a list of format-neutral blocks, rendered to HTML or Markdown by the renderers.

All text in blocks is plain text: the renderers escape it for their format.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_NUMBER = re.compile(r"^([+-]?(\d+|\d{1,3}(,\d{3})+)(\.\d+)?([eE][+-]?\d+)?|nan|n/a|-)$")


def _is_number(text: str) -> bool:
    return bool(_NUMBER.match(text.strip()))


@dataclass(frozen=True)
class Heading:
    """A section heading; ``level`` 1 is the page title. ``anchor`` is the HTML id."""

    level: int
    text: str
    anchor: str = ""


@dataclass(frozen=True)
class Para:
    """A paragraph of plain text; ``note`` paragraphs are shown in a muted style (missing files, hints)."""

    text: str
    note: bool = False


@dataclass(frozen=True)
class Table:
    """A table of plain-text cells; columns holding only numbers are right-aligned by the renderers."""

    header: list[str]
    rows: list[list[str]]
    caption: str = ""

    def numeric_columns(self) -> list[bool]:
        """For each column: every non-empty body cell is a number (``0.71``, ``+0.02``, ``nan``, ``n/a``, ``-``)."""
        return [
            bool(self.rows) and all(_is_number(row[i]) for row in self.rows if i < len(row) and row[i])
            for i in range(len(self.header))
        ]


@dataclass(frozen=True)
class Image:
    """An encoded image (PNG/JPEG bytes). ``name`` is its file name when written beside a Markdown report."""

    name: str
    data: bytes
    mime: str
    caption: str
    width: int = 0
    height: int = 0


@dataclass(frozen=True)
class Preformatted:
    """Collapsible preformatted text (architecture printout, config) under a one-line ``summary``."""

    summary: str
    text: str


@dataclass(frozen=True)
class Printout:
    """Program output shown as printed (always visible, monospaced): ``Val Acc: ...``, ``class #i : ...``."""

    text: str
    caption: str = ""


Block = Heading | Para | Table | Image | Preformatted | Printout
