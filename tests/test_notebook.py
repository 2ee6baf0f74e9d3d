"""Jupyter: a run and an audit display themselves (_repr_html_), progress bars are notebook bars
in a kernel, and examples/quickstart.ipynb runs top to bottom in a real kernel."""

from __future__ import annotations

import re
import sys
import types

import pytest

from keras_transfer.base import log
from keras_transfer.config import TrainConfig
from keras_transfer.data.load import load_dataset
from keras_transfer.run import train


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    config = TrainConfig(data="flowers", backbone="efficientnet_lite0", stages=1, input_size=128, max_per_class=12)
    return train(config, tmp_path_factory.mktemp("nb") / "flowers")


def test_a_run_displays_itself(run):
    page = run._repr_html_()
    metrics = run.metrics
    assert f"held-out accuracy {metrics['accuracy']:.1%}" in page and "pixel baseline" in page
    assert "confusion matrix" in page and "<td" in page and "daisy" in page
    wrong = sum(metrics["confusion_matrix"][i][j] for i in range(5) for j in range(5) if i != j)
    thumbnails = re.findall(r"src='data:image/png;base64,[A-Za-z0-9+/=]+'", page)
    assert len(thumbnails) == min(wrong, 6)


def test_an_audit_displays_itself():
    from keras_transfer.audit import cheap_audit

    page = cheap_audit(load_dataset("flowers"))._repr_html_()
    assert "audit of flowers" in page and "images per class and split" in page and "sunflowers" in page


def test_progress_is_a_notebook_bar_in_a_kernel(monkeypatch):
    pytest.importorskip("ipywidgets")
    shell = types.SimpleNamespace(config={"IPKernelApp": {}})
    monkeypatch.setitem(sys.modules, "IPython", types.SimpleNamespace(get_ipython=lambda: shell))
    log.set_quiet(False)
    from tqdm.notebook import tqdm as notebook_tqdm

    bar = log.progress(range(3), total=3, desc="features")
    assert isinstance(bar, notebook_tqdm)
    bar.close()


def test_progress_elsewhere_is_not_a_notebook_bar(monkeypatch):
    monkeypatch.setitem(sys.modules, "IPython", None)
    log.set_quiet(False)
    assert not log.in_notebook()
    assert type(log.progress(range(3), total=3)).__name__ == "_PhaseLine"  # pytest's stderr is no terminal
