"""Images of a report: existing run figures read and checked, and curves drawn in memory as PNG bytes."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

from fcnlab.data.mask_codec import CLASS_NAMES, SCORED_CLASSES
from fcnlab.report.blocks import Image


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
        ax.plot(epochs[ok], metrics[column][ok], marker="o", markersize=3, color=colour,
                label=f"{i} {CLASS_NAMES[i]}")
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
