"""Render report blocks as Markdown; images become files in a folder beside the ``.md`` file."""

from __future__ import annotations

import html
from collections.abc import Sequence

from fcnlab.report.blocks import Block, Heading, Image, Para, Preformatted, Printout, Table


def _cell(text: str) -> str:
    return text.replace("\\", "\\\\").replace("|", "\\|").replace("\n", " ")


def _text(text: str) -> str:
    """Plain text safe in a Markdown paragraph: HTML-escaped, Markdown emphasis characters escaped."""
    escaped = html.escape(text, quote=False)
    for ch in "\\`*_[]#":
        escaped = escaped.replace(ch, "\\" + ch)
    return escaped


def render_markdown(blocks: Sequence[Block], image_dir: str) -> tuple[str, dict[str, bytes]]:
    """The Markdown text and the image files (``{relative path: bytes}``) it links to under ``image_dir``."""
    out: list[str] = []
    files: dict[str, bytes] = {}
    for block in blocks:
        if isinstance(block, Heading):
            out.append(f"{'#' * block.level} {_text(block.text)}")
        elif isinstance(block, Para):
            out.append(f"*{_text(block.text)}*" if block.note else _text(block.text))
        elif isinstance(block, Table):
            align = ["---:" if right else "---" for right in block.numeric_columns()]
            rows = [block.header, align, *block.rows]
            out.append("\n".join("| " + " | ".join(_cell(c) for c in row) + " |" for row in rows))
            if block.caption:
                out.append(f"*{_text(block.caption)}*")
        elif isinstance(block, Image):
            rel = f"{image_dir}/{block.name}"
            files[rel] = block.data
            out.append(f"![{_cell(block.caption).replace(']', '')}]({rel.replace(' ', '%20')})")
        elif isinstance(block, Printout):
            fence = "````" if "```" in block.text else "```"
            out.append(f"{fence}text\n{block.text}\n{fence}")
            if block.caption:
                out.append(f"*{_text(block.caption)}*")
        elif isinstance(block, Preformatted):
            out.append(
                f"<details><summary>{html.escape(block.summary)}</summary>\n\n<pre>"
                f"{html.escape(block.text)}</pre>\n</details>"
            )
        else:
            raise TypeError(f"unknown report block {type(block).__name__}")
    return "\n\n".join(out) + "\n", files
