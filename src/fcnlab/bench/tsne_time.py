"""t-SNE timing: :func:`fcnlab.report.tsne.embed` (PCA to 50-d, Barnes-Hut t-SNE) on clustered 4096-d features."""

from __future__ import annotations

import time
from typing import Any

import numpy as np


def clustered_features(n: int, dim: int = 4096, classes: int = 50, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """``n`` float32 features in ``classes`` Gaussian clusters (like a trained model's) and their labels."""
    rng = np.random.default_rng(seed)
    labels = np.arange(n) % classes
    centres = rng.normal(0.0, 1.0, size=(classes, dim)).astype(np.float32)
    features = centres[labels] + rng.normal(0.0, 0.7, size=(n, dim)).astype(np.float32)
    return np.maximum(features, 0.0), labels  # ReLU features, as the penultimate layer's


def bench_tsne(n: int, dim: int = 4096, seed: int = 0) -> dict[str, Any]:
    """Seconds that :func:`fcnlab.report.tsne.embed` takes for ``n`` x ``dim`` features (generation not counted)."""
    from fcnlab.report.tsne import embed

    features, _ = clustered_features(n, dim, seed=seed)
    t0 = time.perf_counter()
    emb = embed(features, seed=seed)
    seconds = time.perf_counter() - t0
    return {"points": n, "dims": dim, "seconds": round(seconds, 2), "finite": bool(np.isfinite(emb).all())}
