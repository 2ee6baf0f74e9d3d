"""Damaged and odd files: undecodable or truncated, tiny, extreme aspect ratio, too dark, blurry,
low information, grayscale in a colour set.

The image-quality checks are cleanvision's (``Imagelab``: dark, blurry, odd aspect ratio, low
information, grayscale), run on the file paths in chunks (a progress bar) and cached by content
hash, so a second audit reads them back. Its ``odd_size`` check is not used: it flags every image
far from the median size, which in a folder of phone photos and web images is a tenth of them.
"""

from __future__ import annotations

import contextlib
import io
import json
from pathlib import Path

import numpy as np

from keras_transfer.base import log
from keras_transfer.audit.pool import Pool
from keras_transfer.data.images import open_image
from keras_transfer.data.skipped import FILE_KINDS, kind_of
from keras_transfer.base.paths import atomic_file, cache_dir

QUALITY_CHECKS = ("dark", "blurry", "odd_aspect_ratio", "low_information", "grayscale")
CHUNK = 256
RELATIVE_CHECKS = ("dark", "blurry", "low_information")
RELATIVE_SHARE = 0.02
TINY = 16  # sides in pixels below which an image holds too little to learn from, whatever the dataset
QUALITY_CACHE = "quality-v1.json"
GREY_SPREAD = 2.0  # mean |R-G| + |G-B| below which an RGB image is grey


def damaged_files(pool: Pool, failed: list[tuple[str, str]]) -> list[dict]:
    """Files the loader skipped (``skipped_files``), then images that failed to decode in full
    (``failed_files``: a truncated JPEG passes the header check and fails there)."""
    return skipped_files(pool) + failed_files(pool, failed)


def skipped_files(pool: Pool) -> list[dict]:
    """Files the loader skipped: not an image, not a regular file, a broken link, undecodable. Rows of a
    labels table are not files: ``AuditResult.skipped_inputs`` counts them apart."""
    checks = {"undecodable": "undecodable", "special_file": "not a regular file", "too_large": "too large",
              "link_or_folder": "broken link or folder"}
    findings = []
    for file, reason in pool.dataset.skipped:
        kind = kind_of(reason)
        if kind in FILE_KINDS or kind == "link_or_folder":
            findings.append({"kind": "damaged" if kind == "undecodable" else "odd_file",
                             "check": checks.get(kind, "not an image"), "score": 1.0,
                             "images": [{"file": file, "class": None, "split": None}], "evidence": reason})
    return findings


def failed_files(pool: Pool, failed: list[tuple[str, str]]) -> list[dict]:
    """Images that passed the loader's check but failed to decode in full."""
    findings = []
    where = {name: i for i, name in enumerate(pool.ids)}
    for file, reason in failed:
        i = where.get(file)
        images = [pool.describe(i)] if i is not None else [{"file": file, "class": None, "split": None}]
        findings.append({"kind": "damaged", "check": "truncated or undecodable", "score": 1.0, "images": images,
                         "evidence": reason})
    return findings


def _header_size(pool: Pool, i: int) -> tuple[int, int] | None:
    if pool.is_array:
        shape = pool.split.items[i].shape
        return int(shape[1]), int(shape[0])
    try:
        with open_image(pool.ids[i]) as image:
            return image.size
    except Exception:  # damaged files are reported by damaged_files
        return None


def tiny_images(pool: Pool) -> list[dict]:
    """Images with a side under a quarter of the dataset's median short side, or under ``TINY`` pixels
    in a set of larger images (8x8 digits are not tiny among themselves).

    By hand: a header read per file; cleanvision's size check is relative to the median only.
    """
    sizes = {i: s for i in range(len(pool)) if (s := _header_size(pool, i)) is not None}
    if not sizes:
        return []
    median = float(np.median([min(s) for s in sizes.values()]))
    findings = []
    for i, (width, height) in sizes.items():
        if min(width, height) < median / 4 or (min(width, height) < TINY and median >= 2 * TINY):
            findings.append({"kind": "odd_file", "check": "tiny", "score": round(min(width, height) / median, 4),
                             "images": [pool.describe(i)],
                             "evidence": f"{width}x{height} px (median short side {median:.0f} px)"})
    return findings


def _read_cache() -> dict:
    path = cache_dir("audit") / QUALITY_CACHE
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return {}


def _write_cache(entries: dict) -> None:
    path = cache_dir("audit") / QUALITY_CACHE
    text = json.dumps({**_read_cache(), **entries})
    try:
        atomic_file(path, lambda tmp: Path(tmp).write_text(text))
    except OSError as error:  # a read-only cache costs the next audit time, nothing else
        log.warn(f"could not save the image-quality scores in {path.parent}: {error.strerror or error}")


@contextlib.contextmanager
def muted():
    """No output from a library: its Python prints (also where sys.stdout is replaced) and native ones."""
    with log.silenced((1, 2)), contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        yield


def _cleanvision(paths: list[str]) -> dict[str, dict[str, list]]:
    """cleanvision's score and verdict of every check, per path."""
    from cleanvision import Imagelab

    # cleanvision keeps paths in pandas' arrow strings, which refuse names that are not UTF-8: those
    # few files get no quality scores (they are still hashed, decoded and compared)
    paths = [p for p in paths if p == log.printable(p)]
    if not paths:
        return {}
    with muted():  # its own progress bar and summary print
        lab = Imagelab(filepaths=paths)
        # n_jobs=1: its worker pool forks this process, whose OpenVINO / Ray threads do not survive a
        # fork (the children were seen spinning for minutes after `audit --executor ray`)
        lab.find_issues({check: {} for check in QUALITY_CHECKS}, n_jobs=1, verbose=False)
    issues = lab.issues
    return {path: {c: [float(issues.at[path, f"{c}_score"]), bool(issues.at[path, f"is_{c}_issue"])]
                   for c in QUALITY_CHECKS} for path in issues.index}


def _colourless(pool: Pool, i: int) -> bool:
    """Grey pixels saved as RGB. By hand: cleanvision's grayscale check only sees files in mode L."""
    try:
        image = pool.image(i, 64).astype(np.int16)
    except Exception:  # damaged files are reported by damaged_files
        return False
    spread = np.abs(image[..., 0] - image[..., 1]).mean() + np.abs(image[..., 1] - image[..., 2]).mean()
    return bool(spread < GREY_SPREAD)


def quality_scores(pool: Pool, readable: np.ndarray) -> dict[int, dict[str, list]]:
    """Per image (pool index) cleanvision's [score, verdict] of every check; cached by content hash."""
    if pool.is_array:
        return {}  # cleanvision reads files
    cached, fresh = _read_cache(), {}
    todo = [i for i in readable if pool.hashes[i] is not None and pool.hashes[i] not in cached]
    chunks = [todo[k:k + CHUNK] for k in range(0, len(todo), CHUNK)]
    for chunk in log.progress(chunks, desc="image quality (cleanvision)", unit="chunk"):
        scores = _cleanvision([pool.ids[i] for i in chunk])
        for i in chunk:
            if pool.ids[i] in scores and _colourless(pool, i):
                scores[pool.ids[i]]["grayscale"] = [0.0, True]
        fresh.update({pool.hashes[i]: scores[pool.ids[i]] for i in chunk if pool.ids[i] in scores})
    if fresh:
        _write_cache(fresh)
    cached.update(fresh)
    return {int(i): cached[pool.hashes[i]] for i in readable if pool.hashes[i] in cached}


def quality_findings(pool: Pool, scores: dict[int, dict[str, list]]) -> list[dict]:
    """One finding per image and failed check; grayscale only in a mostly colour dataset.

    cleanvision's dark, blurry and low-information verdicts are absolute: on a set of 128 px
    flowers it calls a third of the images blurry. An image is reported when cleanvision flags it
    *and* its score is among the lowest ``RELATIVE_SHARE`` of this dataset's.
    """
    gray = [i for i, s in scores.items() if s["grayscale"][1]]
    colour_set = len(gray) < 0.5 * max(len(scores), 1)
    floors = {c: float(np.quantile([s[c][0] for s in scores.values()], RELATIVE_SHARE)) if scores else 0.0
              for c in RELATIVE_CHECKS}
    findings = []
    for i, checks in scores.items():
        for check, (score, issue) in checks.items():
            issue = issue and (check not in floors or score <= floors[check])
            if issue and (check != "grayscale" or colour_set):
                findings.append({"kind": "odd_file", "check": check.replace("_", " "), "score": round(score, 4),
                                 "images": [pool.describe(i)],
                                 "evidence": f"cleanvision {check} score {score:.3f} (lower is worse)"})
    return findings
