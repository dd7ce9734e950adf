"""t-SNE: clusters stay together, runs are reproducible, plots and archives are written."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from fcnlab.errors import DataError
from fcnlab.report.tsne import class_colours, embed, plot_tsne, save_tsne_npz


@pytest.fixture(scope="module")
def blobs() -> tuple[np.ndarray, np.ndarray]:
    """200 points of 64-d (more than pca_dim, so PCA runs too) in 5 well separated blobs."""
    rng = np.random.default_rng(0)
    labels = np.repeat(np.arange(5), 40)
    centres = rng.normal(0.0, 4.0, size=(5, 64))
    return (centres[labels] + rng.normal(0.0, 1.0, size=(200, 64))).astype(np.float32), labels


@pytest.fixture(scope="module")
def embedding(blobs: tuple[np.ndarray, np.ndarray]) -> np.ndarray:
    return embed(blobs[0], seed=1, max_iter=500)


def test_same_blob_points_are_closer(blobs: tuple[np.ndarray, np.ndarray], embedding: np.ndarray) -> None:
    labels = blobs[1]
    assert embedding.shape == (200, 2) and embedding.dtype == np.float64
    dist = np.linalg.norm(embedding[:, None] - embedding[None], axis=-1)
    same = labels[:, None] == labels[None]
    off_diagonal = ~np.eye(200, dtype=bool)
    assert dist[same & off_diagonal].mean() * 3 < dist[~same].mean()
    # every point's nearest neighbour belongs to its own blob
    np.fill_diagonal(dist, np.inf)
    assert (labels[dist.argmin(axis=1)] == labels).all()


def test_deterministic_for_a_seed(blobs: tuple[np.ndarray, np.ndarray], embedding: np.ndarray) -> None:
    # bitwise equal; with init="pca" the seed only matters where PCA itself is randomised (large inputs)
    assert np.array_equal(embed(blobs[0], seed=1, max_iter=500), embedding)


def test_small_inputs_and_bad_inputs() -> None:
    rng = np.random.default_rng(0)
    assert embed(rng.normal(size=(10, 3)), max_iter=250).shape == (10, 2)  # perplexity capped below N
    with pytest.raises(DataError, match="at least 4 images"):  # one clear line from `classify tsne`
        embed(rng.normal(size=(3, 3)))
    with pytest.raises(ValueError, match="2-D"):
        embed(rng.normal(size=(10,)))
    bad = rng.normal(size=(10, 3))
    bad[4, 1] = np.nan
    with pytest.raises(DataError, match="1 of 10 rows"):
        embed(bad)


def test_class_colours_distinct_for_50() -> None:
    colours = class_colours(50)
    assert colours.shape == (50, 4)
    assert len({tuple(np.round(c, 4)) for c in colours}) == 50


def test_plot_tsne(tmp_path: Path, blobs: tuple[np.ndarray, np.ndarray], embedding: np.ndarray) -> None:
    path = tmp_path / "tsne.png"
    plot_tsne(embedding, blobs[1], path, "features", dpi=50, figsize=4)
    with Image.open(path) as img:
        assert img.format == "PNG" and img.size == (200, 200)
    with pytest.raises(ValueError, match="labels"):
        plot_tsne(embedding, blobs[1][:10], tmp_path / "bad.png")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["tsne.png"]


def test_save_tsne_npz_round_trip(tmp_path: Path, blobs: tuple[np.ndarray, np.ndarray], embedding: np.ndarray) -> None:
    path = tmp_path / "tsne_data"  # no .npz suffix: the file must still land exactly at path
    save_tsne_npz(path, blobs[0], blobs[1], embedding)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["tsne_data"]
    with np.load(path) as data:
        assert np.array_equal(data["features"], blobs[0])
        assert np.array_equal(data["labels"], blobs[1])
        assert np.array_equal(data["embedding"], embedding)
    with pytest.raises(ValueError, match="row counts"):
        save_tsne_npz(tmp_path / "x.npz", blobs[0], blobs[1][:5], embedding)
