"""The studio's workspace below the web layer: fixes, refit, add a class, apply / undo, CAM, neighbours.

One module-scoped run (Lite0) on a small copy of ``flower_photos_demo`` with planted wrong
labels (daisies filed as roses) and a planted near-duplicate; each test opens its own workspace
on it. Every action but apply is checked to leave the data folder byte for byte as it was.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from conftest import DATASETS

FLOWERS = DATASETS / "flower_photos_demo"
CLASSES = ("daisy", "dandelion", "roses")
PER_CLASS = 18
PLANTED = 6  # daisies filed under roses


def tree_hash(folder: Path) -> str:
    """Hash of every file's relative path and bytes, and of every folder (empty ones too)."""
    digest = hashlib.sha256()
    for path in sorted(folder.rglob("*")):
        digest.update(path.relative_to(folder).as_posix().encode() + (b"/" if path.is_dir() else b""))
        if path.is_file():
            digest.update(hashlib.sha256(path.read_bytes()).digest())
    return digest.hexdigest()


@pytest.fixture(scope="module")
def studio(tmp_path_factory):
    """(data folder, run folder, planted ids, (original id, copy id), sunflower folder)."""
    from keras_transfer.cli import main
    from keras_transfer.data.load import load_dataset

    root = tmp_path_factory.mktemp("studio")
    data = root / "flowers"
    for name in CLASSES:
        (data / name).mkdir(parents=True)
        for path in sorted((FLOWERS / name).glob("*.jpg"))[:PER_CLASS]:
            shutil.copy(path, data / name / path.name)
    daisies = sorted((FLOWERS / "daisy").glob("*.jpg"))[PER_CLASS:PER_CLASS + PLANTED]
    planted = []
    for path in daisies:
        shutil.copy(path, data / "roses" / path.name)
        planted.append(f"roses/{path.name}")
    for original in sorted((data / "dandelion").glob("*.jpg")):  # a pair not both held out (splits are seeded)
        image = Image.open(original).convert("RGB")
        image.resize((image.width * 9 // 10, image.height * 9 // 10)).save(data / "dandelion" / "zz_copy.jpg",
                                                                           quality=85)
        held_out = {str(p) for p in load_dataset(data).val.items}
        if not {str(original), str(data / "dandelion" / "zz_copy.jpg")} <= held_out:
            break
    extra = root / "sunflowers"
    extra.mkdir()
    for path in sorted((FLOWERS / "sunflowers").glob("*.jpg"))[:10]:
        shutil.copy(path, extra / path.name)
    run = root / "run"
    assert main(["train", str(data), "--backbone", "efficientnet_lite0", "--out", str(run), "--quiet"]) == 0
    return data, run, planted, (f"dandelion/{original.name}", "dandelion/zz_copy.jpg"), extra


def test_fix_errors_are_typed_and_leave_data_alone(studio, tmp_path):
    from keras_transfer.base.errors import ConfigError, DatasetError
    from keras_transfer.studio.workspace import Workspace

    data, run, planted, _, _ = studio
    before = tree_hash(data)
    ws = Workspace.open(data, run, root=tmp_path / "ws")
    images = {row["id"]: row for row in ws.images()}
    assert len(images) == 3 * PER_CLASS + PLANTED + 1
    assert images[planted[0]]["label"] == images[planted[0]]["original"] == "roses"
    with pytest.raises(DatasetError, match="unknown image id"):
        ws.fix(["roses/nope.jpg"], "exclude")
    with pytest.raises(DatasetError, match="no class 'tulips'"):
        ws.fix([planted[0]], "relabel", "tulips")
    with pytest.raises(ConfigError, match="unknown fix"):
        ws.fix([planted[0]], "delete")
    gone = tmp_path / "vanishing"
    shutil.copytree(data, gone)
    other = Workspace.open(gone, run, root=tmp_path / "ws-vanish")
    other.images()
    (gone / planted[1]).unlink()
    with pytest.raises(DatasetError, match="vanished"):
        other.fix([planted[1]], "exclude")
    assert ws.fix(planted[:2], "relabel", "daisy")["changed"] == 2
    assert ws.fix([planted[2]], "exclude")["corrections"] == 3
    rows = {row["id"]: row for row in ws.images()}
    assert rows[planted[0]]["label"] == "daisy" and rows[planted[0]]["original"] == "roses"
    assert rows[planted[2]]["excluded"]
    assert ws.fix([planted[2]], "restore")["corrections"] == 2
    result = ws.keep_one([planted[3], planted[4]], keep=planted[3])
    assert result["kept"] == planted[3] and {row["id"] for row in ws.images() if row["excluded"]} == {planted[4]}
    assert tree_hash(data) == before  # the table lives in the workspace
    assert not list(data.rglob("*.csv"))


def test_refit_after_fixing_planted_labels(studio, tmp_path):
    from keras_transfer.run import Files, Run, RunModel
    from keras_transfer.studio.workspace import Workspace

    data, run, planted, _, _ = studio
    before = tree_hash(data)
    ws = Workspace.open(data, run, root=tmp_path / "ws")
    suspects = {row["id"]: row for row in ws.likely_label_errors()}
    assert any(suspects[i]["suggested"] == "daisy" for i in planted if i in suspects), suspects
    held_out = [row["id"] for row in ws.images() if row["split"] == "val" and row["id"] in planted]
    assert held_out, "a planted image must lie in the held-out split for this test"
    ws.fix(planted, "relabel", "daisy")
    result = ws.refit()
    assert result["held_out_touched"] == sorted(held_out)
    base = Run.open(run).metrics
    original = result["original_labels"]["accuracy"]
    assert original["before"] == pytest.approx(base["accuracy"], abs=1e-4)  # the same images, the folder's labels
    assert result["accuracy"]["after"] > original["after"]  # the fixed held-out labels now count as right
    assert {row["class"] for row in result["per_class"]} == set(CLASSES)
    assert ws.run.path == Path(result["run"]) and ws.run.config.corrections
    refit_run = Run.open(result["run"])
    assert refit_run.read(Files.METRICS)["accuracy"] == pytest.approx(result["accuracy"]["after"], abs=1e-4)
    answer, _ = RunModel.open(refit_run).predict_files([data / planted[0]])  # predict works on it
    assert answer.probabilities.shape == (1, len(CLASSES))
    assert tree_hash(data) == before


def test_add_class_then_apply_and_undo_byte_for_byte(studio, tmp_path):
    from keras_transfer.base.errors import DatasetError
    from keras_transfer.studio.workspace import Workspace

    data, run, planted, _, extra = studio
    before = tree_hash(data)
    ws = Workspace.open(data, run, root=tmp_path / "ws")
    ws.fix(planted[:3], "relabel", "daisy")
    ws.fix([planted[3]], "exclude")
    result = ws.add_class("sunflowers", extra)
    assert result["added"] == 10 and result["extraction_seconds"] >= 0
    rows = {row["class"]: row for row in result["per_class"]}
    assert rows["sunflowers"]["before"] == {} and rows["sunflowers"]["after"]["support"] >= 1
    assert ws.run.class_names == [*CLASSES, "sunflowers"]
    added = [row for row in ws.images() if row["added"]]
    assert len(added) == 10 and all(row["id"].startswith("sunflowers/") for row in added)
    assert tree_hash(data) == before  # added images are referenced, not copied
    applied = ws.apply_to_folder()
    assert (applied["moved"], applied["trashed"], applied["copied"]) == (3, 1, 10)
    assert json.loads(Path(applied["journal"]).read_text())["operations"]
    assert (data / "daisy" / Path(planted[0]).name).is_file() and not (data / planted[0]).exists()
    assert len(list((data / "sunflowers").iterdir())) == 10 and not (data / planted[3]).exists()
    assert tree_hash(data) != before and not ws.corrections()
    ws.undo()
    assert tree_hash(data) == before
    assert len(ws.corrections()) == 3 + 1 + 10  # the table as it was before the apply
    with pytest.raises(DatasetError, match="nothing to undo"):
        ws.undo()


def test_cam_is_the_exact_class_activation_map(studio, tmp_path):
    import io

    from keras_transfer.data.dataset import Split
    from keras_transfer.studio.cam import cam_maps
    from keras_transfer.studio.workspace import Workspace

    data, run, planted, _, _ = studio
    before = tree_hash(data)
    ws = Workspace.open(data, run, root=tmp_path / "ws")
    image = planted[0]
    maps = cam_maps(ws, image)
    features, _ = ws.model.source.view(Split("one", [data / image], np.zeros(1, np.int64)), 0)  # the engine's
    logits = features[0] @ ws.model.head.kernel + ws.model.head.bias
    assert maps.method == "cam" and maps.target == int(np.argmax(logits))
    assert maps.logit == pytest.approx(float(logits[maps.target]), abs=1e-3 * max(1.0, abs(maps.logit)))
    assert [s.shape for s in maps.stages][:1] == [(7, 7)] and len(maps.stages) == 4  # lite0, 4 pooled stages
    assert maps.heatmap.min() == 0.0 and maps.heatmap.max() == 1.0
    png = ws.cam_png(image)
    shown = Image.open(io.BytesIO(png))
    assert shown.format == "PNG" and max(shown.size) <= 384
    assert tree_hash(data) == before


def test_neighbours_find_the_near_duplicate(studio, tmp_path):
    from keras_transfer.studio.workspace import Workspace

    data, run, _, (original, copy), _ = studio
    before = tree_hash(data)
    ws = Workspace.open(data, run, root=tmp_path / "ws")
    split = {row["id"]: row["split"] for row in ws.images()}
    query, twin = (original, copy) if split[copy] == "train" else (copy, original)
    assert split[twin] == "train"
    found = ws.neighbours(query, k=3)
    assert found[0]["id"] == twin and found[0]["label"] == "dandelion" and found[0]["similarity"] > 0.8
    assert all(n["id"] != query for n in found) and len(found) == 3
    assert tree_hash(data) == before
