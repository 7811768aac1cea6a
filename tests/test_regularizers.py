"""Regularizers, constraints and frozen layers: each regularizer's penalty and gradient and each
constraint's projection against Keras 3 (torch backend, autograd for gradients), in float64; then whole
training steps against a Keras model given the same weights, and what a run reports."""

import os

import numpy as np
import pytest
from test_config import error_of, resolve_text

from kerascli.constraints import make as make_constraint
from kerascli.registry import CONSTRAINTS, REGULARIZERS, load_builtins
from kerascli.regularizers import make as make_regularizer
from kerascli.train.loop import Totals
from kerascli.train.session import build_session, load_data

load_builtins()
pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


def keras_and_torch():
    os.environ.setdefault("KERAS_BACKEND", "torch")
    return pytest.importorskip("keras"), pytest.importorskip("torch")


REGULARIZER_ROWS = {
    "l1": {"l1": 0.03},
    "l2": {"l2": 0.02},
    "l1_l2": {"l1": 0.01, "l2": 0.05},
    "orthogonal_regularizer": {"factor": 0.2},
}
KERAS_REGULARIZER = {"l1": "L1", "l2": "L2", "l1_l2": "L1L2", "orthogonal_regularizer": "OrthogonalRegularizer"}


def test_every_regularizer_and_constraint_has_a_row():
    assert sorted(REGULARIZER_ROWS) == sorted(REGULARIZERS.builtin_names())
    assert sorted(CONSTRAINT_ROWS) == sorted(CONSTRAINTS.builtin_names())


@pytest.mark.parametrize("name,mode", [(n, None) for n in sorted(REGULARIZER_ROWS)]
                         + [("orthogonal_regularizer", "columns")])
def test_regularizer_penalty_and_gradient_match_keras(name, mode, rng):
    keras, torch = keras_and_torch()
    args = {**REGULARIZER_ROWS[name], **({"mode": mode} if mode else {})}
    w = rng.normal(size=(5, 4))
    ours = make_regularizer({"type": name, **args})
    t = torch.tensor(w, requires_grad=True)
    theirs = getattr(keras.regularizers, KERAS_REGULARIZER[name])(**args)(t)
    theirs.backward()
    # (to 1e-7: Keras keeps the factors as float32 constants)
    np.testing.assert_allclose(ours.penalty(w), float(theirs.detach()), rtol=1e-7)
    g = t.grad.numpy()
    np.testing.assert_allclose(ours.gradient(w), g, rtol=1e-6, atol=1e-7 * np.abs(g).max())
    # the defaults by name, as Keras' strings give them
    theirs = keras.regularizers.get(KERAS_REGULARIZER[name]).get_config()
    assert make_regularizer(name).config == {k: pytest.approx(v, rel=1e-7) if isinstance(v, float) else v
                                             for k, v in theirs.items()}


CONSTRAINT_ROWS = {
    "max_norm": {"max_value": 1.5, "axis": 0},
    "min_max_norm": {"min_value": 0.5, "max_value": 1.2, "rate": 0.7, "axis": [0, 1]},
    "non_neg": {},
    "unit_norm": {"axis": 1},
}
KERAS_CONSTRAINT = {"max_norm": "MaxNorm", "min_max_norm": "MinMaxNorm", "non_neg": "NonNeg", "unit_norm": "UnitNorm"}


@pytest.mark.parametrize("name", sorted(CONSTRAINT_ROWS))
def test_constraints_match_keras(name, rng):
    keras, torch = keras_and_torch()
    args = CONSTRAINT_ROWS[name]
    w = rng.normal(size=(3, 4, 5))
    theirs = getattr(keras.constraints, KERAS_CONSTRAINT[name])(**args)(torch.tensor(w))
    # (to 1e-7: Keras keeps the arguments as float32 constants)
    np.testing.assert_allclose(make_constraint({"type": name, **args})(w), theirs.numpy(), rtol=1e-7)


def test_penalty_gradients_by_central_differences(rng):
    """The orthogonal regularizer's gradient has no closed form in Keras: it is checked here without Keras too,
    including a row of zeros (its norm below epsilon)."""
    from gradcheck import assert_grad_close, numeric_grad

    for mode in ("rows", "columns"):
        reg = make_regularizer({"type": "orthogonal_regularizer", "factor": 0.3, "mode": mode})
        w = rng.normal(size=(4, 6))
        w[1] = 0.0
        assert_grad_close(reg.gradient(w), numeric_grad(lambda: reg.penalty(w), w), f"orthogonal {mode}")


MODEL = """
name: reg
seed: 4
data: {dataset: synthetic_classification, samples: 48, features: 5, classes: 3, validation_split: 0.25}
model:
  input_shape: [5]
  layers:
    - {type: Dense, units: 6, activation: tanh, kernel_regularizer: {type: l2, l2: 0.05},
       bias_regularizer: l1, kernel_constraint: {type: max_norm, max_value: 0.8}, activity_regularizer: {type: l1, l1: 0.02}}
    - {type: Dense, units: 3, activation: softmax, kernel_regularizer: {type: orthogonal_regularizer, factor: 0.1},
       bias_constraint: non_neg}
compile: {optimizer: {type: sgd, learning_rate: 0.1}, loss: sparse_categorical_crossentropy}
train: {epochs: 2, batch_size: 12, shuffle: false, dtype: float64}
"""


def keras_twin(keras, weights):
    """The same model in Keras, holding ``weights``."""
    layers = keras.layers
    model = keras.Sequential([
        keras.Input((5,)),
        layers.Dense(6, activation="tanh", kernel_regularizer=keras.regularizers.L2(0.05), bias_regularizer="l1",
                     kernel_constraint=keras.constraints.MaxNorm(0.8),
                     activity_regularizer=keras.regularizers.L1(0.02)),
        layers.Dense(3, activation="softmax", kernel_regularizer=keras.regularizers.OrthogonalRegularizer(0.1),
                     bias_constraint=keras.constraints.NonNeg()),
    ])
    model.set_weights([weights[k] for k in ("dense/kernel", "dense/bias", "dense_1/kernel", "dense_1/bias")])
    model.compile(optimizer=keras.optimizers.SGD(0.1), loss="sparse_categorical_crossentropy")
    return model


def test_training_steps_match_keras():
    """Three SGD steps with every kind of regularizer and constraint: Keras' reported loss (which includes the
    penalties) and weights after each step."""
    keras, _ = keras_and_torch()
    keras.backend.set_floatx("float64")
    try:
        session = build_session(resolve_text(MODEL))
        trainer = session.trainer
        train = load_data(session)["train"]
        theirs = keras_twin(keras, session.model.get_weights())
        for step in range(3):
            xb, tb = train.x[12 * step:12 * step + 12], train.y[12 * step:12 * step + 12]
            totals = Totals(trainer.objective.names, trainer.objective.results)
            ours_loss = trainer.train_step(xb, tb, totals)
            their_loss = theirs.train_on_batch(xb, tb)
            # (to 1e-7: Keras keeps the regularizers' and constraints' arguments as float32 constants)
            np.testing.assert_allclose(ours_loss, their_loss, rtol=1e-7)
            for (key, ours), their in zip(session.model.get_weights().items(), theirs.get_weights()):
                np.testing.assert_allclose(ours, their, rtol=1e-6, atol=1e-7, err_msg=f"{key} after step {step}")
        logs = totals.means()
        assert 0 < logs["regularization_loss"] < logs["loss"]
    finally:
        keras.backend.set_floatx("float32")


def test_a_run_logs_the_penalty_as_its_own_column(tmp_path):
    from test_cli import invoke, read_metrics

    config = tmp_path / "reg.yaml"
    config.write_text(MODEL.replace("dtype: float64", "dtype: float32"))
    result = invoke("train", config, "--runs-dir", tmp_path / "runs", "--quiet")
    assert result.exit_code == 0, result.output
    rows = read_metrics(tmp_path / "runs" / "reg")
    assert len(rows) == 2
    for row in rows:
        for prefix in ("", "val_"):
            penalty, loss = float(row[prefix + "regularization_loss"]), float(row[prefix + "loss"])
            assert 0 < penalty < loss


@pytest.mark.parametrize("change,needle", [
    ("kernel_regularizer: {type: l2, l2: 0.05}", "kernel_regularizer: {type: l3}"),
    ("bias_constraint: non_neg", "bias_constraint: {type: max_norm, max_value: -1}"),
])
def test_bad_regularizers_and_constraints_name_the_key(change, needle):
    message = error_of(MODEL.replace(change, needle))
    assert "model.layers[" in message and ("unknown regularizer 'l3'" in message or "must be >= 0.0" in message)


def test_a_regularizer_or_constraint_that_cannot_apply_names_the_layer():
    from kerascli.errors import ConfigError
    from kerascli.graph.builder import build_model

    for old, new in (("bias_regularizer: l1", "bias_regularizer: orthogonal_regularizer"),
                     ("kernel_constraint: {type: max_norm, max_value: 0.8}", "kernel_constraint: {type: max_norm, axis: 2}")):
        text = MODEL.replace(old, new)
        with pytest.raises(ConfigError) as info:
            build_model(resolve_text(text).model)
        assert "dense" in str(info.value)
        assert "needs a 2-D weight" in str(info.value) or "axis 2 is not an axis" in str(info.value)


FROZEN = """
name: frozen
seed: 2
data: {dataset: synthetic_classification, samples: 48, features: 5, classes: 3, validation_split: 0.25}
model:
  input_shape: [5]
  layers:
    - {type: Dense, units: 6, activation: relu, trainable: false}
    - {type: BatchNormalization, trainable: false, momentum: 0.5, epsilon: 0.0009765625}
    - {type: Dense, units: 6, activation: tanh}
    - {type: BatchNormalization, momentum: 0.5, epsilon: 0.0009765625}
    - {type: Dense, units: 3, activation: softmax}
  freeze: FREEZE
compile: {optimizer: {type: sgd, learning_rate: 0.125}, loss: sparse_categorical_crossentropy}
train: {epochs: 1, batch_size: 12, shuffle: false, dtype: float64}
"""


def test_frozen_layers_train_as_in_keras():
    """Frozen Dense and BatchNormalization (in inference mode, as Keras runs a frozen one) ahead of trainable
    layers, and a layer frozen through model.freeze: three SGD steps against Keras with the same weights
    (arguments that float32 holds exactly)."""
    keras, _ = keras_and_torch()
    keras.backend.set_floatx("float64")
    try:
        session = build_session(resolve_text(FROZEN.replace("FREEZE", "[dense_2]")))
        model, trainer = session.model, session.trainer
        assert model.count_params() == (6 * 6 + 6 + 6 + 6, 5 * 6 + 6 + 4 * 6 + 6 * 3 + 3 + 2 * 6)
        before = model.get_weights()
        layers = keras.layers
        theirs = keras.Sequential([keras.Input((5,)), layers.Dense(6, activation="relu"),
                                   layers.BatchNormalization(momentum=0.5, epsilon=2 ** -10),
                                   layers.Dense(6, activation="tanh"),
                                   layers.BatchNormalization(momentum=0.5, epsilon=2 ** -10),
                                   layers.Dense(3, activation="softmax")])
        theirs.set_weights(list(before.values()))
        for i in (0, 1, 4):
            theirs.layers[i].trainable = False
        theirs.compile(optimizer=keras.optimizers.SGD(0.125), loss="sparse_categorical_crossentropy")
        train = load_data(session)["train"]
        for step in range(3):
            xb, tb = train.x[12 * step:12 * step + 12], train.y[12 * step:12 * step + 12]
            ours_loss = trainer.train_step(xb, tb, Totals(trainer.objective.names, trainer.objective.results))
            np.testing.assert_allclose(ours_loss, theirs.train_on_batch(xb, tb), rtol=1e-6)
            for (key, ours), their in zip(model.get_weights().items(), theirs.get_weights()):
                # (to 1e-6: Keras' float64 model is not exact, its forward pass here differs from a plain numpy
                # one by 7e-8 where ours agrees to 1e-16; a wrong gradient or a statistic updated while frozen
                # moves weights by 1e-3 and more)
                np.testing.assert_allclose(ours, their, rtol=1e-6, atol=1e-6, err_msg=f"{key} after step {step}")
        after = model.get_weights()
        for key in ("dense/kernel", "dense/bias", "batch_normalization/gamma", "batch_normalization/moving_mean",
                    "dense_2/kernel", "dense_2/bias"):
            np.testing.assert_array_equal(after[key], before[key])
        assert not np.array_equal(after["dense_1/kernel"], before["dense_1/kernel"])
    finally:
        keras.backend.set_floatx("float32")


def test_a_frozen_base_does_no_backward_work(monkeypatch):
    session = build_session(resolve_text(FROZEN.replace("FREEZE", "[]")))
    model = session.model
    first, bn = model.layers[0], model.layers[1]
    assert not first.need_input_grad and not bn.need_input_grad and model.layers[2].need_input_grad is False
    called = []
    for layer in (first, bn):
        monkeypatch.setattr(layer, "backward", lambda dy, name=layer.name: called.append(name))
    train = load_data(session)["train"]
    trainer = session.trainer
    trainer.train_step(train.x[:12], train.y[:12], Totals(trainer.objective.names, trainer.objective.results))
    assert called == []


def test_model_freeze_names_layers():
    assert "'dense_9' is not a layer of this model" in error_of(FROZEN.replace("FREEZE", "[dense, dense_9]"))
    assert "model.freeze[1]" in error_of(FROZEN.replace("FREEZE", "[dense, dense_9]"))
