"""Figures for reports: confusion matrices, training curves and colour-coded segmentation masks.

Figures are built with :class:`matplotlib.figure.Figure` directly (rendered by the Agg canvas), never
through ``pyplot``: no global figure state, no GUI backend and nothing left open. Every figure is
saved atomically with :func:`fcnlab.runtime.files.atomic_save`; the format comes from the file suffix
(PNG when the suffix is missing or unknown).
"""

from __future__ import annotations

import csv
import math
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure
from matplotlib.patches import Patch

from fcnlab.data.mask_codec import CLASS_NAMES, PALETTE, class_to_rgb
from fcnlab.errors import DataError
from fcnlab.runs import METRIC_COLUMNS
from fcnlab.runtime.files import atomic_save


def save_figure(fig: Figure, path: str | Path, dpi: float) -> None:
    """Save ``fig`` atomically to ``path`` in the format of its suffix (PNG if none or unknown)."""
    path = Path(path)
    fmt = path.suffix.lstrip(".").lower()
    if fmt not in fig.canvas.get_supported_filetypes():
        fmt = "png"
    atomic_save(path, lambda tmp: fig.savefig(tmp, dpi=dpi, format=fmt))


# ---------------------------------------------------------------------------------------------------
# confusion matrix


def plot_confusion_matrix(
    mat: np.ndarray,
    class_names: Sequence[str],
    path: str | Path,
    title: str = "Confusion matrix",
    normalize: bool = True,
    dpi: float = 150,
) -> None:
    """Plot a confusion matrix (rows = true class, columns = predicted) to ``path``.

    With ``normalize`` each row is divided by its total (rows without samples stay 0), so cells are
    per-class recall fractions. Up to 12 classes the value is written in every cell; beyond that
    (e.g. 50 classes) only the colour scale is shown and the tick labels shrink to stay readable.
    """
    save_figure(confusion_matrix_figure(mat, class_names, title, normalize), path, dpi)


def confusion_matrix_figure(
    mat: np.ndarray, class_names: Sequence[str], title: str = "Confusion matrix", normalize: bool = True
) -> Figure:
    """Build the figure of :func:`plot_confusion_matrix` without saving it."""
    mat = np.asarray(mat, dtype=np.float64)
    if mat.ndim != 2 or mat.shape[0] != mat.shape[1]:
        raise ValueError(f"confusion matrix must be square, got shape {mat.shape}")
    n = mat.shape[0]
    if len(class_names) != n:
        raise ValueError(f"{len(class_names)} class names given for a {n}x{n} confusion matrix")
    if normalize:
        totals = mat.sum(axis=1, keepdims=True)
        shown = np.divide(mat, totals, out=np.zeros_like(mat), where=totals > 0)
    else:
        shown = mat

    side = min(max(4.5, 0.24 * n + 2.5), 16.0)
    fig = Figure(figsize=(side + 1.2, side), layout="constrained")
    ax = fig.add_subplot()
    image = ax.imshow(
        shown, cmap="Blues", vmin=0.0, vmax=1.0 if normalize else max(float(shown.max()), 1.0), interpolation="nearest"
    )
    fig.colorbar(image, ax=ax, fraction=0.046, pad=0.02, label="fraction of true class" if normalize else "count")
    small = n <= 12
    fontsize = 9 if small else max(4.0, min(8.0, 330 / n))
    ticks = np.arange(n)
    ax.set_xticks(
        ticks,
        [str(c) for c in class_names],
        rotation=45 if small else 90,
        ha="right" if small else "center",
        rotation_mode="anchor" if small else "default",
        fontsize=fontsize,
    )
    ax.set_yticks(ticks, [str(c) for c in class_names], fontsize=fontsize)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title)
    if small:
        top = float(shown.max()) if shown.size else 1.0
        for i in range(n):
            for j in range(n):
                value = shown[i, j]
                text = f"{value:.2f}" if normalize else f"{value:.0f}"
                colour = "white" if value > 0.55 * (1.0 if normalize else top) else "black"
                ax.text(j, i, text, ha="center", va="center", fontsize=8, color=colour)
    return fig


# ---------------------------------------------------------------------------------------------------
# training curves


def _parse_float(text: str, path: Path, line: int, column: str) -> float:
    text = text.strip()
    if text == "":
        return math.nan
    try:
        return float(text)
    except ValueError as e:
        raise DataError(f"{path}: line {line}, column {column!r}: {text!r} is not a number") from e


def read_metrics_csv(path: str | Path) -> dict[str, np.ndarray]:
    """Read a ``metrics.csv`` into ``{column: float array}`` sorted by epoch (empty cells become NaN).

    Rows repeating an epoch (a resumed run) keep the last one. Raises :class:`DataError` naming the
    file when it is missing, empty, lacks an ``epoch`` column or holds a non-numeric value.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError as e:
        raise DataError(f"{path}: metrics file does not exist (it is written by training)") from e
    except (OSError, UnicodeDecodeError) as e:
        raise DataError(f"{path}: cannot read metrics file ({e})") from e
    reader = csv.DictReader(text.splitlines())
    if not reader.fieldnames or "epoch" not in [f.strip() for f in reader.fieldnames]:
        raise DataError(f"{path}: not a metrics file (expected a header with columns {','.join(METRIC_COLUMNS)})")
    by_epoch: dict[float, dict[str, float]] = {}
    for line, row in enumerate(reader, start=2):
        values = {k.strip(): _parse_float(v or "", path, line, k.strip()) for k, v in row.items() if k is not None}
        if math.isnan(values["epoch"]):
            raise DataError(f"{path}: line {line}: the epoch cell is empty")
        by_epoch[values["epoch"]] = values
    if not by_epoch:
        raise DataError(f"{path}: metrics file has a header but no epochs yet")
    epochs = sorted(by_epoch)
    columns = [f.strip() for f in reader.fieldnames]
    return {c: np.asarray([by_epoch[e].get(c, math.nan) for e in epochs], dtype=np.float64) for c in columns}


def _has_values(metrics: Mapping[str, np.ndarray], column: str) -> bool:
    return column in metrics and bool(np.isfinite(metrics[column]).any())


def plot_training_curves(
    metrics_csv_path: str | Path, path: str | Path, title: str | None = None, dpi: float = 150
) -> None:
    """Plot loss and accuracy / mIoU per epoch (plus the learning rate when recorded) to ``path``.

    Reads ``metrics_csv_path`` (see :data:`fcnlab.runs.METRIC_COLUMNS`); columns that are absent or empty for
    the task (``val_miou`` for classification, ``val_acc`` for segmentation) are left out.
    """
    metrics = read_metrics_csv(metrics_csv_path)
    run_name = Path(metrics_csv_path).resolve().parent.name or "run"
    save_figure(training_curves_figure(metrics, title or f"Training curves ({run_name})"), path, dpi)


def _loss_axis(ax, series: Sequence[np.ndarray]) -> str:  # noqa: ANN001 - a matplotlib Axes
    """Keep a loss axis readable when one value (often the first epoch's) dwarfs the rest.

    A value over 10x the median is an outlier: positive losses then go on a log scale; otherwise (a zero
    value) the axis is clipped just above the largest other value. Returns the axis label, saying which.
    """
    values = np.concatenate([v[np.isfinite(v)] for v in series]) if series else np.empty(0)
    if values.size < 2:
        return "loss"
    limit = 10 * float(np.median(np.abs(values)))
    normal = values[values <= limit]
    if normal.size == values.size or normal.size == 0:
        return "loss"
    if (values > 0).all():
        ax.set_yscale("log")
        return "loss (log scale)"
    top = 1.1 * float(normal.max())
    ax.set_ylim(min(0.0, float(values.min())), top)
    return f"loss (clipped at {top:.3g})"


def training_curves_figure(metrics: Mapping[str, np.ndarray], title: str = "Training curves") -> Figure:
    """Build the figure of :func:`plot_training_curves` from :func:`read_metrics_csv`'s columns."""
    epochs = metrics["epoch"]
    show_lr = _has_values(metrics, "lr")
    fig = Figure(figsize=(15 if show_lr else 11, 4.2), layout="constrained")
    axes = fig.subplots(1, 3 if show_lr else 2, squeeze=False)[0]

    panels = (
        (axes[0], "loss", (("train_loss", "train loss"), ("val_loss", "val loss"))),
        (
            axes[1],
            "accuracy / mIoU",
            (("train_acc", "train accuracy"), ("val_acc", "val accuracy"), ("val_miou", "val mIoU")),
        ),
    )
    for ax, ylabel, series in panels:
        if ylabel == "loss":
            ylabel = _loss_axis(ax, [metrics[c] for c, _ in series if _has_values(metrics, c)])
        drawn = 0
        for column, label in series:
            if _has_values(metrics, column):
                ok = np.isfinite(metrics[column])
                ax.plot(epochs[ok], metrics[column][ok], marker="o", markersize=3, label=label)
                drawn += 1
        if drawn:
            ax.legend()
        else:
            ax.text(0.5, 0.5, f"no {ylabel} recorded", ha="center", va="center", transform=ax.transAxes)
        ax.set_xlabel("epoch")
        ax.set_ylabel(ylabel)
        ax.grid(alpha=0.3)
    if show_lr:
        ok = np.isfinite(metrics["lr"])
        axes[2].plot(epochs[ok], metrics["lr"][ok], marker="o", markersize=3, color="tab:gray")
        if (metrics["lr"][ok] > 0).all():
            axes[2].set_yscale("log")
        axes[2].set_xlabel("epoch")
        axes[2].set_ylabel("learning rate")
        axes[2].grid(alpha=0.3)
    fig.suptitle(title)
    return fig


# ---------------------------------------------------------------------------------------------------
# segmentation masks


def colorize(ids: np.ndarray) -> np.ndarray:
    """Map an ``(H, W)`` array of class ids 0-6 to an ``(H, W, 3)`` uint8 image in the course palette."""
    ids = np.asarray(ids)
    if ids.ndim != 2:
        raise ValueError(f"class-id map must be 2-D (H, W), got shape {ids.shape}")
    return class_to_rgb(ids)


def overlay(image: np.ndarray, ids: np.ndarray, alpha: float = 0.5) -> np.ndarray:
    """Blend the palette colours of ``ids`` over ``image`` (``(H, W, 3)`` uint8): ``alpha`` = mask weight."""
    image = np.asarray(image)
    if image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"image must be (H, W, 3), got shape {image.shape}")
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha must be between 0 and 1, got {alpha}")
    colours = colorize(ids)
    if colours.shape != image.shape:
        raise ValueError(f"mask shape {np.asarray(ids).shape} does not match image shape {image.shape[:2]}")
    blended = (1.0 - alpha) * image.astype(np.float32) + alpha * colours.astype(np.float32)
    return np.clip(np.rint(blended), 0, 255).astype(np.uint8)


def _legend_handles() -> list[Patch]:
    return [
        Patch(facecolor=PALETTE[i] / 255.0, edgecolor="black", label=f"{i} {name}")
        for i, name in enumerate(CLASS_NAMES)
    ]


def plot_legend(path: str | Path, dpi: float = 100) -> None:
    """The class colour legend of the masks and overlays (the course's palette) as an image."""
    fig = Figure(figsize=(2.6, 2.1))
    fig.legend(handles=_legend_handles(), loc="center", frameon=False, title="class colours")
    save_figure(fig, path, dpi)


def _check_tiles(
    images: Sequence[np.ndarray], gts: Sequence[np.ndarray], preds: Mapping[str, Sequence[np.ndarray]]
) -> None:
    if len(images) == 0:
        raise ValueError("no tiles to plot")
    for name, seq in {"ground truths": gts, **preds}.items():
        if len(seq) != len(images):
            raise ValueError(f"{len(images)} images but {len(seq)} {name}")
        for i, (img, ids) in enumerate(zip(images, seq, strict=True)):
            if np.asarray(ids).shape != np.asarray(img).shape[:2]:
                raise ValueError(
                    f"tile {i}: {name} shape {np.asarray(ids).shape} does not match "
                    f"image shape {np.asarray(img).shape[:2]}"
                )


def mask_grid_figure(
    columns: Sequence[tuple[str, Sequence[np.ndarray]]], title: str, row_labels: Sequence[str] | None = None
) -> Figure:
    """A grid with one row per tile and one column per ``(heading, items)`` pair, plus a class legend.

    Each item is an ``(H, W, 3)`` image shown as is or an ``(H, W)`` class-id map shown in the palette.
    Rows are labelled ``row_labels`` (e.g. the tiles' file names), else ``tile 0``, ``tile 1``, ...
    """
    n_rows = len(columns[0][1])
    cell = 2.6
    fig = Figure(figsize=(cell * len(columns), cell * n_rows + 1.0), layout="constrained")
    axes = fig.subplots(n_rows, len(columns), squeeze=False)
    for c, (heading, items) in enumerate(columns):
        for r in range(n_rows):
            ax = axes[r, c]
            item = np.asarray(items[r])
            ax.imshow(item if item.ndim == 3 else colorize(item), interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
            if r == 0:
                ax.set_title(heading)
            if c == 0:
                ax.set_ylabel(row_labels[r] if row_labels is not None else f"tile {r}")
    fig.suptitle(title)
    fig.legend(
        handles=_legend_handles(),
        loc="outside lower center",
        ncol=4 if len(columns) < 4 else 7,
        fontsize=8,
        frameon=False,
    )
    return fig


def plot_mask_snapshot(
    images: Sequence[np.ndarray],
    gts: Sequence[np.ndarray],
    preds: Sequence[np.ndarray],
    path: str | Path,
    title: str = "Predicted masks",
    dpi: float = 120,
    row_labels: Sequence[str] | None = None,
) -> None:
    """One row per tile: satellite | ground truth | prediction, with a legend of the 7 classes.

    ``images`` are ``(H, W, 3)`` uint8 tiles; ``gts`` and ``preds`` ``(H, W)`` class-id maps (0-6);
    ``row_labels`` name the rows (the tiles' file names), else ``tile 0``, ``tile 1``, ...
    """
    _check_tiles(images, gts, {"predictions": preds})
    columns = (("satellite", images), ("ground truth", gts), ("prediction", preds))
    save_figure(mask_grid_figure(columns, title, row_labels), path, dpi)


def plot_snapshot_grid(
    snapshots: Mapping[int, Sequence[np.ndarray]],
    images: Sequence[np.ndarray],
    gts: Sequence[np.ndarray],
    path: str | Path,
    title: str = "Predicted masks by epoch",
    dpi: float = 120,
    row_labels: Sequence[str] | None = None,
    mious: Mapping[int, float] | None = None,
) -> None:
    """All snapshot epochs in one figure: rows = tiles; columns = satellite, ground truth, then the
    prediction at each epoch of ``snapshots`` (``{epoch: [id map per tile]}``) in increasing order, headed
    with the epoch and its validation mIoU when ``mious`` has it.

    This is the report's "predicted masks at epoch 5, 25, 50" figure.
    """
    if not snapshots:
        raise ValueError("no snapshot epochs to plot")
    epochs = sorted(snapshots)
    _check_tiles(images, gts, {f"predictions at epoch {e}": snapshots[e] for e in epochs})
    columns = [("satellite", images), ("ground truth", gts)]
    for e in epochs:
        miou = (mious or {}).get(e)
        heading = f"epoch {e}" if miou is None or math.isnan(miou) else f"epoch {e}\nmIoU {miou:.4f}"
        columns.append((heading, snapshots[e]))
    save_figure(mask_grid_figure(columns, title, row_labels), path, dpi)
