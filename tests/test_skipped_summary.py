"""Long lists of skipped inputs are summarised on the terminal (a count per kind, the first few, where the
full list is), and every count names what it counts: rows of a labels table naming images the folder
does not hold are not damaged files."""

from __future__ import annotations

import shutil

from conftest import HYMENOPTERA
from keras_transfer.audit import cheap_audit
from keras_transfer.data.load import load_dataset
from keras_transfer.data.skipped import SHOWN, kind_of, summarise

MISSING = 900


def test_a_labels_table_larger_than_the_folder_is_summarised_not_called_damaged(tmp_path, capsys):
    folder = tmp_path / "images"
    folder.mkdir()
    rows = ["id,label"]
    for name in ("ants", "bees"):
        for file in sorted((HYMENOPTERA / "train" / name).glob("*.jpg"))[:10]:
            shutil.copy(file, folder / file.name)
            rows.append(f"{file.stem},{name}")
    rows += [f"missing_{i:05d},{('ants', 'bees')[i % 2]}" for i in range(MISSING)]  # a partial download
    (folder / "broken.jpg").write_bytes(b"not a jpeg")
    rows.append("broken,ants")
    table = tmp_path / "labels.csv"
    table.write_text("\n".join(rows) + "\n")

    dataset = load_dataset(folder, labels=table)
    err = capsys.readouterr().err
    kinds = [kind_of(reason) for _, reason in dataset.skipped]
    assert kinds.count("row_without_image") == MISSING and kinds.count("undecodable") == 1
    assert f"{MISSING} rows of the labels table without an image" in err
    assert "1 damaged image files (undecodable)" in err
    assert f"and {MISSING + 1 - SHOWN} more, every one listed in dataset.json" in err
    assert len(err.splitlines()) < 20  # not one line per row

    audit = cheap_audit(dataset)
    assert audit.summary()["damaged"] == 1  # the one damaged file, not the rows
    line = audit.line()
    assert "1 damaged files" in line and f"{MISSING} rows of the labels table without an image" in line
    skipped = audit.as_dict()["skipped_inputs"]
    assert skipped["counts"] == {"rows of the labels table without an image": MISSING,
                                 "damaged image files (undecodable)": 1}
    assert len(skipped["inputs"]) == MISSING + 1  # the full list is in audit.json


def test_a_short_list_is_printed_whole():
    text = summarise([("a.jpg", "not an image file extension"), ("b", "a broken symbolic link")], "inputs", "x")
    assert text.splitlines() == ["2 inputs left out: 1 files without an image extension, 1 broken links and "
                                 "unreadable or repeated folders", "  a.jpg: not an image file extension",
                                 "  b: a broken symbolic link"]
