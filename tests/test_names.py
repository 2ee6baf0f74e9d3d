"""File names and places as they come: bytes that are not UTF-8, names near the 255-byte limit,
spaces and shell characters (in file and class names), read-only data. Real photos, real commands."""

from __future__ import annotations

import csv
import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import HYMENOPTERA

CLASSES = {"ants": "ants", "bees": "bees & $(touch pwned) 'q' $x ünï"}
ODD_NAMES = [os.fsdecode(b"\xff\xfe not utf-8.jpg"), "L" * 246 + ".jpg", "sp ace;`touch pwned`$HOME*?.jpg",
             "-rf --help.jpg", "日本語 ファイル.jpg"]


@pytest.fixture(scope="module")
def odd_tree(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("odd") / "data"
    for source, name in CLASSES.items():
        photos = sorted((HYMENOPTERA / "train" / source).iterdir())[:10]
        (root / name).mkdir(parents=True)
        for i, photo in enumerate(photos):
            shutil.copy(photo, root / name / (ODD_NAMES[i] if i < len(ODD_NAMES) else photo.name))
    return root


def tree_digest(root: Path) -> str:
    digest = hashlib.sha256()
    for path in sorted(root.rglob("*")):
        digest.update(os.fsencode(path) + (path.read_bytes() if path.is_file() else b"/"))
    return digest.hexdigest()


def test_odd_names_train_predict_explain_report(odd_tree, tmp_path, capsysbinary, monkeypatch):
    from keras_transfer.cli import main

    before = tree_digest(odd_tree)
    monkeypatch.chdir(tmp_path)
    run = tmp_path / "run"
    assert main(["train", str(odd_tree), "--out", str(run), "-q"]) == 0
    capsysbinary.readouterr()
    assert main(["predict", str(run), str(odd_tree), "--json", "-q"]) == 0
    results = json.loads(capsysbinary.readouterr().out)  # strict JSON: odd bytes escaped
    listed = {Path(r["path"]).name for r in results}
    assert set(ODD_NAMES) <= listed and all("predictions" in r for r in results)
    assert main(["predict", str(run), str(odd_tree), "--output", str(tmp_path / "p.csv"), "-q"]) == 0
    with open(tmp_path / "p.csv", newline="", errors="surrogateescape") as handle:
        rows = list(csv.DictReader(handle))
    assert all(Path(row["path"]).exists() for row in rows) and len(rows) == 20  # names as on disk
    odd = [odd_tree / CLASSES["bees"] / name for name in ODD_NAMES]
    assert main(["explain", str(run), *map(str, odd), "--out", str(tmp_path / "ex"), "-q"]) == 0
    printed = capsysbinary.readouterr().out
    assert b"\xff\xfe not utf-8.jpg" in printed  # the name's own bytes, as ls prints it
    written = sorted(os.listdir(tmp_path / "ex"))
    # the figure and Grad-CAM of each image (no CAM: the default ensemble's head also reads its second member)
    assert len(written) == 2 * len(ODD_NAMES) and all(len(os.fsencode(n)) <= 255 for n in written)
    assert main(["report", str(run), "--out", str(tmp_path / "report"), "-q"]) == 0
    html = (tmp_path / "report" / "report.html").read_bytes().decode("utf-8")  # valid UTF-8
    assert "ünï" in html
    assert not (tmp_path / "pwned").exists() and not (odd_tree / "pwned").exists()
    assert tree_digest(odd_tree) == before  # nothing in the data folder changed


def test_read_only_data_and_run_opened_elsewhere(odd_tree, tmp_path):
    """The data folder on a read-only mount (a real one: the test runs as root, where chmod is
    ignored), trained on from one directory and used from another."""
    ro = tmp_path / "ro"
    ro.mkdir()
    cli = f"{sys.executable} -m keras_transfer.cli"
    script = (f"mount --bind '{odd_tree}' '{ro}' && mount -o remount,bind,ro '{ro}' && "
              f"touch '{ro}/probe' 2>/dev/null && echo WRITABLE; cd '{tmp_path}' && "
              f"{cli} train ro --out run -q >/dev/null && cd / && {cli} evaluate '{tmp_path}/run' --json -q")
    done = subprocess.run(["unshare", "-rm", "sh", "-c", script], capture_output=True, text=True, timeout=600,
                          env={**os.environ, "PYTHONPATH": str(Path(__file__).parents[1])})
    assert done.returncode == 0, done.stderr
    assert "WRITABLE" not in done.stdout and "Traceback" not in done.stderr
    assert json.loads(done.stdout)["accuracy"] >= 0.5
