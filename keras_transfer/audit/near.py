"""Near duplicates: cosine similarity of the cached backbone features, confirmed by perceptual hashes,
with thresholds calibrated on transformed copies the audit makes of the dataset's own images.

A fixed similarity threshold does not carry across datasets (128 px flowers sit closer together
in feature space than phone photos of insects), so the audit measures it: a stratified sample of
images is resized, re-compressed, cropped and flipped in memory, the copies go through the same
feature engine (an array split: cached by pixel hash like any image), and the threshold is the
similarity that keeps ``COPY_RECALL`` of the copies while staying above the similarity of almost
every image to its nearest *different* image. cleanlab's Datalab near-duplicate check is not used
for this: its threshold is a fixed fraction of the median neighbour distance, not calibrated.
"""

from __future__ import annotations

import io
from dataclasses import dataclass

import numpy as np
from PIL import Image

from keras_transfer.audit.exact import scope_of
from keras_transfer.audit.pool import Pool
from keras_transfer.data.dataset import Split, stratified_sample
from keras_transfer.data.images import resize

TRANSFORMS = ("resize", "recompress", "crop", "flip")
CALIBRATION_IMAGES = 64
COPY_RECALL = 0.98  # share of the transformed copies the feature threshold keeps
DISTINCT_QUANTILE = 0.995  # ... while staying above this quantile of nearest-different-image similarities
HASH_SIZE = 8  # 64-bit pHash
SURE_QUANTILE = 0.9  # copies' similarity above which a pair needs no pHash confirmation


def transform(image: np.ndarray, name: str, size: int) -> np.ndarray:
    """A copy of ``image`` as people make them, resized to the engine's ``size`` (stretch)."""
    picture = Image.fromarray(image)
    width, height = picture.size
    if name == "resize":
        picture = picture.resize((max(8, width * 2 // 5), max(8, height * 2 // 5)), Image.BILINEAR)
    elif name == "recompress":
        buffer = io.BytesIO()
        picture.save(buffer, "JPEG", quality=30)
        picture = Image.open(io.BytesIO(buffer.getvalue())).convert("RGB")
    elif name == "crop":
        dx, dy = width // 10, height // 10
        picture = picture.crop((dx, dy, width - dx, height - dy))
    elif name == "flip":
        picture = picture.transpose(Image.FLIP_LEFT_RIGHT)
    return resize(np.asarray(picture), size, "stretch")


def phash_distance(a: np.ndarray, b: np.ndarray) -> int:
    """Hamming distance of the 64-bit pHashes, the smaller of ``b`` as is and mirrored (flipped copies)."""
    import imagehash

    first = imagehash.phash(Image.fromarray(a), HASH_SIZE)
    second = Image.fromarray(b)
    return int(min(first - imagehash.phash(second, HASH_SIZE),
                   first - imagehash.phash(second.transpose(Image.FLIP_LEFT_RIGHT), HASH_SIZE)))


def unit(features: np.ndarray) -> np.ndarray:
    features = np.asarray(features, np.float32).reshape(len(features), -1)
    return features / np.maximum(np.linalg.norm(features, axis=1, keepdims=True), 1e-12)


@dataclass(frozen=True)
class Calibration:
    """Thresholds measured on the dataset's own transformed copies.

    Attributes:
        cosine: Feature similarity at or above which a pair is a candidate.
        sure: Similarity above which no hash confirmation is asked (the copies' 90th percentile).
        hash_bits: pHash distance at or below which a candidate is confirmed.
        floor: The copies' 2nd percentile: below it, no pair is a candidate at all.
        strict_bits: pHash distance (the copies' median, at least 4 bits) that confirms a pair
            between ``floor`` and ``cosine``: a half-size re-compressed copy can fall there.
        copies: Copies measured; copy_similarity / distinct_similarity: quantiles seen.
    """

    cosine: float
    sure: float
    hash_bits: int
    floor: float
    strict_bits: int
    copies: int
    copy_similarity: dict
    distinct_similarity: dict

    def as_dict(self) -> dict:
        return dict(self.__dict__)


def calibrate(pool: Pool, vectors: np.ndarray, rows: np.ndarray, source, seed: int = 0) -> Calibration:
    """Thresholds from transformed copies of a stratified sample of the decoded images.

    Args:
        pool: The images.
        vectors: Unit features of the decoded images (M, D); ``rows`` their pool indices.
        source: The FeatureSource (engine + cache) the features came from.
    """
    sample = rows[stratified_sample(pool.labels[rows], CALIBRATION_IMAGES, seed)]
    size = source.size
    originals = [resize(pool.image(int(i), size), size, "stretch") for i in sample]
    copies = np.stack([transform(pool.image(int(i), 2 * size), name, size) for i in sample for name in TRANSFORMS])
    split = Split("audit-copies", copies, np.repeat(pool.labels[sample], len(TRANSFORMS)))
    copy_features, _ = source.view(split, 0, desc="near-duplicate calibration")
    position = {int(r): k for k, r in enumerate(rows)}
    own = vectors[[position[int(i)] for i in sample]]
    similarity = (unit(copy_features).reshape(len(sample), len(TRANSFORMS), -1) * own[:, None]).sum(-1)
    bits = [phash_distance(originals[k], copies[k * len(TRANSFORMS) + t])
            for k in range(len(sample)) for t in range(len(TRANSFORMS))]
    others = vectors @ own.T  # nearest different image of each sampled one (exact copies aside)
    others[others > 0.99999] = -1
    nearest = others.max(axis=0)
    copy_floor = float(np.quantile(similarity, 1 - COPY_RECALL))
    distinct_ceiling = float(np.quantile(nearest, DISTINCT_QUANTILE))
    cosine = max(copy_floor, min(distinct_ceiling + 0.01, float(np.median(similarity))))
    quantiles = lambda v: {f"q{q:g}": round(float(np.quantile(v, q / 100)), 4) for q in (1, 5, 50, 95, 99)}  # noqa: E731
    return Calibration(round(cosine, 4), round(max(cosine, float(np.quantile(similarity, SURE_QUANTILE))), 4),
                       int(np.quantile(bits, COPY_RECALL)), round(copy_floor, 4), max(4, int(np.median(bits))),
                       int(similarity.size),
                       {**quantiles(similarity.ravel()), "by_transform": dict(zip(TRANSFORMS, similarity.mean(0).round(4).tolist()))},
                       quantiles(nearest))


def candidate_pairs(vectors: np.ndarray, threshold: float, block: int = 1024) -> list[tuple[int, int, float]]:
    """(row a, row b, cosine) of every pair a < b at or above ``threshold``, in blocks of rows.

    A blocked matrix product by hand: exact, and faster than a neighbour index on a few
    thousand 1,280-wide rows (scikit-learn's brute force does the same product, with overhead).
    """
    pairs = []
    for start in range(0, len(vectors), block):
        sims = vectors[start:start + block] @ vectors.T
        a, b = np.nonzero(sims >= threshold)
        keep = b > a + start
        pairs += [(int(i + start), int(j), float(sims[i, j])) for i, j in zip(a[keep], b[keep])]
    return pairs


def near_duplicates(pool: Pool, vectors: np.ndarray, rows: np.ndarray, calibration: Calibration) -> list[dict]:
    """Pairs of different (not byte-identical) images that the features and the pHash both call copies."""
    findings = []
    c = calibration
    for a, b, cosine in candidate_pairs(vectors, min(c.floor, c.cosine)):
        i, j = int(rows[a]), int(rows[b])
        if pool.hashes[i] == pool.hashes[j]:
            continue  # an exact duplicate, reported as one
        bits = phash_distance(pool.image(i, 64), pool.image(j, 64))
        if not (cosine >= c.sure or bits <= c.strict_bits or (cosine >= c.cosine and bits <= c.hash_bits)):
            continue
        findings.append({"kind": "near_duplicate", "scope": scope_of(pool, [i, j]), "score": round(cosine, 4),
                         "images": [pool.describe(i), pool.describe(j)],
                         "evidence": {"cosine": round(cosine, 4), "phash_bits": bits,
                                      "threshold": calibration.cosine, "hash_bits": calibration.hash_bits}})
    findings.sort(key=lambda f: -f["score"])
    return findings
