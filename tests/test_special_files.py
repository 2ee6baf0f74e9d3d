"""Special files in a dataset folder (a FIFO, links to /dev/zero and /dev/urandom, a Unix socket, a
folder named like an image): ``train``, ``predict`` and ``audit`` end, and list each of them with its
reason; none is ever opened. Run as real CLI processes under a timeout (a hang fails the test)."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import HYMENOPTERA
from keras_transfer.data.images import NOT_REGULAR, UnreadableFile, open_regular, special_file
from keras_transfer.features.keys import file_hash

pytestmark = pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="POSIX special files")
LIMIT = 300  # seconds: each of these commands takes well under a minute on this dataset


def _copy(count: int, split: str, name: str, root: Path) -> None:
    folder = root / split / name
    folder.mkdir(parents=True)
    for file in sorted((HYMENOPTERA / split / name).glob("*.jpg"))[:count]:
        shutil.copy(file, folder / file.name)


@pytest.fixture
def planted(tmp_path):
    """A small hymenoptera copy with every kind of special file among the ants; yields (root, names)."""
    root = tmp_path / "d"
    for split, count in (("train", 8), ("val", 4)):
        for name in ("ants", "bees"):
            _copy(count, split, name, root)
    ants = root / "train" / "ants"
    os.mkfifo(ants / "pipe.jpg")
    (ants / "zero.jpg").symlink_to("/dev/zero")
    (ants / "random.jpg").symlink_to("/dev/urandom")
    (ants / "folder.jpg").mkdir()
    server = socket.socket(socket.AF_UNIX)
    server.bind(str(ants / "sock.jpg"))
    yield root, ["pipe.jpg", "zero.jpg", "random.jpg", "sock.jpg"]
    server.close()


def _cli(*argv: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "keras_transfer.cli", *argv], capture_output=True, text=True,
                          timeout=LIMIT)


def test_open_regular_refuses_every_special_file_without_blocking(planted, tmp_path):
    root, names = planted
    for name in names:
        path = root / "train" / "ants" / name
        assert special_file(path).startswith(NOT_REGULAR), name
        with pytest.raises(UnreadableFile):
            open_regular(path)
        with pytest.raises(UnreadableFile):
            file_hash(path)
    assert "a folder" in special_file(root / "train" / "ants" / "folder.jpg")
    huge = tmp_path / "huge.jpg"
    with open(huge, "wb") as handle:  # sparse: no disk used
        handle.truncate(600 * 2**20)
    assert "larger than" in special_file(huge)
    with pytest.raises(UnreadableFile, match="larger than"):
        open_regular(huge)
    with open_regular(next((root / "train" / "bees").glob("*.jpg"))) as handle:
        assert handle.read(3) == b"\xff\xd8\xff"


def test_train_predict_and_audit_end_and_list_the_special_files(planted, tmp_path):
    root, names = planted
    out = tmp_path / "run"
    done = _cli("train", str(root), "--out", str(out))
    assert done.returncode == 0, done.stderr
    skipped = dict(json.loads((out / "dataset.json").read_text())["skipped_files"])
    for name in names:
        assert skipped[str(root / "train" / "ants" / name)].startswith(NOT_REGULAR), (name, skipped)
    assert "named pipe" in done.stderr and "character device" in done.stderr and "socket" in done.stderr

    done = _cli("predict", str(out), str(root / "train" / "ants"), "--json")
    assert done.returncode == 0, done.stderr
    errors = {Path(r["path"]).name: r["error"] for r in json.loads(done.stdout) if "error" in r}
    assert set(names) <= set(errors) and all(errors[n].startswith(NOT_REGULAR) for n in names), errors
    done = _cli("predict", str(out), str(root / "train" / "ants" / "pipe.jpg"), "--json")  # named on its own
    assert done.returncode == 1 and "named pipe" in json.loads(done.stdout)[0]["error"]

    done = _cli("audit", str(root), "--out", str(tmp_path / "audit"))
    assert done.returncode == 0, done.stderr
    report = json.loads((tmp_path / "audit" / "audit.json").read_text())
    found = {Path(f["images"][0]["file"]).name: f for f in report["findings"]
             if f["kind"] in ("damaged", "odd_file")}
    for name in names:
        assert found[name]["kind"] == "odd_file" and found[name]["evidence"].startswith(NOT_REGULAR), name
