"""Dataset folders as people have them: wrapper folders, system clutter, loose images, letter-case
twins, symlinks and loops, unusual split names, and labels kept in a table (``--labels``).

Every tree is built from real photos of ../shared (hymenoptera), linked or copied into tmp."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest
from conftest import HYMENOPTERA

from keras_transfer.data.load import load_dataset
from keras_transfer.base.errors import ConfigError, DatasetError

PHOTOS = {c: sorted((HYMENOPTERA / "train" / c).iterdir())[:8] for c in ("ants", "bees")}


def tree(root: Path, layout: dict[str, int], start: int = 0) -> Path:
    """``{"train/ants": 4, ...}``: that many real photos linked into each folder."""
    for folder, count in layout.items():
        target = root / folder
        target.mkdir(parents=True, exist_ok=True)
        for photo in PHOTOS[Path(folder).name.lower()][start:start + count]:
            (target / photo.name).symlink_to(photo)
    return root


def test_a_wrapper_folder_is_stepped_into_and_said(tmp_path):
    tree(tmp_path / "photos" / "photos", {"ants": 4, "bees": 4})
    ds = load_dataset(tmp_path / "photos")
    assert ds.class_names == ["ants", "bees"] and len(ds.train) + len(ds.val) == 8
    assert any("holds only photos/" in note for note in ds.notes)
    tree(tmp_path / "kaggle", {"train/train/ants": 4, "train/train/bees": 4, "val/val/ants": 2, "val/val/bees": 2})
    ds = load_dataset(tmp_path / "kaggle")
    assert ds.class_names == ["ants", "bees"] and (len(ds.train), len(ds.val)) == (8, 4)


def test_system_clutter_is_ignored_and_loose_images_are_listed(tmp_path, capsys):
    root = tree(tmp_path / "d", {"ants": 4, "bees": 4})
    for junk in ("ants/.DS_Store", "bees/Thumbs.db", "desktop.ini", ".DS_Store", "ants/._photo.jpg"):
        (root / junk).write_bytes(b"\x00\x05\x16\x07 system clutter")
    (root / "__MACOSX" / "ants").mkdir(parents=True)
    (root / "__MACOSX" / "ants" / "._a.jpg").write_bytes(b"\x00\x05\x16\x07")
    (root / ".ipynb_checkpoints").mkdir()
    shutil.copy(PHOTOS["ants"][5], root / "stray.jpg")
    ds = load_dataset(root)
    assert ds.class_names == ["ants", "bees"]
    assert ds.skipped == [(str(root / "stray.jpg"), "an image beside the class folders, in no class: left out")]
    assert "stray.jpg" in capsys.readouterr().err
    assert all("__MACOSX" not in str(p) and "._" not in str(p) for s in ds.splits.values() for p in s.items)


def test_empty_class_folders_are_left_out_with_a_note(tmp_path):
    root = tree(tmp_path / "d", {"ants": 4, "bees": 4})
    (root / "wasps").mkdir()
    (root / "moths").mkdir()
    (root / "moths" / "broken.jpg").write_bytes(b"\xff\xd8\xff not a jpeg")
    ds = load_dataset(root)
    assert ds.class_names == ["ants", "bees"]
    assert any("moths" in note and "wasps" in note for note in ds.notes)
    assert ds.skipped and "broken.jpg" in ds.skipped[0][0]


def test_class_folders_that_differ_only_in_case_are_refused_or_matched(tmp_path):
    tree(tmp_path / "twins", {"ants": 3, "Ants": 3, "bees": 3})
    with pytest.raises(DatasetError, match="differ only in letter case: Ants, ants") as error:
        load_dataset(tmp_path / "twins")
    assert "move the images of ants/ into Ants/" in str(error.value)
    tree(tmp_path / "splits", {"train/ants": 4, "train/bees": 4, "val/Ants": 2, "val/BEES": 2}, start=4)
    ds = load_dataset(tmp_path / "splits")
    assert ds.class_names == ["ants", "bees"] and sorted(ds.val.labels.tolist()) == [0, 0, 1, 1]
    assert any("BEES -> bees" in note for note in ds.notes)


def test_symlinked_folders_loops_and_broken_links(tmp_path):
    root = tree(tmp_path / "d", {"ants": 4})
    (root / "bees").symlink_to(tree(tmp_path / "elsewhere", {"bees": 4}) / "bees")  # a linked class folder
    (root / "ants" / "again").symlink_to(root / "ants")  # a loop
    (root / "bees" / "gone.jpg").symlink_to(tmp_path / "deleted.jpg")  # broken
    ds = load_dataset(root)
    assert ds.class_names == ["ants", "bees"] and len(ds.train) + len(ds.val) == 8
    reasons = dict(ds.skipped)
    assert "loop" in reasons[str(root / "ants" / "again")]
    assert reasons[str(root / "bees" / "gone.jpg")] == "a broken symbolic link"


def test_splits_option_names_unusual_split_folders_and_resolves_clashes(tmp_path):
    root = tree(tmp_path / "intel", {"seg_train/ants": 4, "seg_train/bees": 4, "seg_test/ants": 2,
                                     "seg_test/bees": 2})
    with pytest.raises(DatasetError, match="look like split folders") as error:
        load_dataset(root)
    assert "--splits test=seg_test,train=seg_train" in str(error.value)
    ds = load_dataset(root, splits="train=seg_train,test=seg_test")
    assert (len(ds.train) + len(ds.val), len(ds.splits["test"])) == (8, 4)
    assert ds.layout["test"] == str(root / "seg_test") and "cut from train" in ds.layout["val"]
    clash = tree(tmp_path / "clash", {"train/ants": 4, "train/bees": 4, "val/ants": 2, "val/bees": 2,
                                      "validation/ants": 1, "validation/bees": 1})
    with pytest.raises(DatasetError, match="--splits val=val"):
        load_dataset(clash)
    assert len(load_dataset(clash, splits="val=validation").val) == 2
    with pytest.raises(ConfigError, match="invalid --splits"):
        load_dataset(clash, splits="holdout=validation")
    with pytest.raises(DatasetError, match="not a folder"):
        load_dataset(clash, splits="train=nothing")


def test_split_folders_without_a_train_folder_name_the_flag(tmp_path):
    root = tree(tmp_path / "d", {"pics/ants": 4, "pics/bees": 4, "test/ants": 2, "test/bees": 2})
    with pytest.raises(DatasetError, match="none for training") as error:
        load_dataset(root)
    assert "--splits train=FOLDER" in str(error.value)
    assert len(load_dataset(root, splits="train=pics").splits["test"]) == 4


# ---------------------------------------------------------------------------------- --labels

def flat_folder(root: Path) -> tuple[Path, dict[str, str]]:
    """Every photo in one folder under a neutral id; returns (folder, id -> class)."""
    root.mkdir(parents=True)
    truth = {}
    for label, photos in PHOTOS.items():
        for i, photo in enumerate(photos):
            (root / f"{label[0]}{i:03d}.jpg").symlink_to(photo)
            truth[f"{label[0]}{i:03d}"] = label
    return root, truth


@pytest.mark.parametrize("style", ["csv_header_ids", "tsv_names_no_header", "semicolon_paths_extra_columns"])
def test_labels_table_in_the_shapes_kaggle_ships(tmp_path, style):
    folder, truth = flat_folder(tmp_path / "images")
    table = tmp_path / "labels.txt"
    if style == "csv_header_ids":
        table.write_text("id,label\n" + "".join(f"{i},{c}\n" for i, c in truth.items()))
    elif style == "tsv_names_no_header":
        table.write_text("".join(f"{i}.jpg\t{c}\n" for i, c in truth.items()))
    else:
        table.write_text("width;file_path;species\n" + "".join(f"32;./{i}.JPG;{c}\n" for i, c in truth.items()))
    ds = load_dataset(folder, labels=table)
    assert ds.class_names == ["ants", "bees"] and not ds.skipped
    for split in ds.splits.values():
        assert all(ds.class_names[y] == truth[p.stem] for p, y in zip(split.items, split.labels))
    assert len(ds.train) + len(ds.val) == 16


def test_labels_table_problems_are_reported_not_fatal(tmp_path):
    folder, truth = flat_folder(tmp_path / "images")
    (folder / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 truncated")
    rows = ["image_id,breed,split"] + [f"{i},{c},{'test' if i.endswith('7') else 'train'}" for i, c in truth.items()]
    rows += ["a000,ants,train", "b001,ants,train", "zzz999,bees,train", "a002,,train", "broken,bees,train"]
    (tmp_path / "t.csv").write_text("\n".join(r for r in rows if not r.startswith("b006")) + "\n")
    ds = load_dataset(folder, labels=tmp_path / "t.csv")
    reasons = [reason for _, reason in ds.skipped]
    assert "a000.jpg is listed twice: kept once" in reasons
    assert any("b001.jpg is listed again with another class" in r for r in reasons)
    assert "'zzz999' names no image in " + str(folder) in reasons
    assert "no class in the row" in reasons and any("b006.jpg" in p for p, _ in ds.skipped)
    assert any(p.endswith("broken.jpg") for p, _ in ds.skipped)
    every = [p.stem for s in ds.splits.values() for p in s.items]
    assert "b001" not in every and "b006" not in every and len(every) == 14
    assert sorted(p.stem for p in ds.splits["test"].items) == ["a007", "b007"]


def test_labels_table_that_names_nothing_or_is_missing(tmp_path):
    folder, _ = flat_folder(tmp_path / "images")
    (tmp_path / "t.csv").write_text("id,label\nfoo,cat\nbar,dog\n")
    with pytest.raises(DatasetError, match="names no image of the folder"):
        load_dataset(folder, labels=tmp_path / "t.csv")
    with pytest.raises(DatasetError, match="labels table not found"):
        load_dataset(folder, labels=tmp_path / "none.csv")
    with pytest.raises(DatasetError, match="--labels needs the folder"):
        load_dataset(tmp_path / "t.csv", labels=tmp_path / "t.csv")


def test_train_with_a_labels_table_from_another_directory(tmp_path, monkeypatch, capsys):
    from keras_transfer.cli import main
    from keras_transfer.run import Run

    folder, truth = flat_folder(tmp_path / "images")
    (tmp_path / "labels.csv").write_text("file,class\n" + "".join(f"{i}.jpg,{c}\n" for i, c in truth.items()))
    monkeypatch.chdir(tmp_path)
    assert main(["train", "images", "--labels", "labels.csv", "--out", "run", "--max-per-class", "8"]) == 0
    assert f"splits: train 12 from {tmp_path / 'labels.csv'} (rows), val 4 from cut from train" in capsys.readouterr().out
    run = Run.open(tmp_path / "run")
    assert Path(run.config.labels).is_absolute() and run.class_names == ["ants", "bees"]
    summary = json.loads((tmp_path / "run" / "dataset.json").read_text())
    assert summary["layout"]["train"].startswith(str(tmp_path / "labels.csv"))
    monkeypatch.chdir(Path(os.sep))
    assert main(["evaluate", str(tmp_path / "run"), "-q"]) == 0


# ---------------------------------------------------------------------------------- tiny data

@pytest.mark.parametrize("ants, bees, strategy, code, message", [
    (1, 1, "bottleneck", 1, "leaves no image to test on"),
    (2, 2, "frozen", 1, "use --strategy bottleneck"),
    (2, 2, "bottleneck", 0, ""),
    (6, 1, "bottleneck", 0, "no held-out image, whose accuracy is not measured: bees"),
])
def test_tiny_classes_are_honoured_or_refused_with_a_reason(tmp_path, capsys, ants, bees, strategy, code, message):
    from keras_transfer.cli import main

    root = tree(tmp_path / "d", {"ants": ants, "bees": bees})
    assert main(["train", str(root), "--out", str(tmp_path / "run"), "--strategy", strategy, "--json"]) == code
    out, err = capsys.readouterr()
    assert message in err and "Traceback" not in err
    if code == 0:
        assert json.loads(out)["metrics"]["n"] >= 1
