"""``collect`` against a real HTTP server on a loopback port (tests/collect_server.py)."""

from __future__ import annotations

import csv
import hashlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from PIL import Image

from collect_server import Site
from conftest import ctrl_c_reaches_child
from keras_transfer.base.errors import ConfigError, DatasetError
from keras_transfer.collect import CollectOptions, collect, read_urls

FAST = CollectOptions(timeout=0.5, retries=1, backoff=0.05, max_bytes=2 * 2**20, val_fraction=0.25)


@pytest.fixture
def site():
    site = Site(slow=16, delay=0.25)
    server = site.serve()
    site.base = f"http://127.0.0.1:{server.server_port}"
    yield site
    site.close(server)


def tree(folder: Path, skip: Path | None = None) -> set[str]:
    return {str(p.relative_to(folder)) for p in folder.rglob("*") if skip is None or skip not in (p, *p.parents)}


def report(out: Path) -> dict[str, list[dict]]:
    rows: dict[str, list[dict]] = {}
    with open(out / "collect_report.csv", newline="") as handle:
        for row in csv.DictReader(handle):
            rows.setdefault(row["url"].rsplit("/", 1)[-1], []).append(row)
    return rows


def write_list(site, path: Path) -> Path:
    b = site.base
    lines = [("url", "label"), (f"{b}/good.jpg", "ants"), (f"{b}/good.png", "ants"), (f"{b}/good.webp", "bees"),
             (f"{b}/same-a.jpg", "bees"), (f"{b}/same-b.jpg", "ants"), (f"{b}/resized.jpg", "bees"),
             (f"{b}/flaky.jpg", "ants"), (f"{b}/busy.jpg", "bees"), (f"{b}/moved.jpg", "../../outside"),
             (f"{b}/a/../../../escape.jpg", "bees"), (f"{b}/%2e%2e/%2e%2e/escape-again.jpg", "bees"),
             (f"{b}/page.jpg", "ants"), (f"{b}/missing.jpg", "ants"), (f"{b}/hang.jpg", "bees"),
             (f"{b}/loop-a", "bees"), (f"{b}/huge.jpg", "ants"), (f"{b}/tiny.png", "ants"),
             (f"{b}/to-file.jpg", "ants"), ("ftp://127.0.0.1/x.jpg", "ants"), ("file:///etc/passwd", "ants"),
             (f"{b}/good.jpg", "bees")]
    path.write_text("\n".join(",".join(line) for line in lines) + "\n")
    return path


def test_collect_sorts_checks_deduplicates_and_reports(site, tmp_path):
    urls = write_list(site, tmp_path / "urls.csv")
    (tmp_path / "cwd").mkdir()
    before = tree(tmp_path)
    out = tmp_path / "data"
    cwd = os.getcwd()
    os.chdir(tmp_path / "cwd")
    try:
        summary = collect(urls, out, FAST)
    finally:
        os.chdir(cwd)
    assert tree(tmp_path, skip=out) == before  # nothing written outside --out
    rows = report(out)
    status = {name: [(r["status"], r["reason"]) for r in group] for name, group in rows.items()}
    for name in ("good.png", "good.webp", "flaky.jpg", "busy.jpg", "moved.jpg"):
        assert status[name] == [("saved", "")], name
    assert status["good.jpg"] == [("saved", ""), ("duplicate", "")]
    assert status["page.jpg"] == [("failed", "not_an_image")]
    assert status["missing.jpg"] == [("failed", "http_status")] and rows["missing.jpg"][0]["http_status"] == "404"
    assert status["hang.jpg"] == [("failed", "timeout")]
    assert status["loop-a"] == [("failed", "too_many_redirects")] and "loop" in rows["loop-a"][0]["detail"]
    assert status["huge.jpg"] == [("failed", "too_large")]
    assert status["tiny.png"] == [("failed", "too_small")]
    assert status["to-file.jpg"] == status["x.jpg"] == status["passwd"] == [("failed", "unsupported_scheme")]
    # the same photo under two escaping URLs, fetched at once: whichever lands first is kept, the other is its copy
    escapes = [rows[n][0] for n in ("escape.jpg", "escape-again.jpg")]
    assert sorted(r["status"] for r in escapes) == ["duplicate", "saved"]
    assert all(r["duplicate_of"] == escapes[0]["sha256"] for r in escapes if r["status"] == "duplicate")
    copies = [rows[n][0] for n in ("same-a.jpg", "same-b.jpg", "resized.jpg")]
    assert sorted(r["status"] for r in copies).count("saved") == 1
    assert {r["status"] for r in copies} - {"saved"} <= {"duplicate", "near_duplicate"}
    kept = next(r["sha256"] for r in copies if r["status"] == "saved")
    assert all(r["duplicate_of"] == kept for r in copies if r["status"] != "saved")
    assert "near_duplicate" in {r["status"] for r in copies} or rows["resized.jpg"][0]["status"] == "saved"
    # retries: 500 then fine, 429 with Retry-After: 1 honoured; schemes other than http never asked for
    assert site.hits["/flaky.jpg"] == 2 and rows["flaky.jpg"][0]["attempts"] == "2"
    assert site.times["/busy.jpg"][1] - site.times["/busy.jpg"][0] >= 0.95
    assert site.hits["/hang.jpg"] == 2
    # the dataset on disk: 8 distinct images, named by content, split per class
    files = sorted(p for p in out.rglob("*") if p.is_file() and ".collect" not in p.parts and p.suffix != ".csv")
    assert len(files) == summary["saved"] == 8
    for file in files:
        assert file.stem == hashlib.sha256(file.read_bytes()).hexdigest()
        with Image.open(file) as image:
            assert {"JPEG": ".jpg", "PNG": ".png", "WEBP": ".webp"}[image.format] == file.suffix
    layout = {str(f.parent.relative_to(out)) for f in files}
    assert layout == {"train/ants", "val/ants", "train/bees", "val/bees", "train/outside"}
    assert {f.suffix for f in files} == {".jpg", ".png", ".webp"}
    assert not list((out / ".collect" / "pool").iterdir())
    for row in (r for group in rows.values() for r in group if r["file"]):
        assert (out / row["file"]).is_file()
    # a second run fetches only what failed for a passing reason (the timeout), nothing saved again
    hits = dict(site.hits)
    again = collect(urls, out, FAST)
    assert again["saved"] == 8 and again["fetched"] == 1
    assert {p: n for p, n in site.hits.items() if n != hits.get(p)} == {"/hang.jpg": 4}
    assert sorted(p for p in out.rglob("*") if p.is_file() and ".collect" not in p.parts and p.suffix != ".csv") == files


def slow_list(site, path: Path, count: int = 16) -> Path:
    path.write_text("".join(f"{site.base}/slow/{i}.jpg\n" for i in range(count)))
    return path


def _start(urls: Path, out: Path, cwd: Path) -> subprocess.Popen:
    code = "import sys; from keras_transfer.cli import main; sys.exit(main(sys.argv[1:]))"
    return subprocess.Popen([sys.executable, "-c", code, "collect", str(urls), "--out", str(out), "--per-host", "2",
                             "--quiet"], cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=ctrl_c_reaches_child)


def _lines(out: Path) -> int:
    state = out / ".collect" / "state.jsonl"
    return len(state.read_text().splitlines()) if state.exists() else 0


def _interrupt(process: subprocess.Popen, out: Path, after: int, sig: int) -> tuple[int, str]:
    deadline = time.monotonic() + 60
    while _lines(out) < after and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    process.send_signal(sig)
    _, err = process.communicate(timeout=60)
    return process.returncode, err


def test_collect_interrupted_by_sigint_and_sigterm_resumes(site, tmp_path):
    urls = slow_list(site, tmp_path / "urls.txt")
    out, cwd = tmp_path / "data", tmp_path / "cwd"
    cwd.mkdir()
    before = tree(tmp_path)
    code, err = _interrupt(_start(urls, out, cwd), out, 3, signal.SIGINT)
    assert code == 130 and "interrupted" in err
    first = _lines(out)
    assert 3 <= first < 16
    assert {r["status"] for group in report(out).values() for r in group} == {"saved", "pending"}
    done_first = {f"/slow/{i}.jpg" for i in range(16) if site.hits[f"/slow/{i}.jpg"]}
    code, err = _interrupt(_start(urls, out, cwd), out, first + 3, signal.SIGTERM)
    assert code == 130 and "interrupted" in err
    assert first + 3 <= _lines(out) < 16
    finish = _start(urls, out, cwd)
    _, err = finish.communicate(timeout=120)
    assert finish.returncode == 0, err
    assert tree(tmp_path, skip=out) == before
    files = sorted((out / "images").iterdir())
    assert len(files) == 16 and not list((out / ".collect" / "pool").iterdir())
    assert all(f.stem == hashlib.sha256(f.read_bytes()).hexdigest() for f in files)
    assert not [p for p in out.rglob("*") if ".tmp" in p.name]
    # what was saved before an interruption is never downloaded again; at most the downloads in
    # flight when a signal came (2 connections) are asked for twice
    assert sum(site.hits.values()) <= 16 + 2 * 2
    assert all(site.hits[p] <= 2 for p in done_first)
    assert {r["status"] for group in report(out).values() for r in group} == {"saved"}


def test_collect_refuses_bad_input(tmp_path):
    with pytest.raises(DatasetError):
        read_urls(tmp_path / "nothing.txt")
    (tmp_path / "empty.csv").write_text("name,label\nfoo,bar\n")
    with pytest.raises(DatasetError, match="no URL"):
        read_urls(tmp_path / "empty.csv")
    with pytest.raises(ConfigError):
        CollectOptions(per_host=0)
    (tmp_path / "table.tsv").write_text("label\tsplit\tlink\ncat\ttesting\thttp://x/a.jpg\ndog\t\thttp://x/b.jpg\n")
    items = read_urls(tmp_path / "table.tsv")
    assert [(i.url, i.label, i.split) for i in items] == [("http://x/a.jpg", "cat", "test"), ("http://x/b.jpg", "dog", None)]
