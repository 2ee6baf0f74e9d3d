"""``serve --token`` / ``$KERAS_TRANSFER_TOKEN``: the real server (a child process on a loopback port) refuses
API requests without ``Authorization: Bearer <token>`` (401, the app's JSON error shape); ``/v1/health`` and
the page stay open; the page asks for the token once. Binding a non-loopback address without a token warns."""

from __future__ import annotations

import os

import httpx
import pytest

from conftest import HYMENOPTERA
from keras_transfer.serve.process import ServerProcess

TOKEN = "s3cret-Token_42"
BEE, ANT = sorted((HYMENOPTERA / "val" / "bees").iterdir())[0], sorted((HYMENOPTERA / "val" / "ants").iterdir())[0]


@pytest.fixture(scope="module")
def guarded(ants_run):
    with ServerProcess([ants_run.path], ["--token", TOKEN]) as server:
        yield server


def _photo(path):
    return [("files", (path.name, path.read_bytes(), "image/jpeg"))]


def test_every_api_request_needs_the_bearer_token(guarded):
    url = guarded.url
    for method, path, extra in (("GET", "/v1/models", {}), ("POST", "/v1/predict", {"files": _photo(BEE)}),
                                ("POST", "/v1/explain", {"files": _photo(BEE)}), ("GET", "/openapi.json", {})):
        for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": TOKEN}):
            answer = httpx.request(method, url + path, headers=headers, timeout=60, **extra)
            assert answer.status_code == 401, (path, headers)
            body = answer.json()
            assert body["status"] == 401 and "Authorization: Bearer" in body["error"] and TOKEN not in body["error"]
            assert answer.headers["www-authenticate"] == "Bearer"
    bearer = {"Authorization": f"Bearer {TOKEN}"}
    assert httpx.get(url + "/v1/models", headers=bearer).json()["models"][0]["classes"] == ["ants", "bees"]
    answer = httpx.post(url + "/v1/predict", files=_photo(BEE), headers=bearer, timeout=60)
    assert answer.status_code == 200 and answer.json()["results"][0]["label"] == "bees"
    assert httpx.get(url + "/v1/health").json()["status"] == "ok"  # open: for load balancers and probes
    page = httpx.get(url + "/")
    assert page.status_code == 200 and "TOKEN_REQUIRED = true" in page.text and TOKEN not in page.text


def test_token_from_the_environment_and_warning_on_open_address(ants_run):
    env = {**os.environ, "KERAS_TRANSFER_TOKEN": TOKEN}
    with ServerProcess([ants_run.path], env=env) as server:
        assert httpx.get(server.url + "/v1/models").status_code == 401
        assert httpx.get(server.url + "/v1/models", headers={"Authorization": f"Bearer {TOKEN}"}).status_code == 200
        assert "TOKEN_REQUIRED = false" not in httpx.get(server.url + "/").text
    assert "without a token" not in server.log
    env.pop("KERAS_TRANSFER_TOKEN")
    with ServerProcess([ants_run.path], ["--host", "0.0.0.0"], env=env) as server:
        assert httpx.get(server.url + "/v1/models").status_code == 200
    assert "serving on 0.0.0.0 without a token" in server.log


def test_page_asks_for_the_token_once_and_classifies(guarded):
    """Headless Chromium (Debian's, through Playwright): one prompt, answered with the token; the model's facts
    and two photos' labels appear; no console error."""
    from playwright.sync_api import sync_playwright

    from test_report import chromium

    asked, errors = [], []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium(), args=["--no-sandbox", "--disable-gpu",
                                                                       "--disable-background-networking"])
        page = browser.new_page()
        page.on("dialog", lambda dialog: (asked.append(dialog.message), dialog.accept(TOKEN)))
        page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.goto(guarded.url + "/")
        page.wait_for_selector("#facts .fact")
        page.set_input_files("#picker", [str(BEE), str(ANT)])
        page.wait_for_function("document.querySelectorAll('.card .label').length == 2", timeout=60_000)
        labels = page.locator(".card .label").evaluate_all("nodes => nodes.map(n => n.firstChild.textContent)")
        assert page.evaluate("sessionStorage.getItem('keras-transfer-token')") == TOKEN
        browser.close()
    assert sorted(labels) == ["ants", "bees"]
    assert asked == ["This server needs a token:"] and not errors, (asked, errors)
