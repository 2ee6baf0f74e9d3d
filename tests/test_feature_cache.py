"""The shared feature cache: content addressing, incremental extraction, crash safety, corruption."""

from __future__ import annotations

import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from conftest import HYMENOPTERA
from feature_helpers import TINY_IDENTITY, collect, file_split, make_engine

from keras_transfer.base import log
from keras_transfer.cli import main
from keras_transfer.features.cache import DB_NAME, FeatureCache
from keras_transfer.features.extract import ViewMaker

TESTS = Path(__file__).resolve().parent


@pytest.fixture
def images(tmp_path) -> list[Path]:
    """40 real photos (ants and bees) copied into a temporary folder."""
    sources = sorted((HYMENOPTERA / "train" / "ants").glob("*.jpg"))[:20] + \
        sorted((HYMENOPTERA / "train" / "bees").glob("*.jpg"))[:20]
    folder = tmp_path / "photos"
    folder.mkdir()
    return [Path(shutil.copy(p, folder / p.name)) for p in sources]


def test_adding_images_extracts_only_the_new_ones(tmp_path, images):
    engine = make_engine(tmp_path / "cache")
    first, _ = collect(engine, file_split(images[:36]))
    assert engine.extracted == 36
    both, _ = collect(engine, file_split(images))
    assert engine.extracted == 36 + 4
    np.testing.assert_array_equal(both[:, :36], first)
    assert not np.isnan(both).any()


def test_renamed_and_moved_files_are_hits(tmp_path, images):
    engine = make_engine(tmp_path / "cache")
    before, _ = collect(engine, file_split(images))
    moved = []
    for i, path in enumerate(images):
        target = tmp_path / "elsewhere" / f"sub{i % 3}" / f"renamed_{i}.jpg"
        target.parent.mkdir(parents=True, exist_ok=True)
        moved.append(Path(shutil.move(path, target)))
    fresh = make_engine(tmp_path / "cache")  # a new process would see the same cache file
    after, _ = collect(fresh, file_split(moved[::-1]))
    assert fresh.extracted == 0
    np.testing.assert_array_equal(after[0], before[0][::-1])


def test_edited_file_is_a_miss(tmp_path, images):
    engine = make_engine(tmp_path / "cache")
    collect(engine, file_split(images[:5]))
    shutil.copy(images[10], images[0])  # same name, other bytes
    collect(engine, file_split(images[:5]))
    assert engine.extracted == 5 + 1


@pytest.mark.parametrize("change", ["weights", "size", "pooling", "preprocessing", "resize", "seed"])
def test_any_change_of_the_key_is_a_miss(tmp_path, images, change):
    split = file_split(images[:6])
    base = make_engine(tmp_path / "cache")
    reference, _ = collect(base, split, views=(0, 1))
    identity, maker = dict(TINY_IDENTITY), ViewMaker(32)
    if change == "resize":
        maker = ViewMaker(32, resize_mode="crop")
    elif change == "seed":
        maker = ViewMaker(32, seed=7)
    else:
        identity[change] = {"weights": "other", "size": 33, "pooling": "max",
                            "preprocessing": {"mean": [0.0] * 3, "std": [1.0] * 3, "bgr": True}}[change]
    other = make_engine(tmp_path / "cache", identity=identity, maker=maker)
    collect(other, split, views=(0, 1))
    # The seed only changes augmented views; every other part of the key changes all of them.
    assert other.extracted == (6 if change == "seed" else 12)
    again = make_engine(tmp_path / "cache")
    np.testing.assert_array_equal(collect(again, split, views=(0, 1))[0], reference)
    assert again.extracted == 0


def test_duplicate_images_share_one_entry(tmp_path, images):
    engine = make_engine(tmp_path / "cache")
    features, _ = collect(engine, file_split([images[0], images[1], images[0]]))
    assert engine.extracted == 2
    np.testing.assert_array_equal(features[0, 0], features[0, 2])


def test_corrupted_entry_is_detected_and_recomputed(tmp_path, images):
    root = tmp_path / "cache"
    engine = make_engine(root)
    reference, _ = collect(engine, file_split(images[:8]))
    with sqlite3.connect(root / DB_NAME) as db:  # flip bytes of one stored vector behind the cache's back
        rowid, data = db.execute("SELECT rowid, data FROM features LIMIT 1").fetchone()
        db.execute("UPDATE features SET data = ? WHERE rowid = ?", (bytes(b ^ 0xFF for b in data), rowid))
    fresh = make_engine(root)
    again, _ = collect(fresh, file_split(images[:8]))
    assert fresh.extracted == 1
    np.testing.assert_allclose(again, reference, rtol=1e-5)  # batch of 1 vs 8: float rounding only


def test_unreadable_cache_file_is_moved_aside(tmp_path, images):
    root = tmp_path / "cache"
    root.mkdir()
    (root / DB_NAME).write_bytes(b"this is not an SQLite database" * 100)
    engine = make_engine(root)
    features, _ = collect(engine, file_split(images[:3]))
    assert engine.extracted == 3 and not np.isnan(features).any()
    assert [p.name.startswith(f"{DB_NAME}.corrupt-") for p in root.iterdir()].count(True) == 1
    assert FeatureCache(root).count() == 3


def _committed(root: Path) -> int:
    if not (root / DB_NAME).exists():
        return 0
    cache = FeatureCache(root)
    try:
        return cache.count()
    finally:
        cache.close()


def test_sigkill_mid_extraction_resumes_where_it_stopped(tmp_path, images):
    root = tmp_path / "cache"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(TESTS), str(TESTS.parent)])}
    worker = subprocess.Popen([sys.executable, str(TESTS / "feature_helpers.py"), str(root), *map(str, images)],
                              env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 120
        while _committed(root) < 8:
            assert worker.poll() is None and time.monotonic() < deadline, "worker ended before the kill"
            time.sleep(0.05)
        worker.send_signal(signal.SIGKILL)
    finally:
        worker.kill()
        worker.wait()
    committed = _committed(root)
    assert 8 <= committed < len(images)
    resumed = make_engine(root)
    features, _ = collect(resumed, file_split(images))
    assert resumed.extracted == len(images) - committed
    clean, _ = collect(make_engine(tmp_path / "clean"), file_split(images))
    np.testing.assert_allclose(features, clean, rtol=1e-6)


def test_cache_cli_info_verify_clear(tmp_path, images, monkeypatch, capsys):
    monkeypatch.setenv("KERAS_TRANSFER_CACHE", str(tmp_path / "root"))
    engine = make_engine(tmp_path / "root" / "features")
    collect(engine, file_split(images[:5]), views=(0, 1))
    assert main(["cache", "info", "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["feature_entries"] == 10
    assert info["identities"][0]["backbone"] == "tiny" and info["identities"][0]["views"] == 2
    with sqlite3.connect(tmp_path / "root" / "features" / DB_NAME) as db:
        db.execute("UPDATE features SET checksum = 'bad' WHERE rowid IN (SELECT rowid FROM features LIMIT 2)")
    assert main(["cache", "verify", "--json"]) == 1
    assert json.loads(capsys.readouterr().out) == {"checked": 10, "corrupt": 2, "integrity": "ok"}
    assert main(["cache", "verify", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["checked"] == 8
    assert main(["cache", "clear", "--backbone", "tiny", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["removed_entries"] == 8
    (tmp_path / "root" / "notes.txt").write_text("not ours")
    assert main(["cache", "clear"]) == 0
    assert [p.name for p in (tmp_path / "root").iterdir()] == ["notes.txt"]


def test_progress_bar_shows_rate_and_quiet_silences_it(tmp_path, images, capsys):
    try:
        log.set_quiet(False)
        collect(make_engine(tmp_path / "a"), file_split(images[:8]))
        assert "img/s" in capsys.readouterr().err
        log.set_quiet(True)
        collect(make_engine(tmp_path / "b"), file_split(images[:8]))
        assert capsys.readouterr().err == ""
    finally:
        log.set_quiet(False)
