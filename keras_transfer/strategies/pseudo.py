"""Self-training of the solved head on unlabelled images, kept only where cross-validation says it helps.

The head fit on the labelled training images predicts the unlabelled ones; per predicted class,
the most confident ``share`` of them join the training images with that class as a hard label
(``rounds`` > 1: the head fit with them predicts again), and the head is fit again. A share, not
a fixed probability, because a head fit on fewer images (a fold's) is less sure than the final
one: the same share picks comparable images in both (the probability it amounts to is
recorded). Which share, and whether to use any, is chosen by k-fold cross-validation inside the labelled
training images only: in each fold the head learns from the other folds (plus the pseudo-labels
its own predictions give), and is scored on the fold's images, which no pseudo-label choice saw.
The pseudo-labels are kept when the best threshold's out-of-fold accuracy is above the plain
head's (or equal with a lower log loss); otherwise the plain head is returned, and the summary
says so. The L2 strength is the one cross-validation chose for the plain head.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from keras_transfer.data.dataset import stratified_folds
from keras_transfer.inference.head import LinearHead
from keras_transfer.strategies.solver import FOLDS, SolverFit, fit_linear_head

THRESHOLDS = (0.05, 0.1, 0.25, 0.5)  # shares of each predicted class's unlabelled images pseudo-labelled


@dataclass
class SelfTraining:
    """The head to use and how the pseudo-labels were decided.

    Attributes:
        head: The head fit with the pseudo-labels when ``kept``, else the plain head.
        plain: The plain fit (labelled images only).
        with_pseudo: The head fit with the pseudo-labels at ``threshold`` (even when not kept,
            so a run can report both held-out figures); None when no threshold could be tried.
        threshold: The chosen share of each predicted class (None: cross-validation impossible).
        used: Pseudo-labels the returned head learnt from (0 when not kept).
        confident: Unlabelled images in that share (what ``with_pseudo`` learnt from).
        kept: Whether the pseudo-labels are used.
        cv: Out-of-fold accuracy, log loss and mean pseudo-labels added, per threshold and ``"none"``.
    """

    head: LinearHead
    plain: SolverFit
    with_pseudo: LinearHead | None
    threshold: float | None
    used: int
    confident: int
    kept: bool
    unlabelled: int
    rounds: int
    folds: int
    cv: dict[str, dict[str, float]] = field(default_factory=dict)
    class_counts: list[int] = field(default_factory=list)
    labelled: int = 0
    probability: float | None = None  # the lowest top probability among the pseudo-labels at ``threshold``

    def summary(self) -> dict:
        """What ``metrics.json`` records."""
        why = ("out-of-fold accuracy (then log loss) inside the labelled training images improved" if self.kept
               else "cross-validation inside the labelled training images did not show a gain: not used"
               if self.folds else "too few labelled images per class to cross-validate: not used")
        return {"unlabelled_images": self.unlabelled, "used": self.used, "threshold": self.threshold,
                "threshold_is": "share of the unlabelled images predicted as each class, most confident first",
                "lowest_probability_used": self.probability, "confident_at_threshold": self.confident,
                "kept": self.kept, "labels": "hard", "rounds": self.rounds,
                "chosen_on": f"{self.folds}-fold cross-validation inside the {self.labelled} labelled training images",
                "thresholds_tried": list(THRESHOLDS), "cv": self.cv, "per_class": self.class_counts, "why": why}


def pseudo_labels(head: LinearHead, unlabelled: np.ndarray, share: float) -> tuple[np.ndarray, np.ndarray, float]:
    """(indices, classes, lowest top probability taken) of the unlabelled images (view 0 features) among
    the most confident ``share`` of those predicted as each class."""
    p = head.predict(unlabelled)
    top, classes = p.max(axis=1), p.argmax(axis=1)
    picked = []
    for c in np.unique(classes):
        members = np.flatnonzero(classes == c)
        picked += list(members[np.argsort(-top[members])[:int(np.ceil(share * len(members)))]])
    picked = np.sort(np.array(picked, np.int64))
    return picked, classes[picked], float(top[picked].min()) if len(picked) else 1.0


def _fit_with(views: np.ndarray, y: np.ndarray, unlabelled: np.ndarray, n_classes: int, C: float, start: LinearHead,
              threshold: float, rounds: int, class_weight: str | None) -> tuple[LinearHead, int, np.ndarray]:
    """The head fit on ``views`` plus the unlabelled images ``start`` (then each round's head) labels confidently."""
    head, picked, classes = start, np.zeros(0, np.int64), np.zeros(0, np.int64)
    for _ in range(rounds):
        picked, classes, _ = pseudo_labels(head, unlabelled[0], threshold)
        if not len(picked):
            break
        both = np.concatenate([views, unlabelled[:, picked]], axis=1)
        head = fit_linear_head(both, np.concatenate([y, classes]), n_classes, class_weight, C=C).head
    return head, len(picked), np.bincount(classes, minlength=n_classes)


def self_train(views: np.ndarray, y: np.ndarray, unlabelled: np.ndarray, n_classes: int,
               class_weight: str | None = None, seed: int = 0, rounds: int = 1) -> SelfTraining:
    """Fits the solved head with and without pseudo-labels; returns the one cross-validation prefers.

    Args:
        views: Features (V, N, D) of the labelled training images (view 0 the originals).
        y: Their labels (N,).
        unlabelled: Features (V, U, D) of the unlabelled images, the same views.
        n_classes: Number of classes.
        class_weight: ``"auto"``: balanced class weights (as ``fit_linear_head``).
        seed: Fold assignment.
        rounds: Times the pseudo-labels are predicted again by the head fit with them.
    """
    views, unlabelled = np.asarray(views, np.float32), np.asarray(unlabelled, np.float32)
    plain = fit_linear_head(views, y, n_classes, class_weight, seed)
    folds = min(FOLDS, int(np.bincount(y)[np.unique(y)].min())) if len(y) else 0
    if folds < 2 or not unlabelled.shape[1]:
        return SelfTraining(plain.head, plain, None, None, 0, 0, False, unlabelled.shape[1], rounds, 0,
                            labelled=len(y))
    assignment = stratified_folds(y, folds, seed)
    cases = ("none", *(f"{t:g}" for t in THRESHOLDS))
    oof = {case: np.zeros((len(y), n_classes)) for case in cases}
    added = {case: [] for case in cases}
    for k in range(folds):
        train, test = np.flatnonzero(assignment != k), np.flatnonzero(assignment == k)
        base = fit_linear_head(views[:, train], y[train], n_classes, class_weight, C=plain.C).head
        oof["none"][test] = base.predict(views[0, test])
        for t in THRESHOLDS:
            head, count, _ = _fit_with(views[:, train], y[train], unlabelled, n_classes, plain.C, base, t, rounds,
                                       class_weight)
            oof[f"{t:g}"][test] = head.predict(views[0, test])
            added[f"{t:g}"].append(count)
    cv = {case: {"accuracy": float((oof[case].argmax(1) == y).mean()),
                 "log_loss": float(-np.log(np.clip(oof[case][np.arange(len(y)), y], 1e-7, 1)).mean()),
                 "pseudo_labels": float(np.mean(added[case])) if added[case] else 0.0} for case in cases}
    best = max(cases[1:], key=lambda c: (cv[c]["accuracy"], -cv[c]["log_loss"]))
    kept = (cv[best]["accuracy"], -cv[best]["log_loss"]) > (cv["none"]["accuracy"], -cv["none"]["log_loss"])
    threshold = float(best)
    probability = pseudo_labels(plain.head, unlabelled[0], threshold)[2]
    with_pseudo, confident, counts = _fit_with(views, y, unlabelled, n_classes, plain.C, plain.head, threshold, rounds,
                                               class_weight)
    return SelfTraining(with_pseudo if kept else plain.head, plain, with_pseudo, threshold, confident if kept else 0,
                        confident, kept, unlabelled.shape[1], rounds, folds, cv, [int(c) for c in counts], len(y),
                        probability)
