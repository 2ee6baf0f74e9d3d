"""The studio's API on a real server (``keras-transfer studio`` as a child process on a loopback port) over
a small copy of hymenoptera with planted wrong labels: train from the API, every read and action, the
token rule, and bad input (unknown image, unknown class, a vanished file, two refits at once)."""

from __future__ import annotations

import shutil
import subprocess
import sys
import time

import httpx
import pytest

from keras_transfer.studio.process import StudioProcess
from studio_helpers import BACKBONE, PLANTED, hashes, planted_copy

TOKEN = "studio-Token_7"


def get(url, **options):
    return httpx.get(url, timeout=120, **options)  # a slow machine is not a failure: no timed asserts


def post(url, **options):
    return httpx.post(url, timeout=120, **options)


@pytest.fixture(scope="module")
def studio(tmp_path_factory):
    """The studio of the planted copy, its run trained from the API (module-wide: every test reads it)."""
    root = tmp_path_factory.mktemp("studio")
    data, planted = planted_copy(root)
    with StudioProcess(data, ["--run", str(root / "run")]) as server:
        assert get(server.url + "/api/state").json()["ready"] is False
        job = _finish(server.url, post(server.url + "/api/train", json={"backbone": BACKBONE}).json())
        assert job["state"] == "done", job
        server.root, server.data, server.planted = root, data, planted
        server.train_job = job
        yield server


def _finish(url: str, job: dict, timeout: float = 180) -> dict:
    deadline = time.monotonic() + timeout
    while job["state"] in ("queued", "running") and time.monotonic() < deadline:
        time.sleep(0.2)
        job = get(f"{url}/api/jobs/{job['id']}").json()
    return job


def test_trained_from_the_api_with_progress_then_the_first_screen(studio):
    lines = " ".join(studio.train_job["lines"])
    # the steps as they happen (a split whose features are all cached already says nothing of them)
    assert "dataset" in lines and "train 60, val 31" in lines and "trained in" in lines, studio.train_job["lines"]
    state = get(studio.url + "/api/state").json()
    summary = state["ready"] and state["summary"]
    assert summary["classes"] == ["ants", "bees"] and summary["split"] == "val" and summary["n"] == 28 + PLANTED
    assert 0.5 < summary["accuracy"] <= 1 and 0 < summary["baseline"] < 1
    assert [r["class"] for r in summary["per_class"]] == ["ants", "bees"]
    assert sum(map(sum, summary["confusion"])) == summary["n"]
    assert set(summary["findings"]) == {"duplicates", "leakage", "label_errors", "odd_files"}
    assert summary["images"] == 60 + 28 + PLANTED and summary["corrections"] == 0


def test_grids_show_the_planted_images_in_their_confusion_cell(studio):
    cell = get(studio.url + "/api/grid", params={"view": "cell", "true": "ants", "predicted": "bees"}).json()
    ids = [item["id"] for item in cell["items"]]
    assert set(studio.planted) <= set(ids), (ids, studio.planted)  # the model sees bees where the folder says ants
    assert all(i["label"] == "ants" and i["predicted"] == "bees" for i in cell["items"])
    losses = get(studio.url + "/api/grid", params={"view": "losses", "limit": 5}).json()
    assert losses["total"] == 28 + PLANTED and len(losses["items"]) == 5
    assert losses["items"][0]["predicted"] != losses["items"][0]["label"]  # the worst loss is a mistake
    page = get(studio.url + "/api/grid", params={"view": "class", "name": "bees", "offset": 10, "limit": 7}).json()
    assert page["total"] == 44 and len(page["items"]) == 7 and page["offset"] == 10
    finding = get(studio.url + "/api/grid", params={"view": "finding", "name": "label_errors"}).json()
    assert finding["total"] == get(studio.url + "/api/state").json()["summary"]["findings"]["label_errors"]["count"]


def test_one_image_thumbnail_cam_and_neighbours(studio):
    image = studio.planted[0]
    detail = get(f"{studio.url}/api/image/{image}").json()
    assert detail["label"] == "ants" and detail["predicted"] == "bees" and detail["held_out"]
    assert abs(sum(p["p"] for p in detail["probabilities"]) - 1) < 1e-3
    assert len(detail["neighbours"]) == 8 and all(n["label"] in ("ants", "bees") for n in detail["neighbours"])
    assert all(n["id"].startswith("train/") for n in detail["neighbours"])  # training images only
    thumb = get(f"{studio.url}/api/thumb/{image}")
    assert thumb.headers["content-type"] == "image/jpeg" and thumb.content[:2] == b"\xff\xd8"
    cam = get(f"{studio.url}/api/cam/{image}")
    assert cam.status_code == 200 and cam.content[:8] == b"\x89PNG\r\n\x1a\n"


def test_bad_input_gets_a_clear_4xx(studio):
    url = studio.url
    answer = get(f"{url}/api/image/val/ants/no-such.jpg")
    assert answer.status_code == 404 and "unknown image" in answer.json()["error"]
    assert get(f"{url}/api/thumb/../../etc/passwd").status_code == 404
    answer = post(f"{url}/api/fix", json={"ids": [studio.planted[0]], "action": "relabel", "label": "wasps"})
    assert answer.status_code == 422 and "unknown class 'wasps'" in answer.json()["error"]
    for body in ({"ids": [], "action": "exclude"}, {"ids": [studio.planted[0]], "action": "burn"}, [1, 2]):
        answer = post(f"{url}/api/fix", json=body)
        assert answer.status_code == 422 and answer.json()["error"], body
    assert post(f"{url}/api/fix", content=b"{not json").status_code == 422
    assert get(f"{url}/api/grid", params={"view": "cell", "true": "ants", "predicted": "9"}).status_code == 422
    assert get(f"{url}/api/grid", params={"view": "nope"}).status_code == 422
    assert post(f"{url}/api/add_class", json={"name": "wasps", "folder": "/no/such/folder"}).status_code == 422
    assert post(f"{url}/api/launch", json={}).status_code == 404
    answer = post(f"{url}/api/train", json={})  # a run is open: training over it would pull it away
    assert answer.status_code == 409 and "has a run already" in answer.json()["error"]
    victim = sorted((studio.data / "train" / "bees").iterdir())[-1]
    moved = victim.rename(studio.root / victim.name)  # the file vanishes behind the studio's back
    try:
        answer = post(f"{url}/api/fix", json={"ids": [f"train/bees/{victim.name}"], "action": "exclude"})
        assert answer.status_code == 409 and "vanished" in answer.json()["error"]
    finally:
        moved.rename(victim)


def test_fixes_two_refits_queued_apply_and_undo(studio):
    url, before = studio.url, hashes(studio.data)
    accuracy = get(f"{url}/api/state").json()["summary"]["accuracy"]
    fixed = post(f"{url}/api/fix", json={"ids": studio.planted, "action": "relabel", "label": "bees"}).json()
    assert fixed["summary"]["corrections"] == PLANTED and sorted(fixed["result"]["ids"]) == sorted(studio.planted)
    group = [f"train/ants/{p.name}" for p in sorted((studio.data / "train" / "ants").iterdir())[:2]]
    kept = post(f"{url}/api/keep_one", json={"group": group, "keep": group[0]}).json()
    assert kept["kept"] == group[0] and kept["summary"]["corrections"] == PLANTED + 1
    first, second = (post(f"{url}/api/refit", json={}).json() for _ in range(2))
    assert second["state"] == "queued"  # one job at a time: the second waits for the first
    first, second = _finish(url, first), _finish(url, second)
    assert first["state"] == second["state"] == "done", (first, second)
    assert first["result"]["run"] != second["result"]["run"]  # two refits, one after the other
    assert second["result"]["accuracy"]["before"] == first["result"]["accuracy"]["after"]  # it began from the first
    result = first["result"]
    assert sorted(result["held_out_touched"]) == sorted(studio.planted) and "original_labels" in result
    original = result["original_labels"]["accuracy"]  # the same images scored with the folder's labels
    assert original["before"] < result["accuracy"]["before"]  # the planted labels were wrong, the run right
    assert get(f"{url}/api/state").json()["summary"]["accuracy"] > accuracy  # the first screen moves too
    assert {r["class"] for r in result["per_class"]} == {"ants", "bees"}
    assert hashes(studio.data) == before  # nothing was written into the data folder
    applied = _finish(url, post(f"{url}/api/apply", json={}).json())
    assert applied["state"] == "done" and hashes(studio.data) != before
    assert all((studio.data / "val" / "bees" / p.rsplit("/", 1)[1]).is_file() for p in studio.planted)
    undone = _finish(url, post(f"{url}/api/undo", json={}).json())
    assert undone["state"] == "done" and hashes(studio.data) == before  # byte for byte


def test_add_class_export_and_serve(studio):
    url, wasps = studio.url, studio.root / "wasps"
    wasps.mkdir()
    for path in sorted((studio.data / "train" / "bees").iterdir())[:6]:  # any images do: this checks the flow
        shutil.copyfile(path, wasps / f"w_{path.name}")
    added = _finish(url, post(f"{url}/api/add_class", json={"name": "wasps", "folder": str(wasps)}).json())
    assert added["state"] == "done", added
    assert "wasps" in get(f"{url}/api/state").json()["summary"]["classes"]
    exported = _finish(url, post(f"{url}/api/export", json={"formats": ["onnx"]}).json())
    assert exported["state"] == "done", exported
    row = exported["result"]["rows"][0]
    assert row["format"] == "onnx" and row["top1_agreement"] > 0.95
    served = _finish(url, post(f"{url}/api/serve", json={}).json())
    assert served["state"] == "done", served
    models = get(served["result"]["url"] + "v1/models").json()["models"]
    assert models[0]["classes"] == ["ants", "bees", "wasps"]


def test_token_rule(studio):
    command = [sys.executable, "-m", "keras_transfer.cli", "studio", str(studio.data), "--host", "0.0.0.0"]
    refused = subprocess.run(command, capture_output=True, text=True, timeout=60)
    assert refused.returncode == 2 and "--token" in refused.stderr and "Traceback" not in refused.stderr
    with StudioProcess(studio.data, ["--run", str(studio.root / "run"), "--token", TOKEN]) as guarded:
        for path in ("/api/state", f"/api/thumb/{studio.planted[0]}", "/api/jobs/1"):
            for headers in ({}, {"Authorization": "Bearer wrong"}):
                assert get(guarded.url + path, headers=headers).status_code == 401, (path, headers)
        assert post(guarded.url + "/api/refit", json={}).status_code == 401
        bearer = {"Authorization": f"Bearer {TOKEN}"}
        assert get(guarded.url + "/api/state", headers=bearer).json()["ready"] is True
        cookie = get(f"{guarded.url}/api/thumb/{studio.planted[0]}", cookies={"kt_studio_token": TOKEN})
        assert cookie.status_code == 200  # <img> tags send the page's cookie, not a header
        page = get(guarded.url + "/")
        assert page.status_code == 200 and "TOKEN_REQUIRED = true" in page.text and TOKEN not in page.text
