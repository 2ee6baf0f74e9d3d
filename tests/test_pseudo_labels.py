"""``train --unlabelled``: self-training on real flowers5 photos, recorded in metrics.json, never silent."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from conftest import DATASETS
from keras_transfer.cli import main

FLOWERS = DATASETS / "flowers5"
CLASSES = ("daisy", "dandelion", "sunflower")
pytestmark = pytest.mark.skipif(not FLOWERS.is_dir(), reason="needs ../shared/datasets/flowers5")


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    """12 labelled photos per class (links) and 15 unlabelled ones per class, plus a copy of a labelled one."""
    root = tmp_path_factory.mktemp("pseudo")
    for name in CLASSES:
        photos = sorted((FLOWERS / name).glob("*.jpg"))
        for photo in photos[:12]:
            (root / "data" / name).mkdir(parents=True, exist_ok=True)
            (root / "data" / name / photo.name).symlink_to(photo)
        for photo in photos[100:115]:
            (root / "unlabelled").mkdir(exist_ok=True)
            (root / "unlabelled" / f"{name}-{photo.name}").symlink_to(photo)
    shutil.copy(sorted((FLOWERS / CLASSES[0]).glob("*.jpg"))[0], root / "unlabelled" / "copy-of-labelled.jpg")
    return root


@pytest.fixture(scope="module")
def metrics(folders):
    out = folders / "run"
    assert main(["train", str(folders / "data"), "--backbone", "efficientnet_lite0", "--unlabelled",
                 str(folders / "unlabelled"), "--out", str(out), "--no-baseline", "--quiet"]) == 0
    return json.loads((out / "metrics.json").read_text())


def test_metrics_record_the_pseudo_labels(metrics):
    record = metrics["selection"]["pseudo_labels"]
    assert record["unlabelled_images"] == 45  # the copy of a labelled photo left out
    assert record["already_in_dataset"] == 1
    assert record["threshold"] in record["thresholds_tried"]
    assert record["used"] == (record["confident_at_threshold"] if record["kept"] else 0)
    assert 0 <= record["confident_at_threshold"] <= 45 and sum(record["per_class"]) == record["confident_at_threshold"]
    assert set(record["cv"]) == {"none", *(f"{t:g}" for t in record["thresholds_tried"])}
    assert "cross-validation inside the" in record["chosen_on"] and record["chosen_on"].endswith("training images")
    held = record["held_out_accuracy"]
    assert 0 <= held["without"] <= 1 and 0 <= held["with"] <= 1 and held["split"].startswith(metrics["evaluated_on"])
    chosen = held["with"] if record["kept"] else held["without"]
    assert np.isclose(metrics["accuracy"], chosen)  # the run's figure is the head it kept


def test_refused_where_it_cannot_apply(folders, capsys):
    assert main(["train", str(folders / "data"), "--unlabelled", str(folders / "unlabelled"), "--solver", "keras",
                 "--out", str(folders / "bad"), "--quiet"]) == 2
    assert "--unlabelled adds pseudo-labels to the solved linear head" in capsys.readouterr().err
    assert main(["train", str(folders / "data"), "--backbone", "efficientnet_lite0", "--unlabelled",
                 str(folders / "nowhere"), "--out", str(folders / "bad"), "--quiet", "--no-baseline"]) == 1
    assert "unlabelled folder not found" in capsys.readouterr().err
    assert not (folders / "bad").exists()
