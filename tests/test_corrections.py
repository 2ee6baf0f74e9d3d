"""The corrections table: reading it with clear errors, applying it to a dataset, ``train --corrections``."""

from __future__ import annotations

import shutil

import numpy as np
import pytest

from conftest import DATASETS

FLOWERS = DATASETS / "flower_photos_demo"


def write(path, text: str):
    path.write_text(text, encoding="utf-8")
    return path


@pytest.mark.parametrize("text, message", [
    ("file,what\nroses/1.jpg,exclude\n", "wrong columns"),
    ("path,action,label\nroses/1.jpg,delete,\n", "line 2: unknown action"),
    ("path,action,label\nroses/1.jpg,exclude,\nroses/2.jpg,relabel,\n", "line 3: relabel without a label"),
    ("path,action,label\n/etc/passwd,exclude,\n", "leaves the data folder"),
    ("path,action,label\n../outside.jpg,relabel,roses\n", "leaves the data folder"),
    ("path,action,label\nrelative.jpg,add,roses\n", "absolute path"),
    ("path,action,label\nrelative.jpg,label,roses\n", "absolute path"),
    ("path,action,label\n,exclude,\n", "no image path"),
])
def test_bad_rows_are_clear_errors(tmp_path, text, message):
    from keras_transfer.base.errors import DatasetError
    from keras_transfer.data.corrections import read_corrections

    with pytest.raises(DatasetError, match=message) as error:
        read_corrections(write(tmp_path / "c.csv", text))
    assert "c.csv" in str(error.value)


def test_added_images_split_and_labelled_ones_only_train():
    """``add`` rows: a seeded 20% of each class held out; ``label`` rows (the inbox's): all training."""
    from keras_transfer.data.corrections import Correction, added_split

    added = [Correction(f"/x/new/{i:02d}.jpg", "add", "new") for i in range(10)]
    added += [Correction(f"/x/in/{i:02d}.jpg", "label", "roses") for i in range(7)]
    rows = added_split(added, 0.2, seed=0)
    held = {str(path) for path, _, out in rows if out}
    assert len(rows) == 17 and len(held) == 2 and all(path.startswith("/x/new/") for path in held)
    assert rows == added_split(list(reversed(added)), 0.2, seed=0)  # the table's order does not matter


def test_last_row_wins_and_round_trip(tmp_path):
    from keras_transfer.data.corrections import Correction, read_corrections, write_corrections

    table = read_corrections(write(tmp_path / "c.csv", "path,action,label\nroses/1.jpg,exclude,\n"
                                                       "roses/1.jpg,relabel,tulips\n=odd.jpg,exclude,\n"))
    assert table["roses/1.jpg"] == Correction("roses/1.jpg", "relabel", "tulips")
    write_corrections(tmp_path / "d.csv", table)
    assert "'=odd.jpg" in (tmp_path / "d.csv").read_text()  # a spreadsheet shows it as text
    assert read_corrections(tmp_path / "d.csv") == table
    with pytest.raises(Exception, match="cannot read"):
        read_corrections(tmp_path / "missing.csv")


def test_apply_relabels_excludes_and_keeps_the_split(tmp_path):
    from keras_transfer.base.errors import DatasetError
    from keras_transfer.data.corrections import apply_corrections
    from keras_transfer.data.load import load_dataset

    plain = load_dataset(FLOWERS)
    held_out = plain.val
    first, second = (p.relative_to(FLOWERS).as_posix() for p in held_out.items[:2])
    train_image = plain.train.items[0].relative_to(FLOWERS).as_posix()
    table = write(tmp_path / "c.csv", f"path,action,label\n{first},relabel,tulips\n{second},exclude,\n"
                                      f"{train_image},relabel,roses\n")
    fixed = apply_corrections(load_dataset(FLOWERS), table, FLOWERS)
    assert len(fixed.val) == len(held_out) - 1 and len(fixed.train) == len(plain.train)  # nobody changed split
    assert fixed.val.labels[0] == fixed.class_names.index("tulips")
    assert FLOWERS / second not in fixed.val.items and any(second in note for note in fixed.notes)
    assert fixed.train.labels[0] == fixed.class_names.index("roses")
    np.testing.assert_array_equal(fixed.val.labels[1:], held_out.labels[2:])
    with pytest.raises(DatasetError, match="no folder for: lilies") as error:
        apply_corrections(load_dataset(FLOWERS),
                          write(tmp_path / "e.csv", f"path,action,label\n{first},relabel,lilies\n"))
    assert "adding a class is its own action" in str(error.value)
    with pytest.raises(DatasetError, match="not in"):
        apply_corrections(load_dataset(FLOWERS),
                          write(tmp_path / "f.csv", "path,action,label\nroses/gone.jpg,exclude,\n"))


def test_train_with_corrections(tmp_path):
    """``train --corrections``: excluded images are left out (and listed), relabelled ones learnt and
    scored with their new class; the table is saved with the run."""
    from keras_transfer.cli import main
    from keras_transfer.run import Files, Run

    data = tmp_path / "flowers"
    for name in ("daisy", "roses"):
        (data / name).mkdir(parents=True)
        for path in sorted((FLOWERS / name).glob("*.jpg"))[:10]:
            shutil.copy(path, data / name / path.name)
    roses = sorted(p.relative_to(data).as_posix() for p in (data / "roses").iterdir())
    table = write(tmp_path / "c.csv", f"path,action,label\n{roses[0]},exclude,\n"
                                      + "".join(f"{r},relabel,daisy\n" for r in roses[1:4]))
    out = tmp_path / "run"
    assert main(["train", str(data), "--backbone", "efficientnet_lite0", "--corrections", str(table), "--out",
                 str(out), "--no-baseline", "--quiet"]) == 0
    run = Run.open(out)
    assert run.config.corrections == str(table.absolute())
    dataset = run.read(Files.DATASET)
    assert sum(dataset["splits"].values()) == 19 and any(roses[0] in note for note in dataset["notes"])
    predictions = run.predictions()
    labels = {str(i): int(y) for i, y in zip(predictions.ids, predictions.labels)}
    for image in roses[1:4]:
        if str(data / image) in labels:
            assert labels[str(data / image)] == run.class_names.index("daisy")
    assert str(data / roses[0]) not in labels
    bad = write(tmp_path / "bad.csv", "path,action,label\nroses/x.jpg,relabel,tulips\n")
    assert main(["train", str(data), "--corrections", str(bad), "--out", str(tmp_path / "bad"), "--quiet"]) == 1
    assert not (tmp_path / "bad").exists()
