"""Messages, progress and tables: logging with one stderr handler, one line per phase off a terminal."""

from __future__ import annotations

import pytest

from keras_transfer.base import log


@pytest.fixture(autouse=True)
def loud():
    """Each test starts from the default level (an earlier `main([... "-q"])` leaves it quiet)."""
    log.set_quiet(False)
    yield
    log.set_quiet(False)


def test_progress_off_a_terminal_is_one_line_per_phase(capsys):
    for _ in log.progress(range(50), desc="features train", unit="img"):
        pass
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "\r" not in err
    assert err.startswith("features train: 50 img in ") and "img/s" in err


def test_quiet_silences_info_and_progress_but_not_warnings(capsys):
    try:
        log.set_quiet(True)
        log.info("hidden")
        for _ in log.progress(range(3), desc="hidden too"):
            pass
        log.warn("shown")
    finally:
        log.set_quiet(False)
    assert capsys.readouterr().err == "warning: shown\n"


def test_logged_exceptions_keep_their_traceback(capsys):
    try:
        raise ValueError("the cause")
    except ValueError:
        log.logger.exception("loading failed")
    err = capsys.readouterr().err
    assert err.startswith("warning: loading failed\nTraceback") and "ValueError: the cause" in err


def test_table_aligns_numbers_right_and_leaves_missing_cells_blank():
    text = log.table(["run", "epochs", "accuracy"], [["a", 3, 0.5], ["bb", None, 0.25]])
    lines = text.splitlines()
    assert lines[0].split() == ["run", "epochs", "accuracy"]
    assert lines[2].split() == ["a", "3", "0.5000"] and lines[3].split() == ["bb", "0.2500"]
    assert lines[2].index("0.5000") == lines[3].index("0.2500")  # right-aligned in one column
    assert lines[2].rstrip().endswith("0.5000") and lines[3].rstrip().endswith("0.2500")
