"""Several labels per image on the real multi-label scenes (miml_scenes): reading both table
formats, stratified splits, the metrics against scikit-learn, and a run trained, evaluated,
predicted, exported, served and reported with the commands a user already knows."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import numpy as np
import pytest

from conftest import DATASETS
from keras_transfer.cli import main
from keras_transfer.data.load import load_dataset
from keras_transfer.data.multilabel import iterative_stratify, label_cell
from keras_transfer.evaluation.multilabel import multilabel_metrics

MIML = DATASETS / "miml_scenes"
IMAGES = MIML / "images"


def test_label_cells_and_both_table_formats_read_the_same_labels():
    assert label_cell("sea, sunset") == label_cell("sea;sunset") == label_cell("sea|sunset|sea") == ["sea", "sunset"]
    assert label_cell("sea sunset") == ["sea sunset"] and label_cell("sea sunset", spaces=True) == ["sea", "sunset"]
    cells = load_dataset(IMAGES, labels=MIML / "labels.csv")
    onehot = load_dataset(IMAGES, labels=MIML / "labels_onehot.csv")
    assert cells.multi_label and onehot.multi_label
    assert cells.class_names == onehot.class_names == ["desert", "mountains", "sea", "sunset", "trees"]
    for name in cells.splits:
        assert cells.splits[name].ids() == onehot.splits[name].ids()
        assert np.array_equal(cells.splits[name].labels, onehot.splits[name].labels)
    every = np.concatenate([s.labels for s in cells.splits.values()])
    assert every.shape == (2000, 5) and (every.sum(1) == 2).sum() == 442 and (every.sum(1) == 3).sum() == 15


def test_a_table_mixing_single_and_several_labels_is_multi_label(tmp_path):
    rows = ["file,labels"] + [f"{p.name},{'sea' if i % 2 else 'sea;sunset'}"
                               for i, p in enumerate(sorted(IMAGES.iterdir())[:40])]
    (tmp_path / "mixed.csv").write_text("\n".join(rows))
    dataset = load_dataset(IMAGES, labels=tmp_path / "mixed.csv")
    assert dataset.multi_label and dataset.class_names == ["sea", "sunset"]
    assert any("on every training image" in note for note in dataset.notes)  # every image is 'sea'


def test_iterative_stratification_keeps_every_labels_share():
    labels = load_dataset(IMAGES, labels=MIML / "labels.csv").train.labels
    part = iterative_stratify(labels, [0.7, 0.3], seed=0)
    assert abs((part == 1).mean() - 0.3) < 0.01
    share = labels[part == 1].sum(0) / labels.sum(0)
    assert np.all(np.abs(share - 0.3) < 0.02), share
    assert np.array_equal(part, iterative_stratify(labels, [0.7, 0.3], seed=0))  # deterministic


def test_metrics_equal_scikit_learns():
    from sklearn.metrics import average_precision_score, f1_score, hamming_loss

    rng = np.random.default_rng(0)
    y = (rng.random((300, 4)) < [0.1, 0.3, 0.5, 0.02]).astype(np.uint8)
    y[:, 3] = 0  # a label no image carries: no AP, left out of the macro mean
    p = np.clip(y * 0.4 + rng.random(y.shape) * 0.6, 0, 1)
    p[:20, 0] = 0.5  # ties
    thresholds = np.array([0.5, 0.45, 0.55, 0.5])
    m = multilabel_metrics(y, p, list("abcd"), thresholds)
    predicted = p >= thresholds
    assert m["not_measured"] == ["d"]
    assert m["map_macro"] == pytest.approx(average_precision_score(y[:, :3], p[:, :3], average="macro"))
    assert m["map_micro"] == pytest.approx(average_precision_score(y, p, average="micro"))
    assert m["f1_micro"] == pytest.approx(f1_score(y, predicted, average="micro"))
    assert m["hamming_loss"] == pytest.approx(hamming_loss(y, predicted))
    assert m["exact_match"] == pytest.approx(np.mean(np.all(y == predicted, axis=1)))


@pytest.fixture(scope="module")
def scenes_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("multilabel") / "scenes"
    assert main(["train", str(IMAGES), "--labels", str(MIML / "labels.csv"), "--backbone", "lite0",
                 "--max-per-class", "60", "--out", str(out), "--quiet"]) == 0
    from keras_transfer.run import Run

    return Run.open(out)


@pytest.mark.heavy
def test_train_evaluate_and_predict_label_sets(scenes_run, capsys):
    metrics = scenes_run.read("metrics.json")
    assert metrics["multi_label"] and metrics["map_macro"] > 0.85 and metrics["f1_micro"] > 0.7
    assert metrics["evaluated_on"] == "val" and metrics["held_out"]
    thresholds = metrics["selection"]["thresholds"]
    assert thresholds["metric"] == "f1" and len(thresholds["values"]) == 5 and "out-of-fold" in thresholds["chosen_on"]
    capsys.readouterr()
    assert main(["evaluate", str(scenes_run.path), "--json"]) == 0
    evaluated = json.loads(capsys.readouterr().out)
    assert evaluated["map_macro"] == pytest.approx(metrics["map_macro"], abs=1e-6)
    stored = scenes_run.predictions()
    paths = [str(p) for p in stored.ids[:8]]
    assert main(["predict", str(scenes_run.path), *paths, "--json", "--top-k", "5"]) == 0
    rows = {r["path"]: r for r in json.loads(capsys.readouterr().out)}
    for i, path in enumerate(paths):
        probabilities = {p["label"]: p["probability"] for p in rows[path]["predictions"]}
        expected = [n for n, t, q in zip(scenes_run.class_names, thresholds["values"], stored.probabilities[i]) if q >= t]
        assert rows[path]["labels"] == expected
        assert np.allclose([probabilities[n] for n in scenes_run.class_names], stored.probabilities[i], atol=1e-4)
    out = scenes_run.path / "preds.csv"
    assert main(["predict", str(scenes_run.path), *paths, "--output", str(out)]) == 0
    assert "labels" in out.read_text().splitlines()[0]


@pytest.mark.heavy
def test_export_serve_and_report_label_sets(scenes_run):
    from keras_transfer.export import export_run
    from keras_transfer.export.parity import held_out, session
    from keras_transfer.report import write_report
    from keras_transfer.run import RunModel
    from keras_transfer.serve.process import ServerProcess

    model = RunModel.open(scenes_run)
    assert model.multi_label
    path = export_run(scenes_run, "onnx")
    pixels, labels = held_out(scenes_run, model.size)
    ours = session(path)(pixels[:16])
    assert np.abs(ours - model.predict_pixels(pixels[:16]).probabilities).max() < 1e-4
    parity = json.loads((path.parent / "parity.json").read_text())[0]
    assert parity["top1_agreement"] == 1.0  # the same label sets
    import onnx

    meta = {p.key: p.value for p in onnx.load(str(path)).metadata_props}
    assert json.loads(meta["label_thresholds"]) == pytest.approx(list(model.head.thresholds))
    image = scenes_run.predictions().ids[0]
    with ServerProcess([scenes_run.path]) as server:
        answer = httpx.post(server.url + "/v1/predict", files=[("files", ("x.jpg", open(image, "rb").read()))],
                            timeout=60).json()["results"][0]
    assert answer["labels"] == model.labels_of(model.predict_files([image])[0].probabilities[0])
    files = write_report(scenes_run)
    html = files.html.read_text()
    assert "mAP" in html and "Label co-occurrence" in html and "Worst misses" in html


def test_other_strategies_refuse_several_labels_clearly(tmp_path, capsys):
    assert main(["train", str(IMAGES), "--labels", str(MIML / "labels.csv"), "--strategy", "finetune",
                 "--out", str(tmp_path / "r"), "-q"]) == 2
    err = capsys.readouterr().err
    assert "several labels per image" in err and "--strategy bottleneck" in err and "Traceback" not in err
    assert not (tmp_path / "r").exists()


def test_labels_from_file_names_read_the_pets_layout(tmp_path, capsys):
    """The Oxford-IIIT Pet layout: one folder, the class in the name; files that do not match are listed."""
    from keras_transfer.base.errors import DatasetError

    pets = DATASETS / "pets3" / "images"
    regex = load_dataset(pets, labels_from_name=r"^(.+)_\d+\.jpg$")
    short = load_dataset(pets, labels_from_name="prefix")
    assert regex.class_names == short.class_names == ["Abyssinian", "Bengal", "american_bulldog"]
    assert sum(len(s) for s in regex.splits.values()) == 600
    assert np.array_equal(regex.train.labels, short.train.labels)
    folder = tmp_path / "mixed"
    folder.mkdir()
    for image in sorted(pets.iterdir())[:6]:
        (folder / image.name).write_bytes(image.read_bytes())
    (folder / "holiday.jpg").write_bytes(next(pets.iterdir()).read_bytes())
    dataset = load_named_files_of(folder)
    assert [Path(f).name for f, _ in dataset.skipped] == ["holiday.jpg"]
    with pytest.raises(DatasetError, match="needs a group"):
        load_dataset(pets, labels_from_name=r"\d+")
    assert main(["train", str(pets), "--labels-from-name", "([", "--out", str(tmp_path / "r"), "-q"]) == 1
    assert "not a regular expression" in capsys.readouterr().err


def load_named_files_of(folder):
    from keras_transfer.data.names import load_named_files

    return load_named_files(folder, r"^(.+)_\d+\.jpg$")


def test_multi_label_class_folders_merge_copies_into_label_sets(tmp_path, capsys):
    """``--multi-label``: the same photo in sea/ and sunset/ is one image labelled sea + sunset."""
    table = load_dataset(IMAGES, labels=MIML / "labels.csv")
    split = table.train
    rows = sorted({int(r) for r in np.linspace(0, len(split) - 1, 80)})  # spread over every label
    for row in rows:
        for name in np.array(table.class_names)[split.labels[row].astype(bool)]:
            (tmp_path / "tree" / name).mkdir(parents=True, exist_ok=True)
            (tmp_path / "tree" / name / split.items[row].name).write_bytes(split.items[row].read_bytes())
    merged = load_dataset(tmp_path / "tree", multi_label=True, val_fraction=0.2)
    assert merged.multi_label and merged.class_names == table.class_names
    got = {Path(p).name: tuple(y) for s in merged.splits.values() for p, y in zip(s.items, s.labels)}
    want = {split.items[r].name: tuple(split.labels[r]) for r in rows}
    assert got == want
    assert any("copies of images in other class folders merged" in note for note in merged.notes)
    plain = load_dataset(tmp_path / "tree", val_fraction=0.2)
    assert not plain.multi_label  # without the flag, class folders stay one label per image
