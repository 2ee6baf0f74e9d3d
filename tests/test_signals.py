"""SIGTERM and SIGHUP stop ``train`` as Ctrl-C does: exit 130, one line saying what was kept, the features
extracted so far stay in the shared cache, and the run folder is complete or not there. Real ``train``
processes, signalled at several points, then run again."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import DATASETS
from keras_transfer.features.cache import FeatureCache
from keras_transfer.run import Run

FLOWERS = DATASETS / "flowers5"
pytestmark = pytest.mark.skipif(not FLOWERS.is_dir(), reason="needs ../shared/datasets/flowers5")


LITE0 = ["--backbone", "efficientnet_lite0"]  # one backbone: the stops are the same, the features 3x faster


def _start(out: Path, per_class: int) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "keras_transfer.cli", "train", str(FLOWERS), "--out", str(out),
                             "--max-per-class", str(per_class), *LITE0], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)


def _count() -> int:
    cache = FeatureCache()
    try:
        return cache.count()
    finally:
        cache.close()


def _catches(process: subprocess.Popen, sig: int) -> bool:
    """Whether the process has its own handler of ``sig`` yet (``SigCgt`` of /proc/PID/status)."""
    status = Path(f"/proc/{process.pid}/status").read_text()
    caught = int(next(line.split()[1] for line in status.splitlines() if line.startswith("SigCgt:")), 16)
    return bool(caught >> (sig - 1) & 1)


def _signal_when(process: subprocess.Popen, ready, sig: int, limit: float = 600) -> tuple[int, str]:
    """Sends ``sig`` once the process catches it and ``ready()`` is true; returns (exit code, stderr)."""
    deadline = time.monotonic() + limit
    while not (_catches(process, sig) and ready()) and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.1)
    assert process.poll() is None, f"train ended before the signal: {process.communicate()[1][-2000:]}"
    process.send_signal(sig)
    _, err = process.communicate(timeout=120)
    return process.returncode, err


def test_sigterm_during_features_keeps_them_and_leaves_no_half_run(tmp_path):
    out = tmp_path / "run"
    before = _count()
    code, err = _signal_when(_start(out, 100), lambda: _count() >= before + 40, signal.SIGTERM)
    kept = _count() - before
    assert code == 130, err
    last = err.strip().splitlines()[-1]
    assert last.startswith("interrupted by SIGTERM: features extracted so far stay in the feature cache"), last
    assert "no run folder was left" in last and "Traceback" not in err
    assert not out.exists()  # not there
    assert kept >= 40  # what was extracted before the signal is in the cache

    done = subprocess.run([sys.executable, "-m", "keras_transfer.cli", "train", str(FLOWERS), "--out", str(out),
                           "--max-per-class", "100", *LITE0, "--quiet"], capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr
    run = Run.open(out)  # complete
    assert run.config.max_per_class == 100 and (out / "metrics.json").is_file()
    assert _count() - before > kept  # the rest was extracted; the first part came from the cache

    # into a complete run, stopped during the features of more images: the earlier run stays as it was
    full = _count()
    code, err = _signal_when(_start(out, 140), lambda: _count() >= full + 40, signal.SIGTERM)
    assert code == 130 and "left as it was" in err.strip().splitlines()[-1], err
    assert Run.open(out).config.max_per_class == 100
    assert json.loads((out / "dataset.json").read_text())["splits"]["val"] == run.metrics["n"]


def test_sighup_before_any_feature_stops_cleanly(tmp_path):
    out = tmp_path / "early"
    process = _start(out, 100)
    code, err = _signal_when(process, lambda: True, signal.SIGHUP)
    assert code == 130 and "interrupted by SIGHUP" in err and "Traceback" not in err, err
    assert not out.exists()


def test_main_in_process_leaves_the_callers_signal_handlers_as_they_were(tmp_path):
    """A command run in-process (a notebook, a script, a test) and stopped by SIGTERM returns 130, and
    its caller still hears SIGTERM and Ctrl-C afterwards: the handlers are restored, not left ignored."""
    import threading

    from keras_transfer.cli import main

    before = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)}
    timer = threading.Timer(1.0, os.kill, (os.getpid(), signal.SIGTERM))
    timer.start()
    try:
        code = main(["train", str(FLOWERS), "--out", str(tmp_path / "run"), "--max-per-class", "300", "--quiet"])
    finally:
        timer.cancel()
    assert code == 130
    assert {s: signal.getsignal(s) for s in before} == before
    assert not (tmp_path / "run" / "metrics.json").exists()
