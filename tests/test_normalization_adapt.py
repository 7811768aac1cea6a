"""Normalization: statistics adapted batch by batch equal Keras' adapt on the whole data, given ones follow
Keras' alignment, and a run adapts to its training split once (stored in its checkpoints, kept on resume)."""

import os

import numpy as np
import pytest
from test_cli import invoke
from test_layers import make_layer

from kerascli.runs.checkpoint import load_checkpoint


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
@pytest.mark.parametrize("params", [{}, {"axis": [1, 2]}, {"axis": 2}, {"axis": None}, {"invert": True},
                                    {"mean": 0.5, "variance": 4.0}, {"mean": [1.0, 2.0, 3.0, 4.0],
                                                                     "variance": [1.0, 4.0, 9.0, 16.0]},
                                    {"axis": [1, 2], "mean": [0.0, 1.0, 2.0, 3.0], "variance": [2.0, 1.0, 1.0, 3.0]}])
def test_normalization_matches_keras(params, rng):
    os.environ.setdefault("KERAS_BACKEND", "torch")
    keras = pytest.importorskip("keras")
    x = rng.normal(size=(50, 3, 4)) * np.array([1.0, 2.0, 3.0, 4.0]) + np.array([5.0, -1.0, 0.0, 2.0])
    layer, _ = make_layer("Normalization", params, (3, 4), "cpu")
    theirs = keras.layers.Normalization(**params)
    if "mean" not in params:
        seen = layer.adapt(x[i:i + 16] for i in range(0, len(x), 16))  # batch by batch, a short last one
        assert seen == 50 * (3 * 4 if params.get("axis", -1) is None else 3 if params.get("axis", -1) in (-1, 2)
                             else 1)
        theirs.adapt(x)
        np.testing.assert_allclose(layer.params["mean"], keras.ops.convert_to_numpy(theirs.adapt_mean), rtol=1e-6)
        np.testing.assert_allclose(layer.params["variance"], keras.ops.convert_to_numpy(theirs.adapt_variance),
                                   rtol=1e-6)
    np.testing.assert_allclose(layer.forward(x, False), keras.ops.convert_to_numpy(theirs(x)), rtol=1e-5, atol=1e-6)


def test_normalization_refuses_what_keras_refuses():
    from kerascli.graph.layer import ShapeError

    for params, shape, message in (({"mean": 1.0}, (3,), "give both mean and variance"),
                                   ({"axis": 0}, (3,), "axis 0 is the batch axis"),
                                   ({"axis": 3}, (3,), r"axis 3 outside \[-2, 2\)"),
                                   ({"mean": [1.0, 2.0], "variance": [1.0, 1.0]}, (3,), "has 2 values"),
                                   ({"mean": [1.0, 2.0, 3.0], "variance": 1.0}, (3,), "the same shape")):
        with pytest.raises(ShapeError, match=message):
            make_layer("Normalization", params, shape, "cpu")


CONFIG = """
name: adapted
seed: 3
data: {dataset: digits, validation_split: 0.1, test_split: 0.2}
model:
  input_shape: [64]
  layers:
    - {type: Normalization}
    - {type: Dense, units: 10, activation: softmax}
compile: {optimizer: adam, loss: sparse_categorical_crossentropy, metrics: [accuracy]}
train: {epochs: 2, batch_size: 64}
"""


def test_a_run_adapts_to_its_training_split_and_keeps_the_statistics(tmp_path, write_config):
    from kerascli.commands import load_spec
    from kerascli.train.session import build_session, load_data

    config = write_config(CONFIG)
    result = invoke("train", config, "--runs-dir", tmp_path / "runs", "--quiet")
    assert result.exit_code == 0, result.output
    (run,) = os.listdir(tmp_path / "runs")
    weights = load_checkpoint(str(tmp_path / "runs" / run / "checkpoints" / "last.npz")).weights()
    session = build_session(load_spec(config, []))
    train = np.asarray(load_data(session)["train"].x, np.float64)
    mean, variance = weights["normalization/mean"], weights["normalization/variance"]
    np.testing.assert_allclose(mean, train.mean(axis=0), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(variance, train.var(axis=0), rtol=1e-5, atol=1e-5)
    assert variance.min() == 0.0  # the digits' always-blank corner pixels: divided by epsilon, as Keras
    result = invoke("resume", str(tmp_path / "runs" / run), "--set", "train.epochs=3", "--quiet")
    assert result.exit_code == 0, result.output
    resumed = load_checkpoint(str(tmp_path / "runs" / run / "checkpoints" / "last.npz")).weights()
    np.testing.assert_array_equal(resumed["normalization/mean"], mean)


def test_an_adapting_layer_must_follow_an_input(tmp_path, write_config):
    config = write_config(CONFIG.replace("    - {type: Normalization}\n",
                                         "    - {type: Dense, units: 8}\n    - {type: Normalization}\n"))
    result = invoke("train", config, "--runs-dir", tmp_path / "runs", "--quiet")
    assert result.exit_code == 2 and "put it right after an input or give mean and variance" in result.output
    assert not os.listdir(tmp_path / "runs") if os.path.isdir(tmp_path / "runs") else True
