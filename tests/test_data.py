"""Dataset discovery, image decoding and stratified splits on real and generated inputs."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import HYMENOPTERA, make_image
from PIL import Image

from keras_transfer.data.dataset import stratified_split

from keras_transfer.data.load import load_dataset
from keras_transfer.data.images import read_image, resize
from keras_transfer.base.errors import DatasetError


def test_hymenoptera_keeps_its_own_split():
    ds = load_dataset(HYMENOPTERA)
    assert ds.class_names == ["ants", "bees"]
    assert {name: len(s) for name, s in ds.splits.items()} == {"train": 245, "val": 153}
    assert ds.eval_split.name == "val"
    assert any(p.suffix == ".gif" for p in ds.train.items)  # the GIF is a valid image: kept
    image = ds.train.image(0)
    assert image.dtype == np.uint8 and image.ndim == 3 and image.shape[2] == 3


def test_folder_per_class_mixed_formats_and_modes(colour_folder):
    ds = load_dataset(colour_folder, val_fraction=0.25)
    assert ds.class_names == ["blue", "red"]
    assert len(ds.train) == 18 and len(ds.val) == 6
    assert sorted(np.bincount(ds.val.labels)) == [3, 3]
    for split in ds.splits.values():
        for i in range(len(split)):
            image = split.image(i)
            assert image.shape == (30, 40, 3) and image.dtype == np.uint8
            centre = image[15, 20].astype(int)
            expected = (230, 30, 30) if ds.class_names[split.labels[i]] == "red" else (30, 30, 230)
            if split.items[i].suffix.lower() == ".jpeg":  # saved as grayscale: equal channels
                assert centre[0] == centre[1] == centre[2]
            else:
                assert np.abs(centre - expected).max() < 40


def test_split_is_deterministic_and_stratified():
    labels = np.repeat(np.arange(3), [10, 20, 30])
    a = stratified_split(labels, 0.2, seed=7)
    b = stratified_split(labels, 0.2, seed=7)
    c = stratified_split(labels, 0.2, seed=8)
    assert all(np.array_equal(x, y) for x, y in zip(a, b))
    assert not np.array_equal(a[1], c[1])
    assert np.bincount(labels[a[1]]).tolist() == [2, 4, 6]
    assert len(np.intersect1d(a[0], a[1])) == 0 and len(a[0]) + len(a[1]) == 60


def test_test_fraction_makes_three_disjoint_splits(colour_folder):
    ds = load_dataset(colour_folder, val_fraction=0.2, test_fraction=0.25)
    assert list(ds.splits) == ["train", "val", "test"]
    files = [set(map(str, s.items)) for s in ds.splits.values()]
    assert sum(map(len, files)) == 24 and len(set().union(*files)) == 24
    assert ds.eval_split.name == "test"


def test_exif_orientation_is_honoured(tmp_path):
    array = np.zeros((20, 40, 3), np.uint8)
    array[:, :20] = 255  # left half white
    image = Image.fromarray(array)
    exif = image.getexif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise on display
    path = tmp_path / "rotated.jpg"
    image.save(path, exif=exif, quality=95)
    loaded = read_image(path)
    assert loaded.shape == (40, 20, 3)
    assert loaded[:18].mean() > 200 and loaded[22:].mean() < 50  # white half now on top


def test_cmyk_and_16bit_grayscale_become_rgb(tmp_path):
    cmyk = tmp_path / "c.jpg"
    Image.new("CMYK", (8, 6), (0, 255, 255, 0)).save(cmyk)  # pure red in CMYK
    rgb = read_image(cmyk)
    assert rgb.shape == (6, 8, 3) and rgb[..., 0].mean() > 200 and rgb[..., 1].mean() < 60
    gray16 = tmp_path / "g.png"
    Image.fromarray(np.linspace(0, 65535, 48, dtype=np.uint16).reshape(6, 8)).save(gray16)
    rgb = read_image(gray16)
    assert rgb.shape == (6, 8, 3) and rgb[0, 0, 0] == 0 and rgb[-1, -1, 0] == 255


def test_corrupt_and_non_image_files_are_skipped_with_one_warning(colour_folder, capsys):
    (colour_folder / "red" / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    (colour_folder / "blue" / "notes.txt").write_text("hello")
    ds = load_dataset(colour_folder)
    skipped = {p.split("/")[-1] for p, _ in ds.skipped}
    assert skipped == {"broken.jpg", "notes.txt"}
    assert len(ds.train) + len(ds.val) == 24
    err = capsys.readouterr().err
    assert err.count("warning:") == 1 and "broken.jpg" in err and "notes.txt" in err


@pytest.mark.parametrize("mode", ["stretch", "pad", "crop"])
def test_resize_modes(mode):
    image = np.zeros((50, 100, 3), np.uint8)
    image[:, 25:75] = 200  # a bright centre square, dark sides
    out = resize(image, 32, mode)
    assert out.shape == (32, 32, 3)
    if mode == "pad":  # aspect kept: black bars above and below, the square in the middle
        assert out[0].max() == 0 and out[16, 16].min() > 150 and out[16, 2].max() < 50
    elif mode == "crop":  # the centre 50 x 50: all of the square, none of the sides
        assert out.min() > 150
    else:  # stretched: the dark sides squeezed into the outer quarters
        assert out[:, 0].max() < 50 and out[:, 16].min() > 150


def test_numpy_folder_with_string_labels_and_float_images(tmp_path):
    rng = np.random.default_rng(0)
    images = rng.random((30, 16, 16)).astype(np.float32)  # grayscale floats in [0, 1]
    labels = np.array(["cat", "dog", "emu"] * 10)
    np.save(tmp_path / "images.npy", images)
    np.save(tmp_path / "labels.npy", labels)
    ds = load_dataset(tmp_path)
    assert ds.class_names == ["cat", "dog", "emu"]
    image = ds.train.image(0)
    assert image.shape == (16, 16, 3) and image.dtype == np.uint8
    assert abs(int(image[0, 0, 0]) - round(float(ds.train.items[0][0, 0]) * 255)) <= 1


def test_npz_archive(tmp_path):
    np.savez(tmp_path / "d.npz", images=np.zeros((10, 8, 8, 3), np.uint8), labels=np.arange(10) % 2)
    assert load_dataset(tmp_path / "d.npz").class_names == ["0", "1"]


@pytest.mark.parametrize("case, message", [
    ("empty_class", "empty class folder"),
    ("one_class", "only 1 class"),
    ("length_mismatch", "do not match"),
    ("not_a_dataset", "is a file"),
    ("missing", "not found"),
    ("flat_images", "no class sub-folders"),
    ("object_labels", "cannot read"),
])
def test_bad_datasets_raise_clear_errors(tmp_path, case, message):
    root = tmp_path / "data"
    if case == "empty_class":
        make_image(root / "a" / "1.png", (1, 2, 3))
        (root / "b").mkdir()
    elif case == "one_class":
        make_image(root / "a" / "1.png", (1, 2, 3))
        make_image(root / "a" / "2.png", (1, 2, 3))
    elif case == "length_mismatch":
        root.mkdir()
        np.save(root / "images.npy", np.zeros((5, 8, 8, 3), np.uint8))
        np.save(root / "labels.npy", np.zeros(4, np.int64))
    elif case == "not_a_dataset":
        root = make_image(tmp_path / "photo.png", (1, 2, 3))
    elif case == "flat_images":
        make_image(root / "1.png", (1, 2, 3))
    elif case == "object_labels":
        root.mkdir()
        np.save(root / "images.npy", np.zeros((2, 8, 8, 3), np.uint8))
        np.save(root / "labels.npy", np.array([{"a": 1}, None], dtype=object), allow_pickle=True)
    with pytest.raises(DatasetError, match=message):
        load_dataset(root)


@pytest.mark.parametrize("train_name, val_name, test_name", [
    ("training_set", "validation_set", "test_set"), ("Training", "Valid", "Testing"),
    ("train-images", "dev", "TEST DATA"), ("TRAIN", "val_split", None)])
def test_split_folders_under_the_names_datasets_use(tmp_path, train_name, val_name, test_name):
    """Split folders as Kaggle downloads and papers name them, in any letter case, are recognised."""
    photos = {c: sorted((HYMENOPTERA / "train" / c).iterdir())[:6] for c in ("ants", "bees")}
    for split, names in ((train_name, slice(0, 4)), (val_name, slice(4, 5)), (test_name, slice(5, 6))):
        if split is None:
            continue
        for c, files in photos.items():
            (tmp_path / split / c).mkdir(parents=True)
            for f in files[names]:
                (tmp_path / split / c / f.name).symlink_to(f)
    ds = load_dataset(tmp_path)
    assert ds.class_names == ["ants", "bees"] and len(ds.train) == 8 and len(ds.val) == 2
    assert len(ds.splits.get("test", [])) == (2 if test_name else 0)


def test_two_folders_for_one_split_name_both_and_how_to_resolve(tmp_path):
    for split in ("val", "validation", "train"):
        (tmp_path / split / "ants").mkdir(parents=True)
    with pytest.raises(DatasetError, match="2 val folders: val, validation") as error:
        load_dataset(tmp_path)
    assert "keep one of them" in str(error.value)
