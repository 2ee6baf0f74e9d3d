"""Options at and past their bounds: refused with exit 2 and the allowed range, before any work;
every --json print and written file is strict JSON."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from keras_transfer.cli import main

BAD = [  # (option, value, what the message says is allowed)
    ("--epochs", "0", ">= 1"), ("--epochs", "-3", ">= 1"),
    ("--batch-size", "0", "from 1 to 65536"), ("--batch-size", "10000000", "from 1 to 65536"),
    ("--lr", "0", "(0, 10]"), ("--lr", "nan", "(0, 10]"), ("--lr", "-1e-3", "(0, 10]"),
    ("--dropout", "1", "[0, 1)"), ("--patience", "-1", ">= 0"),
    ("--val-fraction", "0", "(0, 1)"), ("--val-fraction", "1.5", "(0, 1)"),
    ("--test-fraction", "-0.1", "[0, 1)"), ("--max-per-class", "0", ">= 1"),
    ("--time-budget", "0", "> 0"), ("--time-budget", "inf", "> 0"),
    ("--input-size", "8", "at least 32"), ("--input-size", "100000", "at most 4096"),
    ("--augment-views", "-1", "from 0 to 100"), ("--tta-views", "1000", "from 0 to 100"),
    ("--seed", "-1", "2**32"), ("--mixup", "-0.5", "[0, 10]"), ("--label-smoothing", "1", "[0, 1)"),
]


@pytest.mark.parametrize("option, value, allowed", BAD, ids=[f"{o}={v}" for o, v, _ in BAD])
def test_train_refuses_an_option_out_of_range_with_the_range(option, value, allowed, tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["train", "digits", f"{option}={value}", "--out", str(out), "-q"]) == 2
    err = capsys.readouterr().err
    assert option in err or "input size" in err, err
    assert allowed in err and "Traceback" not in err
    assert not (out / "model.keras").exists()  # refused before any work


def test_fractions_must_leave_images_to_train_on(tmp_path, capsys):
    assert main(["train", "digits", "--val-fraction", "0.6", "--test-fraction", "0.5", "--out", str(tmp_path), "-q"]) == 2
    assert "below 1" in capsys.readouterr().err


@pytest.mark.parametrize("argv", [["train", "--epochs", "x"], ["train", "--lr", ""], ["predict", "r", "i", "--top-k", "2.5"],
                                  ["serve", "r", "--port", "http"]])
def test_non_numbers_are_refused_by_the_parser(argv, capsys):
    with pytest.raises(SystemExit) as exit_:
        main(argv)
    assert exit_.value.code == 2 and "invalid" in capsys.readouterr().err


def test_predict_top_k_zero_is_refused(ants_run, capsys):
    assert main(["predict", str(ants_run.path), "x.jpg", "--top-k", "0"]) == 2
    assert "invalid --top-k" in capsys.readouterr().err


@pytest.mark.parametrize("top_k", [0, -1, 2.5, True])
def test_the_python_predict_refuses_what_the_cli_refuses(ants_run, top_k):
    from keras_transfer.base.errors import ConfigError
    from keras_transfer.run import predict

    with pytest.raises(ConfigError, match="invalid --top-k"):
        predict(ants_run, ["x.jpg"], top_k=top_k)


@pytest.mark.parametrize("limits, port, message", [({"max_files": 0}, 8000, "invalid --max-files"),
                                                   ({"max_wait_ms": -1.0}, 8000, "invalid --max-wait-ms"),
                                                   ({"max_batch": 2.5}, 8000, "invalid --max-batch"),
                                                   ({}, 0, "invalid --port"), ({}, 70000, "invalid --port")])
def test_the_python_serve_refuses_what_the_cli_refuses(ants_run, limits, port, message, capsys):
    """``serve()`` checks before uvicorn starts; the CLI's messages are the same ones."""
    from keras_transfer.base.errors import ConfigError
    from keras_transfer.serve import Limits, serve

    with pytest.raises(ConfigError, match=message):
        serve([str(ants_run.path)], port=port, limits=Limits(**limits))
    if limits and "max_batch" not in limits:
        flag = message.removeprefix("invalid ")
        value = "0" if "files" in flag else "-1"
        assert main(["serve", str(ants_run.path), flag, value]) == 2
        assert message in capsys.readouterr().err


def test_strict_json_turns_nan_and_infinity_into_null(tmp_path):
    from keras_transfer.base.paths import strict_json, write_json

    data = {"a": float("nan"), "b": [1.5, float("inf")], "c": np.float32(0.25), "d": np.array([1, 2]),
            "e": {"f": -math.inf}}
    text = strict_json(data)
    assert json.loads(text) == {"a": None, "b": [1.5, None], "c": 0.25, "d": [1, 2], "e": {"f": None}}
    write_json(tmp_path / "x.json", data)
    json.loads((tmp_path / "x.json").read_text(), parse_constant=lambda name: pytest.fail(f"{name} in the file"))


def test_every_json_of_a_run_is_strict(ants_run, capsys):
    """The run's files and `evaluate --json` parse with NaN and Infinity refused."""
    def strict(text: str):
        return json.loads(text, parse_constant=lambda name: pytest.fail(f"{name} is not JSON"))

    for path in ants_run.path.glob("*.json"):
        strict(path.read_text())
    assert main(["evaluate", str(ants_run.path), "--json", "-q"]) == 0
    assert strict(capsys.readouterr().out)["n"] == 153
