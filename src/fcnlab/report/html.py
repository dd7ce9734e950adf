"""Render report blocks as one self-contained HTML page: images embedded as base64 data URIs, no scripts,
no external resources, every text escaped with :func:`html.escape`."""

from __future__ import annotations

import base64
import html
from collections.abc import Sequence

from fcnlab.report.blocks import Block, Heading, Image, Para, Preformatted, Printout, Table

STYLE = """
body { font-family: system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; margin: 2rem auto;
       max-width: 1200px; padding: 0 1rem; color: #1d1d1f; line-height: 1.45; }
h1 { font-size: 1.7rem; border-bottom: 2px solid #ddd; padding-bottom: .3rem; }
h2 { font-size: 1.35rem; margin-top: 2.2rem; border-bottom: 1px solid #e5e5e5; padding-bottom: .2rem; }
h3 { font-size: 1.1rem; margin-top: 1.5rem; }
table { border-collapse: collapse; margin: .6rem 0 1rem; font-size: .92rem; }
th, td { border: 1px solid #d0d0d0; padding: .25rem .6rem; text-align: left; }
th { background: #f3f3f3; }
td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; }
caption { caption-side: bottom; font-size: .85rem; color: #666; text-align: left; padding-top: .3rem; }
figure { margin: .8rem 0 1.4rem; }
figure img { max-width: 100%; height: auto; border: 1px solid #eee; }
figcaption { font-size: .85rem; color: #555; }
p.note { color: #777; font-style: italic; }
details { margin: .5rem 0 1rem; }
summary { cursor: pointer; color: #0b5cad; }
pre { background: #f7f7f7; padding: .7rem; overflow-x: auto; font-size: .8rem; line-height: 1.3; }
nav a { margin-right: 1rem; }
pre.printout { background: #1d1d1f; color: #f3f3f3; font-size: .85rem; display: inline-block; min-width: 22rem;
               margin: 0; }
/* Printing (to PDF): a heading stays on the page of what follows it, figures and tables are never split. */
h1, h2, h3 { break-after: avoid; page-break-after: avoid; }
figure, table, tr, .keep { break-inside: avoid; page-break-inside: avoid; }
@media print {
  body { max-width: none; margin: 0; font-size: 10.5pt; }
  nav { display: none; }
  h2 { margin-top: 1.2rem; }
  figure img { max-height: 24cm; width: auto; }
  details pre { white-space: pre-wrap; }
}
"""


def data_uri(image: Image) -> str:
    """``data:<mime>;base64,...`` of an image block."""
    return f"data:{image.mime};base64,{base64.b64encode(image.data).decode('ascii')}"


def _table(block: Table) -> str:
    e = html.escape
    right = block.numeric_columns()
    parts = ["<table>"]
    if block.caption:
        parts.append(f"<caption>{e(block.caption)}</caption>")

    def cell(tag: str, i: int, text: str) -> str:
        return f'<{tag} class="num">{e(text)}</{tag}>' if i < len(right) and right[i] else f"<{tag}>{e(text)}</{tag}>"

    parts.append("<thead><tr>" + "".join(cell("th", i, h) for i, h in enumerate(block.header)) + "</tr></thead>")
    parts.append("<tbody>")
    for row in block.rows:
        parts.append("<tr>" + "".join(cell("td", i, c) for i, c in enumerate(row)) + "</tr>")
    parts.append("</tbody></table>")
    return "\n".join(parts)


def render_block(block: Block) -> str:
    """One block as HTML."""
    e = html.escape
    if isinstance(block, Heading):
        anchor = f' id="{e(block.anchor)}"' if block.anchor else ""
        return f"<h{block.level}{anchor}>{e(block.text)}</h{block.level}>"
    if isinstance(block, Para):
        return f'<p class="note">{e(block.text)}</p>' if block.note else f"<p>{e(block.text)}</p>"
    if isinstance(block, Table):
        return _table(block)
    if isinstance(block, Image):
        size = f' width="{block.width}" height="{block.height}"' if block.width and block.height else ""
        return (
            f'<figure><img src="{data_uri(block)}" alt="{e(block.caption)}"{size}>'
            f"<figcaption>{e(block.caption)}</figcaption></figure>"
        )
    if isinstance(block, Printout):
        caption = f"<figcaption>{e(block.caption)}</figcaption>" if block.caption else ""
        return f'<figure><pre class="printout">{e(block.text)}</pre>{caption}</figure>'
    if isinstance(block, Preformatted):
        return f"<details><summary>{e(block.summary)}</summary><pre>{e(block.text)}</pre></details>"
    raise TypeError(f"unknown report block {type(block).__name__}")


def render_html(blocks: Sequence[Block], title: str) -> str:
    """The whole page: a contents bar of the level-2 headings, then every block."""
    links = [
        f'<a href="#{html.escape(b.anchor)}">{html.escape(b.text)}</a>'
        for b in blocks
        if isinstance(b, Heading) and b.level == 2 and b.anchor
    ]
    body = [render_block(blocks[0])] if blocks else []
    if links:
        body.append("<nav>" + "".join(links) + "</nav>")
    rest = list(blocks[1:])
    i = 0
    while i < len(rest):
        # A heading and the block after it (a figure, a table, a first paragraph) go into one unbreakable box:
        # break-after: avoid alone is not honoured by every browser's print engine.
        if isinstance(rest[i], Heading) and i + 1 < len(rest) and not isinstance(rest[i + 1], Heading):
            body.append(f'<div class="keep">{render_block(rest[i])}\n{render_block(rest[i + 1])}</div>')
            i += 2
        else:
            body.append(render_block(rest[i]))
            i += 1
    return (
        '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f"<title>{html.escape(title)}</title>\n<style>{STYLE}</style>\n</head>\n<body>\n"
        + "\n".join(body)
        + "\n</body>\n</html>\n"
    )
