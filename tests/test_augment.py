"""Deterministic augmented views, and training / evaluating with them."""

from __future__ import annotations

import numpy as np
import pytest

from conftest import HYMENOPTERA
from keras_transfer.api import evaluate, train
from keras_transfer.config import TrainConfig
from keras_transfer.data.augment import AugmentPolicy, augment, view_name
from keras_transfer.data.images import read_image, resize
from keras_transfer.features.keys import file_hash

PHOTO = sorted((HYMENOPTERA / "train" / "bees").glob("*.jpg"))[3]
STILL = AugmentPolicy(rotation=0, zoom=0, shift=0, shear=0, flip=False, brightness=0, contrast=0, saturation=0)


@pytest.fixture(scope="module")
def photo() -> tuple[np.ndarray, str]:
    return resize(read_image(PHOTO, 96), 96), file_hash(PHOTO)


def test_views_are_deterministic_per_image_view_and_seed(photo):
    image, content = photo
    first = augment(image, content, 1)
    np.testing.assert_array_equal(first, augment(image.copy(), content, 1))
    assert first.shape == image.shape and first.dtype == np.uint8
    others = [augment(image, content, 2), augment(image, content, 1, seed=1), augment(image, "f" * 32, 1)]
    assert all(np.abs(first.astype(int) - o).mean() > 2 for o in others)
    assert augment(image, content, 0) is image


def test_borders_are_reflected_not_black(photo):
    image, content = photo
    darkest = min((augment(image, content, v).max(axis=-1) == 0).mean() for v in range(1, 20))
    assert (image.max(axis=-1) == 0).mean() == darkest == 0


def test_flip_only_policy_gives_exact_mirrors(photo):
    image, content = photo
    flip = AugmentPolicy(**{**STILL.__dict__, "flip": True})
    views = [augment(image, content, v, policy=flip) for v in range(1, 13)]
    mirrored = [np.array_equal(v, image[:, ::-1]) for v in views]
    assert all(m or np.array_equal(v, image) for m, v in zip(mirrored, views))
    assert 0 < sum(mirrored) < len(views)


def test_view_names_key_on_policy_and_seed():
    assert view_name(0) == "orig"
    names = {view_name(1), view_name(2), view_name(1, seed=3), view_name(1, policy=STILL)}
    assert len(names) == 4


def test_train_on_augmented_views_with_tta(tmp_path, colour_folder):
    config = TrainConfig(data=str(colour_folder), input_size=32, epochs=20, runtime="keras",
                         augment_views=2, tta_views=2)
    run = train(config, tmp_path / "run")
    features = tmp_path / "run" / "features"
    with np.load(features / "train-3views.npz") as saved:
        assert saved["features"].shape[:2] == (3, 20)
    assert (features / "val-3views.npz").exists() and (features / "val.npz").exists()
    metrics = run.read("metrics.json")
    assert metrics["n"] == 4 and metrics["accuracy"] >= 3 / 4  # red vs blue squares
    again = evaluate(run)  # the same TTA views, read back from the run folder
    assert (again["accuracy"], again["log_loss"]) == pytest.approx((metrics["accuracy"], metrics["log_loss"]))
    assert run.config.augment_views == 2 and run.config.tta_views == 2
