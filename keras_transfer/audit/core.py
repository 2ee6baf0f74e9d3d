"""Running an audit: the cheap checks (hashes, names, files) and the full one (features, head, quality)."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from keras_transfer.base import log
from keras_transfer.audit import exact, files, labels, near
from keras_transfer.audit.pool import Pool
from keras_transfer.data.dataset import Dataset
from keras_transfer.data.skipped import FILE_KINDS, kind_of
from keras_transfer.data.skipped import counts as skipped_counts
from keras_transfer.features.keys import identity_hash

KINDS = ("exact_duplicate", "near_duplicate", "label_issue", "damaged", "odd_file", "outlier")


@dataclass
class AuditResult:
    """What an audit found.

    Attributes:
        source: The dataset audited.
        classes: Class names.
        counts: Images per split and class ({split: {class: n}}).
        findings: Every finding (a dict: kind, images, score, evidence, ...), grouped by kind.
        calibration: The near-duplicate thresholds and how they were measured (full audits).
        notes: How each check ran (or why it was skipped).
        seconds: Time per step.
        full: False for the cheap audit train runs.
    """

    source: str
    classes: list[str]
    counts: dict[str, dict[str, int]]
    findings: list[dict] = field(default_factory=list)
    calibration: dict | None = None
    notes: dict = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)
    full: bool = True
    images: list[str] = field(default_factory=list, repr=False)  # every image audited (the pool's ids)
    dataset: Dataset | None = field(default=None, repr=False)  # what was audited, to show its images

    def of(self, kind: str) -> list[dict]:
        return [f for f in self.findings if f["kind"] == kind]

    def summary(self) -> dict[str, int]:
        """Findings per kind, duplicates across splits (leakage) and conflicting labels apart."""
        found = {kind: len(self.of(kind)) for kind in KINDS}
        duplicates = self.of("exact_duplicate") + self.of("near_duplicate")
        found["leakage"] = sum(f["scope"] == "across splits" for f in duplicates)
        found["conflicting_labels"] = sum(len({m["class"] for m in f["images"]}) > 1 for f in duplicates)
        return found

    def excluded(self) -> dict[str, str]:
        """Files a clean list leaves out, with the reason: redundant exact copies, leaked copies, damaged files."""
        dropped = {}
        for finding in self.of("exact_duplicate"):
            dropped.update(_redundant(finding))
        for finding in self.of("damaged"):
            dropped[finding["images"][0]["file"]] = f"damaged: {finding['evidence']}"[:200]
        return dropped

    def as_dict(self) -> dict:
        return {"source": self.source, "full": self.full, "classes": self.classes, "counts": self.counts,
                "balance": balance(self.counts), "summary": self.summary(), "calibration": self.calibration,
                "notes": self.notes, "seconds": self.seconds, "excluded_by_clean_list": self.excluded(),
                "skipped_inputs": self.skipped_inputs(), "findings": self.findings}

    def skipped_inputs(self) -> dict:
        """Every input the loader left out (files, links, rows of a labels table), counted by what it is."""
        skipped = self.dataset.skipped if self.dataset is not None else []
        return {"counts": skipped_counts(skipped),
                "inputs": [{"input": place, "reason": reason, "kind": kind_of(reason)} for place, reason in skipped]}

    def _repr_html_(self) -> str:
        """Jupyter: the verdict, images per class and split, findings, thumbnails."""
        from keras_transfer.audit.notebook import audit_html

        return audit_html(self)

    def line(self) -> str:
        """One line for a terminal: what was found, or that nothing was."""
        found = self.summary()
        names = {"exact_duplicate": "exact duplicate groups", "near_duplicate": "near-duplicate pairs",
                 "label_issue": "likely label errors", "damaged": "damaged files", "odd_file": "odd files",
                 "outlier": "outliers", "leakage": "duplicates across splits (leakage)",
                 "conflicting_labels": "duplicates with conflicting labels"}
        order = ("exact_duplicate", "near_duplicate", "leakage", "conflicting_labels", "label_issue", "damaged",
                 "odd_file", "outlier")
        parts = [f"{found[kind]} {names[kind]}" for kind in order if found[kind]]
        skipped = [(place, reason) for place, reason in (self.dataset.skipped if self.dataset else [])
                   if kind_of(reason) not in FILE_KINDS and kind_of(reason) != "link_or_folder"]
        parts += [f"{n} {noun}" for noun, n in skipped_counts(skipped).items()]  # not files: said apart
        return "audit: " + (", ".join(parts) if parts else "nothing found")


def _redundant(finding: dict) -> dict[str, str]:
    order = {"train": 0, "val": 1, "test": 2}
    images = sorted(finding["images"], key=lambda m: (order.get(m["split"], 3), m["file"]))
    if len({m["class"] for m in images}) > 1:  # which label is right? neither copy stays
        return {m["file"]: "exact copies with conflicting labels" for m in images}
    leak = " (leaks across splits)" if finding["scope"] == "across splits" else ""
    return {m["file"]: f"exact copy of {images[0]['file']}{leak}" for m in images[1:]}


def balance(counts: dict[str, dict[str, int]]) -> dict:
    """Per class totals over the splits, and the ratio of the largest class to the smallest."""
    totals: dict[str, int] = {}
    for per_class in counts.values():
        for name, n in per_class.items():
            totals[name] = totals.get(name, 0) + n
    present = [n for n in totals.values() if n]
    return {"per_class": totals, "imbalance": round(max(present) / min(present), 3) if present else None}


def _counts(dataset: Dataset) -> dict[str, dict[str, int]]:
    """Images per class (per label, for several labels per image) in each split."""
    def count(labels: np.ndarray) -> list[int]:
        if labels.ndim == 2:
            return labels.sum(axis=0).astype(int).tolist()
        return np.bincount(labels, minlength=len(dataset.class_names)).tolist()

    return {name: dict(zip(dataset.class_names, count(s.labels))) for name, s in dataset.splits.items()}


def cheap_audit(dataset: Dataset) -> AuditResult:
    """Exact duplicates (within a class, across classes, across splits), case-twin names, skipped files.

    One read of every file (hashed in threads), no model: what train runs on every dataset.
    """
    start = time.perf_counter()
    pool = Pool.of(dataset)
    findings = exact.exact_duplicates(pool) + exact.name_twins(pool) + files.damaged_files(pool, [])
    return AuditResult(dataset.source, dataset.class_names, _counts(dataset), findings,
                       seconds={"hashes": round(time.perf_counter() - start, 3)}, full=False, images=pool.ids,
                       dataset=dataset)


def full_audit(dataset: Dataset, source, seed: int = 0) -> AuditResult:
    """Every check: the cheap ones, then features (cache), near duplicates, label errors, outliers, quality.

    Args:
        dataset: The dataset (every split is audited together).
        source: A ``FeatureSource`` (engine + shared cache) of the backbone to compare images with.
        seed: Seed of the calibration sample and the folds.
    """
    result = cheap_audit(dataset)
    result.full = True
    pool = Pool.of(dataset)
    clock = _Clock(result.seconds)
    with clock("features"):
        source.failed.clear()
        features, rows = source.view(pool.split, 0, desc="audit features")
        result.findings += files.failed_files(pool, source.failed)
    if len(rows) < 4:
        result.notes["features"] = f"only {len(rows)} image(s) decoded: near duplicates and labels not checked"
        return result
    vectors = near.unit(features)
    with clock("near_duplicates"):
        calibration = near.calibrate(pool, vectors, rows, source, seed)
        result.calibration = calibration.as_dict()
        result.findings += near.near_duplicates(pool, vectors, rows, calibration)
    with clock("labels"):
        key = identity_hash({"features": source.identity, "seed": seed, "labels": pool.labels[rows].tolist(),
                             "contents": [pool.hashes[i] for i in rows]})
        found, result.notes["labels"] = labels.label_issues(pool, features.reshape(len(rows), -1), rows, seed, key)
        result.findings += found + labels.outliers(pool, vectors, rows)
    with clock("quality"):
        result.findings += files.tiny_images(pool)
        result.findings += files.quality_findings(pool, files.quality_scores(pool, rows))
    order = {kind: k for k, kind in enumerate(KINDS)}
    result.findings.sort(key=lambda f: order[f["kind"]])  # stable: each kind keeps its own ranking
    return result


class _Clock:
    """``with clock("step"):`` adds the step's seconds to ``seconds``."""

    def __init__(self, seconds: dict):
        self.seconds = seconds

    def __call__(self, step: str):
        self.step = step
        return self

    def __enter__(self):
        self.start = time.perf_counter()

    def __exit__(self, *exc):
        self.seconds[self.step] = round(time.perf_counter() - self.start, 3)


def audit(data: str | Path, *, backbone: str = "efficientnet_lite0", seed: int = 0, labels_table: str | None = None,
          splits: str | None = None, executor: str = "local", ray_address: str | None = None) -> AuditResult:
    """Audits a dataset folder (read only: nothing in it is written, moved or deleted).

    The splits are those train would use (the same seed and fractions), so a copy across
    them is the leakage a training run would have.

    Example:
        >>> result = audit("photos/")  # doctest: +SKIP
        >>> result.summary()["exact_duplicate"]  # doctest: +SKIP
        2
    """
    import tempfile

    from keras_transfer.config import TrainConfig, dataset_of, feature_source

    config = TrainConfig(data=str(data), backbone=backbone, seed=seed, labels=labels_table, splits=splits,
                         executor=executor, ray_address=ray_address).validate()
    dataset = dataset_of(config)
    log.info(f"auditing {dataset.source}: " + ", ".join(f"{n} {len(s)}" for n, s in dataset.splits.items()))
    source = feature_source(config, Path(tempfile.gettempdir()))  # view() only: nothing is written there
    return full_audit(dataset, source, seed)
