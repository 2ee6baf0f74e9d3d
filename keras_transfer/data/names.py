"""Labels read from file names: ``--labels-from-name REGEX`` (fastai's ``RegexLabeller``).

The Oxford-IIIT Pet layout keeps every image in one folder and the class in the name
(``american_bulldog_148.jpg``): ``'^(.+)_\\d+\\.jpg$'`` reads it, and so does the short form
``prefix`` (everything before the last underscore). Files whose name does not match are listed
in ``skipped``, never fatal.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from keras_transfer.base.errors import DatasetError
from keras_transfer.data.dataset import Dataset, Split
from keras_transfer.data.images import check_image, is_image_file
from keras_transfer.data.layout import walk_files

SHORT_FORMS = {"prefix": r"^(.+)_[^_]*$"}  # the class before the last underscore (extension included)


def name_pattern(text: str) -> re.Pattern:
    """The compiled pattern of ``--labels-from-name`` (a short form or a regex with one group)."""
    source = SHORT_FORMS.get(text, text)
    try:
        pattern = re.compile(source)
    except re.error as error:
        raise DatasetError("--labels-from-name is not a regular expression", "e.g. '^(.+)_\\d+\\.jpg$' or 'prefix'",
                           f"{text!r}: {error}") from None
    if pattern.groups < 1:
        raise DatasetError("--labels-from-name needs a group: the class", "e.g. '^(.+)_\\d+\\.jpg$' or 'prefix'", text)
    return pattern


def load_named_files(folder: str | Path, pattern_text: str) -> Dataset:
    """The images under ``folder``, each labelled by the first group of ``pattern_text`` on its name."""
    folder, pattern = Path(folder), name_pattern(pattern_text)
    if not folder.is_dir():
        raise DatasetError(f"--labels-from-name needs a folder of images, not {folder}", "a folder of image files")
    files, problems = walk_files(folder)
    skipped = list(problems)
    chosen: list[tuple[Path, str]] = []
    for file in sorted(f for f in files if is_image_file(f)):
        match = pattern.search(file.name)
        if match is None or not match.group(1):
            skipped.append((str(file), f"its name does not match --labels-from-name {pattern_text!r}: left out"))
        elif (reason := check_image(file)) is not None:
            skipped.append((str(file), reason))
        else:
            chosen.append((file, match.group(1)))
    if not chosen:
        raise DatasetError(f"no file name in {folder} matches --labels-from-name {pattern_text!r}",
                           "image file names holding their class, e.g. american_bulldog_148.jpg",
                           f"{len(files)} files, e.g. {files[0].name if files else 'none'}")
    names = sorted({label for _, label in chosen})
    labels = np.array([names.index(label) for _, label in chosen], np.int64)
    dataset = Dataset(names, {"all": Split("all", [f for f, _ in chosen], labels)}, str(folder), skipped)
    dataset.layout = {"all": f"{folder} (classes from the file names, {pattern.pattern!r})"}
    return dataset
