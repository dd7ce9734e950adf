"""t-SNE of classifier features: 2-D embedding (PCA then scikit-learn's Barnes-Hut t-SNE), plot and archive.

Measured on a 2-core CPU shared with other jobs (load about 4), scikit-learn 1.9.1, PCA to 50
dimensions included, 2,500 points (the size of the p1 validation set):

====================================  ==============  ================
features                              ``threads=1``   ``threads=None``
====================================  ==============  ================
random, 4096-d                        13 s            17 s
p1 val pixels, 3072-d                 10 s            44 s
====================================  ==============  ================
"""

from __future__ import annotations

import contextlib
import inspect
import io
import json
import re
import sys
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib import colormaps, patheffects
from matplotlib.figure import Figure
from sklearn.decomposition import PCA
from sklearn.manifold import TSNE
from threadpoolctl import threadpool_limits

from fcnlab.errors import DataError
from fcnlab.report.viz import save_figure
from fcnlab.runtime.files import atomic_path

# scikit-learn 1.5 renamed TSNE's ``n_iter`` to ``max_iter`` (and 1.7 removed ``n_iter``).
_ITER_KEYWORD = "max_iter" if "max_iter" in inspect.signature(TSNE).parameters else "n_iter"


def _check_features(features: np.ndarray) -> np.ndarray:
    features = np.asarray(features)
    if features.ndim != 2:
        raise ValueError(f"features must be a 2-D array (N, D), got shape {features.shape}")
    if features.shape[0] < 4:
        raise DataError(f"t-SNE needs at least 4 images, got {features.shape[0]}; give a folder with more images")
    features = features.astype(np.float32, copy=False)
    if not np.isfinite(features).all():
        bad = int((~np.isfinite(features).all(axis=1)).sum())
        raise DataError(
            f"features hold NaN or Inf values in {bad} of {features.shape[0]} rows; "
            "the model's outputs are not finite (check the checkpoint)"
        )
    return features


class _IterationLog(io.TextIOBase):
    """Stands in for stdout while scikit-learn's TSNE runs with ``verbose=2``: its ``[t-SNE] Iteration N``
    lines (every 50 iterations) drive a progress display with ETA; its other lines are dropped."""

    _ITERATION = re.compile(r"\[t-SNE\] Iteration (\d+)")

    def __init__(self, progress) -> None:  # noqa: ANN001 - a fcnlab.runtime.progress.Progress
        self.progress = progress

    def writable(self) -> bool:
        return True

    def write(self, text: str) -> int:
        for match in self._ITERATION.finditer(text):
            done = min(int(match.group(1)), self.progress.total)
            if done > self.progress.step:
                self.progress.update(done - self.progress.step)
        return len(text)


def embed(
    features: np.ndarray,
    seed: int = 0,
    pca_dim: int = 50,
    perplexity: float = 30.0,
    max_iter: int = 1000,
    threads: int | None = 1,
    progress: bool = True,
) -> np.ndarray:
    """Embed ``features`` ``(N, D)`` in 2-D and return an ``(N, 2)`` float64 array.

    Features wider than ``pca_dim`` are first reduced with PCA (seeded), then scikit-learn's TSNE
    runs with ``init="pca"``, ``learning_rate="auto"``, Barnes-Hut and ``random_state=seed``; the
    result is the same on every run for the same input and seed. The perplexity is capped at
    ``(N - 1) / 3`` for small N. ``threads`` caps the OpenMP/BLAS threads (``None``: all cores).
    The default is 1: on a busy machine scikit-learn's spinning OpenMP threads made it 1.3-4x slower
    than one thread (see the module doc); on an idle multi-core machine ``None`` may save a little.
    With ``progress`` the iterations are shown with an ETA (:mod:`fcnlab.runtime.progress`).
    """
    from fcnlab.runtime.progress import Progress

    x = _check_features(features)
    n, d = x.shape
    with threadpool_limits(limits=threads):
        if pca_dim and d > pca_dim:
            x = PCA(n_components=min(pca_dim, n), random_state=seed).fit_transform(x).astype(np.float32)
        tsne = TSNE(
            n_components=2,
            perplexity=min(float(perplexity), (n - 1) / 3.0),
            init="pca",
            learning_rate="auto",
            random_state=seed,
            n_jobs=threads or -1,
            verbose=2 if progress else 0,
            **{_ITER_KEYWORD: max_iter},
        )
        with (
            Progress(max_iter, f"t-SNE of {n} points", unit="iteration", enabled=progress) as bar,
            contextlib.redirect_stdout(_IterationLog(bar) if progress else sys.stdout),
        ):
            return np.asarray(tsne.fit_transform(x), dtype=np.float64)


def class_colours(n: int) -> np.ndarray:
    """``(n, 4)`` RGBA colours for ``n`` classes: tab20, tab20b, tab20c (60 colours), then repeated."""
    table = np.concatenate([colormaps[name](np.arange(20)) for name in ("tab20", "tab20b", "tab20c")])
    # take the dark and light shades of tab20 apart so that neighbouring class numbers differ more
    table[:20] = np.concatenate([table[0:20:2], table[1:20:2]])
    return table[np.arange(n) % len(table)]


def plot_tsne(
    embedding: np.ndarray,
    labels: np.ndarray,
    path: str | Path,
    title: str = "t-SNE",
    dpi: float = 300,
    figsize: float = 8.0,
) -> None:
    """Scatter ``embedding`` ``(N, 2)`` coloured by class, with each class number at its median point.

    Up to 60 classes get distinct colours (tab20 + tab20b + tab20c); the number written at each
    cluster's median tells classes with similar colours apart. Saved atomically (PNG at 300 dpi by
    default, ``figsize`` inches square).
    """
    embedding = np.asarray(embedding, dtype=np.float64)
    labels = np.asarray(labels)
    if embedding.ndim != 2 or embedding.shape[1] != 2:
        raise ValueError(f"embedding must be (N, 2), got shape {embedding.shape}")
    if labels.shape != (embedding.shape[0],):
        raise ValueError(f"labels must be ({embedding.shape[0]},), got shape {labels.shape}")
    classes = np.unique(labels)
    colours = class_colours(len(classes))
    fig = Figure(figsize=(figsize, figsize), layout="constrained")
    ax = fig.add_subplot()
    outline = [patheffects.withStroke(linewidth=2.0, foreground="white")]
    marker_size = max(1.0, min(12.0, 8000.0 / max(len(labels), 1)))
    for colour, cls in zip(colours, classes, strict=True):
        points = embedding[labels == cls]
        ax.scatter(points[:, 0], points[:, 1], s=marker_size, color=colour, linewidths=0)
    for colour, cls in zip(colours, classes, strict=True):
        mx, my = np.median(embedding[labels == cls], axis=0)
        ax.text(
            mx,
            my,
            str(cls),
            fontsize=7,
            fontweight="bold",
            ha="center",
            va="center",
            color=colour * np.array([0.75, 0.75, 0.75, 1.0]),
            path_effects=outline,
        )
    ax.set_xticks([])
    ax.set_yticks([])
    ax.set_title(f"{title} ({len(labels)} points, {len(classes)} classes)")
    save_figure(fig, path, dpi)


def save_tsne_npz(
    path: str | Path, features: np.ndarray, labels: np.ndarray, embedding: np.ndarray, provenance: dict | None = None
) -> None:
    """Save ``features``, ``labels`` and ``embedding`` (and ``provenance``, the checkpoint and data it was made
    from, as a JSON string) to a compressed ``.npz`` at ``path`` atomically."""
    features, labels, embedding = np.asarray(features), np.asarray(labels), np.asarray(embedding)
    if not len(features) == len(labels) == len(embedding):
        raise ValueError(
            f"row counts differ: {len(features)} features, {len(labels)} labels, {len(embedding)} embedding rows"
        )
    extra: dict[str, Any] = {} if provenance is None else {"provenance": np.array(json.dumps(provenance))}
    with atomic_path(path) as tmp, open(tmp, "wb") as f:  # a file object: numpy adds no ".npz" suffix
        np.savez_compressed(f, features=features, labels=labels, embedding=embedding, **extra)
