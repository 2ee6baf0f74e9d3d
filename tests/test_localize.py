"""``localize``: boxes from class-activation maps, in pixels of the original image."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from keras_transfer.explain.boxes import Box, map_boxes, to_original

PETS = Path(__file__).resolve().parents[1].parent / "shared" / "datasets" / "pets3"
TRAIN_PER_CLASS = 16


def test_boxes_map_back_through_each_resize_mode():
    # a box covering the model input's middle half, for a 300 x 600 (height x width) image
    box = (0.25, 0.25, 0.75, 0.75)
    assert to_original(box, (300, 600), "stretch") == (150, 75, 450, 225)
    assert to_original(box, (300, 600), "crop") == (150 + 75, 75, 150 + 225, 225)  # the centre 300 x 300 square
    assert to_original(box, (300, 600), "pad") == (150, 0, 450, 300)  # 150 px of padding above and below, clipped
    heat = np.zeros((7, 7), np.float32)
    heat[1:3, 1:3], heat[4:6, 4:7] = 1.0, 0.9
    found = map_boxes(heat, 7, 0.5)
    assert len(found) == 2 and found[0][1] == (4 / 7, 4 / 7, 1.0, 6 / 7)
    assert Box("a", 1, 0, 0, 10, 10).iou((5, 0, 15, 10)) == pytest.approx(1 / 3)


def _pet(stem: str, side: int) -> tuple[Image.Image, Image.Image]:
    """The pet of a pets3 image cut out by its trimap (pet and border pixels), scaled to fit ``side``."""
    image = Image.open(PETS / "images" / f"{stem}.jpg").convert("RGB")
    trimap = np.asarray(Image.open(PETS / "annotations" / "trimaps" / f"{stem}.png"))
    mask = Image.fromarray(((trimap == 1) | (trimap == 3)).astype(np.uint8) * 255)
    box = mask.getbbox()
    image, mask = image.crop(box), mask.crop(box)
    scale = side / max(image.size)
    size = (round(image.width * scale), round(image.height * scale))
    return image.resize(size, Image.BILINEAR), mask.resize(size, Image.NEAREST)


@pytest.fixture(scope="module")
def pets_run(tmp_path_factory):
    """A small one-backbone run (CAM and Grad-CAM) on 16 trainval images per breed of pets3."""
    from keras_transfer.cli import main

    work = tmp_path_factory.mktemp("pets")
    counts: dict[str, int] = {}
    rows = ["file,label"]
    for line in (PETS / "annotations" / "trainval.txt").read_text().split("\n"):
        if line.strip():
            stem = line.split()[0]
            label = stem.rsplit("_", 1)[0]
            if counts.get(label, 0) < TRAIN_PER_CLASS:
                counts[label] = counts.get(label, 0) + 1
                rows.append(f"{stem}.jpg,{label}")
    (work / "labels.csv").write_text("\n".join(rows) + "\n")
    out = work / "run"
    assert main(["train", str(PETS / "images"), "--labels", str(work / "labels.csv"), "--out", str(out),
                 "--backbone", "efficientnet_lite0", "--quiet"]) == 0
    return out


def test_two_pets_on_a_plain_background_get_two_boxes(pets_run, tmp_path, capsys):
    from keras_transfer.cli import main

    canvas = Image.new("RGB", (640, 300), (128, 128, 128))
    where = {}
    for stem, left in (("american_bulldog_203", 20), ("Bengal_192", 340)):  # test images, not trained on
        pet, mask = _pet(stem, 260)
        top = (300 - pet.height) // 2
        canvas.paste(pet, (left, top), mask)
        where[stem.rsplit("_", 1)[0]] = (left, top, left + pet.width, top + pet.height)
    photo = tmp_path / "two pets.jpg"
    canvas.save(photo, quality=92)
    out = tmp_path / "boxes"
    assert main(["localize", str(pets_run), str(photo), "--out", str(out), "--top-k", "2", "--voc", "--json",
                 "--quiet"]) == 0
    found = json.loads(capsys.readouterr().out)[0]
    assert (found["width"], found["height"]) == (640, 300)
    boxes = [Box(**b) for b in found["boxes"]]
    for label, truth in where.items():  # each pet has a box of its class on it (centre inside, overlapping)
        best = max((b for b in boxes if b.label == label), key=lambda b: b.iou(truth))
        centre = ((best.x0 + best.x1) / 2, (best.y0 + best.y1) / 2)
        assert truth[0] <= centre[0] <= truth[2] and truth[1] <= centre[1] <= truth[3], (label, best, truth)
        assert best.iou(truth) >= 0.25, (label, best, truth)
    saved = json.loads((out / "boxes.json").read_text())
    assert saved[0]["boxes"] == found["boxes"]
    assert Image.open(out / "two pets_boxes.png").size == (640, 300)
    voc = ET.parse(out / "two pets.xml").getroot()
    assert int(voc.find("size/width").text) == 640 and len(voc.findall("object")) == len(boxes)
    # --crops keeps the boxes whose crop the run classifies as the box's class
    assert main(["localize", str(pets_run), str(photo), "--out", str(out), "--top-k", "2", "--crops", "--json",
                 "--quiet", "--method", "cam"]) == 0
    kept = json.loads(capsys.readouterr().out)[0]["boxes"]
    assert kept and all(b["crop_label"] == b["label"] for b in kept)
    assert kept[0]["label"] == found["top"][0]["label"]


def test_localize_refuses_bad_options(pets_run, tmp_path, capsys):
    from keras_transfer.cli import main
    from keras_transfer.cli.localize import DEFAULT_THRESHOLD
    from keras_transfer.explain.localize import DEFAULT_THRESHOLD as LIBRARY

    assert DEFAULT_THRESHOLD == LIBRARY
    photo = PETS / "images" / "Bengal_1.jpg"
    assert main(["localize", str(pets_run), str(photo), "--threshold", "1.5", "--quiet"]) == 2
    assert main(["localize", str(pets_run), str(photo), "--method", "heat", "--quiet"]) == 2
    assert "threshold" in capsys.readouterr().err
