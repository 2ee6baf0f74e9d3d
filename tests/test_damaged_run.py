"""Every file of a run folder missing, empty or garbage: predict, evaluate and report either
still work or stop with exit 1 and a message that names the file and what to do."""

from __future__ import annotations

import shutil

import pytest

from conftest import HYMENOPTERA

FILES = ["config.json", "class_names.json", "metrics.json", "calibration.json", "predictions.npz",
         "model.keras", "head.npz", "unknown.npz"]
DAMAGE = {"missing": None, "empty": b"", "garbage": b"\x00\xffnot what train wrote\x89PNG{[\"" * 8}
BEE = sorted((HYMENOPTERA / "val" / "bees").iterdir())[0]


@pytest.mark.parametrize("damage", DAMAGE)
@pytest.mark.parametrize("name", FILES)
def test_a_damaged_run_file_gets_a_clear_message(ants_run, tmp_path, capsys, name, damage):
    from keras_transfer.cli import main

    run = tmp_path / "run"
    shutil.copytree(ants_run.path, run, ignore=shutil.ignore_patterns("features", "export", "report"))
    (run / name).unlink()
    if DAMAGE[damage] is not None:
        (run / name).write_bytes(DAMAGE[damage])
    commands = [["predict", str(run), str(BEE)], ["evaluate", str(run)]]
    if name in ("predictions.npz", "metrics.json", "class_names.json"):
        commands.append(["report", str(run), "--out", str(tmp_path / "report"), "--sample", "10"])
    for command in commands:
        code = main([*command, "-q"])  # an exception here would be a traceback for the user
        err = capsys.readouterr().err
        assert code in (0, 1), (command, code, err)
        if code == 1:
            assert name in err and ("train again" in err or "re-run train" in err), (command, err)
        assert "Traceback" not in err
