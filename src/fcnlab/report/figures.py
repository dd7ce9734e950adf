"""Images of a report: existing run figures read and checked, and curves drawn in memory as PNG bytes."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

from fcnlab.data.mask_codec import CLASS_NAMES, SCORED_CLASSES
from fcnlab.report.blocks import Block, Image, Para


def figure_png(fig: Figure, dpi: float = 100) -> bytes:
    """Render a matplotlib figure to PNG bytes (no file, no pyplot)."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi)
    return buf.getvalue()


def image_block(data: bytes, name: str, caption: str) -> Image:
    """An :class:`Image` block of encoded bytes; ValueError if Pillow cannot decode them fully."""
    from PIL import Image as PILImage

    try:
        with PILImage.open(io.BytesIO(data)) as img:
            fmt, size = img.format, img.size
            img.load()  # decodes every pixel: a truncated file fails here, not in the reader's browser
    except Exception as e:  # Pillow raises many types for broken files
        raise ValueError(f"cannot decode image ({type(e).__name__}: {e})") from None
    mime = PILImage.MIME.get(fmt or "", "")
    if mime not in ("image/png", "image/jpeg", "image/gif", "image/webp"):
        raise ValueError(f"unsupported image format {fmt}")
    return Image(name=name, data=data, mime=mime, caption=caption, width=size[0], height=size[1])


def file_image(path: Path, name: str, caption: str) -> tuple[Image | None, str | None]:
    """``(block, None)`` for a readable image file, ``(None, warning)`` for an unreadable one."""
    try:
        return image_block(path.read_bytes(), name, caption), None
    except (OSError, ValueError) as e:
        return None, f"{path}: skipped, {e}; re-create or delete it"


def file_blocks(path: Path | None, name: str, caption: str, missing: str, warnings: list[str]) -> list[Block]:
    """The image of the figure file ``path``; a note ``missing`` when there is none, or a note saying why it was
    skipped when it cannot be read (that warning is also appended to ``warnings``)."""
    if path is None:
        return [Para(missing, note=True)]
    block, warning = file_image(path, name, caption)
    if block is not None:
        return [block]
    warnings.append(warning or "")
    return [Para(warning or "", note=True)]


def png_blocks(data: bytes | None, name: str, caption: str) -> list[Block]:
    """The image of the PNG bytes ``data``, none when there is nothing drawn (None)."""
    return [image_block(data, name, caption)] if data is not None else []


def training_curves_png(metrics: dict[str, np.ndarray], title: str) -> bytes:
    """Loss and accuracy / mIoU per epoch (:func:`fcnlab.report.viz.training_curves_figure`) as PNG bytes."""
    from fcnlab.report.viz import training_curves_figure

    return figure_png(training_curves_figure(metrics, title))


def iou_curves_png(metrics: dict[str, np.ndarray], title: str) -> bytes | None:
    """Validation IoU of each class 0-5 and the mean per epoch, as PNG bytes (None without iou columns)."""
    columns = [f"iou_{i}" for i in range(SCORED_CLASSES)]
    if not all(c in metrics for c in columns):
        return None
    epochs = metrics["epoch"]
    fig = Figure(figsize=(8, 4.2), layout="constrained")
    ax = fig.add_subplot()
    colours = [f"C{i}" for i in range(SCORED_CLASSES)]
    for i, (column, colour) in enumerate(zip(columns, colours, strict=True)):
        ok = np.isfinite(metrics[column])
        ax.plot(epochs[ok], metrics[column][ok], marker="o", markersize=3, color=colour, label=f"{i} {CLASS_NAMES[i]}")
    if "val_miou" in metrics:
        ok = np.isfinite(metrics["val_miou"])
        ax.plot(epochs[ok], metrics["val_miou"][ok], color="black", linewidth=2.5, label="mean IoU")
    ax.set_xlabel("epoch")
    ax.set_ylabel("validation IoU")
    ax.set_ylim(0, 1)
    ax.grid(alpha=0.3)
    fig.legend(loc="outside right center", fontsize=8)
    ax.set_title(title)
    return figure_png(fig)


def _group_width(n: int) -> tuple[float, np.ndarray]:
    """Bar width and offsets of ``n`` bars grouped around each x position."""
    width = 0.8 / max(n, 1)
    return width, (np.arange(n) - (n - 1) / 2) * width


def iou_bars_png(names: list[str], per_class: list[list[float]], means: list[float]) -> bytes:
    """Grouped bars: for each class 0-5 and the mean IoU, one bar per run, its value written above it."""
    labels = [f"{i} {CLASS_NAMES[i]}" for i in range(SCORED_CLASSES)] + ["mean IoU"]
    fig = Figure(figsize=(max(8.0, 1.2 * len(labels) * max(1, len(names)) / 2 + 3), 4.4), layout="constrained")
    ax = fig.add_subplot()
    width, offsets = _group_width(len(names))
    x = np.arange(len(labels))
    for k, (name, values, mean) in enumerate(zip(names, per_class, means, strict=True)):
        heights = np.asarray([*values[:SCORED_CLASSES], mean], dtype=np.float64)
        bars = ax.bar(x + offsets[k], np.nan_to_num(heights), width, label=name, color=f"C{k}")
        ax.bar_label(bars, labels=["nan" if np.isnan(h) else f"{h:.2f}" for h in heights], fontsize=7, padding=1)
    ax.set_xticks(x, labels, fontsize=9)
    ax.set_ylabel("validation IoU")
    ax.set_ylim(0, 1.08)
    ax.grid(axis="y", alpha=0.3)
    ax.legend(loc="upper left", fontsize=8, ncol=min(len(names), 4))
    ax.set_title("Per-class IoU of the compared runs")
    return figure_png(fig)


def metric_curves_png(
    names: list[str], metrics: list[dict[str, np.ndarray]], column: str, ylabel: str, title: str
) -> bytes | None:
    """``column`` (``val_miou``, ``val_acc``) of every run per epoch on one plot; None if no run has it."""
    fig = Figure(figsize=(8, 4.2), layout="constrained")
    ax = fig.add_subplot()
    drawn = 0
    for k, (name, m) in enumerate(zip(names, metrics, strict=True)):
        if column not in m or not np.isfinite(m[column]).any():
            continue
        ok = np.isfinite(m[column])
        best = int(np.nanargmax(np.where(ok, m[column], -np.inf)))
        ax.plot(
            m["epoch"][ok],
            m[column][ok],
            marker="o",
            markersize=3,
            color=f"C{k}",
            label=f"{name} (best {m[column][best]:.4f} at epoch {int(m['epoch'][best])})",
        )
        ax.plot([m["epoch"][best]], [m[column][best]], marker="*", markersize=12, color=f"C{k}")
        drawn += 1
    if not drawn:
        return None
    ax.set_xlabel("epoch")
    ax.set_ylabel(ylabel)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    ax.set_title(title)
    return figure_png(fig)


def per_class_acc_png(names: list[str], accs: list[list[float]]) -> bytes:
    """Validation accuracy of every P1 class (grouped bars when several runs), with each run's mean as a line."""
    n = max(len(a) for a in accs)
    fig = Figure(figsize=(max(10.0, 0.22 * n * max(1, len(names)) + 2), 4.2), layout="constrained")
    ax = fig.add_subplot()
    width, offsets = _group_width(len(names))
    x = np.arange(n)
    for k, (name, values) in enumerate(zip(names, accs, strict=True)):
        v = np.asarray(values, dtype=np.float64)
        ax.bar(x[: len(v)] + offsets[k], np.nan_to_num(v), width, color=f"C{k}", label=name)
        ax.axhline(float(np.nanmean(v)), color=f"C{k}", linestyle="--", linewidth=1)
    ax.set_xticks(x, [str(i) for i in x], fontsize=7)
    ax.set_xlim(-0.6, n - 0.4)
    ax.set_xlabel("class")
    ax.set_ylabel("validation accuracy")
    ax.set_ylim(0, 1.02)
    ax.grid(axis="y", alpha=0.3)
    ax.legend(fontsize=8)
    ax.set_title("Per-class validation accuracy (dashed: mean over classes)")
    return figure_png(fig)


def tiles_png(
    names: list[str],
    images: list[np.ndarray],
    truths: list[np.ndarray],
    predictions: dict[str, list[np.ndarray]],
    title: str,
) -> bytes:
    """The same tiles side by side: satellite image, ground truth, then each model's prediction."""
    from fcnlab.report.viz import mask_grid_figure

    columns = [("satellite", images), ("ground truth", truths), *predictions.items()]
    return figure_png(mask_grid_figure(columns, title, row_labels=names), dpi=90)
