"""What the features say about one image: its nearest training images and the likely label errors.

Both read the cached features of the current run's backbone (the shared content-addressed
cache: nothing goes through the backbone that train or the audit already saw) and the labels as
corrected in the workspace.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from keras_transfer.audit.near import unit
from keras_transfer.data.corrections import added_id, relative_id
from keras_transfer.data.dataset import Split


def _train_vectors(ws) -> tuple[list[str], np.ndarray]:
    """(ids, unit feature vectors) of the folder's training images, kept on the workspace per backbone.

    The vectors are standardised per dimension first (the pooled stages have different scales), with
    the training images' mean and spread, so no stage dominates the cosine.
    """
    source = ws.model.source
    key = (repr(sorted(source.identity.items())), id(ws.folder_dataset))
    cached = ws.__dict__.get("_train_vectors")
    if cached is None or cached[0] != key:
        split = ws.folder_dataset.train
        features, rows = source.view(split, 0, desc="features train")  # the shared cache only
        mean, std = features.mean(axis=0), features.std(axis=0)
        std[std < 1e-6] = 1.0
        ids = [relative_id(split.items[i], ws.data) for i in rows]
        cached = (key, (ids, unit((features - mean) / std), mean, std))
        ws.__dict__["_train_vectors"] = cached
    return cached[1]


def neighbours(ws, image_id: str, k: int = 8) -> list[dict]:
    """The ``k`` training images most like ``image_id`` (cosine of standardised cached features),
    most similar first, the image itself left out: ``[{"id", "label", "similarity"}]``.

    Example:
        >>> ws.neighbours("roses/1.jpg", k=2)  # doctest: +SKIP
        [{'id': 'roses/7.jpg', 'label': 'roses', 'similarity': 0.93}, ...]
    """
    ids, vectors, mean, std = _train_vectors(ws)
    position = {image: i for i, image in enumerate(ids)}
    if image_id in position:
        query = vectors[position[image_id]]
    else:
        path = ws.path_of(image_id)
        features, rows = ws.model.source.view(Split("query", [Path(path)], np.zeros(1, np.int64)), 0, desc="query")
        if not len(rows):
            return []
        query = unit((features - mean) / std)[0]
    similarity = vectors @ query
    labels = {row["id"]: row for row in ws.images()}
    out = []
    for i in np.argsort(-similarity):
        if ids[i] == image_id or labels.get(ids[i], {}).get("excluded"):
            continue
        out.append({"id": ids[i], "label": labels[ids[i]]["label"] if ids[i] in labels else None,
                    "similarity": round(float(similarity[i]), 4)})
        if len(out) == k:
            break
    return out


def likely_label_errors(ws) -> list[dict]:
    """Images whose label (as corrected) is likely wrong, most likely first:
    ``[{"id", "label", "suggested", "score"}]`` (score: the out-of-fold probability of the label).

    The audit's own check (``audit.labels.label_issues``): cleanlab's confident learning on 5-fold
    out-of-fold probabilities of the solved linear head, over every image of the folder (excluded
    ones left out), cached on disk by features, contents and labels.
    """
    from keras_transfer.audit.labels import label_issues
    from keras_transfer.audit.pool import Pool
    from keras_transfer.features.keys import identity_hash
    from keras_transfer.studio.refit import corrected_dataset

    config = ws.config(str(ws.corrections_path) if ws.corrections_path.is_file() else None)
    dataset = corrected_dataset(ws, config) if config.corrections else ws.folder_dataset
    pool = Pool.of(dataset)
    source = ws.model.source
    features, rows = source.view(pool.split, 0, desc="features")
    key = identity_hash({"features": source.identity, "seed": config.seed, "labels": pool.labels[rows].tolist(),
                         "contents": [pool.hashes[i] for i in rows]})
    found, _ = label_issues(pool, features.reshape(len(rows), -1), rows, config.seed, key)
    added = {fix.path: added_id(fix.label, fix.path) for fix in ws.corrections().values() if fix.added}
    return [{"id": added.get(finding["images"][0]["file"]) or relative_id(finding["images"][0]["file"], ws.data),
             "label": finding["given"], "suggested": finding["suggested"], "score": finding["score"]}
            for finding in found]
