"""Datasets, splits and batching."""

import numpy as np
import pytest

from kerascli.data.datasets import read_numeric_csv
from kerascli.data.pipeline import (
    Split,
    batches,
    check_input_shape,
    epoch_order,
    load_raw,
    split_indices,
)
from kerascli.errors import DataError
from kerascli.registry import DATASETS, load_builtins

load_builtins()


def spec(dataset, **kw):
    full = {k: p.default for k, p in DATASETS.get(dataset).PARAMS.items()}
    full.update(kw)
    return {"dataset": dataset, **full}


def test_digits_is_real_and_offline():
    x, y = load_raw(spec("digits"))
    assert x.shape == (1797, 64) and y.shape == (1797,)
    assert x.min() == 0 and x.max() == 16
    assert sorted(np.unique(y)) == list(range(10))
    assert np.bincount(y).min() > 170  # balanced classes


def test_synthetic_sets_are_seeded():
    a = load_raw(spec("synthetic_classification", samples=50, features=4, classes=3))
    b = load_raw(spec("synthetic_classification", samples=50, features=4, classes=3))
    np.testing.assert_array_equal(a[0], b[0])
    c = load_raw(spec("synthetic_classification", samples=50, features=4, classes=3, data_seed=1))
    assert not np.array_equal(a[0], c[0])
    x, y = load_raw(spec("synthetic_regression", samples=20, features=3, outputs=2))
    assert x.shape == (20, 3) and y.shape == (20, 2)


def test_splits_are_disjoint_complete_and_seeded():
    data = {"validation_split": 0.1, "test_split": 0.2, "shuffle": True}
    a = split_indices(100, data, seed=1)
    assert (len(a["train"]), len(a["val"]), len(a["test"])) == (70, 10, 20)
    assert sorted(np.concatenate(list(a.values()))) == list(range(100))
    b = split_indices(100, data, seed=1)
    assert all(np.array_equal(a[k], b[k]) for k in a)
    c = split_indices(100, data, seed=2)
    assert not np.array_equal(a["test"], c["test"])
    d = split_indices(10, {**data, "shuffle": False}, seed=1)
    assert list(d["test"]) == [0, 1]


def test_epoch_order_and_batches():
    assert np.array_equal(epoch_order(10, 1, 3, True), epoch_order(10, 1, 3, True))
    assert not np.array_equal(epoch_order(50, 1, 3, True), epoch_order(50, 1, 4, True))
    split = Split(np.arange(10.0)[:, None], np.arange(10))
    got = list(batches(split, 4, np.arange(10)[::-1]))
    assert [len(x) for x, _, _ in got] == [4, 4, 2]
    assert list(got[0][1]) == [9, 8, 7, 6]


def test_npz_npy_and_csv_files(tmp_path):
    x = np.arange(12, dtype=np.float32).reshape(4, 3)
    y = np.array([0, 1, 0, 1])
    np.savez(tmp_path / "d.npz", features=x, labels=y)
    gx, gy = load_raw(spec("npz", path=str(tmp_path / "d.npz"), x="features", y="labels"))
    np.testing.assert_array_equal(gx, x)
    np.save(tmp_path / "x.npy", x)
    np.save(tmp_path / "y.npy", y)
    gx, gy = load_raw(spec("npy", x=str(tmp_path / "x.npy"), y=str(tmp_path / "y.npy")))
    np.testing.assert_array_equal(gy, y)
    (tmp_path / "d.csv").write_text("a,target,b\n1,0,2\n3,1,4\n")
    gx, gy = load_raw(spec("csv", path=str(tmp_path / "d.csv"), label_column="target"))
    np.testing.assert_array_equal(gx, [[1, 2], [3, 4]])
    np.testing.assert_array_equal(gy, [0, 1])


def test_file_errors(tmp_path):
    with pytest.raises(DataError, match="data file not found"):
        load_raw(spec("npz", path=str(tmp_path / "missing.npz")))
    np.savez(tmp_path / "d.npz", x=np.zeros((2, 2)), y=np.zeros(2))
    with pytest.raises(DataError, match="no array named 'labels' \\(arrays: x, y\\)"):
        load_raw(spec("npz", path=str(tmp_path / "d.npz"), y="labels"))
    np.savez(tmp_path / "obj.npz", x=np.array([{"a": 1}], dtype=object), y=np.zeros(1))
    with pytest.raises(DataError, match="holds Python objects, which would need pickle to read; refused"):
        load_raw(spec("npz", path=str(tmp_path / "obj.npz")))
    np.savez(tmp_path / "nan.npz", x=np.array([[1.0], [np.nan]]), y=np.zeros(2))
    with pytest.raises(DataError, match="NaN or Inf \\(first in sample 1\\)"):
        load_raw(spec("npz", path=str(tmp_path / "nan.npz")))
    np.savez(tmp_path / "len.npz", x=np.zeros((3, 1)), y=np.zeros(2))
    with pytest.raises(DataError, match="3 feature rows but 2 labels"):
        load_raw(spec("npz", path=str(tmp_path / "len.npz")))
    (tmp_path / "bad.csv").write_text("a,label\n1,0\n2,x\n")
    with pytest.raises(DataError, match="bad.csv:3: 'x' is not a number"):
        load_raw(spec("csv", path=str(tmp_path / "bad.csv")))
    (tmp_path / "ok.csv").write_text("a,label\n1,0\n")
    with pytest.raises(DataError, match="no column 'y' \\(columns: a, label\\)"):
        load_raw(spec("csv", path=str(tmp_path / "ok.csv"), label_column="y"))
    (tmp_path / "ragged.csv").write_text("a,label\n1,0\n2\n")
    with pytest.raises(DataError, match="ragged.csv:3: expected 2 columns, got 1"):
        read_numeric_csv(str(tmp_path / "ragged.csv"))


def test_input_shape_mismatch_suggests_reshape():
    with pytest.raises(DataError, match="Reshape"):
        check_input_shape(np.zeros((2, 64)), (8, 8, 1), "digits")
    with pytest.raises(DataError, match="model's input_shape is \\(10,\\)"):
        check_input_shape(np.zeros((2, 64)), (10,), "digits")


def test_an_npz_with_its_own_test_split(tmp_path, write_config):
    """keras.datasets' layout, (x_train, y_train), (x_test, y_test): the file's test arrays are the test
    split; validation_split divides the training arrays."""
    import json

    from click.testing import CliRunner

    from kerascli.cli import cli

    rng = np.random.default_rng(0)
    x_train, x_test = rng.normal(size=(80, 3)).astype(np.float32), rng.normal(size=(30, 3)).astype(np.float32)
    np.savez(tmp_path / "d.npz", x_train=x_train, y_train=(x_train[:, 0] > 0).astype(np.int64),
             x_test=x_test, y_test=(x_test[:, 0] > 0).astype(np.int64))
    text = f"""
        name: own
        data: {{dataset: npz, path: {tmp_path / "d.npz"}, x: x_train, y: y_train, x_test: x_test, y_test: y_test,
               validation_split: 0.25}}
        model: {{input_shape: [3], layers: [{{type: Dense, units: 2, activation: softmax}}]}}
        compile: {{optimizer: adam, loss: sparse_categorical_crossentropy, metrics: [accuracy]}}
        train: {{epochs: 1}}
    """
    result = CliRunner().invoke(cli, ["train", write_config(text), "--runs-dir", str(tmp_path / "runs")])
    assert result.exit_code == 0, result.output
    assert "samples: train 60, val 20, test 30" in result.output
    summary = json.loads((tmp_path / "runs" / "own" / "summary.json").read_text())
    assert set(summary["evaluation"]) == {"checkpoint", "train", "val", "test"}
    evaluated = CliRunner().invoke(cli, ["evaluate", str(tmp_path / "runs" / "own"), "--split", "test", "--json"])
    assert json.loads(evaluated.stdout)["accuracy"] == pytest.approx(summary["evaluation"]["test"]["accuracy"])
    for change, message in [(", y_test: y_test", "data.y_test: y_test: x_test names the split's features, "
                                                 "y_test must name its labels"),
                            ("validation_split: 0.25", "validation_split: 0.25, test_split: 0.1")]:
        bad = write_config(text.replace(change, "" if change.startswith(",") else message), "bad.yaml")
        result = CliRunner().invoke(cli, ["train", bad, "--runs-dir", str(tmp_path / "runs")])
        assert result.exit_code == 2, result.output
        expected = message if change.startswith(",") else "data.test_split: dataset 'npz' gives its own 'test' split"
        assert expected in result.output, result.output
