"""The head for matrices beyond memory: the float16 store, the streamed solver against the in-memory one."""

from __future__ import annotations

import json

import numpy as np
import pytest

from keras_transfer.base.errors import DatasetError
from keras_transfer.evaluation.calibration import bounded_subset
from keras_transfer.features.matrix import FEATURES, META, FeatureMatrix
from keras_transfer.run import split_features
from keras_transfer.strategies import solver
from keras_transfer.strategies.solver import fit_linear_head


@pytest.fixture(scope="module")
def ants(ants_run):
    """Real default features (lite0 + lite2, 3,864 values) of hymenoptera: 245 train, 153 val images."""
    train, x, indices = split_features(ants_run, "train")
    val, x_val, val_indices = split_features(ants_run, "val")
    return x, train.labels[indices], x_val, val.labels[val_indices]


def test_float16_store_round_trip(ants, tmp_path):
    x, y, _, _ = ants
    views = np.stack([x, x[:, ::-1].copy()])  # two "views" of every image
    with FeatureMatrix.from_array(tmp_path / "m", views, y) as matrix:
        assert (matrix.rows, matrix.dim, matrix.views) == (2 * len(y), x.shape[1], 2)
        assert np.array_equal(matrix.labels, y) and matrix.nbytes == 2 * views.size
        stored = np.concatenate([block for _, block in matrix.chunks(100)])
        assert stored.dtype == np.float32 and np.array_equal(stored, views.reshape(-1, x.shape[1]).astype(np.float16))
        assert np.abs(stored - views.reshape(stored.shape)).max() <= 1e-3 * np.abs(x).max()  # float16 rounding
        picked = np.array([7, 3, 200])
        assert np.array_equal(matrix.views_of(picked), views[:, np.sort(picked)].astype(np.float16))


def test_damaged_store_is_a_clear_error(ants, tmp_path):
    x, y, _, _ = ants
    FeatureMatrix.from_array(tmp_path / "m", x, y).close()
    path = tmp_path / "m" / FEATURES
    whole = path.read_bytes()
    path.write_bytes(whole[:-1000])  # a copy that stopped early
    with pytest.raises(DatasetError) as error:
        FeatureMatrix(tmp_path / "m")
    assert "truncated" in str(error.value) and f"{len(whole):,} bytes" in error.value.expected
    np.save(path, x.astype(np.float32))  # float32 rows where float16 belong
    with pytest.raises(DatasetError, match="header does not match"):
        FeatureMatrix(tmp_path / "m")
    (tmp_path / "m" / META).unlink()  # writing stopped before the end
    with pytest.raises(DatasetError, match="no matrix.json"):
        FeatureMatrix(tmp_path / "m")
    (tmp_path / "m" / META).write_text("{not json")
    with pytest.raises(DatasetError, match="unreadable"):
        FeatureMatrix(tmp_path / "m")
    with FeatureMatrix.from_array(tmp_path / "ok", x, y) as matrix, pytest.raises(DatasetError, match="labels"):
        fit_linear_head(matrix, y[:-1], 2, C=0.1, budget=1)


def test_streaming_head_chooses_C_as_the_in_memory_solver(ants, tmp_path):
    x, y, x_val, _ = ants
    memory = fit_linear_head(x[None], y, 2)
    assert memory.streaming == {}  # 245 images fit in any budget: the in-memory path, unchanged
    with FeatureMatrix.from_array(tmp_path / "m", x, y) as matrix:
        stored = fit_linear_head(matrix, y, 2, budget=1)  # float16 rows on disk, streamed in chunks
    assert stored.C == memory.C and stored.folds == memory.folds == 5 and stored.cv.keys() == memory.cv.keys()
    for C, scores in memory.cv.items():
        assert abs(stored.cv[C]["log_loss"] - scores["log_loss"]) < 1e-2
    assert np.mean(stored.head.predict(x_val).argmax(1) == memory.head.predict(x_val).argmax(1)) > 0.98
    record = stored.summary()["streaming"]
    assert record["rows"] == len(y) and record["passes"] > 1 and record["peak_rss_mb"] > 0
    assert record["stored"].startswith("float16")
    json.dumps(stored.summary())


def test_streaming_head_solves_the_same_objective(ants, tmp_path, monkeypatch):
    monkeypatch.setattr(solver, "TOL", 1e-6)  # both run to convergence, so what is compared is the solution
    x, y, x_val, y_val = ants
    memory = fit_linear_head(x[None], y, 2, C=0.1)
    streamed = fit_linear_head(x[None], y, 2, C=0.1, budget=1)  # float32 rows in memory, streamed in chunks
    with FeatureMatrix.from_array(tmp_path / "m", x, y) as matrix:
        stored = fit_linear_head(matrix, y, 2, C=0.1, budget=1)  # float16 rows on disk
    expected = memory.head.predict(x_val)
    assert 0.85 < np.mean(expected.argmax(1) == y_val)
    scale = np.abs(memory.head.kernel).max()
    for fit, tolerance in ((streamed, 1e-3), (stored, 1e-2)):
        got = fit.head.predict(x_val)
        assert np.array_equal(got.argmax(1), expected.argmax(1))
        assert np.abs(got - expected).max() < tolerance
        assert np.abs(fit.head.kernel - memory.head.kernel).max() < 20 * tolerance * scale


def test_calibration_subset_is_bounded_and_deterministic():
    assert np.array_equal(bounded_subset(10, 50), np.arange(10))
    kept = bounded_subset(1_000_000, 50_000)
    assert len(kept) == 50_000 and len(np.unique(kept)) == 50_000 and np.all(np.diff(kept) > 0)
    assert np.array_equal(kept, bounded_subset(1_000_000, 50_000)) and kept[-1] > 900_000
