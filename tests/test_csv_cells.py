"""CSV outputs are safe to open in a spreadsheet (OWASP CSV injection); JSON outputs keep exact names."""

from __future__ import annotations

import csv
import json
import shutil

from conftest import HYMENOPTERA
from keras_transfer.base.csv_cells import csv_text, safe_cell
from keras_transfer.cli import main

HOSTILE_CLASSES = ('=HYPERLINK("evil.example","ok")', "+cmd")  # no "/": one folder
HOSTILE_FILES = ("-2+3.jpg", "@SUM(A1).jpg", "\tlead.jpg", "\rcr.jpg", "=1+1.jpg")


def test_every_formula_start_is_neutralised_and_nothing_else():
    for start in ("=", "+", "-", "@", "\t", "\r"):
        assert safe_cell(start + "x") == "'" + start + "x"
    assert [safe_cell(v) for v in ("bees", "a=b", "'quoted", "", -1.5, 3, None)] == ["bees", "a=b", "'quoted", "",
                                                                                    -1.5, 3, None]
    rows = list(csv.reader(csv_text(["=h"], [["=x", 0.5, "-y"]]).splitlines()))
    assert rows == [["'=h"], ["'=x", "0.5", "'-y"]]


def test_predict_csv_neutralises_hostile_class_and_file_names_json_keeps_them(tmp_path, monkeypatch):
    data = tmp_path / "data"
    sources = {HOSTILE_CLASSES[0]: "ants", HOSTILE_CLASSES[1]: "bees"}
    for name, real in sources.items():
        (data / name).mkdir(parents=True)
        for file in sorted((HYMENOPTERA / "train" / real).glob("*.jpg"))[:10]:
            shutil.copy(file, data / name / file.name)
    loose = tmp_path / "loose"
    loose.mkdir()
    for name, file in zip(HOSTILE_FILES, sorted((HYMENOPTERA / "val" / "bees").glob("*.jpg"))):
        shutil.copy(file, loose / name)
    run = tmp_path / "run"
    assert main(["train", str(data), "--out", str(run), "--quiet"]) == 0
    monkeypatch.chdir(loose)  # relative paths: the path cell starts with the hostile file name
    for name in ("p.csv", "p.json"):  # "--": a file name starting with "-" is not an option
        assert main(["predict", "--output", str(tmp_path / name), "--quiet", "--", str(run), *HOSTILE_FILES]) == 0

    with open(tmp_path / "p.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert [r["path"] for r in rows] == ["'" + name for name in HOSTILE_FILES]
    assert {r["label"] for r in rows} <= {"'" + c for c in HOSTILE_CLASSES} and rows
    assert all(r["top_k"].startswith("[") for r in rows)  # JSON inside a cell: no formula
    answers = json.loads((tmp_path / "p.json").read_text())
    assert [a["path"] for a in answers] == list(HOSTILE_FILES)
    assert {p["label"] for a in answers for p in a["predictions"]} == set(HOSTILE_CLASSES)
