"""``--max-per-class`` picks its images before it checks them: only the picked files are opened,
an unreadable one is replaced by the next in the same seeded order (real flowers5 photos)."""

from __future__ import annotations

import numpy as np
import pytest

from conftest import DATASETS

FLOWERS = DATASETS / "flowers5"


@pytest.fixture
def flowers(tmp_path):
    """Three flowers5 classes, 40 photos each, linked into a folder tree."""
    root = tmp_path / "flowers"
    for name in ("daisy", "rose", "tulip"):
        (root / name).mkdir(parents=True)
        for photo in sorted((FLOWERS / name).glob("*.jpg"))[:40]:
            (root / name / photo.name).symlink_to(photo)
    return root


def _chosen(dataset) -> list[str]:
    return sorted(str(p) for split in dataset.splits.values() for p in split.items)


def _checked_then_capped(root, limit: int, seed: int) -> list[str]:
    """What ``--max-per-class`` kept before: every file checked, then ``cap_per_class``."""
    from keras_transfer.data.dataset import cap_per_class
    from keras_transfer.data.folders import load_folder_tree

    split = load_folder_tree(root, {}).splits["all"]
    return sorted(str(split.items[i]) for i in cap_per_class(split.labels, limit, seed))


def test_readable_folders_keep_the_images_they_kept_before(flowers):
    from keras_transfer.data.load import load_dataset

    for seed in (0, 3):
        assert _chosen(load_dataset(flowers, seed=seed, max_per_class=10)) == _checked_then_capped(flowers, 10, seed)


def test_only_picked_files_are_checked_and_a_bad_one_is_replaced(flowers):
    from keras_transfer.data.load import load_dataset

    for name in ("daisy", "rose", "tulip"):
        for k in range(20):
            (flowers / name / f"broken_{k:02d}.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    first = load_dataset(flowers, seed=1, max_per_class=10)
    again = load_dataset(flowers, seed=1, max_per_class=10)
    assert _chosen(first) == _chosen(again)  # deterministic for a seed
    kept = [p for p in _chosen(first)]
    assert len(kept) == 30 and not any("broken" in p for p in kept)
    labels = np.concatenate([split.labels for split in first.splits.values()])
    assert np.bincount(labels).tolist() == [10, 10, 10]  # each broken pick replaced by a readable photo
    listed = [path for path, _ in first.skipped if "broken" in path]
    assert listed and len(listed) < 60  # the broken ones it met are listed; the others were never opened
    assert all("broken" in path for path, _ in first.skipped)


def test_a_class_with_no_readable_file_is_left_out_as_before(flowers):
    from keras_transfer.data.load import load_dataset

    (flowers / "empty").mkdir()
    for k in range(5):
        (flowers / "empty" / f"broken_{k}.jpg").write_bytes(b"GIF89a garbage")
    dataset = load_dataset(flowers, seed=0, max_per_class=10)
    assert dataset.class_names == ["daisy", "rose", "tulip"]
    assert sum(1 for path, _ in dataset.skipped if "broken" in path) == 5
    assert any("no readable image" in note for note in dataset.notes)
