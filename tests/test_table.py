"""CSV tables with categorical columns (one-hot) and text labels (class ids): the encoding made from the
training file, stored with the run, and applied by evaluate and predict to other files."""

from __future__ import annotations

import csv
import json
import os

import numpy as np
import pytest
from click.testing import CliRunner

from kerascli.cli import cli
from kerascli.data.table import Encoding, read_table
from kerascli.errors import DataError

COLORS = ["red", "green", "blue"]


def write_table(path, rows, header=("size", "color", "shape", "label")):
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(header)
        w.writerows(rows)
    return str(path)


def flowers(rng, n):
    """A learnable table: the class follows the colour and the size."""
    rows = []
    for _ in range(n):
        color = COLORS[rng.integers(3)]
        size = rng.normal(2.0 if color == "red" else 0.0, 0.3)
        kind = "rose" if color == "red" else ("violet" if size > 0 else "daisy")
        rows.append([f"{size:.4f}", f" {color}", ["round", "long"][rng.integers(2)], kind])
    return rows


def test_categories_are_one_hot_and_text_labels_class_ids_in_sorted_order(tmp_path):
    path = write_table(tmp_path / "t.csv", [["1.5", "red", "long", "b"], ["2", "blue", "round", "a"],
                                            ["-1", " green", "round", "c"], ["0", "red", "round", "a"]])
    x, y, w, enc = read_table(path, categorical=["color", "shape"])
    assert enc.features == ["size", "color", "shape"]
    assert enc.categories == {"color": ["blue", "green", "red"], "shape": ["long", "round"]}
    assert enc.classes == ["a", "b", "c"] and enc.width == 6 and w is None
    np.testing.assert_array_equal(x, [[1.5, 0, 0, 1, 1, 0], [2, 1, 0, 0, 0, 1], [-1, 0, 1, 0, 0, 1],
                                      [0, 0, 0, 1, 0, 1]])
    np.testing.assert_array_equal(y, [1, 0, 2, 0])
    again = Encoding.from_json(enc.to_json(), "ckpt")
    assert again == enc
    # another file through the run's encoding: columns found by name, the same positions
    other = write_table(tmp_path / "o.csv", [["round", "c", "green", "3"]], header=("shape", "label", "color", "size"))
    x2, y2, _, _ = read_table(other, encoding=enc)
    np.testing.assert_array_equal(x2, [[3, 0, 1, 0, 0, 1]])
    np.testing.assert_array_equal(y2, [2])
    inputs = write_table(tmp_path / "i.csv", [["1", "blue", "long"]], header=("size", "color", "shape"))
    x3, y3, _, _ = read_table(inputs, encoding=enc)  # no label column: inputs to predict
    assert y3 is None and x3.shape == (1, 6)


def test_numeric_labels_stay_numbers_and_bad_tables_are_named(tmp_path):
    path = write_table(tmp_path / "n.csv", [["1", "red", "long", "0"], ["2", "blue", "round", "2"]])
    _, y, _, enc = read_table(path, categorical=["color", "shape"])
    assert enc.classes is None and enc.categories == {"color": ["blue", "red"], "shape": ["long", "round"]}
    np.testing.assert_array_equal(y, [0, 2])
    cases = [
        (lambda: read_table(path), "n.csv:2: column 'color': 'red' is not a number; if it is a category, add it "
                                   "to data.categorical"),
        (lambda: read_table(path, categorical=["colour"]), "data.categorical names 'colour', which is not a column"),
        (lambda: read_table(path, categorical=["label"]), "the label or weight column"),
        (lambda: read_table(write_table(tmp_path / "m.csv", [["1", "red", "l", "a"], ["2", "red", "l", "3"],
                                                             ["2", "red", "l", "b"]]), categorical=["color", "shape"]),
         "m.csv:3: '3' is a number, but most labels are not"),
        (lambda: read_table(write_table(tmp_path / "r.csv", [["1", "red", "l"]]), categorical=["color"]),
         "r.csv:2: expected 4 columns, got 3"),
    ]
    for call, message in cases:
        with pytest.raises(DataError) as info:
            call()
        assert message in str(info.value)
    unseen = write_table(tmp_path / "u.csv", [["1", "red", "long", "0"], ["1", "pink", "long", "0"]])
    with pytest.raises(DataError, match=r"u.csv:3: column 'color': 'pink' is not one of the run's categories "
                                        r"\(blue, red\)"):
        read_table(unseen, encoding=enc)
    lacking = write_table(tmp_path / "l.csv", [["1", "red"]], header=("size", "color"))
    with pytest.raises(DataError, match="no column 'shape', a feature of the run"):
        read_table(lacking, encoding=enc)


CONFIG = """
name: flowers
seed: 3
data: {{dataset: csv, path: {path}, categorical: [color, shape], validation_split: 0.2}}
model:
  input_shape: [6]
  layers:
    - {{type: Dense, units: 16, activation: relu}}
    - {{type: Dense, units: 3, activation: softmax}}
compile: {{optimizer: {{type: adam, learning_rate: 0.02}}, loss: sparse_categorical_crossentropy, metrics: [accuracy]}}
train: {{epochs: 25, batch_size: 16, threads: 1}}
"""


def test_a_table_run_stores_its_encoding_and_predicts_class_names(tmp_path, rng):
    data = write_table(tmp_path / "flowers.csv", flowers(rng, 300))
    config = tmp_path / "c.yaml"
    config.write_text(CONFIG.format(path=data))
    runner = CliRunner()
    result = runner.invoke(cli, ["train", str(config), "--runs-dir", str(tmp_path / "runs"), "-q"])
    assert result.exit_code == 0, result.output
    run = tmp_path / "runs" / "flowers"
    summary = json.loads((run / "summary.json").read_text())
    assert summary["encoding"]["classes"] == ["daisy", "rose", "violet"]
    assert summary["encoding"]["categories"]["color"] == ["blue", "green", "red"]
    assert summary["evaluation"]["val"]["accuracy"] > 0.9
    with np.load(run / "checkpoints" / "best.npz") as z:
        assert json.loads(str(z["_encoding"]))["features"] == ["size", "color", "shape"]

    inputs = write_table(tmp_path / "in.csv", [["long", "red", "2.1"], ["round", "blue", "-0.5"],
                                               ["long", "green", "0.6"]], header=("shape", "color", "size"))
    out = tmp_path / "p.csv"
    result = runner.invoke(cli, ["predict", str(run), inputs, "-o", str(out)])
    assert result.exit_code == 0, result.output
    rows = list(csv.reader(out.open()))
    assert rows[0] == ["class", "class_name", "prob_daisy", "prob_rose", "prob_violet"]
    assert [r[1] for r in rows[1:]] == ["rose", "daisy", "violet"]
    result = runner.invoke(cli, ["predict", str(run), inputs, "-o", str(out), "--classes"])
    assert result.exit_code == 0 and list(csv.reader(out.open()))[1] == ["1", "rose"]

    held_out = write_table(tmp_path / "held.csv", flowers(np.random.default_rng(9), 60))
    result = runner.invoke(cli, ["evaluate", str(run), "--data", held_out, "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["accuracy"] > 0.9

    bad = write_table(tmp_path / "bad.csv", [["long", "pink", "2.1"]], header=("shape", "color", "size"))
    result = runner.invoke(cli, ["predict", str(run), bad, "-o", str(tmp_path / "bad_out.csv")])
    assert result.exit_code != 0 and "Traceback" not in result.output
    assert "bad.csv:2: column 'color': 'pink' is not one of the run's categories" in result.output
    assert not os.path.exists(tmp_path / "bad_out.csv")
