"""Which features should the default use? ``python -m benchmarks.feature_variants``.

The default's stages, mirror view and backbones were chosen here, on images that no reported
figure comes from: CIFAR-10 *training* images disjoint from the benchmark's (a head is fitted on
100 per class from offset 500, scored on 200 per class from offset 1000 of the train split;
``benchmarks.strategies`` trains on the first 100 and reports on the test split). Features come
through the product's own path (``feature_source`` with the option's config: same engine, cache
and numbers as ``train``), the head is the product's solver (C by cross-validation on the 1000
fitting images). Variants: backbone (``lite0``, ``lite2``, ``lite0+lite2``) x stages (1 or 4) x
mirror view (off / trained on and averaged at test time), each with its feature-extraction
seconds on this machine (both views of 3000 images; cold on the first run only, later runs
read the shared feature cache); then, for the ensemble with 4 stages,
power and per-stage L2 normalisation before the solver's standardisation. Prints the CPU and a table and writes JSON to
benchmarks/results/feature_variants.json.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from benchmarks.data import CLASSES, balanced_files, cifar_root, cpu
from keras_transfer.backbones import get_backbone
from keras_transfer.config import TrainConfig
from keras_transfer.data.dataset import Split
from keras_transfer.run import feature_source
from keras_transfer.strategies.solver import fit_linear_head

RESULTS = Path(__file__).resolve().parent / "results"
FIT, SCORE = (1000, 500), (2000, 1000)  # (images, offset within each class) in CIFAR-10's train split
MEMBERS = {"lite0": ("lite0", 224), "lite2": ("lite2", 260), "lite0@260": ("lite0", 260)}


def stage_blocks(backbone: str) -> list[int]:
    """Lengths of the pooled blocks of 4 stages: the last map, then the stage ends."""
    spec = get_backbone(backbone)
    return [spec.feature_dim, *(c for _, c in spec.stages[:3])]


def split(root: Path, name: str, count: int, offset: int) -> Split:
    files = balanced_files(root, "train", count, offset)
    return Split(name, files, np.array([CLASSES.index(f.parent.name) for f in files]))


def member_views(member: str, splits: list[Split], work: Path) -> tuple[list[np.ndarray], float]:
    """(original + mirror views (2, N, D) of each split with 4 stages pooled, extraction seconds)."""
    backbone, size = MEMBERS[member]
    config = TrainConfig(backbone=backbone, input_size=size, stages=4).validate()
    source = feature_source(config, work / "variants" / member)
    start = time.perf_counter()
    views = [source.views(s, 0, flip=True)[0] for s in splits]
    return views, time.perf_counter() - start


def score(train: np.ndarray, y_train: np.ndarray, test: np.ndarray, y_test: np.ndarray, flip: bool) -> dict:
    """Held-out accuracy of the product's solver, trained on (and averaging) the mirror view if ``flip``."""
    fit = fit_linear_head(train if flip else train[:1], y_train, len(CLASSES))
    p = fit.head.predict(test[0]) + (fit.head.predict(test[1]) if flip else 0)
    return {"accuracy": float((p.argmax(1) == y_test).mean()), "C": fit.C}


def block_l2(x: np.ndarray, blocks: list[int], fit_rows: int) -> np.ndarray:
    """Standardised (statistics of the first ``fit_rows``), then each stage's block scaled to unit length."""
    z = (x - x[:fit_rows].mean(axis=0)) / (x[:fit_rows].std(axis=0) + 1e-6)
    parts = np.split(z, np.cumsum(blocks)[:-1], axis=1)
    return np.concatenate([p / (np.linalg.norm(p, axis=1, keepdims=True) + 1e-6) for p in parts], axis=1)


def normalisations(train: np.ndarray, test: np.ndarray, y_train, y_test, blocks: list[int]) -> list[dict]:
    """The solver's standardisation alone vs power and per-block L2 normalisation before it."""
    both = np.concatenate([train, test])
    ways = {"standardised (the solver's own)": both, "signed square root": np.sign(both) * np.sqrt(np.abs(both)),
            "L2 per stage block": block_l2(both, blocks, len(train))}
    rows = []
    for name, x in ways.items():
        rows.append({"normalisation": name, **score(x[None, :len(train)], y_train, x[None, len(train):], y_test,
                                                    False)})
        print(json.dumps(rows[-1]), flush=True)
    return rows


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.feature_variants", description=__doc__.splitlines()[0])
    parser.add_argument("--work", type=Path, default=Path.home() / ".cache" / "keras-transfer-bench")
    args = parser.parse_args(argv)
    print(f"CPU: {cpu()}")
    root = cifar_root(args.work)
    fit_split, score_split = split(root, "fit", *FIT), split(root, "score", *SCORE)
    features, seconds = {}, {}
    for member in MEMBERS:
        features[member], seconds[member] = member_views(member, [fit_split, score_split], args.work)
    stage_dims = {"lite0": 1280, "lite2": 1280, "lite0@260": 1280}  # head_act comes first in every member
    variants = {"lite0": ["lite0"], "lite2": ["lite2"], "lite0+lite2": ["lite0@260", "lite2"]}
    rows = []
    for name, members in variants.items():
        for stages in (1, 4):
            parts = [[f[:, :, :stage_dims[m]] if stages == 1 else f for f in features[m]] for m in members]
            train, test = (np.concatenate([p[i] for p in parts], axis=2) for i in (0, 1))
            for flip in (False, True):
                row = {"backbone": name, "stages": stages, "flip": flip, "dim": int(train.shape[2]),
                       "feature_s_both_views": sum(seconds[m] for m in members),
                       **score(train, fit_split.labels, test, score_split.labels, flip)}
                rows.append(row)
                print(json.dumps(row), flush=True)
    ensemble = [features[m][i][0] for m in variants["lite0+lite2"] for i in (0, 1)]
    blocks = [d for m in variants["lite0+lite2"] for d in stage_blocks(MEMBERS[m][0])]
    normalised = normalisations(np.concatenate(ensemble[0::2], 1), np.concatenate(ensemble[1::2], 1),
                                fit_split.labels, score_split.labels, blocks)
    print(f"{'backbone':<14}{'stages':>7}{'flip':>6}{'dim':>6}{'feat s':>8}{'C':>7}{'accuracy':>10}"
          "   (fitted on CIFAR train 100/class from 500, scored on 200/class from 1000)")
    for r in rows:
        print(f"{r['backbone']:<14}{r['stages']:>7}{str(r['flip']):>6}{r['dim']:>6}{r['feature_s_both_views']:>8.0f}"
              f"{r['C']:>7g}{r['accuracy']:>10.3f}")
    print("lite0+lite2, 4 stages, no flip:")
    for r in normalised:
        print(f"  {r['normalisation']:<34}{r['accuracy']:>7.3f}")
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "feature_variants.json").write_text(json.dumps({"cpu": cpu(), "fit_images": "CIFAR-10 train, 100/class "
                                                               "from offset 500", "scored_images": "CIFAR-10 train, "
                                                               "200/class from offset 1000", "rows": rows,
                                                               "normalisations": normalised}, indent=2))


if __name__ == "__main__":
    main()
