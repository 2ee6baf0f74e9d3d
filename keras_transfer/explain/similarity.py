"""Cosine similarity of pooled backbone embeddings: nearest training images and the class-grouped matrix."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from keras_transfer.base import log
from keras_transfer.data.dataset import stratified_sample
from keras_transfer.data.images import read_batch
from keras_transfer.base.errors import ConfigError, DatasetError
from keras_transfer.run import Run, RunModel, collect_images, split_features


def _unit(rows: np.ndarray) -> np.ndarray:
    """Rows scaled to unit length (zero rows stay zero)."""
    norms = np.linalg.norm(rows, axis=1, keepdims=True)
    return np.divide(rows, norms, out=np.zeros_like(rows, dtype=np.float32), where=norms > 0)


def embed(run: Run, paths: list[Path], batch_size: int = 32) -> tuple[list[Path], np.ndarray]:
    """Pooled backbone embeddings of image files (the run's ``RunModel``: the features its head and
    the saved split features come from); unreadable files are skipped."""
    model = RunModel.open(run)
    kept, rows = [], []
    for start in range(0, len(paths), batch_size):
        ok, batch, failures = read_batch(paths[start:start + batch_size], model.size, model.resize_mode)
        for path, reason in failures:
            log.warn(f"{path}: {reason}")
        if batch:
            kept += ok
            rows.append(model.predict_pixels(np.stack(batch), with_features=True).features)
    return kept, np.concatenate(rows) if rows else np.zeros((0, 0), np.float32)


def similar(run: str | Path | Run, images: list[str | Path], k: int = 5, split: str = "train") -> pd.DataFrame:
    """The ``k`` images of a split most similar to each query image (cosine of embeddings).

    Args:
        run: The run folder (its saved features of ``split`` are the search index).
        images: Query image files and/or folders.
        k: Neighbours per query.
        split: Split searched: train (default), val or test.

    Returns:
        One row per (query, neighbour): ``query``, ``rank`` (1 = most similar), ``path``,
        ``label`` and ``score`` (cosine similarity in [-1, 1]).

    Example:
        >>> similar("runs/ants", ["bee.jpg"], k=3)  # doctest: +SKIP
             query  rank                   path label     score
        0  bee.jpg     1  .../train/bees/1.jpg  bees  0.912...
    """
    if k < 1:
        raise ConfigError("invalid k", "a positive number of neighbours", repr(k))
    run = Run.open(run)
    paths, problems = collect_images(images)
    for path, reason in problems:
        log.warn(f"{path}: {reason}")
    paths, queries = embed(run, paths)
    if not paths:
        raise DatasetError("no readable query image", "image files or folders holding images",
                           ", ".join(map(str, images)))
    index_split, features, indices = split_features(run, split)
    scores = _unit(queries) @ _unit(features).T
    ids, names = index_split.ids(), run.class_names
    rows = []
    for query, row in zip(paths, scores):
        for rank, j in enumerate(np.argsort(-row, kind="stable")[:k], start=1):
            i = int(indices[j])
            rows.append({"query": log.printable(str(query)), "rank": rank, "path": log.printable(ids[i]),
                         "label": names[int(index_split.labels[i])], "score": float(row[j])})
    return pd.DataFrame(rows, columns=["query", "rank", "path", "label", "score"])


@dataclass(frozen=True)
class SimilarityMatrix:
    """Cosine similarities of a sample of images, ordered by class.

    Attributes:
        matrix: (N, N) cosine similarities.
        labels: Class index of each row (non-decreasing).
        ids: Image identifier of each row.
        class_names: All class names of the run.
    """

    matrix: np.ndarray
    labels: np.ndarray
    ids: list[str]
    class_names: list[str]

    def class_means(self) -> np.ndarray:
        """(C, C) mean similarity between the images of two classes (diagonal: self-pairs left out)."""
        c = len(self.class_names)
        means = np.full((c, c), np.nan)
        for a in range(c):
            for b in range(c):
                block = self.matrix[np.ix_(self.labels == a, self.labels == b)]
                if a == b:
                    block = block[~np.eye(len(block), dtype=bool)]
                if block.size:
                    means[a, b] = block.mean()
        return means


def similarity_matrix(run: str | Path | Run, sample: int = 100, split: str = "train",
                      seed: int = 0) -> SimilarityMatrix:
    """Cosine-similarity matrix of ``sample`` images of a split (spread over classes), grouped by class."""
    if sample < 2:
        raise ConfigError("invalid sample size", "at least 2 images", repr(sample))
    run = Run.open(run)
    data, features, indices = split_features(run, split)
    labels = data.labels[indices]
    pick = stratified_sample(labels, sample, seed)
    unit = _unit(features[pick])
    ids = data.ids()
    return SimilarityMatrix(unit @ unit.T, labels[pick], [ids[i] for i in indices[pick]], run.class_names)


def similarity_figure(result: SimilarityMatrix) -> Figure:
    """Heatmap of the matrix with the class blocks outlined and named."""
    figure = Figure(figsize=(8, 7), layout="constrained")
    ax = figure.add_subplot()
    shown = ax.imshow(result.matrix, cmap="viridis", vmin=min(0.0, result.matrix.min()), vmax=1.0,
                      interpolation="nearest")
    figure.colorbar(shown, ax=ax, label="cosine similarity", shrink=0.8)
    present = np.unique(result.labels)
    starts = np.searchsorted(result.labels, present)
    ends = np.append(starts[1:], len(result.labels))
    for edge in starts[1:]:
        ax.axhline(edge - 0.5, color="white", lw=1)
        ax.axvline(edge - 0.5, color="white", lw=1)
    centres = (starts + ends - 1) / 2
    names = [result.class_names[i] for i in present]
    ax.set_xticks(centres, names, rotation=45 if len(names) > 4 else 0, ha="right" if len(names) > 4 else "center")
    ax.set_yticks(centres, names)
    means = result.class_means()
    within = np.nanmean(np.diag(means))
    between = np.nanmean(means[~np.eye(len(means), dtype=bool)]) if len(means) > 1 else float("nan")
    ax.set_title(f"Cosine similarity of {len(result.labels)} images, grouped by class\n"
                 f"mean within class {within:.3f}, between classes {between:.3f}")
    return figure


def write_similarity(run: str | Path | Run, out: str | Path | None = None, sample: int = 100,
                     split: str = "train", seed: int = 0) -> tuple[Path, SimilarityMatrix]:
    """Draws the similarity matrix to a PNG (default ``<run>/similarity.png``); returns (file, data)."""
    run = Run.open(run)
    result = similarity_matrix(run, sample, split, seed)
    path = Path(out) if out is not None else run.path / "similarity.png"
    path.parent.mkdir(parents=True, exist_ok=True)
    similarity_figure(result).savefig(path, dpi=110)
    return path, result
