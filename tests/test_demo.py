"""The bundled demo photos: the default dataset, shipped with the package, credited."""

from __future__ import annotations

import fnmatch
import tomllib
from pathlib import Path

from keras_transfer.data.load import DEMO_FLOWERS, load_dataset

ROOT = Path(__file__).resolve().parents[1]


def test_the_default_dataset_is_the_bundled_flowers():
    dataset = load_dataset()
    assert dataset.source == "flowers"
    assert dataset.class_names == ["daisy", "dandelion", "roses", "sunflowers", "tulips"]
    assert sum(len(s) for s in dataset.splits.values()) == 240
    assert load_dataset("flowers").class_names == dataset.class_names
    assert load_dataset("digits").source == "digits"


def test_a_folder_named_like_a_built_in_is_reached_by_its_path(tmp_path, monkeypatch):
    for name in ("a", "b"):
        (tmp_path / "flowers" / name).mkdir(parents=True)
        for i in range(3):
            source = sorted((DEMO_FLOWERS / ("roses" if name == "a" else "tulips")).iterdir())[i]
            (tmp_path / "flowers" / name / source.name).write_bytes(source.read_bytes())
    monkeypatch.chdir(tmp_path)
    assert load_dataset("./flowers").class_names == ["a", "b"]
    assert load_dataset("flowers").source == "flowers"  # the name is the built-in's


def test_every_demo_file_ships_as_package_data():
    patterns = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]["keras_transfer"]
    package = ROOT / "keras_transfer"
    files = [p.relative_to(package).as_posix() for p in DEMO_FLOWERS.rglob("*") if p.is_file()]
    assert len(files) == 241  # 240 photos and LICENSE.txt
    assert all(any(fnmatch.fnmatch(f, pattern) for pattern in patterns) for f in files)


def test_the_photographers_are_credited():
    licence = (DEMO_FLOWERS / "LICENSE.txt").read_text()
    assert "creativecommons.org/licenses/by/2.0" in licence
    photos = [p for p in DEMO_FLOWERS.rglob("*.jpg")]
    assert all(f"{p.parent.name}/{p.name}" in licence for p in photos)
    assert "LICENSE.txt" in (ROOT / "README.md").read_text()  # credited in the README


def test_make_demo_trains_the_flowers():
    makefile = (ROOT / "Makefile").read_text()
    demo = makefile[makefile.index("\ndemo:"):].split("\n\n")[0]
    assert "train flowers" in demo and "report" in demo and "predict" in demo and "serve" in demo
