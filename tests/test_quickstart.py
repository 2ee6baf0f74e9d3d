"""examples/quickstart.ipynb runs top to bottom in a real Jupyter kernel (nbclient) on the
shared hymenoptera photos, and shows what each step promises; ``evaluate`` displays itself."""

from __future__ import annotations

import json
import re
import sys
import time
from pathlib import Path

import pytest

from keras_transfer.base.paths import strict_json

NOTEBOOK = Path(__file__).resolve().parents[1] / "examples" / "quickstart.ipynb"


def test_an_evaluation_is_a_dict_that_displays_itself(ants_run):
    from keras_transfer import evaluate

    result = evaluate(ants_run)
    assert isinstance(result, dict) and result["split"] == "val"
    assert json.loads(strict_json(result)) == json.loads(strict_json(dict(result)))  # the --json output as before
    page = result._repr_html_()
    assert f"accuracy {result['accuracy']:.1%}" in page and f"on {result['n']} val images" in page
    assert "confusion matrix" in page and "ants" in page and "bees" in page and "<td" in page
    assert "precision" in page and "calibration error" in page


def test_a_multilabel_evaluation_displays_its_labels():
    import numpy as np

    from keras_transfer.evaluation.multilabel import multilabel_metrics
    from keras_transfer.run.notebook import Evaluation

    labels, probabilities = np.array([[1, 0], [0, 1], [1, 1]]), np.array([[0.9, 0.2], [0.3, 0.8], [0.6, 0.4]])
    result = Evaluation(multilabel_metrics(labels, probabilities, ["sea", "trees"], np.array([0.5, 0.5])), split="val")
    page = result._repr_html_()
    assert "mAP" in page and "on 3 val images" in page and "sea" in page and "threshold" in page
    assert result == dict(result) and json.loads(strict_json(result))["split"] == "val"


def _kernel(prefix: Path) -> str:
    """A kernel spec running this interpreter (the venv's Python), found through JUPYTER_PATH first."""
    from ipykernel.kernelspec import install
    from jupyter_client.kernelspec import KernelSpecManager

    install(kernel_name="python3", prefix=str(prefix))
    spec = KernelSpecManager().get_kernel_spec("python3")
    assert spec.argv[0] == sys.executable, spec.resource_dir
    return "python3"


def _html(cell: dict) -> str:
    return "".join(o.get("data", {}).get("text/html", "") for o in cell["outputs"])


def _has_image(cell: dict) -> bool:
    return any("image/png" in o.get("data", {}) for o in cell["outputs"])


@pytest.mark.heavy
def test_quickstart_notebook_runs_top_to_bottom(tmp_path, monkeypatch, isolated_cache):
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    pytest.importorskip("ipykernel")
    monkeypatch.setenv("JUPYTER_PATH", str(tmp_path / "jupyter" / "share" / "jupyter"))
    kernel = _kernel(tmp_path / "jupyter")
    monkeypatch.setenv("KERAS_TRANSFER_CACHE", str(isolated_cache))
    monkeypatch.setenv("KERAS_TRANSFER_RUNS", str(tmp_path / "runs"))
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    client = nbclient.NotebookClient(notebook, kernel_name=kernel, timeout=600,
                                     resources={"metadata": {"path": str(NOTEBOOK.parent)}})
    start = time.perf_counter()
    client.execute()  # raises CellExecutionError on the first failing cell
    seconds = time.perf_counter() - start
    print(f"quickstart.ipynb executed in {seconds:.0f} s")

    cells = [c for c in notebook.cells if c.cell_type == "code"]
    errors = [o for c in cells for o in c.outputs if o.output_type == "error"]
    assert not errors, errors
    assert all(c.execution_count for c in cells)
    by_source = {c.source: c for c in cells}

    def cell(start: str) -> dict:
        return next(c for s, c in by_source.items() if s.startswith(start))

    for name in ("bottleneck", "frozen", "finetune"):
        metrics = json.loads((tmp_path / "runs" / name / "metrics.json").read_text())
        page = _html(cell(f"{name} = train("))
        assert f"held-out accuracy {metrics['accuracy']:.1%}" in page, page[:500]
        assert "confusion matrix" in page and "ants" in page and "bees" in page
    assert json.loads((tmp_path / "runs" / "bottleneck" / "config.json").read_text())["max_per_class"] == 20

    evaluation = _html(cell("from keras_transfer import evaluate"))
    assert "confusion matrix" in evaluation and re.search(r"accuracy \d+\.\d%", evaluation)
    assert _has_image(cell("from keras_transfer.explain import explain"))  # the Grad-CAM figures
    neighbours = _html(cell("from keras_transfer.explain import similar"))
    assert "<table" in neighbours and "score" in neighbours and "rank" in neighbours
    assert _has_image(cell("similarity_figure(matrix)"))
