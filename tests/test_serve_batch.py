"""The server's dynamic batch: the engine sized for each call (one image runs as one, a burst is
gathered and spread over the engine's streams), with the same answers either way; the real
default run served by a real server on a loopback port."""

from __future__ import annotations

import asyncio

import httpx
import numpy as np
import pytest

from conftest import HYMENOPTERA

PHOTOS = sorted((HYMENOPTERA / "val" / "bees").iterdir())[:4] + sorted((HYMENOPTERA / "val" / "ants").iterdir())[:4]


@pytest.fixture(scope="module")
def server(ants_run):
    from keras_transfer.serve.process import ServerProcess

    with ServerProcess([ants_run.path]) as started:
        yield started
    assert "Traceback" not in started.log


def _served(server) -> dict:
    return httpx.get(server.url + "/v1/health").json()["served"]["ants"]


def _post(client, paths):
    return client.post("/v1/predict", files=[("files", (p.name, p.read_bytes(), "image/jpeg")) for p in paths])


def _confidences(answer) -> list[tuple[str, float]]:
    assert answer.status_code == 200, answer.text
    return [(r["label"], r["confidence"]) for r in answer.json()["results"]]


def test_the_engine_takes_any_batch_and_a_row_does_not_depend_on_its_batch(ants_run):
    """The compiled engine's batch dimension is dynamic; the features of an image are the same
    alone, in a short batch (one image per stream) or in a long one (several per stream)."""
    from keras_transfer.data.images import read_batch
    from keras_transfer.run import RunModel

    engine = RunModel.open(ants_run).source.engine
    runtime = engine.runtime
    assert runtime.name == "openvino" and runtime.compiled.input(0).get_partial_shape()[0].is_dynamic
    _, images, _ = read_batch(PHOTOS, engine.maker.size, engine.maker.resize_mode)
    pixels = np.stack(images)
    together = engine.features(pixels)
    assert together.shape == (len(PHOTOS), *engine.feature_shape)
    for count in (1, 2, 3):
        assert np.allclose(engine.features(pixels[:count]), together[:count], rtol=1e-4, atol=1e-5)


def test_one_client_gets_one_image_per_engine_call_with_predicts_answers(server, ants_run):
    """Requests one after another: each runs alone (no waiting for others, nothing padded), and
    answers what ``predict`` answers for the file."""
    from keras_transfer.run import predict

    before = _served(server)
    with httpx.Client(base_url=server.url, timeout=60) as client:
        served = [_confidences(_post(client, [p]))[0] for p in PHOTOS]
    after = _served(server)
    assert after["engine_calls"] - before["engine_calls"] == len(PHOTOS)
    assert after["images"] - before["images"] == len(PHOTOS)
    local = [(r["predictions"][0]["label"], r["predictions"][0]["probability"]) for r in predict(ants_run, PHOTOS)]
    assert [label for label, _ in served] == [label for label, _ in local]
    assert np.allclose([c for _, c in served], [c for _, c in local], atol=1e-5)


def test_a_burst_is_batched_and_answers_as_one_by_one(server):
    """24 concurrent single-image requests and 3 of several images: fewer engine calls than
    requests, no error, and every image gets the answer it gets alone."""
    with httpx.Client(base_url=server.url, timeout=60) as client:
        alone = {p: _confidences(_post(client, [p]))[0] for p in PHOTOS}
    before = _served(server)

    async def burst():
        async with httpx.AsyncClient(base_url=server.url, timeout=120) as client:
            singles = [_post(client, [PHOTOS[i % len(PHOTOS)]]) for i in range(24)]
            groups = [_post(client, PHOTOS[k:k + 3 + k]) for k in range(3)]
            return await asyncio.gather(*singles, *groups)

    answers = asyncio.run(burst())
    after = _served(server)
    sent = [[PHOTOS[i % len(PHOTOS)]] for i in range(24)] + [PHOTOS[k:k + 3 + k] for k in range(3)]
    for paths, answer in zip(sent, answers):
        for path, (label, confidence) in zip(paths, _confidences(answer)):
            assert label == alone[path][0] and abs(confidence - alone[path][1]) < 1e-5
    images = sum(len(paths) for paths in sent)
    assert after["images"] - before["images"] == images
    assert after["engine_calls"] - before["engine_calls"] < len(sent)


def test_a_lone_request_does_not_wait_for_company():
    """With a (deliberately huge) gathering window of 30 s, a request that finds the batcher idle
    still runs at once; a burst that follows is gathered into shared calls."""
    from keras_transfer.serve.batcher import Batcher

    calls = []

    def infer(pixels):
        calls.append(len(pixels))
        return pixels[:, 0, 0, :2].astype(float), pixels[:, 0, 0, 2].astype(float)

    async def run():
        batcher = Batcher(infer, max_batch=8, max_wait=30.0)
        batcher.start()
        alone = await asyncio.wait_for(batcher.submit(np.full((1, 2, 2, 3), 7, np.uint8)), 10)
        burst = [np.full((1, 2, 2, 3), i, np.uint8) for i in range(8)]
        answers = await asyncio.wait_for(asyncio.gather(*(batcher.submit(b) for b in burst)), 10)
        await batcher.stop()
        return alone, answers

    alone, answers = asyncio.run(run())
    assert (alone[0] == 7).all() and calls[0] == 1
    assert all((p == i).all() for i, (p, _) in enumerate(answers)) and max(calls[1:]) > 1
