"""Every consumer of a trained run gives the same answer for the same images: the one inference rule.

For each kind of run (solved head, mirror view, ensemble, a Keras-trained head, a fine-tuned
backbone), ``predict``, the real server, the held-out probabilities train stored (what
``evaluate`` and the report read) and the exported ONNX and OpenVINO files agree to 1e-4 on the
probabilities and the unknown scores of the same held-out images.
"""

from __future__ import annotations

import json

import httpx
import numpy as np
import pytest

from conftest import HYMENOPTERA, predictions_of
from keras_transfer.cli import main
from keras_transfer.data.images import read_image, resize
from keras_transfer.export import export_run
from keras_transfer.export.parity import session
from keras_transfer.run import Files, Run, RunModel, predict

pytestmark = pytest.mark.heavy

SMALL = ["--max-per-class", "8", "--no-baseline", "--quiet"]
KINDS = {
    "solved": ["--backbone", "lite0"],
    "flip": ["--backbone", "lite0", "--flip"],
    "ensemble": ["--backbone", "lite0+lite1", "--stages", "2"],
    "keras_head": ["--backbone", "lite0", "--head", "gap_dense_bn", "--epochs", "2"],
    "finetune": ["--backbone", "lite0", "--strategy", "finetune", "--input-size", "96", "--epochs", "1",
                 "--finetune-epochs", "1"],
}
IMAGES = 6
TOLERANCE = 1e-4


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict[str, Run]:
    root = tmp_path_factory.mktemp("kinds")
    for name, options in KINDS.items():
        assert main(["train", str(HYMENOPTERA), "--out", str(root / name), *SMALL, *options]) == 0, name
    return {name: Run.open(root / name) for name in KINDS}


@pytest.fixture(scope="module")
def answers(runs) -> dict[str, dict[str, dict]]:
    """kind -> consumer -> {"paths", "probabilities" (N, C), "unknown" (N,) or None}."""
    from keras_transfer.serve.process import ServerProcess

    found: dict[str, dict[str, dict]] = {}
    chosen = {}
    for name, run in runs.items():
        stored = run.predictions().with_temperature(run.temperature)
        rows = np.linspace(0, len(stored.ids) - 1, IMAGES).round().astype(int)  # both classes
        paths = [str(stored.ids[i]) for i in rows]
        chosen[name] = paths
        found[name] = {"stored": {"paths": paths, "probabilities": stored.probabilities[rows], "unknown": None}}
        results = predict(run, paths, top_k=len(run.class_names))
        found[name]["predict"] = _from_results(paths, results, "path", "predictions")
        model = RunModel.open(run)
        pixels = np.stack([resize(read_image(p, model.size), model.size, model.resize_mode) for p in paths])
        for fmt in ("onnx", "openvino"):
            exported = export_run(run, fmt, parity=name == "solved")  # the parity table's own test below
            probabilities, unknown = session(exported, with_unknown=True)(pixels)
            found[name][fmt] = {"paths": paths, "probabilities": probabilities, "unknown": unknown}
    with ServerProcess([run.path for run in runs.values()]) as server:
        for name, run in runs.items():
            files = [("files", (p, open(p, "rb").read(), "image/jpeg")) for p in chosen[name]]
            answer = httpx.post(server.url + "/v1/predict", files=files, timeout=120,
                                data={"model": name, "top_k": str(len(run.class_names))})
            assert answer.status_code == 200, answer.text
            results = [{**r, "path": path} for r, path in zip(answer.json()["results"], chosen[name])]
            found[name]["serve"] = _from_results(chosen[name], results, "path", "top_k")
    assert "Traceback" not in server.log
    return found


def _from_results(paths: list[str], results: list[dict], key: str, listed: str) -> dict:
    by_path = {r[key]: r for r in results}
    unknown = [by_path[p].get("unknown_score") for p in paths]
    return {"paths": paths, "probabilities": predictions_of(results, paths, len(by_path[paths[0]][listed]), key, listed),
            "unknown": None if unknown[0] is None else np.asarray(unknown, np.float32)}


@pytest.mark.parametrize("kind", list(KINDS))
def test_every_consumer_gives_the_runs_answer(answers, runs, kind):
    got = answers[kind]
    reference = got["predict"]
    assert np.allclose(reference["probabilities"].sum(axis=1), 1, atol=1e-5)
    for consumer in ("stored", "serve", "onnx", "openvino"):
        difference = np.abs(got[consumer]["probabilities"] - reference["probabilities"]).max()
        assert difference < TOLERANCE, f"{kind}: {consumer} differs from predict by {difference:.2e}"
    model = RunModel.open(runs[kind])
    if model.unknown is None:  # a Keras-trained head has no unknown-image scorer: no consumer invents one
        assert all(got[c]["unknown"] is None for c in ("predict", "serve", "onnx", "openvino"))
        return
    for consumer in ("serve", "onnx", "openvino"):
        difference = np.abs(got[consumer]["unknown"] - reference["unknown"]).max()
        assert difference < TOLERANCE, f"{kind}: {consumer}'s unknown scores differ by {difference:.2e}"


def test_the_kinds_are_what_they_claim(runs):
    """Control: the runs differ where the test needs them to (head, views, backbone)."""
    models = {name: RunModel.open(run) for name, run in runs.items()}
    assert models["solved"].solved and models["solved"].views == (0,)
    assert models["flip"].solved and models["flip"].flip
    assert models["ensemble"].solved and "+" in runs["ensemble"].config.backbone
    assert not models["keras_head"].solved and not models["finetune"].solved
    assert runs["finetune"].config.strategy == "finetune"
    # the mirror view changes the answer: a rule that ignored it would not pass the test above
    flip = models["flip"]
    paths = [str(p) for p in sorted((HYMENOPTERA / "val" / "bees").iterdir())[:4]]
    pixels = np.stack([resize(read_image(p, flip.size), flip.size, flip.resize_mode) for p in paths])
    one_view = RunModel(flip.class_names, flip.source, flip.head, (0,), flip.temperature, flip.unknown, flip.run)
    assert np.abs(one_view.predict_pixels(pixels).probabilities - flip.predict_pixels(pixels).probabilities).max() > 1e-4


def test_python_export_writes_the_parity_table(runs):
    table = json.loads((runs["solved"].export_dir / Files.PARITY).read_text())
    rows = {row["format"]: row for row in table}
    assert set(rows) == {"onnx", "openvino"}
    assert all(row["max_abs_prob_diff"] < TOLERANCE and row["top1_agreement"] == 1.0 for row in rows.values())
