"""The real server (uvicorn, a child process on a loopback port) answered over HTTP with httpx."""

from __future__ import annotations

import asyncio
import io
import json
import shutil
import signal
from pathlib import Path

import httpx
import numpy as np
import pytest
from PIL import Image

from conftest import HYMENOPTERA

# uvicorn finishes in-flight requests on SIGTERM, then re-raises the signal (so does a shell's
# child); a server that hung would be killed (-SIGKILL) by ServerProcess.stop after 20 s.
CLEAN_EXIT = -signal.SIGTERM
BEES = sorted((HYMENOPTERA / "val" / "bees").iterdir())
ANTS = sorted((HYMENOPTERA / "val" / "ants").iterdir())


@pytest.fixture(scope="module")
def runs(ants_run, tmp_path_factory):
    """The default ants/bees run, and a copy of it calibrated at T = 2 (a second model to serve)."""
    warm = tmp_path_factory.mktemp("served") / "ants-t2"
    shutil.copytree(ants_run.path, warm, ignore=shutil.ignore_patterns("features", "export"))
    record = json.loads((warm / "calibration.json").read_text())
    (warm / "calibration.json").write_text(json.dumps({**record, "temperature": 2.0}))
    return ants_run.path, warm


@pytest.fixture(scope="module")
def server(runs):
    from keras_transfer.serve.process import ServerProcess

    with ServerProcess(list(runs), ["--max-files", "4", "--max-request-mb", "2"]) as started:
        yield started
    assert started.returncode == CLEAN_EXIT, started.log
    assert "Traceback" not in started.log


def _files(paths) -> list[tuple[str, tuple[str, bytes, str]]]:
    return [("files", (p.name, p.read_bytes(), "image/jpeg")) for p in paths]


def test_health_and_models_describe_the_runs(server, ants_run):
    health = httpx.get(server.url + "/v1/health").json()
    assert health["status"] == "ok" and health["models"] == ["ants", "ants-t2"]
    models = {m["name"]: m for m in httpx.get(server.url + "/v1/models").json()["models"]}
    metrics = ants_run.read("metrics.json")
    assert models["ants"]["classes"] == ["ants", "bees"] and models["ants"]["input_size"] == ants_run.config.size == 260
    assert models["ants"]["held_out"]["accuracy"] == metrics["accuracy"] and models["ants"]["held_out"]["n"] == 153
    assert models["ants"]["unknown_threshold"] == metrics["selection"]["unknown"]["threshold"]
    assert models["ants-t2"]["temperature"] == 2.0


def test_predict_answers_in_upload_order_as_predict_does(server, ants_run):
    from keras_transfer.run import predict

    images = [BEES[0], ANTS[0], BEES[1], ANTS[1], BEES[2]][:4]
    answer = httpx.post(server.url + "/v1/predict", files=_files(images), data={"top_k": "2"})
    assert answer.status_code == 200
    results = answer.json()["results"]
    assert [r["file"] for r in results] == [p.name for p in images]
    for got, expected in zip(results, predict(ants_run, images, top_k=2)):
        assert got["label"] == expected["predictions"][0]["label"] and len(got["top_k"]) == 2
        assert abs(got["confidence"] - expected["predictions"][0]["probability"]) < 1e-5
        assert got["unknown"] == expected["unknown"] and abs(got["unknown_score"] - expected["unknown_score"]) < 1e-5


def test_second_model_applies_its_temperature(server):
    from keras_transfer.evaluation.calibration import apply_temperature

    def probabilities(model: str) -> np.ndarray:
        answer = httpx.post(server.url + "/v1/predict", files=_files(BEES[:3]), data={"model": model}).json()
        return np.array([[p["probability"] for p in sorted(r["top_k"], key=lambda p: p["index"])]
                         for r in answer["results"]])

    assert np.allclose(probabilities("ants-t2"), apply_temperature(probabilities("ants"), 2.0), atol=1e-5)


def _bomb() -> bytes:
    """A small PNG whose header says 10,000 x 10,000 pixels (100 MP, over the 40 MP limit)."""
    buffer = io.BytesIO()
    Image.new("1", (10_000, 10_000)).save(buffer, format="PNG")
    return buffer.getvalue()


BAD = {
    "not an image": ({"files": ("notes.txt", b"just some text", "text/plain")}, {}, 422, "not an image"),
    "truncated": ({"files": ("cut.jpg", BEES[0].read_bytes()[:2000], "image/jpeg")}, {}, 422, "damaged image"),
    "bomb": ({"files": ("huge.png", _bomb(), "image/png")}, {}, 413, "more than the limit"),
    "empty file": ({"files": ("empty.jpg", b"", "image/jpeg")}, {}, 422, "empty"),
    "wrong field": ({"image": (BEES[0].name, BEES[0].read_bytes(), "image/jpeg")}, {}, 422, "field 'files'"),
    "unknown model": (_files(BEES[:1]), {"model": "nope"}, 404, "unknown model 'nope'"),
    "top_k too big": (_files(BEES[:1]), {"top_k": "5"}, 422, "between 1 and 2"),
    "top_k not a number": (_files(BEES[:1]), {"top_k": "lots"}, 422, "whole number"),
    "too many files": (_files(BEES[:5]), {}, 400, "Too many files"),
    "too many bytes": ([("files", ("big.jpg", b"\xff" * 2_500_000, "image/jpeg"))], {}, 413, "larger than the limit"),
}


@pytest.mark.parametrize("case", BAD)
def test_bad_input_gets_a_clear_4xx_and_the_server_stays_up(server, case):
    files, data, status, message = BAD[case]
    answer = httpx.post(server.url + "/v1/predict", files=files, data=data)
    body = answer.json()
    assert answer.status_code == status and message in body["error"] and body["status"] == status
    assert "Traceback" not in answer.text
    assert httpx.get(server.url + "/v1/health").status_code == 200


def test_other_bad_requests_are_json_4xx(server):
    assert httpx.post(server.url + "/v1/predict", content=b"x=1").status_code == 415
    missing = httpx.get(server.url + "/v1/nothing")
    assert missing.status_code == 404 and missing.json()["status"] == 404
    assert httpx.get(server.url + "/v1/predict").status_code == 405
    assert httpx.get(server.url + "/docs").status_code == 404  # FastAPI's docs load from a CDN: off


def test_one_good_and_one_bad_file_answers_both(server):
    files = _files(BEES[:1]) + [("files", ("notes.txt", b"text", "text/plain"))]
    results = httpx.post(server.url + "/v1/predict", files=files).json()["results"]
    assert results[0]["label"] == "bees" and "not an image" in results[1]["error"]


def test_concurrent_requests_are_batched(server):
    before = httpx.get(server.url + "/v1/health").json()["served"]["ants"]

    async def load():
        async with httpx.AsyncClient(base_url=server.url, timeout=60) as client:
            return await asyncio.gather(*(client.post("/v1/predict", files=_files([BEES[i % 5]])) for i in range(24)))

    answers = asyncio.run(load())
    assert all(a.status_code == 200 for a in answers)
    after = httpx.get(server.url + "/v1/health").json()["served"]["ants"]
    images, calls = after["images"] - before["images"], after["engine_calls"] - before["engine_calls"]
    assert images == 24 and calls < 24  # several requests shared an engine call


def test_full_queue_answers_503_with_retry_after(runs):
    from keras_transfer.serve.process import ServerProcess

    with ServerProcess(runs[:1], ["--max-queue", "1", "--max-batch", "1", "--max-wait-ms", "1"]) as small:
        async def load():
            async with httpx.AsyncClient(base_url=small.url, timeout=60) as client:
                return await asyncio.gather(*(client.post("/v1/predict", files=_files(BEES[:4])) for _ in range(24)))

        answers = asyncio.run(load())
        busy = [a for a in answers if a.status_code == 503]
        assert busy and all(a.headers["retry-after"] == "1" and "busy" in a.json()["error"] for a in busy)
        assert {a.status_code for a in answers} <= {200, 503} and any(a.status_code == 200 for a in answers)
    assert small.returncode == CLEAN_EXIT


def test_openapi_and_page_are_served_with_nothing_from_outside(server):
    spec = httpx.get(server.url + "/openapi.json").json()
    assert {"/v1/predict", "/v1/models", "/v1/health", "/v1/explain"} <= set(spec["paths"])
    assert "files" in json.dumps(spec["paths"]["/v1/predict"])
    page = httpx.get(server.url + "/")
    assert page.status_code == 200 and "<script>" in page.text
    assert "http://" not in page.text and "https://" not in page.text and "//cdn" not in page.text


def test_explain_returns_a_gradcam_overlay(server):
    answer = httpx.post(server.url + "/v1/explain", files=_files(BEES[:1]), timeout=120)
    assert answer.status_code == 200 and answer.headers["content-type"] == "image/png"
    overlay = np.asarray(Image.open(io.BytesIO(answer.content)))
    assert overlay.shape == (260, 260, 3) and overlay.std() > 10  # the default model's input side


def test_serve_rejects_bad_options_and_missing_runs(tmp_path, capsys):
    from keras_transfer.cli import main

    assert main(["serve", str(tmp_path / "missing")]) == 1
    assert "run folder not found" in capsys.readouterr().err
    assert main(["serve", str(tmp_path), "--port", "0"]) == 2
    assert "invalid --port" in capsys.readouterr().err


ARTIFACTS = Path(__file__).resolve().parents[1] / "test-artifacts"  # gitignored; kept after the run


def test_page_in_chromium_classifies_a_dropped_photo(server, tmp_path):
    """Headless Chromium (Debian's, driven by Playwright) picks two photos; their labels and bars
    appear, nothing is fetched from outside, no console error; the screenshot is kept."""
    from playwright.sync_api import sync_playwright

    from test_report import chromium

    outside, errors = [], []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium(), args=["--no-sandbox", "--disable-gpu",
                                                                       "--disable-background-networking"])
        page = browser.new_page(viewport={"width": 1100, "height": 820})
        page.on("request", lambda r: None if r.url.startswith((server.url, "blob:", "data:")) else outside.append(r.url))
        page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.goto(server.url + "/")
        page.wait_for_selector("#facts .fact")
        assert "held-out accuracy" in page.inner_text("#facts") and "ants, bees" in page.inner_text("#classes")
        page.check("#gradcam")
        page.set_input_files("#picker", [str(BEES[0]), str(ANTS[0])])
        page.wait_for_selector(".card .label", timeout=60_000)
        page.wait_for_function("document.querySelectorAll('.card').length == 2")
        labels = page.locator(".card .label").evaluate_all("nodes => nodes.map(n => n.firstChild.textContent)")
        assert sorted(labels) == ["ants", "bees"]
        assert page.locator(".card .bar").count() == 4 and page.locator(".card .pictures img").count() == 4
        ARTIFACTS.mkdir(exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / "serve-page.png"), full_page=True)
        browser.close()
    assert not outside and not errors, (outside, errors)


def test_batcher_keeps_engine_calls_within_max_batch():
    """Requests are gathered up to max_batch images; one that would overflow waits for the next
    call, and a request larger than max_batch goes alone; every request gets its own rows back."""
    from keras_transfer.serve.batcher import Batcher

    calls = []

    def infer(pixels):
        calls.append(len(pixels))
        return pixels[:, 0, 0, :2].astype(float), pixels[:, 0, 0, 2].astype(float)

    async def run():
        batcher = Batcher(infer, max_batch=8, max_wait=0.05)
        batcher.start()
        sizes = (3, 4, 5, 16, 1)
        requests = [np.full((n, 2, 2, 3), i, np.uint8) for i, n in enumerate(sizes)]
        answers = await asyncio.gather(*(batcher.submit(r) for r in requests))
        await batcher.stop()
        return sizes, answers

    sizes, answers = asyncio.run(run())
    assert [len(p) for p, _ in answers] == list(sizes) and sum(calls) == sum(sizes)
    assert all((p == i).all() and (s == i).all() for i, (p, s) in enumerate(answers))  # each its own rows
    assert all(c <= 8 for c in calls if c != 16) and 16 in calls and len(calls) < len(sizes)


def test_an_exif_rotated_photo_is_decoded_as_predict_decodes_it(server, ants_run, tmp_path):
    """A phone photo stored sideways with an EXIF orientation tag: the server turns it upright
    like predict does, so both give the same probabilities."""
    from keras_transfer.run import predict

    image = Image.open(BEES[0]).transpose(Image.Transpose.ROTATE_90)  # stored turned ...
    exif = Image.Exif()
    exif[0x0112] = 6  # ... and tagged "rotate 90 degrees clockwise to view"
    sideways = tmp_path / "sideways.jpg"
    image.save(sideways, exif=exif.tobytes(), quality=95)
    served = httpx.post(server.url + "/v1/predict", files=_files([sideways])).json()["results"][0]
    local = predict(ants_run, [sideways])[0]["predictions"][0]
    assert served["label"] == local["label"] and abs(served["confidence"] - local["probability"]) < 1e-5
