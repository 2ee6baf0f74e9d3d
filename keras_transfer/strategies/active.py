"""Which unlabelled image to label next: ranking strategies on cached features (NumPy only).

A pool of unlabelled images, each with the run's calibrated probabilities (N, C) and its
cached features (N, D), and the features of the images already labelled (L, D), become one
order, by ``rank``:

- ``uncertainty``: smallest margin between the two most probable classes first;
- ``diversity``: k-center greedy on L2-normalised features, each pick the image farthest
  from everything labelled or picked before it;
- ``mixed`` (the default): the most uncertain first, but an image whose cosine to one labelled or
  picked before it is above ``REDUNDANT`` waits until the others are placed (diversity as a
  redundancy filter only: stronger mixes, k-center greedy or one image per k-means cluster among
  the 2-5 x batch most uncertain, fell below random order on flowers5 in benchmarks/active.py);
- ``random``: a seeded permutation.

The first ``depth`` images are picked that way (the queue a user labels before re-ranking);
the rest follow in the strategy's own score order. An image whose cosine similarity to a
labelled image, or to an image queued before it, is above ``DUPLICATE_COSINE`` is skipped and
listed with its twin. Distances of the k-center steps are taken on the features projected to
their ``PROJECTION`` first principal components (fitted on a subsample), so a re-rank of
5,000 images takes a fraction of a second (``benchmarks/active.py``); duplicates are judged
on the full features.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

STRATEGIES = ("mixed", "uncertainty", "diversity", "random")
# Near-duplicate cut on centred, L2-normalised features. Measured by benchmarks/active.py on
# flowers5 (lite0, 40 photos): JPEG re-encodes of a photo are at >= 0.975 cosine to it, copies
# resized to 75% at >= 0.947 (10%-cropped ones drop to 0.74: not caught); the nearest other photo
# is at 0.65 (median), 0.88 (99th percentile); 12 of 4,317 photos have one above 0.95.
DUPLICATE_COSINE = 0.95
REDUNDANT = 0.9  # mixed: an image this similar (cosine) to one labelled or picked before it waits
DEPTH = 200  # images ordered by the strategy itself; the rest by its score
PROJECTION = 256  # dimensions of the random projection the k-center steps use


@dataclass(frozen=True)
class Ranking:
    """A labelling order of a pool of N images.

    Attributes:
        order: Pool indices, first to label first (near duplicates left out).
        uncertainty: Per pool image, 1 - (top probability - second), in [0, 1].
        reasons: Per ranked image (aligned with ``order``), why it is there.
        duplicates: Pool index -> (``"labelled"`` or ``"queued"``, index of its twin among the
            labelled images or the pool) for the images skipped as near duplicates.
    """

    order: np.ndarray
    uncertainty: np.ndarray
    reasons: list[str]
    duplicates: dict[int, tuple[str, int]] = field(default_factory=dict)


def margin_uncertainty(probabilities: np.ndarray) -> np.ndarray:
    """1 - (highest - second highest probability) per row: 1 for a tie, 0 for a sure answer."""
    p = np.asarray(probabilities, np.float64)
    if p.shape[1] < 2:
        return np.zeros(len(p))
    top = -np.partition(-p, 1, axis=1)[:, :2]
    return 1.0 - (top[:, 0] - top[:, 1])


def entropy_uncertainty(probabilities: np.ndarray) -> np.ndarray:
    """Entropy of each row divided by log(C): 1 for uniform probabilities, 0 for a sure answer."""
    p = np.clip(np.asarray(probabilities, np.float64), 1e-12, 1.0)
    return -(p * np.log(p)).sum(axis=1) / np.log(p.shape[1])


def unit(x: np.ndarray) -> np.ndarray:
    """Rows scaled to unit length (cosine = dot product)."""
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)


def normalise(features: np.ndarray, mean: np.ndarray) -> np.ndarray:
    """Features centred on ``mean`` and scaled to unit length."""
    return unit(np.asarray(features, np.float32) - mean)


def projection(dimension: int, seed: int = 0) -> np.ndarray:
    """A (dimension, ``PROJECTION``) Gaussian random projection (the identity when that is no smaller)."""
    if dimension <= PROJECTION:
        return np.eye(dimension, dtype=np.float32)
    return np.random.default_rng(seed).normal(size=(dimension, PROJECTION)).astype(np.float32)


def nearest(a: np.ndarray, b: np.ndarray, chunk: int = 2048) -> tuple[np.ndarray, np.ndarray]:
    """For each row of ``a``: (highest dot product with a row of ``b``, its index); (-inf, -1) if ``b`` is empty."""
    best, where = np.full(len(a), -np.inf, np.float32), np.full(len(a), -1)
    if len(b) == 0:
        return best, where
    for start in range(0, len(a), chunk):
        sims = a[start:start + chunk] @ b.T
        where[start:start + chunk] = sims.argmax(axis=1)
        best[start:start + chunk] = sims[np.arange(len(sims)), where[start:start + chunk]]
    return best, where


def k_center(points: np.ndarray, closest: np.ndarray, k: int) -> list[int]:
    """k-center greedy: ``k`` rows of ``points`` (unit vectors), each the one least similar to the centres
    so far; ``closest`` holds each row's highest cosine to the existing centres (updated in place; rows
    set to +inf are never picked)."""
    picks = []
    for _ in range(min(k, len(points))):
        i = int(np.argmin(closest))
        if closest[i] == np.inf:
            break
        picks.append(i)
        np.maximum(closest, points @ points[i], out=closest)
        closest[i] = np.inf
    return picks


def rank(probabilities: np.ndarray, features: np.ndarray, labelled: np.ndarray, strategy: str = "mixed",
         seed: int = 0, depth: int = DEPTH) -> Ranking:
    """Orders a pool of unlabelled images for labelling.

    Args:
        probabilities: Calibrated probabilities of the pool images (N, C).
        features: Their cached features (N, D).
        labelled: Features of the images already labelled (L, D).
        strategy: One of ``STRATEGIES``.
        seed: Seed of ``random`` (and of the projection's subsample).
        depth: Images placed by the strategy itself; the rest follow by its score.

    Example:
        >>> rng = np.random.default_rng(0)
        >>> p = rng.dirichlet([1, 1, 1], 50)
        >>> ranking = rank(p, rng.normal(size=(50, 8)), rng.normal(size=(5, 8)), "uncertainty")
        >>> bool(ranking.uncertainty[ranking.order[0]] == ranking.uncertainty.max())
        True
    """
    if strategy not in STRATEGIES:
        raise ValueError(f"unknown strategy {strategy!r}: one of {', '.join(STRATEGIES)}")
    features, labelled = np.asarray(features, np.float32), np.asarray(labelled, np.float32).reshape(-1, features.shape[1])
    uncertainty = margin_uncertainty(probabilities)
    mean = np.concatenate([features, labelled]).mean(axis=0)
    pool, known = normalise(features, mean), normalise(labelled, mean)
    similarity, twin = nearest(pool, known)
    duplicates = {int(i): ("labelled", int(twin[i])) for i in np.flatnonzero(similarity > DUPLICATE_COSINE)}
    alive = np.ones(len(pool), bool)
    alive[list(duplicates)] = False
    if strategy == "random":
        score = np.random.default_rng(seed).random(len(pool))
        head = list(np.argsort(-np.where(alive, score, -np.inf))[:min(depth, int(alive.sum()))])
    elif strategy == "uncertainty":
        score = uncertainty
        head = list(np.argsort(-np.where(alive, score, -np.inf), kind="stable")[:min(depth, int(alive.sum()))])
    else:
        basis = projection(pool.shape[1], seed)
        points, centres = unit(pool @ basis), unit(known @ basis)
        closest = nearest(points, centres)[0]  # -inf with nothing labelled: every image as far
        score = uncertainty if strategy == "mixed" else -closest
        head = _greedy(points, closest, uncertainty, alive, strategy, min(depth, int(alive.sum())))
    head = _drop_queued_twins(pool, head, duplicates)
    placed = np.zeros(len(pool), bool)
    placed[head] = True
    tail = [int(i) for i in np.argsort(-score, kind="stable") if alive[i] and not placed[i] and i not in duplicates]
    reasons = _reasons(strategy, head, tail, uncertainty, probabilities)
    return Ranking(np.array(head + tail, np.int64), uncertainty, reasons, duplicates)


def _greedy(points: np.ndarray, closest: np.ndarray, uncertainty: np.ndarray, alive: np.ndarray, strategy: str,
            count: int) -> list[int]:
    """``diversity``: k-center greedy over the whole pool; ``mixed``: uncertainty order, redundant images last."""
    closest = np.where(alive, closest, np.inf).astype(np.float32)
    if strategy == "diversity":
        return k_center(points, closest, count)
    order = [i for i in np.argsort(-uncertainty, kind="stable") if alive[i]]
    picks, deferred = [], []
    for i in order:  # the most uncertain first, unless much like an image labelled or picked before
        if len(picks) == count:
            break
        if closest[i] > REDUNDANT or (picks and float((points[picks] @ points[i]).max()) > REDUNDANT):
            deferred.append(i)
        else:
            picks.append(int(i))
    return picks + [int(i) for i in deferred[:count - len(picks)]]


def _drop_queued_twins(pool: np.ndarray, head: list[int], duplicates: dict) -> list[int]:
    """``head`` without the images whose cosine to an image placed before them is above the cut."""
    if not head:
        return head
    chosen = pool[head]
    sims = np.triu(chosen @ chosen.T, k=1)  # [i, j]: image i placed before image j
    kept = []
    for j, index in enumerate(head):
        earlier = np.flatnonzero(sims[:j, j] > DUPLICATE_COSINE)
        if len(earlier):
            duplicates[index] = ("queued", int(head[earlier[0]]))
        else:
            kept.append(index)
    return kept


def _reasons(strategy: str, head: list[int], tail: list[int], uncertainty: np.ndarray,
             probabilities: np.ndarray) -> list[str]:
    def margin(i: int) -> str:
        return f"margin {1 - uncertainty[i]:.3f} between its two likeliest classes"

    first = {"random": lambda i: "random order",
             "uncertainty": lambda i: f"uncertain: {margin(i)}",
             "diversity": lambda i: "unlike every labelled or queued image (k-center greedy)",
             "mixed": lambda i: f"uncertain ({margin(i)}), unlike the images labelled or queued before it"}[strategy]
    rest = {"random": "random order", "uncertainty": "by uncertainty", "diversity": "by distance to the labelled images",
            "mixed": "by uncertainty"}[strategy]
    return [first(i) for i in head] + [f"after the first {len(head)}: {rest}" + (f" ({margin(i)})" if rest ==
                                                                                "by uncertainty" else "")
                                       for i in tail]
