"""Grad-CAM / CAM and embedding similarity on a run trained to find objects in constructed images.

The images are a textured disc or a textured square pasted at a random place on a plain
background of random colour; the run (real ImageNet EfficientNet-Lite0 features, bottleneck
head) learns to tell disc from square, so its heatmaps must sit on the object.
"""

from __future__ import annotations

import json
from pathlib import Path

import keras_transfer  # noqa: F401  (selects the torch backend before keras is imported)

import keras
import numpy as np
import pytest
from PIL import Image

from keras_transfer import TrainConfig, train
from keras_transfer.run import split_features
from keras_transfer.cli import main
from keras_transfer.base.errors import ConfigError, DatasetError
from keras_transfer.explain import GradCAM, explain, similar, similarity_matrix, write_similarity
from keras_transfer.explain.overlay import upsample
from keras_transfer.backbones import get_backbone
from keras_transfer.backbones.layers import ImageNormalization
from keras_transfer.backbones.network import build_classifier, build_extractor, build_head
from keras_transfer.report import write_report

SIZE = 224
CLASSES = ("disc", "square")


def scene(rng: np.random.Generator, kind: int) -> tuple[np.ndarray, tuple[int, int, int, int]]:
    """A plain background with one textured object; returns (image, box (top, left, bottom, right))."""
    image = np.empty((SIZE, SIZE, 3), np.uint8)
    image[:] = rng.integers(70, 190, 3)
    radius = int(rng.integers(36, 50))
    cy, cx = rng.integers(radius, SIZE - radius, 2)
    yy, xx = np.mgrid[:SIZE, :SIZE]
    checker = (yy // 6 + xx // 6) % 2
    if kind == 0:
        mask, colours = (yy - cy) ** 2 + (xx - cx) ** 2 <= radius**2, np.array([[255, 40, 40], [255, 230, 0]])
    else:
        mask, colours = (abs(yy - cy) <= radius) & (abs(xx - cx) <= radius), np.array([[30, 60, 255], [250, 250, 250]])
    image[mask] = colours[checker[mask]]
    return image, (cy - radius, cx - radius, cy + radius, cx + radius)


def scenes(n: int, seed: int) -> tuple[np.ndarray, np.ndarray, list[tuple[int, int, int, int]]]:
    rng = np.random.default_rng(seed)
    made = [scene(rng, i % 2) for i in range(n)]
    return np.stack([m[0] for m in made]), np.arange(n) % 2, [m[1] for m in made]


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """A bottleneck run of one backbone (4 pooled stages) on 60 constructed images (45 train, 15 val)."""
    root = tmp_path_factory.mktemp("shapes")
    images, labels, _ = scenes(60, seed=0)
    np.savez(root / "shapes.npz", images=images, labels=np.array(CLASSES)[labels])
    config = TrainConfig(data=str(root / "shapes.npz"), backbone="lite0", epochs=40, patience=10, val_fraction=0.25)
    return train(config, root / "run")


@pytest.fixture(scope="module")
def test_images(tmp_path_factory):
    """16 new scenes saved as PNG files, with their labels and object boxes."""
    folder = tmp_path_factory.mktemp("queries")
    images, labels, boxes = scenes(16, seed=1)
    paths = []
    for i, image in enumerate(images):
        paths.append(folder / f"{CLASSES[labels[i]]}_{i:02d}.png")
        Image.fromarray(image).save(paths[-1])
    return paths, labels, boxes


def inside(point: tuple[int, int], box: tuple[int, int, int, int], margin: int = 0) -> bool:
    return box[0] - margin <= point[0] <= box[2] + margin and box[1] - margin <= point[1] <= box[3] + margin


def test_heatmap_peaks_on_the_object(run, test_images, tmp_path):
    paths, labels, boxes = test_images
    results = explain(run, paths, out=tmp_path)
    assert [r.label for r in results] == [CLASSES[k] for k in labels]  # the model learnt the task
    for method in ("gradcam", "cam"):
        peaks = [r.peak(method) for r in results]
        hits = sum(inside(p, b) for p, b in zip(peaks, boxes))
        near = sum(inside(p, b, margin=16) for p, b in zip(peaks, boxes))  # half a 32-px cell
        assert hits >= 0.75 * len(paths), f"{method}: {hits}/{len(paths)} peaks inside the object's box"
        assert near >= 0.9 * len(paths), f"{method}: {near}/{len(paths)} peaks within half a cell of the box"
    for r, box in zip(results, boxes):  # more heat on the object than around it
        heat = upsample(r.gradcam, (SIZE, SIZE))
        on = np.zeros((SIZE, SIZE), bool)
        on[box[0]:box[2] + 1, box[1]:box[3] + 1] = True
        assert heat[on].mean() > 2 * heat[~on].mean()
    written = results[0].files
    assert sorted(written) == ["cam", "figure", "gradcam"]
    overlay = np.asarray(Image.open(written["gradcam"]))
    assert overlay.shape == (SIZE, SIZE, 3) and not np.array_equal(overlay, results[0].image)
    figure = Image.open(written["figure"])
    assert figure.width > 2.5 * figure.height  # the image, Grad-CAM and CAM side by side, and a colour bar


def test_occlusion_finds_the_object_without_gradients(run, test_images):
    """The fallback for backbones with no layer to explain (onnx:, hub:, timm:) asks the run only:
    the class's probability is high under the random masks that leave the object visible."""
    from keras_transfer.explain.explainer import _explanations, heatmaps
    from keras_transfer.explain.occlusion import Occlusion
    from keras_transfer.run import RunModel

    paths, labels, boxes = test_images
    model = RunModel.open(run.path)
    images = np.stack([np.asarray(Image.open(p).convert("RGB")) for p in paths])
    maps = heatmaps(model, Occlusion(model), images)
    assert maps.method == "occlusion" and maps.cam is None and maps.gradcam.shape == (len(paths), 56, 56)
    assert np.allclose(maps.probabilities, model.predict_pixels(images).probabilities)  # the run's own answer
    again = Occlusion(model)(images[:2])
    assert np.array_equal(again.gradcam, maps.gradcam[:2])  # seeded masks: the same map every time
    items = _explanations(list(CLASSES), paths, list(images), maps)
    hits = sum(inside(item.peak(), box) for item, box in zip(items, boxes))
    near = sum(inside(item.peak(), box, margin=16) for item, box in zip(items, boxes))  # half a 32-px mask cell
    assert hits >= 0.75 * len(paths) and near >= 0.9 * len(paths), (hits, near)
    hotter = 0
    for item, box in zip(items, boxes):
        heat = upsample(item.gradcam, (SIZE, SIZE))
        on = np.zeros((SIZE, SIZE), bool)
        on[box[0]:box[2] + 1, box[1]:box[3] + 1] = True
        hotter += heat[on].mean() > heat[~on].mean()
    assert hotter >= 0.9 * len(paths), f"{hotter}/{len(paths)} maps hotter on the object than around it"


def test_explain_shows_the_image_at_its_own_aspect_ratio_with_its_true_class(run, test_images, tmp_path):
    """A wide photo in a class folder: its overlay keeps the width:height of the file (the model
    saw it stretched), and the figure's title names the true class."""
    path, label = test_images[0][0], CLASSES[test_images[1][0]]
    wide = tmp_path / label / "wide.png"
    wide.parent.mkdir()
    Image.open(path).resize((2 * SIZE, SIZE)).save(wide)
    item = explain(run, [wide], out=tmp_path / "out")[0]
    assert item.shown.shape == (SIZE, 2 * SIZE, 3) and item.overlay().shape == (SIZE, 2 * SIZE, 3)
    assert item.true_label == label
    title = item.figure()._suptitle.get_text()
    assert f"true {label}" in title and f"predicted {item.predicted}" in title


def test_gradcam_equals_the_analytic_maps_of_a_gap_dense_head(run, test_images):
    """For GAP -> Dense, d logit_c / d A = W[:, c] / (h w): Grad-CAM is ReLU(CAM) up to scale."""
    model = run.model
    images = np.stack([np.asarray(Image.open(p)) for p in test_images[0][:4]])
    maps = GradCAM(model, "head_act")(images)
    features = model.get_layer("features")
    maps_out = features.layers[2](features.layers[1](images))  # the last map first, then the earlier stages
    assert len(maps_out) == run.config.pool_stages == 4
    activation = keras.ops.convert_to_numpy(maps_out[0])
    kernel = model.get_layer("head").get_layer("predictions").get_weights()[0][:activation.shape[-1]]  # its rows
    raw = np.einsum("nhwk,kn->nhw", activation, kernel[:, maps.targets])
    relu = np.maximum(raw, 0)
    np.testing.assert_allclose(maps.gradcam, relu / relu.max(axis=(1, 2), keepdims=True), atol=1e-4)
    low = raw.min(axis=(1, 2), keepdims=True)
    np.testing.assert_allclose(maps.cam, (raw - low) / (raw.max(axis=(1, 2), keepdims=True) - low), atol=1e-4)
    np.testing.assert_allclose(maps.probabilities, model.predict(images, verbose=0), atol=1e-5)


def test_hidden_layer_head_has_gradcam_but_no_cam():
    spec = get_backbone("efficientnet_lite0")
    extractor = build_extractor(spec, 64, None)
    classifier = build_classifier(extractor, build_head(spec.feature_dim, 3, hidden_units=(16,)))
    images = np.random.default_rng(5).integers(0, 256, (2, 64, 64, 3)).astype(np.uint8)
    explainer = GradCAM(classifier, spec.gradcam_layer)
    maps = explainer(images, targets=np.array([2, 0]))
    assert not explainer.cam_available and maps.cam is None
    assert maps.gradcam.shape == (2, 2, 2) and maps.targets.tolist() == [2, 0]
    assert np.isfinite(maps.gradcam).all() and maps.gradcam.min() >= 0 and maps.gradcam.max() <= 1
    np.testing.assert_allclose(maps.probabilities, classifier.predict(images, verbose=0), atol=1e-5)
    with pytest.raises(ConfigError, match="no_such_layer"):
        GradCAM(classifier, "no_such_layer")


def test_a_feature_extractor_that_is_not_a_chain_is_explained():
    """A branch beside the backbone (as pooled stages and ensembles make): rebuilt by cloning, same numbers."""
    spec = get_backbone("efficientnet_lite0")
    pixels = keras.Input((64, 64, 3))
    normal = ImageNormalization(name="normalize")(pixels)
    pooled = keras.layers.GlobalAveragePooling2D(name="pool")(spec.build(64, None)(normal))
    mean_rgb = keras.layers.GlobalAveragePooling2D(name="mean_rgb")(normal)
    mixed = keras.layers.Add(name="mix")([pooled, keras.layers.Dense(spec.feature_dim, name="colour")(mean_rgb)])
    classifier = build_classifier(keras.Model(pixels, mixed, name="features"), build_head(spec.feature_dim, 2))
    images = np.random.default_rng(6).integers(0, 256, (2, 64, 64, 3)).astype(np.uint8)
    explainer = GradCAM(classifier, spec.gradcam_layer)
    maps = explainer(images)
    assert not explainer.cam_available and maps.gradcam.shape == (2, 2, 2) and np.isfinite(maps.gradcam).all()
    np.testing.assert_allclose(maps.probabilities, classifier.predict(images, verbose=0), atol=1e-5)


def test_explain_a_chosen_class_and_bad_inputs(run, test_images, tmp_path):
    disc = test_images[0][0]
    other = explain(run, [disc], target="square")
    assert other[0].label == "square" and other[0].predicted == "disc" and other[0].probability < 0.5
    assert other[0].files == {}
    with pytest.raises(ConfigError, match="did you mean 'square'"):
        explain(run, [disc], target="squares")
    (tmp_path / "broken.png").write_bytes(b"not a png")
    with pytest.raises(DatasetError, match="no readable image"):
        explain(run, [tmp_path / "broken.png", tmp_path / "missing.png"])


def test_similar_finds_the_training_image_itself(run, tmp_path):
    train_split = split_features(run, "train")[0]
    position = 3
    query = tmp_path / "query.png"
    Image.fromarray(train_split.image(position)).save(query)
    table = similar(run, [query], k=4)
    assert table["rank"].tolist() == [1, 2, 3, 4] and (table["query"] == str(query)).all()
    assert table["path"].iloc[0] == f"train[{position}]" and table["score"].iloc[0] > 0.999
    assert (np.diff(table["score"]) <= 0).all() and (table["score"] <= 1.0 + 1e-5).all()
    assert table["label"].iloc[0] == CLASSES[train_split.labels[position]]
    with pytest.raises(ConfigError):
        similar(run, [query], k=0)


def test_similarity_matrix_groups_classes(run, tmp_path):
    result = similarity_matrix(run, sample=20, seed=1)
    assert result.matrix.shape == (20, 20) and np.bincount(result.labels).tolist() == [10, 10]
    assert (np.diff(result.labels) >= 0).all()
    np.testing.assert_allclose(result.matrix, result.matrix.T, atol=1e-6)
    np.testing.assert_allclose(np.diag(result.matrix), 1.0, atol=1e-5)
    means = result.class_means()
    assert means[0, 0] > means[0, 1] and means[1, 1] > means[0, 1]
    path, _ = write_similarity(run, tmp_path / "sim.png", sample=12)
    assert Image.open(path).size[0] > 400


def test_cli_explain_similar_similarity(run, test_images, tmp_path, capsys):
    query = str(test_images[0][1])
    assert main(["explain", str(run.path), query, "--out", str(tmp_path / "x"), "--json", "-q"]) == 0
    explained = json.loads(capsys.readouterr().out)
    assert explained[0]["label"] == "square" and Path(explained[0]["files"]["gradcam"]).is_file()
    assert main(["similar", str(run.path), query, "--k", "2", "--json", "-q"]) == 0
    assert [r["rank"] for r in json.loads(capsys.readouterr().out)] == [1, 2]
    assert main(["similarity", str(run.path), "--sample", "8", "--out", str(tmp_path / "m.png"), "--json", "-q"]) == 0
    assert json.loads(capsys.readouterr().out)["images"] == 8 and (tmp_path / "m.png").is_file()
    assert main(["explain", str(run.path), str(tmp_path / "none.png"), "-q"]) == 1
    assert main(["similarity", str(run.path), "--split", "tset", "-q"]) == 2
    assert "error:" in capsys.readouterr().err


def test_report_on_an_array_dataset(run, tmp_path):
    files = write_report(run, tmp_path / "report")
    sizes = files.report.section("dataset").data["sizes"]
    assert set(sizes["width"]) == {SIZE} and set(sizes["height"]) == {SIZE}
    counts = files.report.section("dataset").data["counts"]
    assert counts["total"].tolist() == [30, 30]
    html = files.html.read_text()
    assert all(f'id="{s}"' in html for s in ("metrics", "confusion", "mistakes", "calibration", "dataset"))
