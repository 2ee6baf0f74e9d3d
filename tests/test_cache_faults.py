"""A cache that is read-only or full, a run folder on a full disk, and Ctrl-C: clear answers, no tracebacks.

The tests run as root, where chmod makes nothing read-only, so each faulty folder is a real one:
a child process in its own mount namespace (``unshare -rm``) bind-mounts a folder read-only or
mounts a tiny tmpfs over it and fills it, then runs the CLI there. The warm parts of the session
cache (converted weights, ONNX, OpenVINO, templates) are copied into each test's cache so that
only features are computed.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from conftest import HYMENOPTERA, ctrl_c_reaches_child, make_image

CLI = [sys.executable, "-m", "keras_transfer.cli"]
WARM_PARTS = ("weights", "onnx", "openvino", "templates")  # everything but the features
FALLBACK = "keras-transfer-cache"


# Faults are real mounts in a child's own mount namespace (``unshare -rm``): the tests run as
# root, where chmod is ignored. Where namespaces are refused these tests fail, they do not skip.


def read_only(folder: Path) -> str:
    q = shlex.quote(str(folder))
    return f"mount --bind {q} {q} && mount -o remount,bind,ro {q}"


def full(folder: Path) -> str:
    """A 1 MB tmpfs over ``folder``, filled to the last byte (files can still be created, not written)."""
    q = shlex.quote(str(folder))
    return f"mount -t tmpfs -o size=1m tmpfs {q} && (dd if=/dev/zero of={q}/filler bs=64k 2>/dev/null || true)"


def isolated(setup: list[str], argv: list[str], env: dict) -> subprocess.CompletedProcess:
    """Runs ``argv`` after the shell lines ``setup``, in a private mount namespace."""
    script = "set -e\n" + "\n".join(setup) + '\nexec "$@"'
    return subprocess.run(["unshare", "-rm", "sh", "-c", script, "sh", *argv], env=env, capture_output=True,
                          text=True, timeout=300)


@pytest.fixture(scope="module")
def colours(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("faults") / "colours"
    for name, colour in (("red", (230, 30, 30)), ("blue", (30, 30, 230))):
        for i in range(8):
            make_image(root / name / f"{name}_{i}.png", colour)
    return root


@pytest.fixture(scope="module")
def reference(isolated_cache, colours, tmp_path_factory) -> Path:
    """A normal run on ``colours`` in the session cache, which it warms (weights, ONNX, templates)."""
    out = tmp_path_factory.mktemp("faults") / "reference"
    done = subprocess.run([*CLI, "train", str(colours), "--out", str(out), "--no-baseline", "--quiet"],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    return out


@pytest.fixture
def env(reference, isolated_cache, tmp_path) -> dict:
    """A fresh cache root (``cache``) and temp folder (``tmp``, holding the fallback cache), both warm."""
    for root in (tmp_path / "cache", tmp_path / "tmp" / FALLBACK):
        for part in WARM_PARTS:
            if (isolated_cache / part).is_dir():
                shutil.copytree(isolated_cache / part, root / part)
        (root / "features").mkdir()
    return {**os.environ, "KERAS_TRANSFER_CACHE": str(tmp_path / "cache"), "TMPDIR": str(tmp_path / "tmp")}


def train(colours: Path, out: Path) -> list[str]:
    return [*CLI, "train", str(colours), "--out", str(out), "--no-baseline"]


def assert_same_run(out: Path, reference: Path) -> None:
    assert json.loads((out / "metrics.json").read_text())["n"] == json.loads((reference / "metrics.json").read_text())["n"]
    with np.load(out / "predictions.npz") as got, np.load(reference / "predictions.npz") as want:
        np.testing.assert_array_equal(got["ids"], want["ids"])
        np.testing.assert_allclose(got["probabilities"], want["probabilities"], rtol=1e-4, atol=1e-5)


def no_traceback(done: subprocess.CompletedProcess) -> None:
    assert "Traceback" not in done.stderr, done.stderr


@pytest.mark.parametrize("fault", ["read-only", "full"])
def test_unusable_cache_root_falls_back_to_the_temp_folder(fault, colours, reference, env, tmp_path):
    root, fallback = tmp_path / "cache", tmp_path / "tmp" / FALLBACK
    done = isolated([read_only(root) if fault == "read-only" else full(root)], train(colours, tmp_path / "run"), env)
    assert done.returncode == 0, done.stderr
    no_traceback(done)
    warnings = [line for line in done.stderr.splitlines() if line.startswith("warning: cache folder")]
    assert len(warnings) == 1, done.stderr
    assert str(root) in warnings[0] and str(fallback) in warnings[0] and "KERAS_TRANSFER_CACHE" in warnings[0]
    assert ("is not writable" if fault == "read-only" else "MB free") in warnings[0]
    assert (fallback / "features" / "features.sqlite").is_file()  # the run's features went to the fallback
    assert_same_run(tmp_path / "run", reference)


def test_no_usable_cache_folder_is_one_error_naming_both(colours, env, tmp_path):
    root, fallback = tmp_path / "cache", tmp_path / "tmp" / FALLBACK
    done = isolated([read_only(root), read_only(fallback)], train(colours, tmp_path / "run"), env)
    assert done.returncode == 1, done.stderr
    no_traceback(done)
    assert "error: no usable cache folder" in done.stderr and str(root) in done.stderr
    assert str(fallback) in done.stderr and "KERAS_TRANSFER_CACHE" in done.stderr


@pytest.mark.parametrize("fault", ["read-only", "full"])
def test_unwritable_feature_cache_keeps_features_in_memory(fault, colours, reference, env, tmp_path):
    features = tmp_path / "cache" / "features"
    done = isolated([read_only(features) if fault == "read-only" else full(features)],
                    train(colours, tmp_path / "run"), env)
    assert done.returncode == 0, done.stderr
    no_traceback(done)
    warnings = [line for line in done.stderr.splitlines() if line.startswith("warning:")]
    assert len(warnings) == 1, done.stderr
    assert f"feature cache {features / 'features.sqlite'} cannot be written" in warnings[0]
    assert "in memory only" in warnings[0] and "KERAS_TRANSFER_CACHE" in warnings[0]
    assert not any(features.iterdir())  # the real folder under the mount got nothing
    assert_same_run(tmp_path / "run", reference)


def test_run_folder_on_a_full_disk_is_one_line(colours, env, tmp_path):
    out = tmp_path / "run"
    out.mkdir()
    done = isolated([full(out)], train(colours, out), env)
    assert done.returncode == 1, done.stderr
    no_traceback(done)
    errors = [line for line in done.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and errors[0].startswith(f"error: No space left on device: {out}{os.sep}"), done.stderr
    assert "free some space" in errors[0]


_UNIT = """
import json, sys
import numpy as np
from keras_transfer.features.cache import FeatureCache
vector = np.arange(4, dtype=np.float32)
result = {}
for name in sys.argv[1:]:
    cache = FeatureCache(name)
    cache.register("id", {"backbone": "x"})
    cache.put("id", [("orig", "c0ffee", vector)])
    got = dict(cache.get("id", "orig", ["c0ffee", "missing"]))
    result[name] = [cache.in_memory, got["c0ffee"].tolist(), sorted(got), cache.count()]
print(json.dumps(result))
"""


def test_feature_cache_on_an_unusable_folder_works_in_memory(tmp_path):
    folders = {kind: tmp_path / kind for kind in ("read-only", "full", "corrupt-read-only", "missing-read-only")}
    for folder in folders.values():
        folder.mkdir()
    (folders["corrupt-read-only"] / "features.sqlite").write_bytes(b"not a database" * 100)
    missing = folders["missing-read-only"] / "features"  # cannot even be created
    names = [str(folders["read-only"]), str(folders["full"]), str(folders["corrupt-read-only"]), str(missing)]
    setup = [read_only(folders["read-only"]), full(folders["full"]), read_only(folders["corrupt-read-only"]),
             read_only(folders["missing-read-only"])]
    done = isolated(setup, [sys.executable, "-c", _UNIT, *names], dict(os.environ))
    assert done.returncode == 0, done.stderr
    no_traceback(done)
    result = json.loads(done.stdout)
    for name in names:
        assert result[name] == [True, [0.0, 1.0, 2.0, 3.0], ["c0ffee"], 1], name
    warnings = [line for line in done.stderr.splitlines() if line.startswith("warning:")]
    assert len(warnings) == 4 and all("cannot be written" in w and "in memory only" in w for w in warnings)
    assert "moving it aside failed" in warnings[2]
    assert (folders["corrupt-read-only"] / "features.sqlite").read_bytes() == b"not a database" * 100


def _committed(db: Path) -> int:
    if not db.exists():
        return 0
    try:
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5) as connection:
            return connection.execute("SELECT COUNT(*) FROM features").fetchone()[0]
    except sqlite3.Error:  # not created yet
        return 0


def _extracted(stderr: str) -> int:
    """Views the runtime computed, from the one-line summaries of each features phase."""
    return sum(int(n) for n in re.findall(r"^features \w+ \([^)]*\): (\d+) img", stderr, re.MULTILINE))


def test_ctrl_c_exits_130_and_keeps_the_features_extracted(env, tmp_path):
    db = tmp_path / "cache" / "features" / "features.sqlite"
    argv = [*CLI, "train", str(HYMENOPTERA), "--out", str(tmp_path / "run"), "--max-per-class", "60",
            "--no-baseline"]
    worker = subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                              preexec_fn=ctrl_c_reaches_child)
    try:
        deadline = time.monotonic() + 120
        while _committed(db) == 0:
            assert worker.poll() is None and time.monotonic() < deadline, "train ended before the interrupt"
            time.sleep(0.05)
        worker.send_signal(signal.SIGINT)
        _, stderr = worker.communicate(timeout=60)
    finally:
        worker.kill()
        worker.wait()
    assert worker.returncode == 130, stderr
    assert "Traceback" not in stderr, stderr
    assert "interrupted: features extracted so far stay in the feature cache" in stderr
    kept = _committed(db)
    assert kept > 0
    again = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=300)
    assert again.returncode == 0, again.stderr
    total = _committed(db)
    assert kept < total and _extracted(again.stderr) == total - kept  # only the rest was extracted
