"""MODEL_CARD.md: every run writes one (Hugging Face format), export copies it beside its files."""

from __future__ import annotations

import pytest

from keras_transfer.config import TrainConfig
from keras_transfer.export import export_run
from keras_transfer.run import Files, train
from keras_transfer.run.model_card import weights_licence


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    config = TrainConfig(data="flowers", backbone="efficientnet_lite0", stages=1, input_size=128, max_per_class=12)
    return train(config, tmp_path_factory.mktemp("card") / "flowers")


def test_every_run_writes_a_model_card(run):
    card = run.file(Files.MODEL_CARD).read_text()
    meta, body = card.split("---\n")[1], card.split("---\n", 2)[2]
    for key in ("library_name: keras-transfer", "license: apache-2.0", "tags:", "datasets:", "metrics:",
                "- image-classification", "- efficientnet_lite0"):
        assert key in meta
    metrics = run.read(Files.METRICS)
    assert f"value: {metrics['accuracy']}" in meta
    for text in ("## Training data", "| daisy |", "Audit findings", "## Evaluation", metrics["evaluated_images"],
                 "baseline (logistic regression", "expected calibration error", "unknown-image rejection",
                 "## Known limits", "Apache-2.0", "CPU cores", "## Intended use"):
        assert text in body, text


def test_export_copies_the_card_beside_the_files(run):
    path = export_run(run, "onnx", parity=False)
    assert (path.parent / Files.MODEL_CARD).read_text() == run.file(Files.MODEL_CARD).read_text()


def test_the_licence_of_the_weights_per_backbone():
    assert weights_licence("efficientnet_lite0+efficientnet_lite2")[0] == "apache-2.0"
    licence, text = weights_licence("resnet50")
    assert licence == "other" and "keras.applications" in text
