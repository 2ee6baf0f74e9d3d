"""The studio end to end in headless Chromium (Debian's, driven by Playwright) on a real server: train from
the page, open a confusion cell, find a planted wrong label, relabel it with the keyboard, refit and see the
before/after table change; apply to folder, undo, and the folder is identical byte for byte."""

from __future__ import annotations

from pathlib import Path

from keras_transfer.studio.process import StudioProcess
from studio_helpers import BACKBONE, hashes, planted_copy

ARTIFACTS = Path(__file__).resolve().parents[1] / "test-artifacts"  # gitignored; kept after the run


def test_the_loop_in_the_browser(tmp_path):
    from playwright.sync_api import sync_playwright

    from test_report import chromium

    data, planted = planted_copy(tmp_path)
    original = hashes(data)
    outside, errors = [], []
    with StudioProcess(data, ["--run", str(tmp_path / "run")]) as studio, sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium(), args=["--no-sandbox", "--disable-gpu",
                                                                       "--disable-background-networking"])
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        page.on("request", lambda r: None if r.url.startswith((studio.url, "data:")) else outside.append(r.url))
        page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.on("dialog", lambda dialog: dialog.accept())  # "apply to folder?"
        page.goto(studio.url + "/")
        page.fill("#backbone", BACKBONE)
        page.click("#trainbtn")
        page.wait_for_selector("#job.running")  # live progress while it trains
        page.wait_for_selector("#dash:not(.hidden)", timeout=180_000)
        assert "%" in page.inner_text("#acc") and "baseline" in page.inner_text("#basewhat")

        page.click('#cm td.cell[data-t="0"][data-p="1"]')  # true ants, predicted bees
        page.wait_for_selector(".tile")
        ids = page.locator(".tile").evaluate_all("tiles => tiles.map(t => t.dataset.id)")
        target = planted[0]
        assert target in ids, (target, ids)
        for _ in range(ids.index(target)):  # walk to it with the keyboard
            page.keyboard.press("j")
        assert page.get_attribute(".tile.cur", "data-id") == target  # (its drawer: test_studio_api, CAM included)
        page.keyboard.press("2")  # relabel to class 2: bees
        page.wait_for_selector(f'.tile[data-id="{target}"] .fixed')
        assert page.inner_text(f'.tile[data-id="{target}"] .cap').startswith("bees")
        ARTIFACTS.mkdir(exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / "studio-grid.png"))

        page.keyboard.press("r")  # refit
        page.wait_for_selector("#beforeafter", timeout=120_000)
        text = page.inner_text("#outcome")
        assert "touched held-out images" in text and target in text
        figure = lambda selector: float(page.inner_text(selector).rstrip("%"))  # noqa: E731
        assert figure("#acc-before") > figure("#orig-before")  # the fixed label counts: the run was right
        assert "refit-001" in page.inner_text("#where")  # the first screen is the refit run's now
        page.screenshot(path=str(ARTIFACTS / "studio-refit.png"), full_page=True)

        page.click("#apply")
        page.wait_for_selector("#applied", timeout=60_000)
        assert hashes(data) != original
        page.click("#undo")
        page.wait_for_selector("#undone", timeout=60_000)
        browser.close()
    assert hashes(data) == original  # byte for byte
    assert not outside and not errors, (outside, errors)
