"""The dataset audit on a copy of hymenoptera with planted defects of every kind.

What the planted-defect test holds (90 clean images, 2 classes, train/val folders):
- exact duplicates (2 within a class, 1 across classes, 2 across splits): all 5 found, 0 other groups;
- damaged files (a truncated JPEG, an empty .jpg, a text file named .png): all 3 found, 0 false;
- near duplicates across splits (resized + re-compressed, cropped, flipped, darker): at least 3 of 4
  found, at most 1 pair of clean images called one (measured: 4 of 4, 0 false);
- label errors (4 images moved to the other class, the last 2 of each by name): at least 3 of 4
  found, at most 4 clean images suspected (measured: 3 of 4, 3 false: ants-vs-bees photos the
  head finds ambiguous);
- odd files (very dark, tiny, 12:1 strip, grayscale, names differing by case): all 5 found;
- nothing in the data folder changes; a second audit reads features and quality scores from the cache.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image, ImageEnhance, ImageOps

from conftest import HYMENOPTERA
from keras_transfer.cli import main

PER_CLASS = {"train": 30, "val": 15}
MOVED = 2  # per class


def digest(folder: Path) -> dict:
    return {str(p.relative_to(folder)): hashlib.md5(p.read_bytes()).hexdigest() if p.is_file() else "dir"
            for p in sorted(folder.rglob("*"))}


def _clean_subset(root: Path) -> dict[str, list[Path]]:
    copied = {}
    for split, n in PER_CLASS.items():
        for name in ("ants", "bees"):
            files = sorted(p for p in (HYMENOPTERA / split / name).iterdir() if p.suffix == ".jpg")[:n]
            (root / split / name).mkdir(parents=True)
            copied[f"{split}/{name}"] = [Path(shutil.copy(f, root / split / name / f.name)) for f in files]
    return copied


def _save(image: Image.Image, path: Path, **options) -> str:
    image.convert("RGB").save(path, "JPEG", quality=options.get("quality", 90))
    return str(path)


@pytest.fixture(scope="module")
def planted(tmp_path_factory):
    """The copy, and what was planted in it (file paths by kind)."""
    root = tmp_path_factory.mktemp("audit") / "data"
    clean = _clean_subset(root)
    ants, bees = clean["train/ants"], clean["train/bees"]
    plant = {"exact": [], "damaged": [], "near": [], "mislabelled": [], "odd": {}}
    for source, target in ((ants[3], root / "train/ants/copy_a.jpg"), (bees[4], root / "train/bees/copy_b.jpg"),
                           (ants[5], root / "train/bees/ant_as_bee.jpg"), (ants[6], root / "val/ants/leak_1.jpg"),
                           (bees[7], root / "val/bees/leak_2.jpg")):
        plant["exact"].append({str(source), str(shutil.copy(source, target))})
    picture = lambda p: Image.open(p).convert("RGB")  # noqa: E731
    for source, make in ((ants[8], lambda im: _save(im.resize((im.width // 2, im.height // 2)), root / "val/ants/near_resized.jpg", quality=40)),
                         (ants[9], lambda im: _save(im.crop((im.width // 12, im.height // 12, im.width * 11 // 12, im.height * 11 // 12)), root / "val/ants/near_crop.jpg")),
                         (bees[10], lambda im: _save(ImageOps.mirror(im), root / "val/bees/near_flip.jpg")),
                         (bees[11], lambda im: _save(ImageEnhance.Brightness(im).enhance(0.8), root / "val/bees/near_dim.jpg"))):
        plant["near"].append({str(source), make(picture(source))})
    for files, other in ((ants, "bees"), (bees, "ants")):
        for f in files[-MOVED:]:
            plant["mislabelled"].append(str(f.rename(root / "train" / other / f.name)))
    truncated = root / "train/ants/truncated.jpg"
    truncated.write_bytes(ants[12].read_bytes()[:4000])
    (root / "train/bees/empty.jpg").write_bytes(b"")
    (root / "train/bees/fake.png").write_text("not a picture")
    plant["damaged"] = [str(truncated), str(root / "train/bees/empty.jpg"), str(root / "train/bees/fake.png")]
    odd = plant["odd"]
    odd["dark"] = _save(ImageEnhance.Brightness(picture(ants[13])).enhance(0.04), root / "train/ants/dark.jpg")
    odd["tiny"] = _save(picture(ants[14]).resize((12, 10)), root / "train/ants/tiny.jpg")
    odd["odd aspect ratio"] = _save(picture(bees[13]).resize((600, 50)), root / "train/bees/strip.jpg")
    odd["grayscale"] = _save(ImageOps.grayscale(picture(bees[14])), root / "train/bees/gray.jpg")
    _save(picture(bees[15]).rotate(90), root / "train/bees/Case.jpg")
    odd["name differs only by case"] = _save(picture(bees[16]).rotate(90), root / "train/bees/case.jpg")
    return root, plant


@pytest.fixture(scope="module")
def audited(planted, tmp_path_factory):
    root, _ = planted
    before = digest(root)
    out = tmp_path_factory.mktemp("audit-out")
    from keras_transfer.audit import audit

    first = audit(root)
    second = audit(root)
    assert main(["audit", str(root), "--out", str(out / "report"), "--write-clean", str(out / "clean.txt"),
                 "--quiet"]) == 0
    assert digest(root) == before  # the audit only reads the data folder
    return first, second, out


def _files(finding: dict) -> set[str]:
    return {m["file"] for m in finding["images"]}


def test_exact_duplicates_and_damaged_files_all_found(audited, planted):
    result, plant = audited[0], planted[1]
    groups = [_files(f) for f in result.of("exact_duplicate")]
    assert sorted(map(sorted, groups)) == sorted(map(sorted, plant["exact"]))  # recall 1, 0 false groups
    scopes = sorted(f["scope"] for f in result.of("exact_duplicate"))
    assert scopes == ["across classes", "across splits", "across splits", "within class", "within class"]
    damaged = {f["images"][0]["file"] for f in result.of("damaged")}
    assert damaged == set(plant["damaged"])
    assert result.summary()["leakage"] >= 2 and result.summary()["conflicting_labels"] == 1


def test_near_duplicates_and_label_errors_high_recall_few_false(audited, planted):
    result, plant = audited[0], planted[1]
    pairs = [_files(f) for f in result.of("near_duplicate")]
    found = sum(p in pairs for p in plant["near"])
    false = [p for p in pairs if p not in plant["near"] and not any(p <= e for e in plant["exact"])]
    planted_files = set().union(*plant["near"], *plant["exact"], plant["odd"].values())
    false = [p for p in false if not p & planted_files]
    assert found >= 3, (pairs, result.calibration)
    assert len(false) <= 1, false
    suspects = {f["images"][0]["file"] for f in result.of("label_issue")}
    assert len(suspects & set(plant["mislabelled"])) >= 3, result.of("label_issue")
    assert len(suspects - set(plant["mislabelled"]) - planted_files) <= 4
    print(f"near duplicates {found}/{len(plant['near'])}, {len(false)} false; label errors "
          f"{len(suspects & set(plant['mislabelled']))}/{len(plant['mislabelled'])}, "
          f"{len(suspects - set(plant['mislabelled']) - planted_files)} false")
    first = next(f for f in result.of("label_issue") if f["images"][0]["file"] in plant["mislabelled"])
    assert first["suggested"] != first["given"] and first["evidence"]["p_suggested"] > 0.5


def test_odd_files_found(audited, planted):
    result, plant = audited[0], planted[1]
    for check, file in plant["odd"].items():
        hits = [f for f in result.of("odd_file") if f["check"] == check and file in _files(f)]
        assert hits, (check, [(f["check"], f["images"][0]["file"]) for f in result.of("odd_file")])
    assert result.as_dict()["balance"]["imbalance"] >= 1


def test_second_audit_reads_the_cache(audited):
    first, second = audited[0], audited[1]
    assert second.seconds["features"] < max(3.0, first.seconds["features"] / 2), (first.seconds, second.seconds)
    assert second.seconds["quality"] < 1.5, second.seconds
    assert second.summary() == first.summary()


def test_cli_outputs_clean_list_and_exclude(audited, planted, capsys):
    root, plant = planted
    out = audited[2]
    report = json.loads((out / "report" / "audit.json").read_text())
    assert report["summary"]["exact_duplicate"] == 5 and report["calibration"]["copies"] >= 100
    page = (out / "report" / "audit.html").read_text()
    assert page.count("<img") >= 3 and "Data audit" in page
    lines = (out / "clean.txt").read_text().splitlines()
    kept = {line for line in lines if not line.startswith("#")}
    assert lines[0].startswith("# keras-transfer keep-list")
    assert not kept & set(plant["damaged"])
    assert all(len(group - kept) >= 1 for group in plant["exact"])  # one copy of each group (or none) left out
    from keras_transfer.config import TrainConfig
    from keras_transfer.run import dataset_of

    dataset = dataset_of(TrainConfig(data=str(root), exclude=str(out / "clean.txt")))
    used = {str(p) for s in dataset.splits.values() for p in s.items}
    assert used == kept
    from keras_transfer.audit import write_clean

    links = write_clean(audited[0], f"{out / 'links'}{os.sep}")
    made = [p for p in (out / "links").rglob("*") if p.is_symlink()]
    assert links["kept"] == len(made) == len(kept) and {str(p.resolve()) for p in made} == kept


def test_bad_input_clear_message_and_nothing_written(tmp_path, planted, capsys):
    empty = tmp_path / "empty"
    empty.mkdir()
    junk = tmp_path / "junk"
    for name in ("a", "b"):
        (junk / name).mkdir(parents=True)
        (junk / name / "notes.txt").write_text("hello")
    for folder in (empty, junk):
        before = digest(folder)
        assert main(["audit", str(folder), "--quiet"]) == 1
        assert "error:" in capsys.readouterr().err and digest(folder) == before
    root = planted[0]
    before = digest(root)
    for option, inside in (("--write-clean", root / "clean.txt"), ("--out", root / "train" / "audit")):
        assert main(["audit", str(root), option, str(inside), "--quiet"]) == 2
        assert "inside the data folder" in capsys.readouterr().err and digest(root) == before


def test_read_only_folder(planted, tmp_path):
    """A real read-only mount (the tests run as root, where chmod is ignored)."""
    root = planted[0]
    ro = tmp_path / "ro"
    ro.mkdir()
    script = (f"mount --bind '{root}' '{ro}' && mount -o remount,bind,ro '{ro}' && cd '{tmp_path}' && "
              f"{sys.executable} -m keras_transfer.cli audit ro --json -q --write-clean clean.txt")
    done = subprocess.run(["unshare", "-rm", "sh", "-c", script], capture_output=True, text=True, timeout=300,
                          env={**os.environ, "PYTHONPATH": str(Path(__file__).parents[1])})
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["summary"]["exact_duplicate"] == 5
    assert (tmp_path / "clean.txt").exists()


def test_train_runs_the_cheap_audit(ants_run):
    audit = ants_run.read("audit.json")
    assert audit["full"] is False and "exact_duplicate" in audit["summary"]
    assert audit["counts"]["train"]["ants"] > 0


def test_audit_page_in_chromium(audited, tmp_path):
    """The audit section (here as its own page) in headless Chromium: every figure loads, no console
    error, nothing fetched from outside; the screenshot is not blank."""
    import numpy as np
    from playwright.sync_api import sync_playwright

    from test_report import chromium

    page_file, shot, errors = audited[2] / "report" / "audit.html", tmp_path / "audit.png", []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium(), args=["--no-sandbox", "--disable-gpu"])
        page = browser.new_page(viewport={"width": 1100, "height": 900})
        page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
        page.on("request", lambda r: None if r.url.startswith(("file:", "data:")) else errors.append(r.url))
        page.goto(page_file.as_uri())
        sizes = page.locator("img").evaluate_all("nodes => nodes.map(n => [n.naturalWidth, n.naturalHeight])")
        page.screenshot(path=str(shot), full_page=True)
        browser.close()
    assert errors == [] and len(sizes) >= 3 and all(w > 100 and h > 100 for w, h in sizes)
    pixels = np.asarray(Image.open(shot).convert("RGB"))
    assert len(np.unique(pixels.reshape(-1, 3)[::5], axis=0)) > 2000  # photos, not a blank page
