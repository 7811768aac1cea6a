"""Functional models with several inputs and outputs: named arrays in, per-output losses, loss_weights and
metrics, Keras' logged names, gradients of the weighted loss, evaluate and predict."""

import csv

import numpy as np
import pytest
from click.testing import CliRunner
from gradcheck import assert_grad_close, numeric_grad

from kerascli.cli import cli
from kerascli.config.loader import parse_yaml_text
from kerascli.config.schema import resolve_config
from kerascli.errors import ConfigError
from kerascli.train.loop import Totals
from kerascli.train.session import build_session


def make_data(path, n=90, seed=0):
    rng = np.random.default_rng(seed)
    image = rng.normal(size=(n, 4, 4, 1)).astype(np.float32)
    meta = rng.normal(size=(n, 3)).astype(np.float32)
    digit = (image.mean(axis=(1, 2, 3)) > 0).astype(np.int64) + (meta[:, 0] > 0)
    score = (meta @ np.array([1.0, -2.0, 0.5]) + image.sum(axis=(1, 2, 3)) * 0.1).astype(np.float32)
    np.savez(path, image=image, meta=meta, digit=digit, score=score)
    return image, meta, digit, score


CONFIG = """
name: two
seed: 4
data: {{dataset: npz, path: {path}, x: [image, meta], y: [digit, score], validation_split: 0.2}}
model:
  inputs: [{{name: image, shape: [4, 4, 1]}}, {{name: meta, shape: [3]}}]
  layers:
    - {{name: conv, type: Conv2D, filters: 3, kernel_size: 2, activation: relu, inputs: [image]}}
    - {{name: flat, type: Flatten, inputs: [conv]}}
    - {{name: both, type: Concatenate, inputs: [flat, meta]}}
    - {{name: hidden, type: Dense, units: 8, activation: tanh, inputs: [both]}}
    - {{name: digit, type: Dense, units: 3, activation: softmax, inputs: [hidden]}}
    - {{name: score, type: Dense, units: 1, inputs: [hidden]}}
  outputs: [digit, score]
compile:
  optimizer: {{type: adam, learning_rate: 0.01}}
  loss: {{digit: sparse_categorical_crossentropy, score: mse}}
  loss_weights: {{digit: 1.0, score: 0.25}}
  metrics: {{digit: [accuracy], score: [mae]}}
train: {{epochs: 3, batch_size: 16, dtype: {dtype}}}
"""


@pytest.fixture
def config(tmp_path):
    make_data(tmp_path / "d.npz")
    path = tmp_path / "two.yaml"
    path.write_text(CONFIG.format(path=tmp_path / "d.npz", dtype="float32"))
    return path


def test_trains_with_keras_names_and_a_weighted_loss(config, tmp_path):
    result = CliRunner().invoke(cli, ["train", str(config), "--runs-dir", str(tmp_path / "runs"), "-q"])
    assert result.exit_code == 0, result.output
    rows = list(csv.DictReader(open(tmp_path / "runs" / "two" / "metrics.csv")))
    assert list(rows[0]) == ["epoch", "loss", "digit_loss", "score_loss", "digit_accuracy",
                             "score_mean_absolute_error", "val_loss", "val_digit_loss", "val_score_loss",
                             "val_digit_accuracy", "val_score_mean_absolute_error", "lr", "seconds"]
    for row in rows:
        for prefix in ("", "val_"):
            total = float(row[f"{prefix}digit_loss"]) + 0.25 * float(row[f"{prefix}score_loss"])
            assert float(row[f"{prefix}loss"]) == pytest.approx(total, rel=1e-5)
    assert float(rows[-1]["loss"]) < float(rows[0]["loss"])


def test_evaluate_and_predict_by_name(config, tmp_path):
    assert CliRunner().invoke(cli, ["train", str(config), "--runs-dir", str(tmp_path / "runs"), "-q"]).exit_code == 0
    run = tmp_path / "runs" / "two"
    result = CliRunner().invoke(cli, ["evaluate", str(run), "--split", "val"])
    assert result.exit_code == 0 and "digit_accuracy" in result.output, result.output
    image, meta, _, _ = make_data(tmp_path / "new.npz", n=7, seed=1)
    result = CliRunner().invoke(cli, ["predict", str(run), str(tmp_path / "new.npz"), "-o", str(tmp_path / "p.npz")])
    assert result.exit_code == 0, result.output
    with np.load(tmp_path / "p.npz") as z:
        assert z["digit"].shape == (7, 3) and z["score"].shape == (7, 1)
        np.testing.assert_allclose(z["digit"].sum(axis=1), 1, rtol=1e-5)
    result = CliRunner().invoke(cli, ["predict", str(run), str(tmp_path / "new.npz"), "-o", str(tmp_path / "c.npz"),
                                      "--classes"])
    assert result.exit_code == 2 and "--classes needs a classification model" in result.output
    result = CliRunner().invoke(cli, ["predict", str(run), str(tmp_path / "new.npz"), "-o", str(tmp_path / "p.csv")])
    assert result.exit_code == 2 and "write them to an .npz" in result.output
    np.savez(tmp_path / "half.npz", image=image)
    result = CliRunner().invoke(cli, ["predict", str(run), str(tmp_path / "half.npz"), "-o", str(tmp_path / "q.npz")])
    assert result.exit_code == 2 and "no array named 'meta'" in result.output


def test_gradient_of_the_weighted_loss(tmp_path):
    make_data(tmp_path / "d.npz", n=10)
    text = CONFIG.format(path=tmp_path / "d.npz", dtype="float64").replace("{type: adam, learning_rate: 0.01}", "sgd")
    # the score output also feeds another layer: its value must stay unfused and its gradient summed
    text = text.replace("  outputs: [digit, score]", "    - {name: extra, type: Dense, units: 2, inputs: [score]}\n"
                                                       "  outputs: [digit, score, extra]")
    text = text.replace("loss: {digit: sparse_categorical_crossentropy, score: mse}",
                        "loss: [sparse_categorical_crossentropy, mse, mse]").replace(
        "loss_weights: {digit: 1.0, score: 0.25}", "loss_weights: [1.0, 0.25, 2.0]").replace(
        "metrics: {digit: [accuracy], score: [mae]}", "metrics: {extra: [mae]}")
    s = build_session(resolve_config(parse_yaml_text(text, "grad.yaml")))
    model, objective = s.model, s.trainer.objective
    assert objective.fused == {"digit": True, "score": False, "extra": False}
    rng = np.random.default_rng(2)
    model.param_buffer[...] = rng.normal(scale=0.5, size=model.param_buffer.shape)
    x = {"image": rng.normal(size=(5, 4, 4, 1)), "meta": rng.normal(size=(5, 3))}
    t = {"digit": rng.integers(0, 3, 5), "score": rng.normal(size=(5, 1)), "extra": rng.normal(size=(5, 2))}

    def loss():
        return objective.forward(model.ops, model.forward(x, training=True), t, Totals(objective.names))[0]

    out = model.forward(x, training=True)
    _, pred = objective.forward(model.ops, out, t, Totals(objective.names))
    model.backward(objective.backward(model.ops, out, pred, t, 1.0))
    analytic = model.grad_buffer.copy()
    assert_grad_close(analytic, numeric_grad(loss, model.param_buffer), "multi-output model")


@pytest.mark.parametrize("change,needle", [
    (("loss: {digit: sparse_categorical_crossentropy, score: mse}", "loss: {digit: mse, scor: mse}"),
     "compile.loss.scor: 'scor' is not an output of this model (outputs: digit, score)"),
    (("loss: {digit: sparse_categorical_crossentropy, score: mse}", "loss: [mse]"),
     "a list gives one loss per output in order (2: digit, score), got 1"),
    (("loss: {digit: sparse_categorical_crossentropy, score: mse}", "loss: {digit: mse}"),
     "no loss for output 'score'"),
    (("outputs: [digit, score]", "outputs: [digit, digit]"), "'digit' is listed twice"),
    (("{name: meta, shape: [3]}", "{name: image, shape: [3]}"), "duplicate input name 'image'"),
])
def test_configuration_mistakes(config, change, needle):
    with pytest.raises(ConfigError, match=None) as info:
        resolve_config(parse_yaml_text(config.read_text().replace(*change), "two.yaml"))
    assert needle in str(info.value), str(info.value)


def test_dataset_arrays_must_match_the_model(config, tmp_path):
    text = config.read_text().replace("x: [image, meta]", "x: [image, digit]")
    (tmp_path / "bad.yaml").write_text(text)
    result = CliRunner().invoke(cli, ["validate", str(tmp_path / "bad.yaml")])
    assert result.exit_code == 2 and "no array for model input 'meta' (the dataset has: image, digit)" in result.output
    text = config.read_text().replace("x: [image, meta], ", "")
    (tmp_path / "bad.yaml").write_text(text)
    result = CliRunner().invoke(cli, ["validate", str(tmp_path / "bad.yaml")])
    assert result.exit_code == 2 and "no array named 'x'" in result.output


def test_single_output_configs_keep_their_shape():
    from conftest import SMALL_MLP

    spec = resolve_config(parse_yaml_text(SMALL_MLP, "small.yaml"))
    assert spec.compile["loss"] == {"type": "sparse_categorical_crossentropy", "from_logits": False, "axis": -1,
                                    "ignore_class": None}
    assert spec.compile["metrics"] == ["accuracy"]
    assert spec.compile["loss_weights"] is None
    with pytest.raises(ConfigError, match="this model has one"):
        resolve_config(parse_yaml_text(SMALL_MLP.replace("  metrics:", "  loss_weights: [1.0]\n  metrics:"), "s"))


@pytest.mark.parametrize("loss,expected", [
    ("loss: {digit: {type: scce, from_logits: false}, score: {type: huber, delta: 2.0}}",
     {"digit": {"type": "sparse_categorical_crossentropy", "from_logits": False, "axis": -1,
                "ignore_class": None},
      "score": {"type": "huber", "delta": 2.0}}),
    ("loss: [scce, {type: huber, delta: 0.5}]",
     {"digit": {"type": "sparse_categorical_crossentropy", "from_logits": False, "axis": -1,
                "ignore_class": None},
      "score": {"type": "huber", "delta": 0.5}}),
    ("loss: {type: huber, delta: 3.0}",  # one loss with arguments for every output
     {"digit": {"type": "huber", "delta": 3.0}, "score": {"type": "huber", "delta": 3.0}}),
])
def test_per_output_losses_take_arguments(config, loss, expected):
    text = config.read_text().replace("loss: {digit: sparse_categorical_crossentropy, score: mse}", loss)
    spec = resolve_config(parse_yaml_text(text, "two.yaml"))
    assert spec.compile["loss"] == expected
    if expected["digit"]["type"] != "huber":  # (huber needs targets shaped like the output: not the digits')
        from kerascli.train.session import build_session

        objective = build_session(spec).trainer.objective
        assert objective.losses["score"].param == expected["score"]["delta"]
