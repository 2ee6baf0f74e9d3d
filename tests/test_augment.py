"""Deterministic augmented views, and training / evaluating with them."""

from __future__ import annotations

import numpy as np
import pytest

from conftest import HYMENOPTERA
from keras_transfer.run import evaluate, train
from keras_transfer.config import TrainConfig
from keras_transfer.data.augment import AugmentPolicy, augment, mixup, shift_flip, view_name
from keras_transfer.data.dataset import Split
from keras_transfer.data.images import read_image, resize
from keras_transfer.data.stream import AugmentedBatches
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
    assert (features / "val-3views.npz").exists()
    metrics = run.read("metrics.json")
    assert metrics["n"] == 4 and metrics["accuracy"] >= 3 / 4  # red vs blue squares
    again = evaluate(run)  # the same TTA views, read back from the run folder
    assert (again["accuracy"], again["log_loss"]) == pytest.approx((metrics["accuracy"], metrics["log_loss"]))
    assert run.config.augment_views == 2 and run.config.tta_views == 2


def test_shift_flip_translates_and_mirrors_within_reflected_borders(photo):
    image, _ = photo
    batch = np.stack([image] * 8)
    out = shift_flip(batch, np.random.default_rng(0), shift=0.125)
    assert out.shape == batch.shape and out.dtype == np.uint8
    np.testing.assert_array_equal(shift_flip(batch, np.random.default_rng(0)), out)  # the rng decides all
    pad = int(96 * 0.125)
    padded = np.pad(image, ((pad, pad), (pad, pad), (0, 0)), mode="reflect")
    crops = {(dy, dx, f) for dy in range(2 * pad + 1) for dx in range(2 * pad + 1) for f in (0, 1)}
    found = set()
    for view in out:
        for dy, dx, flip in crops:  # every output is one crop of the padded image, maybe mirrored
            crop = padded[dy:dy + 96, dx:dx + 96]
            if np.array_equal(view, crop[:, ::-1] if flip else crop):
                found.add((dy, dx, flip))
                break
        else:
            raise AssertionError("an output is not a shifted (and maybe mirrored) copy of the input")
    assert len(found) > 4 and {f for *_, f in found} == {0, 1}  # shifts and flips vary across the batch


def test_mixup_blends_images_and_labels_alike():
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (16, 8, 8, 3)).astype(np.uint8)
    labels = np.eye(16, dtype=np.float32)  # one class per image: a label names its images
    mixed, targets = mixup(images, labels, np.random.default_rng(1), alpha=0.4)
    assert mixed.dtype == np.float32 and mixed.shape == images.shape
    np.testing.assert_allclose(targets.sum(axis=1), 1.0, atol=1e-6)
    own = targets[np.arange(16), np.arange(16)]
    assert (own >= 0.5 - 1e-6).all() and (own < 0.99).sum() >= 8  # each keeps the larger share of itself
    for i in range(16):  # the image is the very blend its label says
        blend = (targets[i][:, None, None, None] * images.astype(np.float32)).sum(axis=0)
        np.testing.assert_allclose(mixed[i], blend, atol=1e-3)
    same, unchanged = mixup(images, labels, rng, alpha=0)
    np.testing.assert_array_equal(same, images.astype(np.float32))
    assert unchanged is labels


def test_augmented_batches_depend_only_on_seed_epoch_and_batch():
    """A resumed run (a fresh stream set to the same epoch) sees exactly the same batches."""
    rng = np.random.default_rng(0)
    split = Split("train", rng.integers(0, 256, (20, 24, 24, 3)).astype(np.uint8), np.arange(20) % 4)
    first = AugmentedBatches(split, 24, 4, batch_size=8, seed=3, mixup_alpha=0.4)
    epoch0 = [first[b] for b in range(len(first))]
    first.on_epoch_end()
    epoch1 = first[0]
    again = AugmentedBatches(split, 24, 4, batch_size=8, seed=3, mixup_alpha=0.4)
    for (x, y), (x2, y2) in zip(epoch0, [again[b] for b in range(len(again))]):
        np.testing.assert_array_equal(x, x2)
        np.testing.assert_array_equal(y, y2)
    again.on_epoch_end()
    np.testing.assert_array_equal(again[0][0], epoch1[0])
    assert not np.array_equal(epoch0[0][0], epoch1[0])  # a new epoch: new order and augmentation
    assert sum(len(y) for _, y in epoch0) == 20 and epoch0[0][1].shape == (8, 4)
