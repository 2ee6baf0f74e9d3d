"""The run report on a real dataset (hymenoptera): content, data, PDF, CLI, and rendering in headless Chromium."""

from __future__ import annotations

import base64
import io
import json
import re
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import keras_transfer  # noqa: F401  (selects the torch backend before keras is imported)
from keras_transfer.cli import main
from keras_transfer.evaluation.predictions import Predictions
from keras_transfer.run import Files
from keras_transfer.report import ReportOptions, build_report, write_report

SECTIONS = ("summary", "metrics", "confusion", "curves", "mistakes", "calibration", "dataset", "audit")
CHROMIUM_FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync",
                  "--hide-scrollbars", "--enable-logging=stderr", "--v=0")


@pytest.fixture(scope="module")
def run(ants_run):
    """The session's default bottleneck run on hymenoptera (conftest)."""
    return ants_run


@pytest.fixture(scope="module")
def written(run, tmp_path_factory):
    return write_report(run, tmp_path_factory.mktemp("report"), pdf=True)


class Page(HTMLParser):
    """Collects section ids, image sources, links and scripts of an HTML page."""

    def __init__(self, text: str):
        super().__init__()
        self.sections, self.images, self.links, self.scripts = [], [], [], 0
        self.feed(text)

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "section":
            self.sections.append(attrs.get("id"))
        elif tag == "img":
            self.images.append(attrs.get("src", ""))
        elif tag == "script":
            self.scripts += 1
        if tag in ("a", "link") and attrs.get("href"):
            self.links.append(attrs["href"])


def chromium() -> str:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        if found := shutil.which(name):
            return found
    pytest.fail("Chromium is needed to test the report: `make install` installs it (apt-get install chromium)")


def open_in_chromium(page: Path, profile: Path, *action: str) -> subprocess.CompletedProcess:
    command = [chromium(), *CHROMIUM_FLAGS, f"--user-data-dir={profile}", *action, page.as_uri()]
    return subprocess.run(command, capture_output=True, text=True, timeout=180)


def console_messages(stderr: str) -> list[str]:
    """Lines Chromium logs for page console output and uncaught errors."""
    return [line for line in stderr.splitlines() if ":CONSOLE" in line or "Uncaught" in line]


def test_console_check_catches_page_errors(tmp_path):
    """Control: the console check used below does see a page that logs errors."""
    bad = tmp_path / "bad.html"
    bad.write_text('<!DOCTYPE html><p>x</p><script>console.error("boom"); missingFunction();</script>')
    messages = console_messages(open_in_chromium(bad, tmp_path / "profile", "--dump-dom").stderr)
    assert any("boom" in m for m in messages) and any("Uncaught" in m for m in messages)


def test_report_renders_in_chromium(written, tmp_path):
    shot = tmp_path / "shot.png"
    result = open_in_chromium(written.html, tmp_path / "profile", f"--screenshot={shot}", "--window-size=1280,4000")
    assert result.returncode == 0, result.stderr[-2000:]
    assert console_messages(result.stderr) == []
    screenshot = np.asarray(Image.open(shot).convert("RGB"))
    assert screenshot.shape == (4000, 1280, 3)
    colours = len(np.unique(screenshot.reshape(-1, 3)[::7], axis=0))
    assert colours > 2000 and (screenshot < 200).any(axis=2).mean() > 0.05  # figures and text, not a blank page
    dom = open_in_chromium(written.html, tmp_path / "profile2", "--dump-dom")
    assert console_messages(dom.stderr) == []
    rendered = Page(dom.stdout)
    assert rendered.sections == list(SECTIONS)
    assert len(rendered.images) == len(written.figures)


def test_report_is_one_self_contained_file(written):
    text = written.html.read_text()
    page = Page(text)
    assert page.sections == list(SECTIONS) and page.scripts == 0
    assert all(link.startswith("#") for link in page.links)
    assert not re.search(r"(src|href)=\"(https?:|//|file:)", text) and "url(" not in text
    assert len(page.images) == len(written.figures) >= 9
    for source, figure in zip(page.images, written.figures):
        assert source.startswith("data:image/png;base64,")
        png = base64.b64decode(source.split(",", 1)[1], validate=True)
        assert png == figure.read_bytes()  # the same figure is saved beside the report
        Image.open(io.BytesIO(png)).verify()
    pdf = written.pdf.read_bytes()
    assert pdf.startswith(b"%PDF") and len(re.findall(rb"/Type\s*/Page\b", pdf)) == len(written.figures) + 1


def test_report_data_agrees_with_the_run(run, written):
    report, metrics = written.report, run.read("metrics.json")
    table = report.section("metrics").data["bootstrap"].set_index(["metric", "class"])
    assert table.loc[("accuracy", ""), "estimate"] == pytest.approx(metrics["accuracy"])
    assert table.loc[("log_loss", ""), "estimate"] == pytest.approx(metrics["log_loss"], rel=1e-5)
    assert table.loc[("accuracy", ""), "low"] < metrics["accuracy"] < table.loc[("accuracy", ""), "high"]
    confusion = report.section("confusion").data["confusion_matrix"]
    assert confusion.to_numpy().tolist() == metrics["confusion_matrix"]
    mistakes = report.section("mistakes").data["mistakes"]
    assert len(mistakes) == min(12, metrics["n"] - int(np.trace(confusion.to_numpy())))
    assert (mistakes["true"] != mistakes["predicted"]).all() and mistakes["confidence"].is_monotonic_decreasing
    assert report.section("calibration").data["calibration"].counts.sum() == metrics["n"]
    assert report.section("curves").data["history"] == run.read("history.json")


def test_dataset_exploration_reads_the_real_files(run, written):
    data = written.report.section("dataset").data
    counts, sizes = data["counts"], data["sizes"]
    assert counts.loc["ants"].tolist() == [124, 70, 194] and counts.loc["bees", "total"] == 204
    assert len(sizes) == 200 and set(sizes["class"]) == {"ants", "bees"}
    for row in sizes.sample(5, random_state=0).itertuples():
        with Image.open(row.id) as image:  # header sizes are the decoded sizes
            assert image.size == (row.width, row.height)
    for density in data["colour_densities"].values():
        assert density.shape == (3, 256) and np.allclose(density.sum(axis=1), 1)
    ants, bees = data["colour_densities"]["ants"], data["colour_densities"]["bees"]
    assert 0.01 < np.abs(ants - bees).sum() / 6 < 0.5  # two classes, two colour distributions


def test_report_without_saved_predictions_recomputes_them(run, tmp_path):
    copy = tmp_path / "run"
    shutil.copytree(run.path, copy, ignore=shutil.ignore_patterns("report"))
    (copy / Files.PREDICTIONS).unlink()
    report = build_report(copy, ReportOptions(sample=20, resamples=50))
    assert (copy / Files.PREDICTIONS).is_file()
    again, original = Predictions.load(copy / Files.PREDICTIONS), Predictions.load(run.path / Files.PREDICTIONS)
    np.testing.assert_array_equal(again.ids, original.ids)
    np.testing.assert_allclose(again.probabilities, original.probabilities, atol=1e-5)
    assert [s.id for s in report.sections] == list(SECTIONS)


def test_cli_report(run, tmp_path, capsys):
    assert main(["report", str(run.path), "--out", str(tmp_path), "--sample", "30", "--json", "-q"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert Path(out["html"]).is_file() and out["pdf"] is None and len(out["figures"]) >= 9
    assert main(["report", str(tmp_path / "no-run"), "-q"]) == 1
    assert "run folder not found" in capsys.readouterr().err
    assert main(["report", str(run.path), "--out", str(tmp_path), "--sample", "0", "-q"]) == 2
    assert "invalid report option sample" in capsys.readouterr().err
