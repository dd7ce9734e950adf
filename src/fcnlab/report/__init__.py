"""Reports of training runs: one self-contained HTML page (or Markdown + image folder) per set of runs.

``write_report(["runs/fcn32s", "runs/fcn8s"], "report.html")`` reads each run folder
(:mod:`fcnlab.report.runs`), assembles the sections (:mod:`fcnlab.report.document`) and renders them
(:mod:`fcnlab.report.html` or :mod:`fcnlab.report.markdown`). Everything is written atomically and no
input file is ever overwritten.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from fcnlab.report.runs import RunInfo, load_run, load_runs

FORMATS = ("html", "md")

__all__ = ["FORMATS", "ReportResult", "RunInfo", "load_run", "load_runs", "write_report"]


@dataclass
class ReportResult:
    """What :func:`write_report` wrote."""

    path: Path
    format: str
    images: int
    files: list[Path] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


def report_format(out: Path, fmt: str | None) -> str:
    """``fmt`` if given, else from the suffix of ``out`` (``.md``/``.markdown`` -> md, anything else html)."""
    from fcnlab.errors import ConfigError

    if fmt is None:
        return "md" if out.suffix.lower() in (".md", ".markdown") else "html"
    if fmt not in FORMATS:
        raise ConfigError(f"option --format: {fmt!r} is not one of {', '.join(FORMATS)}")
    return fmt


def _check_out(out: Path, runs: Sequence[RunInfo], files: Sequence[Path] = ()) -> None:
    """Refuse a folder as ``out``, and any file to write (``out`` or an image of ``files``) that a run reads."""
    from fcnlab.errors import ConfigError

    if out.is_dir():
        raise ConfigError(f"--out {out}: is a folder; give the file to write, e.g. {out / 'report.html'}")
    inputs = {p.resolve(): run for run in runs for p in run.inputs}
    for target in (out, *files):
        run = inputs.get(target.resolve())
        if run is not None:
            raise ConfigError(
                f"--out {out}: would overwrite {target}, an input of run {run.path}; choose another file name"
            )


def write_report(
    runs: Sequence[str | Path | RunInfo],
    out: str | Path,
    fmt: str | None = None,
    title: str | None = None,
    checkpoints: bool = True,
    device: str = "auto",
    wanted: str | None = None,
) -> ReportResult:
    """Write the report of ``runs`` (folders or loaded :class:`RunInfo`) to ``out`` and say what was written.

    ``fmt`` is ``"html"`` (one self-contained page, images as data URIs) or ``"md"`` (Markdown, images in
    the folder ``<out stem>_files`` beside it); by default it follows the suffix of ``out``. With
    ``checkpoints`` each run's ``best.pt`` is loaded on ``device`` to count parameters, time inference and
    predict the same validation tiles with every P2 model (:mod:`fcnlab.report.checkpoints`). ``wanted``
    names the evaluation to show of each run folder (``--eval``, :func:`fcnlab.report.measured.choose`).
    """
    from fcnlab.report.document import build_report, image_count
    from fcnlab.runtime.files import atomic_write_bytes, atomic_write_text

    out = Path(out)
    fmt = report_format(out, fmt)
    infos = [r for r in runs if isinstance(r, RunInfo)]
    if len(infos) != len(runs):
        infos = load_runs([r.path if isinstance(r, RunInfo) else Path(r) for r in runs], wanted)
    _check_out(out, infos)
    facts = None
    if checkpoints:
        from fcnlab.report.checkpoints import measure_runs

        facts = measure_runs(infos, device)
    blocks, warnings = build_report(infos, title, facts)
    page_title = blocks[0].text if blocks else "fcnlab report"  # type: ignore[union-attr]
    written: list[Path] = []
    if fmt == "html":
        from fcnlab.report.html import render_html

        atomic_write_text(out, render_html(blocks, page_title))
    else:
        from fcnlab.report.markdown import render_markdown

        text, files = render_markdown(blocks, f"{out.stem}_files")
        _check_out(out, infos, [out.parent / rel for rel in files])
        for rel, data in files.items():
            path = out.parent / rel
            atomic_write_bytes(path, data)
            written.append(path)
        atomic_write_text(out, text)
    return ReportResult(out, fmt, image_count(blocks), written, warnings)
