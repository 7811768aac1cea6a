"""train.class_weight and the dataset's sample weights as Keras' fit takes them: each sample's loss (and
gradient) weighed, summed over the batch size; metrics unweighted, evaluation by the sample weights only;
'balanced' from the training labels."""

import json
import os

import numpy as np
import pytest
from click.testing import CliRunner
from gradcheck import assert_grad_close, numeric_grad

from kerascli.cli import cli
from kerascli.config.loader import parse_yaml_text
from kerascli.config.schema import resolve_config
from kerascli.errors import ConfigError
from kerascli.train.loop import Totals
from kerascli.train.session import build_session, load_data

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

CONFIG = """
name: cw
seed: 3
data: {{dataset: synthetic_classification, samples: 90, features: 4, classes: 3, validation_split: 0.2}}
model: {{input_shape: [4], layers: [{{type: Dense, units: 3, activation: softmax}}]}}
compile: {{optimizer: {{type: sgd, learning_rate: 0.1}}, loss: {loss}, metrics: [accuracy]}}
train: {{epochs: 2, batch_size: 16, dtype: float64, class_weight: {weights}}}
"""


def session(weights="{0: 1.0, 1: 4.0, 2: 0.5}", loss="sparse_categorical_crossentropy"):
    s = build_session(resolve_config(parse_yaml_text(CONFIG.format(weights=weights, loss=loss), "cw.yaml")))
    return s, load_data(s)


@pytest.mark.parametrize("loss", ["sparse_categorical_crossentropy", "categorical_crossentropy"])
def test_the_weighted_loss_is_keras_and_its_gradient_matches(loss, rng):
    os.environ.setdefault("KERAS_BACKEND", "torch")
    keras = pytest.importorskip("keras")
    torch = pytest.importorskip("torch")
    s, splits = session(loss=loss)
    model, objective = s.model, s.trainer.objective
    x, t = splits["train"].x[:16], splits["train"].y[:16]
    totals = Totals(objective.names)
    out = model.forward(x, training=True)
    total, pred = objective.forward(model.ops, out, t, totals, training=True)
    labels = t if t.ndim == 1 else t.argmax(axis=1)
    weights = np.array([1.0, 4.0, 0.5])[labels]
    probs = model.predict_batch(x)
    cls = keras.losses.SparseCategoricalCrossentropy if t.ndim == 1 else keras.losses.CategoricalCrossentropy
    theirs = cls()(torch.tensor(t), torch.tensor(probs), sample_weight=torch.tensor(weights))
    assert totals.means()["loss"] == pytest.approx(float(theirs), rel=1e-6)
    assert totals.means()["accuracy"] == pytest.approx(np.mean(probs.argmax(axis=1) == labels))  # unweighted

    def value():
        o = model.forward(x, training=True)
        return objective.forward(model.ops, o, t, Totals(objective.names), training=True)[0] / len(x)

    out = model.forward(x, training=True)
    _, pred = objective.forward(model.ops, out, t, Totals(objective.names), training=True)
    model.backward(objective.backward(model.ops, out, pred, t, 1.0 / len(x)))
    analytic = model.grad_buffer.copy()
    assert_grad_close(analytic, numeric_grad(value, model.param_buffer), "class-weighted loss")


def test_evaluation_is_unweighted(rng):
    s, splits = session()
    objective, model = s.trainer.objective, s.model
    x, t = splits["val"].x, splits["val"].y
    out = model.forward(x, training=False)
    plain, weighted = Totals(objective.names), Totals(objective.names)
    objective.forward(model.ops, out, t, plain)
    objective.forward(model.ops, out, t, weighted, training=True)
    assert plain.means()["loss"] != weighted.means()["loss"]
    assert s.trainer.evaluate(splits["val"], 256)["loss"] == pytest.approx(plain.means()["loss"])


def test_balanced_weights_count_the_training_labels():
    s, splits = session("balanced")
    ids = splits["train"].y
    counts = np.bincount(ids, minlength=3)
    np.testing.assert_allclose(s.trainer.objective.class_table, len(ids) / (3 * counts))


@pytest.mark.parametrize("weights,message", [
    ("{0: 1.0, 2: 3.0}", "no weight for class 1"),
    ("{0: 1.0, 1: -2.0, 2: 1.0}", "train.class_weight[1]: must be >= 0.0"),
    ("[1.0, 2.0]", "class_weight gives 2 classes but the output has 3"),
    ("heavy", "expected 'balanced' or a mapping of class id to weight"),
])
def test_bad_class_weights(weights, message):
    with pytest.raises(ConfigError) as err:
        session(weights)
    assert message in str(err.value)


def test_class_weight_needs_a_classification_loss():
    with pytest.raises(ConfigError, match="not a classification loss"):
        resolve_config(parse_yaml_text(CONFIG.format(weights="balanced", loss="mse"), "cw.yaml"))


def test_a_run_with_class_weights_resumes_and_evaluates(tmp_path):
    config = tmp_path / "cw.yaml"
    config.write_text(CONFIG.format(weights="{0: 1.0, 1: 4.0, 2: 0.5}", loss="sparse_categorical_crossentropy"))
    result = CliRunner().invoke(cli, ["train", str(config), "--runs-dir", str(tmp_path), "-q"])
    assert result.exit_code == 0, result.output
    assert "class_weight: [1.0, 4.0, 0.5]" in (tmp_path / "cw" / "config.yaml").read_text()
    result = CliRunner().invoke(cli, ["resume", str(tmp_path / "cw"), "--set", "train.epochs=3", "-q"])
    assert result.exit_code == 0, result.output
    out = CliRunner().invoke(cli, ["evaluate", str(tmp_path / "cw"), "--split", "val", "--json"])
    summary = json.loads((tmp_path / "cw" / "summary.json").read_text())
    assert json.loads(out.stdout)["loss"] == pytest.approx(summary["evaluation"]["val"]["loss"])


# ---------------------------------------------------------------- sample weights from the dataset
def test_sample_weights_weigh_the_loss_as_keras(rng):
    os.environ.setdefault("KERAS_BACKEND", "torch")
    keras = pytest.importorskip("keras")
    torch = pytest.importorskip("torch")
    s, splits = session()
    model, objective = s.model, s.trainer.objective
    objective.class_table = None  # sample weights alone here
    x, t = splits["train"].x[:16], splits["train"].y[:16]
    w = rng.random(16) * 3
    totals = Totals(objective.names)
    out = model.forward(x, training=False)
    objective.forward(model.ops, out, t, totals, weights=w)  # evaluation: sample weights apply too
    theirs = keras.losses.SparseCategoricalCrossentropy()(torch.tensor(t), torch.tensor(model.predict_batch(x)),
                                                          sample_weight=torch.tensor(w))
    assert totals.means()["loss"] == pytest.approx(float(theirs), rel=1e-6)

    def value():
        o = model.forward(x, training=True)
        return objective.forward(model.ops, o, t, Totals(objective.names), training=True, weights=w)[0] / len(x)

    out = model.forward(x, training=True)
    _, pred = objective.forward(model.ops, out, t, Totals(objective.names), training=True, weights=w)
    model.backward(objective.backward(model.ops, out, pred, t, 1.0 / len(x)))
    assert_grad_close(model.grad_buffer.copy(), numeric_grad(value, model.param_buffer), "sample-weighted loss")


def test_zero_sample_weights_from_a_csv_leave_the_weights_untouched(tmp_path):
    rng = np.random.default_rng(1)
    rows = ["a,b,label,w"] + [f"{rng.normal():.4f},{rng.normal():.4f},{i % 2},0" for i in range(40)]
    (tmp_path / "d.csv").write_text("\n".join(rows) + "\n")
    config = tmp_path / "c.yaml"
    config.write_text(f"""
name: zero
data: {{dataset: csv, path: {tmp_path / "d.csv"}, sample_weight_column: w}}
model: {{input_shape: [2], layers: [{{type: Dense, units: 2, activation: softmax}}]}}
compile: {{optimizer: {{type: sgd, learning_rate: 0.5}}, loss: sparse_categorical_crossentropy}}
train: {{epochs: 2, batch_size: 8}}
""")
    result = CliRunner().invoke(cli, ["train", str(config), "--runs-dir", str(tmp_path / "runs"), "-q"])
    assert result.exit_code == 0, result.output
    s = build_session(resolve_config(parse_yaml_text(config.read_text(), "c.yaml")))
    with np.load(tmp_path / "runs" / "zero" / "checkpoints" / "last.npz") as last:
        np.testing.assert_array_equal(last["dense/kernel"], s.model.layers[0].params["kernel"])  # the seeded start
    rows = (tmp_path / "runs" / "zero" / "metrics.csv").read_text().splitlines()
    assert float(rows[1].split(",")[1]) == 0.0  # every sample weighs nothing


def test_bad_sample_weights(tmp_path):
    (tmp_path / "d.csv").write_text("a,label,w\n1,0,1\n2,1,-1\n")
    config = tmp_path / "c.yaml"
    config.write_text(f"""
data: {{dataset: csv, path: {tmp_path / "d.csv"}, sample_weight_column: w}}
model: {{input_shape: [1], layers: [{{type: Dense, units: 2, activation: softmax}}]}}
compile: {{optimizer: sgd, loss: sparse_categorical_crossentropy}}
""")
    result = CliRunner().invoke(cli, ["train", str(config), "--runs-dir", str(tmp_path / "runs")])
    assert result.exit_code == 2 and "sample weights must not be negative" in result.output, result.output
