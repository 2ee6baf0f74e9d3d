"""One decoding for training, predict and serve: JPEGs reduced on load (``Image.draft``) before the
exact resize, on real photos, through the default run's real engine."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from conftest import HYMENOPTERA


@pytest.fixture(scope="module")
def model(ants_run):
    from keras_transfer.run import RunModel

    return RunModel.open(ants_run)


def _large_photos(size: int) -> list:
    """Hymenoptera photos at least twice ``size`` on both sides: the ones ``draft`` decodes reduced."""
    photos = sorted(HYMENOPTERA.rglob("*.jp*g"))
    return [p for p in photos if min(Image.open(p).size) >= 2 * size]


def test_draft_decoding_keeps_the_features_and_the_answers(model):
    """The reduced decode (what every path uses) vs a full decode of the same photos: the
    pixels differ, the features by a few percent, the run's answers not at all."""
    from keras_transfer.data.images import read_image, resize

    photos = _large_photos(model.size)
    assert len(photos) >= 5  # the set has them: 2592 x 1944 down to 800 x 534
    with Image.open(photos[0]) as probe:
        full_side = probe.size
    assert read_image(photos[0], model.size).shape[1::-1] != full_side  # reduced on load indeed
    drafted = np.stack([resize(read_image(p, model.size), model.size, model.resize_mode) for p in photos])
    full = np.stack([resize(read_image(p), model.size, model.resize_mode) for p in photos])
    assert np.abs(drafted.astype(int) - full).mean() < 4  # of 255: a slightly different bilinear input
    a, b = model.source.engine.features(drafted), model.source.engine.features(full)
    error = np.linalg.norm(a - b, axis=1) / np.linalg.norm(b, axis=1)
    assert error.max() < 0.1, error
    drafted_answer, full_answer = model.answer(a[None]), model.answer(b[None])
    assert (drafted_answer.probabilities.argmax(1) == full_answer.probabilities.argmax(1)).all()
    assert np.abs(drafted_answer.probabilities - full_answer.probabilities).max() < 0.1


def test_training_predict_and_serve_decode_a_photo_identically(model):
    """The view the feature cache stores (training), the pixels predict sends and the upload the
    server decodes are the same array, byte for byte: one decode function."""
    from keras_transfer.data.dataset import Split
    from keras_transfer.features.extract import Task
    from keras_transfer.serve.models import decode

    photos = _large_photos(model.size)[:2] + sorted((HYMENOPTERA / "val" / "bees").iterdir())[:2]
    split = Split("val", photos, np.zeros(len(photos), np.int64))
    maker = model.source.engine.maker
    for i, photo in enumerate(photos):
        trained = maker(split, Task(i, "", (0,)))[0]
        served = decode(photo.read_bytes(), model.size, model.resize_mode, 40_000_000)
        assert trained.dtype == served.dtype == np.uint8 and np.array_equal(trained, served)
