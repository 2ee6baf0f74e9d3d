"""Property-based fuzzing (hypothesis) of what users hand keras-transfer: option values, image
bytes, dataset trees and damaged run files.

The contract: the CLI ends with exit code 0, 1 or 2 and never a traceback; ``--json`` prints
strict JSON (no NaN / Infinity); a failing command leaves every file of the run folder as it was.
The data layer raises nothing but ``DatasetError``, keeps only files that pass the image check,
and lists every other file of a class folder it read in ``Dataset.skipped``.

Profiles: ``make test`` runs ``kt-fuzz``, bounded and derandomized (the same examples every run; the
CLI-heavy tests unshrunk). ``KT_FUZZ=long .venv/bin/pytest tests/test_fuzz.py`` runs ``kt-fuzz-long``:
20 times the examples, fresh random ones each run, shrunk (``@reproduce_failure`` replays one).
"""

from __future__ import annotations

import contextlib
import dataclasses
import io
import json
import math
import os
import shutil
import tempfile
import typing
from functools import cache
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, Phase, event, example, given, settings, strategies as st
from PIL import Image

from conftest import HYMENOPTERA, make_image
from keras_transfer.base import log
from keras_transfer.cli import main
from keras_transfer.config import TrainConfig
from keras_transfer.data.load import load_dataset
from keras_transfer.data.images import IMAGE_EXTENSIONS, check_image, is_image_file, read_batch, read_image
from keras_transfer.data.layout import is_system
from keras_transfer.base.errors import DatasetError

settings.register_profile("kt-fuzz", deadline=None, derandomize=True, database=None, print_blob=True,
                          report_multiple_bugs=False,  # a failing run stops at its first bug, shrunk
                          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
settings.register_profile("kt-fuzz-long", settings.get_profile("kt-fuzz"), derandomize=False, report_multiple_bugs=True)
LONG = os.environ.get("KT_FUZZ") == "long"
PROFILE = settings.get_profile("kt-fuzz-long" if LONG else "kt-fuzz")
pytestmark = pytest.mark.filterwarnings("ignore:::PIL.*")  # Pillow's notes on the damaged files it reads


def fuzz(examples: int, slow: bool = False) -> settings:
    """``examples`` (x20 with KT_FUZZ=long); a ``slow`` test is not shrunk by default (minutes of CLI runs)."""
    phases = None if LONG or not slow else [Phase.explicit, Phase.reuse, Phase.generate]
    return settings(PROFILE, max_examples=examples * (20 if LONG else 1), **({"phases": phases} if phases else {}))


@pytest.fixture(autouse=True)
def loud():
    """Each test starts from the default level (``main([... "-q"])`` leaves it quiet)."""
    log.set_quiet(False)
    yield
    log.set_quiet(False)


def strict(text: str):
    """``json.loads`` refusing NaN and Infinity."""
    return json.loads(text, parse_constant=lambda name: pytest.fail(f"{name} is not JSON: {text[:300]}"))


def cli(capsys, *argv: str, codes=(0, 1, 2)) -> tuple[int, str, str]:
    """(exit code, stdout, stderr) of the CLI in-process; an exception out of main() is a user's traceback."""
    capsys.readouterr()
    try:
        code = main(list(argv))
    except SystemExit as exit_:  # argparse
        code = exit_.code
    out, err = capsys.readouterr()
    assert code in codes and "Traceback" not in err, (argv, code, err[-3000:])
    if "--json" in argv and code == 0:
        strict(out)
    return code, out, err


# 1. Numeric options: refused with exit 2 naming the option, or accepted (then stopped at a missing path)
def _train_flags():
    hints = typing.get_type_hints(TrainConfig)
    for f in dataclasses.fields(TrainConfig):
        kinds = set(typing.get_args(hints[f.name])) or {hints[f.name]}
        if f.metadata.get("cli", True) and kinds & {int, float}:
            yield f.metadata.get("flag") or "--" + f.name.replace("_", "-"), float in kinds


FLOATS = st.floats(allow_subnormal=False)  # once a runtime has set flush-to-zero, hypothesis cannot draw them
SERVE_FLAGS = {**dict.fromkeys(["--port", "--workers", "--max-files", "--max-batch", "--max-queue"], False),
               **dict.fromkeys(["--max-file-mb", "--max-request-mb", "--max-megapixels", "--max-wait-ms"], True)}
COMMANDS = {"train": (dict(_train_flags()), ["train", "{missing}", "--out", "{out}"]),
            "predict": ({"--top-k": False}, ["predict", "{missing}", "{missing}/a.jpg"]),
            "serve": (SERVE_FLAGS, ["serve", "{missing}"])}
VALUES = st.one_of(
    st.one_of(st.integers(-3, 3), st.integers(), FLOATS, st.floats(-1e3, 1e3, allow_subnormal=False)).map(str),
    st.sampled_from(["", " ", "nan", "-inf", "Infinity", "1e309", "1e303", "5e-324", "-0", "0x10", "1_000", "٣", " 7 ",
                     "all", "2**32", "4294967296", "65536", "65537", "9" * 5000, "1e-400", "--", "x"]),
    st.text(max_size=6))
OPTIONS = st.lists(st.tuples(st.integers(0, 99), VALUES), min_size=1, max_size=3)  # (flag number, value)


@fuzz(400)
@given(command=st.sampled_from(sorted(COMMANDS)), options=OPTIONS)
@example(command="train", options=[(0, "--")])  # argparse (3.11) gives [] for "--flag=--"
@example(command="serve", options=[(sorted(SERVE_FLAGS).index("--max-file-mb"), "1e303")])  # * 1e6 -> inf
def test_numeric_options_are_refused_naming_the_option_or_accepted(command, options, capsys):
    flags, head = COMMANDS[command]
    chosen = {sorted(flags)[i % len(flags)]: value for i, value in options}
    with tempfile.TemporaryDirectory() as tmp:
        missing, out = Path(tmp, "not here"), Path(tmp, "out")
        argv = [a.format(missing=missing, out=out) for a in head] + [f"{f}={v}" for f, v in chosen.items()]
        code, _, err = cli(capsys, *argv, "-q", codes=(1, 2))
        if code == 2:
            assert any(flag in err for flag in chosen) or "input size" in err, (chosen, err)
            assert "expected:" in err or "invalid" in err, (chosen, err)  # the range, or argparse's type
            assert not out.exists(), "refused, yet a run folder was created"
        else:  # in range: stopped at the missing dataset / run folder
            assert "not found" in err and str(missing) in err, (chosen, err)
            assert all(not flags[f] or math.isfinite(float(v)) for f, v in chosen.items()), f"accepted {chosen}"


# 2. Random and damaged bytes as images
@cache
def seed_images() -> dict[str, bytes]:
    """A real JPEG of the ants/bees dataset and the same photo, 48 px, as PNG, GIF, BMP, WebP, TIFF."""
    photo = min((HYMENOPTERA / "train" / "ants").iterdir(), key=lambda p: p.stat().st_size)
    seeds = {"jpg": photo.read_bytes()}
    with Image.open(photo) as image:
        small = image.convert("RGB")
    small.thumbnail((48, 48))
    for fmt in ("PNG", "GIF", "BMP", "WEBP", "TIFF"):
        small.save(buffer := io.BytesIO(), fmt)
        seeds[fmt] = buffer.getvalue()
    return seeds


FRACTION = st.floats(0, 1, exclude_max=True, allow_subnormal=False)  # a position in the file
RECIPES = st.one_of(  # small, printable descriptions of damage, applied by damaged()
    st.tuples(st.just("random"), st.binary(max_size=2048)),
    st.tuples(st.just("truncated"), FRACTION),
    st.tuples(st.just("flipped"), st.lists(st.tuples(FRACTION, st.integers(1, 255)), min_size=1, max_size=8)),
    st.tuples(st.just("header"), st.integers(0, 64), st.binary(max_size=512)))  # a real start, then junk
IMAGES = st.tuples(st.sampled_from(["jpg", "PNG", "GIF", "BMP", "WEBP", "TIFF"]), RECIPES)  # (seed, damage)


def damaged(original: bytes, recipe: tuple) -> bytes:
    how, *args = recipe
    if how != "flipped":
        return args[0] if how == "random" else original[:args[0]] + args[1] if how == "header" else \
            original[:int(args[0] * len(original))]
    data = bytearray(original)
    for at, mask in args[0] if data else []:
        data[int(at * len(data))] ^= mask
    return bytes(data)


EXTENSIONS = st.sampled_from(sorted(IMAGE_EXTENSIONS) + [".JPG", ".Png", ".txt", "", ".tiff", ".jpg.part"])


@fuzz(300)
@given(image=IMAGES, ext=EXTENSIONS)
def test_damaged_image_bytes_are_refused_cleanly_and_skipped(image, ext):
    from keras_transfer.serve.models import BadUpload, decode

    data = damaged(seed_images()[image[0]], image[1])
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp, "data")
        for name, colour in (("a", (200, 30, 30)), ("b", (30, 30, 200))):
            for i in range(3):
                make_image(root / name / f"{i}.png", colour)
        bad = root / "a" / f"x{ext}"
        bad.write_bytes(data)
        assert (reason := check_image(bad)) is None or (isinstance(reason, str) and reason)
        try:
            pixels = read_image(bad, 32)
        except (OSError, ValueError):  # what the callers of read_image catch (report, extraction)
            pass
        except Exception as error:
            assert reason is not None, f"check_image passes a file read_image fails on with {error!r}"
        else:
            assert pixels.dtype == np.uint8 and pixels.ndim == 3 and pixels.shape[2] == 3 and pixels.size
        ok, images, failures = read_batch([bad], 32)
        assert len(ok) + len(failures) == 1 and all(i.shape == (32, 32, 3) for i in images)
        with contextlib.suppress(BadUpload):  # the server's decoding: nothing else
            assert decode(data, 32, "stretch", 40_000_000).shape == (32, 32, 3)
        dataset = load_dataset(root)  # two classes of three good images: never a DatasetError
        items = {p for split in dataset.splits.values() for p in split.items}
        kept = reason is None and is_image_file(bad)
        assert (bad in items) == kept and (str(bad) in dict(dataset.skipped)) == (not kept)


# 3. Random dataset trees: odd names, nesting, junk, empty folders, links
NAMES = st.one_of(
    st.sampled_from(["with space", "$HOME", "it's", 'say "hi"', "`ls`", "a;b|c&d", "-rf", "*?[x]", "ünï cødé",
                     "日本語", "emoji 🐝", ".hidden", "__MACOSX", "Thumbs.db", "train", "Test", "validation",
                     "ants", "Ants", "\\", "~", " lead", "trail ", "new\nline"]),
    st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="/\x00"), min_size=1, max_size=12),
).filter(lambda n: n not in (".", "..") and len(n.encode()) < 200)
KINDS = ["image", "image", "damaged", "junk", "empty_dir", "broken_link", "loop_link"]
ENTRY = st.tuples(st.lists(NAMES, max_size=2), NAMES, st.sampled_from(KINDS), EXTENSIONS, IMAGES)
TREES = st.tuples(st.lists(NAMES, max_size=2), st.dictionaries(NAMES, st.lists(ENTRY, max_size=5), min_size=1, max_size=4),
                  st.integers(0, 3))  # (wrapper folders, {class folder: entries}, good images per class)
TRAINABLE = st.tuples(st.just([]), st.dictionaries(NAMES, st.lists(ENTRY, max_size=3), min_size=2, max_size=2),
                      st.just(5))


def build_tree(root: Path, wrappers: list[str], classes: dict, base: int = 0) -> dict[Path, str]:
    """Writes ``root/<wrappers>/<class>/<sub folders>/<file>``; returns each path written and its kind.
    ``base`` good images go straight into every class folder first."""
    made, top = {}, root.joinpath(*wrappers)
    for c, (name, entries) in enumerate(classes.items()):
        colour = (40 + 70 * c % 216, 200 - 50 * c % 200, 90)
        good = [([], f"base {i}", "image", ".png", None) for i in range(base)]
        for subdirs, file, kind, ext, image in good + entries:
            ext = ext if kind != "image" or ext.lower() in IMAGE_EXTENSIONS else ".png"
            path = top.joinpath(name, *subdirs, file + ext)
            try:
                path.parent.mkdir(parents=True, exist_ok=True)
                if path.exists() or path.is_symlink() or any(p.is_symlink() for p in path.parents):
                    continue
                if kind == "image":
                    make_image(path, colour)
                elif kind in ("damaged", "junk"):
                    data = damaged(seed_images()[image[0]], image[1])
                    path.write_bytes(data if kind == "damaged" else data[::-1])
                elif kind == "empty_dir":
                    path.mkdir()
                else:
                    path.symlink_to(top / name if kind == "loop_link" else path.parent / "nowhere")
            except OSError:  # a name taken by a folder, or too long together
                continue
            made[path] = kind
    return made


def check_dataset(dataset, made: dict[Path, str]) -> None:
    """Classes distinct, labels in range, no file twice; kept files are images that pass the check;
    every other file of a class folder read is in ``skipped`` (hidden and system ones aside)."""
    items = [p for split in dataset.splits.values() for p in split.items]
    assert len(items) == len(set(items)), "a file in two splits"
    assert len(set(dataset.class_names)) == len(dataset.class_names) >= 2, dataset.class_names
    assert all(len(s.items) == len(s.labels) and set(s.labels) <= set(range(len(dataset.class_names)))
               for s in dataset.splits.values())
    real = {Path(os.path.realpath(p)): kind for p, kind in made.items()}  # a class reached through a link
    for path in items:
        kind = made.get(path) or real.get(Path(os.path.realpath(path)))
        assert kind in ("image", "damaged", "junk") and check_image(path) is None, (path, kind)
    skipped = {Path(f) for f, _ in dataset.skipped}
    for folder in {Path(v) for v in dataset.layout.values() if Path(v).is_dir()}:
        for name in dataset.class_names:
            for path, kind in made.items():
                if (folder / name) not in path.parents or kind in ("empty_dir", "loop_link"):
                    continue
                if not any(is_system(Path(part)) for part in path.relative_to(folder / name).parts):
                    assert path in items if kind == "image" else path in items or path in skipped, (path, kind)


@fuzz(150)
@given(tree=TREES)
def test_a_random_dataset_tree_loads_or_raises_dataset_error(tree):
    with tempfile.TemporaryDirectory() as tmp:
        made = build_tree(Path(tmp, "data"), *tree)
        try:
            dataset = load_dataset(Path(tmp, "data"))
        except DatasetError as error:
            event("DatasetError", error.what.replace(tmp, "")[:30])
            return
        event("loaded", f"{len(dataset.class_names)} classes, {len(dataset.skipped) > 0} skipped")
        check_dataset(dataset, made)


@fuzz(2, slow=True)
@given(tree=TRAINABLE)
def test_training_on_a_random_tree_ends_with_exit_0_or_1(tree, capsys):
    with tempfile.TemporaryDirectory() as tmp:
        build_tree(Path(tmp, "data"), *tree)
        code, out, _ = cli(capsys, "train", str(Path(tmp, "data")), "--out", str(Path(tmp, "run")), "--json", "-q",
                           codes=(0, 1))
        assert code == 1 or strict(out)["metrics"]["n"] > 0


# 4. Random bytes as run files
@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory) -> Path:
    """A default run on 2 x 8 coloured squares, trained once for this module."""
    root = tmp_path_factory.mktemp("fuzz")
    for name, colour in (("red", (230, 30, 30)), ("blue", (30, 30, 230))):
        for i in range(8):
            make_image(root / "data" / name / f"{name} {i}.png", colour)
    assert main(["train", str(root / "data"), "--out", str(root / "run"), "-q"]) == 0
    return root / "run"


JSON = st.recursive(st.none() | st.booleans() | st.integers() | FLOATS.filter(math.isfinite) | st.text(max_size=8),
                    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3),
                    max_leaves=8)
RUN_DAMAGE = st.one_of(RECIPES, st.tuples(st.sampled_from(["missing", "empty"])),
                       st.tuples(st.just("edited"), st.booleans(), st.integers(0, 99), JSON))


def damaged_run_file(original: bytes, recipe: tuple) -> bytes | None:
    """The new content (None: deleted). ``edited``: the file's JSON object with one value replaced,
    or any JSON value."""
    how, *args = recipe
    if how != "edited":
        return None if how == "missing" else b"" if how == "empty" else damaged(original, recipe)
    one_key, index, value = args
    loaded = None
    with contextlib.suppress(ValueError):
        loaded = json.loads(original)
    if one_key and isinstance(loaded, dict) and loaded:
        loaded[sorted(loaded)[index % len(loaded)]] = value
        value = loaded
    return json.dumps(value).encode()


def snapshot(folder: Path) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in folder.rglob("*") if p.is_file()}


@fuzz(10, slow=True)
@given(file=st.integers(0, 99), recipe=RUN_DAMAGE)
def test_a_randomly_damaged_run_file_ends_with_exit_0_or_1_and_loses_nothing(tiny_run, file, recipe, capsys):
    files = sorted(snapshot(tiny_run))
    name, how = files[file % len(files)], recipe[0]
    event("file", name)
    image = sorted((tiny_run.parent / "data" / "red").iterdir())[0]
    with tempfile.TemporaryDirectory() as tmp:
        run = Path(tmp, "run")
        shutil.copytree(tiny_run, run)
        content = damaged_run_file((run / name).read_bytes(), recipe)
        (run / name).unlink()
        if content is not None:
            (run / name).write_bytes(content)
        commands = [["predict", str(run), str(image), "--json"], ["evaluate", str(run), "--json"]]
        if name.endswith(".json") or name == "predictions.npz":
            commands.append(["report", str(run), "--out", str(Path(tmp, "report")), "--sample", "10"])
        for command in commands:
            before = snapshot(run)
            code, _, err = cli(capsys, *command, "-q", codes=(0, 1))
            if code == 1 and how not in ("flipped", "edited"):  # those may still be valid, merely other, data
                assert Path(name).name in err, (command, how, err)
            after = snapshot(run)
            lost = [f for f, b in before.items() if (code == 1 or f != name) and after.get(f) != b]
            assert not lost, (command, how, "changed or lost", lost)
