"""Whole models against float64 central differences: the gradient a training step applies is the
derivative of the loss it reports, through branches and merges, weightless prefixes (no input gradient
formed), fused layers (a first Conv2D with its max pooling; softmax or sigmoid with the loss),
normalization and dropout, on both kernel backends."""

import numpy as np
import pytest
from gradcheck import assert_grad_close

from kerascli.config.loader import parse_yaml_text
from kerascli.config.schema import resolve_config
from kerascli.train.session import build_session


def session(model: str, loss: str, backend: str, features: int):
    text = f"""
name: grad
seed: 7
data: {{dataset: synthetic_classification, samples: 12, features: {features}, classes: 3}}
model:
{model}
compile: {{optimizer: sgd, loss: {loss}}}
train: {{dtype: float64, backend: {backend}, threads: 1}}
"""
    return build_session(resolve_config(parse_yaml_text(text, "grad.yaml")))


BRANCHES = """
  inputs: [{name: x, shape: [5]}]
  layers:
    - {name: wide, type: Dense, units: 4, activation: tanh, inputs: [x]}
    - {name: narrow, type: Dense, units: 4, activation: sigmoid, inputs: [x]}
    - {name: skip, type: Dense, units: 4, inputs: [wide]}
    - {name: summed, type: Add, inputs: [skip, narrow, wide]}
    - {name: joined, type: Concatenate, inputs: [summed, narrow]}
    - {name: norm, type: BatchNormalization, inputs: [joined]}
    - {name: drop, type: Dropout, rate: 0.3, inputs: [norm]}
    - {name: out, type: Dense, units: 3, activation: softmax, inputs: [drop]}
  outputs: [out]"""

# Reshape and Rescaling carry no weights: the first Conv2D forms no input gradient, runs its direct
# kernel and takes over the max pooling after it; the second Conv2D goes through patches and a GEMM.
CNN = """
  input_shape: [72]
  layers:
    - {type: Reshape, target_shape: [6, 6, 2]}
    - {type: Rescaling, scale: 0.5, offset: 0.1}
    - {type: Conv2D, filters: 3, kernel_size: 2, activation: relu}
    - {type: MaxPooling2D, pool_size: 2}
    - {type: Conv2D, filters: 5, kernel_size: 2, padding: same, activation: tanh}
    - {type: AveragePooling2D, pool_size: 2}
    - {type: Flatten}
    - {type: Dense, units: 3, activation: softmax}"""

SIGMOID_OUT = """
  input_shape: [4]
  layers:
    - {type: Dense, units: 6, activation: relu}
    - {type: Dense, units: 3, activation: sigmoid}"""

REGRESSION = """
  input_shape: [2, 3]
  layers:
    - {type: Dense, units: 4, activation: tanh}
    - {type: Flatten}
    - {type: Dense, units: 3}"""

# return_state and initial states: the decoder starts from the encoder's final states, whose own output is
# read by nothing (its gradient arrives through the states alone); a GRU's state joins its output (the same
# values, two gradients added) and starts a SimpleRNN read backwards
SEQ2SEQ_LSTM = """
  inputs: [{name: x, shape: [3, 2]}]
  layers:
    - {name: enc, type: LSTM, units: 3, return_state: true, inputs: [x]}
    - {name: dec, type: LSTM, units: 3, return_sequences: true, inputs: [x, "enc[1]", "enc[2]"]}
    - {name: flat, type: Flatten, inputs: [dec]}
    - {name: out, type: Dense, units: 3, activation: softmax, inputs: [flat]}
  outputs: [out]"""

STATES_GRU = """
  inputs: [{name: x, shape: [3, 2]}]
  layers:
    - {name: enc, type: GRU, units: 3, return_state: true, reset_after: false, inputs: [x]}
    - {name: dec, type: SimpleRNN, units: 3, go_backwards: true, inputs: [x, "enc[1]"]}
    - {name: both, type: Concatenate, inputs: [enc, dec, "enc[1]"]}
    - {name: out, type: Dense, units: 3, activation: softmax, inputs: [both]}
  outputs: [out]"""

BIDIRECTIONAL_STATES = """
  inputs: [{name: x, shape: [3, 2]}]
  layers:
    - {name: enc, type: Bidirectional, layer: {type: LSTM, units: 2, return_state: true}, inputs: [x]}
    - {name: dec, type: Bidirectional, merge_mode: mul, layer: {type: SimpleRNN, units: 2},
       inputs: [x, "enc[1]", "enc[3]"]}
    - {name: both, type: Concatenate, inputs: [dec, "enc[4]"]}
    - {name: out, type: Dense, units: 3, activation: softmax, inputs: [both]}
  outputs: [out]"""

MODELS = {
    "recurrent states of both halves (Bidirectional)": (BIDIRECTIONAL_STATES, "categorical_crossentropy", 6),
    "recurrent states into a decoder (LSTM)": (SEQ2SEQ_LSTM, "categorical_crossentropy", 6),
    "recurrent state read twice and given (GRU, SimpleRNN)": (STATES_GRU, "categorical_crossentropy", 6),
    "branches and merges": (BRANCHES, "categorical_crossentropy", 5),
    "weightless prefix, fused conv and pooling": (CNN, "sparse_categorical_crossentropy", 72),
    "sigmoid with binary cross-entropy": (SIGMOID_OUT, "binary_crossentropy", 4),
    "softmax not fused (mse)": (BRANCHES, "mse", 5),
    "regression on a rank-3 input": (REGRESSION, "mse", 6),
}


def targets(loss, rng, n):
    if loss == "sparse_categorical_crossentropy":
        return rng.integers(0, 3, n)
    if loss == "categorical_crossentropy":
        return np.eye(3)[rng.integers(0, 3, n)]
    return rng.random((n, 3))


@pytest.mark.parametrize("backend", ["cpu", "reference"])
@pytest.mark.parametrize("name", list(MODELS))
def test_model_gradient_matches_central_differences(name, backend):
    model_text, loss_name, features = MODELS[name]
    s = session(model_text, loss_name, backend, features)
    model, trainer = s.model, s.trainer
    if name.startswith("weightless"):
        conv = model.layers[2]
        assert not conv.need_input_grad and conv.pool is model.layers[3] and not model.layers[4].pool
    if name != "softmax not fused (mse)" and not name.startswith("regression") and "recurrent" not in name:
        assert trainer.fused  # the output activation runs inside the loss
    rng = np.random.default_rng(3)
    (input_shape,) = model.input_shapes.values()
    x = rng.normal(size=(4,) + tuple(input_shape))
    t = trainer.loss.targets(targets(loss_name, rng, 4), 3, np.float64)
    model.param_buffer[...] = rng.normal(scale=0.7, size=model.param_buffer.shape)  # no zeros: every path counts
    rng_states = {layer.name: layer.rng.bit_generator.state for layer in model.layers}

    def loss():
        for layer in model.layers:  # the same dropout mask on every evaluation
            layer.rng.bit_generator.state = rng_states[layer.name]
        out = model.forward(x, training=True)
        losses, pred = trainer.loss.forward(model.ops, out, t, trainer.fused)
        return float(losses.sum()) / len(x), out, pred

    _, out, pred = loss()
    model.grad_buffer[...] = 0
    model.backward(trainer.loss.backward(model.ops, out, pred, t, 1.0 / len(x), trainer.fused))
    analytic = model.grad_buffer.copy()

    numeric = np.zeros_like(analytic)
    for key, _, spec in model.weight_items(trainable_only=True):
        for i in range(model.slices[key].start, model.slices[key].stop):
            old = model.param_buffer[i]
            model.param_buffer[i] = old + 1e-6
            up = loss()[0]
            model.param_buffer[i] = old - 1e-6
            down = loss()[0]
            model.param_buffer[i] = old
            numeric[i] = (up - down) / 2e-6
    assert np.abs(analytic).max() > 1e-3  # a gradient that is all zeros would pass trivially
    for key, _, _ in model.weight_items(trainable_only=True):
        where = model.slices[key]
        assert_grad_close(analytic[where], numeric[where], f"{name}: {key}")


def test_gradient_hooks_see_the_flat_buffers_between_backward_and_the_step():
    s = session(BRANCHES, "categorical_crossentropy", "cpu", 5)
    model, trainer = s.model, s.trainer
    rng = np.random.default_rng(0)
    x = rng.normal(size=(6, 5))
    t = trainer.loss.targets(targets("categorical_crossentropy", rng, 6), 3, np.float64)
    seen = []

    def record(grads, state):
        assert grads is model.grad_buffer and state is model.state_buffer
        seen.append((grads.copy(), model.param_buffer.copy()))

    def cancel(grads, state):
        grads[...] = 0  # as an allreduce would overwrite them in place

    trainer.gradient_hooks = [record]
    from kerascli.train.loop import Totals

    trainer.train_step(x, t, Totals(["loss"]))
    assert len(seen) == 1 and np.abs(seen[0][0]).max() > 0
    assert not np.array_equal(seen[0][1], model.param_buffer)  # the step came after the hook
    trainer.gradient_hooks = [cancel, record]
    before = model.param_buffer.copy()
    trainer.train_step(x, t, Totals(["loss"]))
    assert not seen[1][0].any()
    # SGD without momentum: zero gradients leave the weights where they were
    np.testing.assert_array_equal(model.param_buffer, before)
