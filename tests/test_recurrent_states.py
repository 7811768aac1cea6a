"""Keras' return_state and initial_state: a recurrent layer's final states as outputs name[1] (h) and name[2]
(an LSTM's c), and another recurrent layer started from them (its inputs after the sequence), as an
encoder-decoder is written. Gradients through them: tests/test_model_gradients.py; against Keras:
tests/test_exchange.py."""

import json
import os

import numpy as np
import pytest
from click.testing import CliRunner

from kerascli.cli import cli
from kerascli.config import resolve_config
from kerascli.config.loader import LoadedConfig
from kerascli.train.session import build_session


def functional(layers, outputs, inputs=({"name": "x", "shape": [5, 3]},)):
    return {"inputs": list(inputs), "layers": layers, "outputs": outputs}


def session(model, **extra):
    spec = resolve_config(LoadedConfig(data={"name": "s", "seed": 1, "data": {"dataset": "digits"},
                                             "compile": {"loss": "mse"}, "model": model, **extra}, source="test"))
    return build_session(spec)


def test_state_outputs_are_the_final_states_and_carry_over_padding():
    s = session(functional([
        {"name": "embed", "type": "Embedding", "input_dim": 9, "output_dim": 3, "mask_zero": True, "inputs": ["ids"]},
        {"name": "lstm", "type": "LSTM", "units": 4, "return_sequences": True, "return_state": True,
         "inputs": ["embed"]},
        {"name": "gru", "type": "GRU", "units": 2, "return_state": True, "inputs": ["embed"]},
        {"name": "pool", "type": "GlobalAveragePooling1D", "inputs": ["lstm"]}],
        ["pool", "lstm[1]", "lstm[2]", "gru", "gru[1]"], inputs=[{"name": "ids", "shape": [5]}]))
    assert s.model.output_shapes == {"pool": (4,), "lstm[1]": (4,), "lstm[2]": (4,), "gru": (2,), "gru[1]": (2,)}
    from kerascli.ui.summary import summary_text

    assert "[(None, 5, 4), (None, 4), (None, 4)]" in summary_text(s.model, "s")  # Keras' way of listing them
    ids = np.array([[5, 3, 7, 0, 0], [1, 2, 3, 4, 5], [0, 0, 8, 8, 1]], np.float32)
    out = {k: v.copy() for k, v in s.model.forward(ids, training=False).items()}
    np.testing.assert_array_equal(out["gru[1]"], out["gru"])  # without return_sequences: the output is h
    lstm = s.model.layers[1]
    lstm.mask = None  # the same layer with no mask: every step counts
    sequence = lstm.forward(s.model.layers[0].forward(ids, False), False)
    # the states after the last real step: the padding at the end of sample 0 changes nothing
    np.testing.assert_allclose(out["lstm[1]"][0], sequence[0, 2], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(out["lstm[1]"][1], sequence[1, -1], rtol=1e-5, atol=1e-6)
    assert not np.allclose(out["lstm[1]"][0], sequence[0, -1])
    c = out["lstm[2]"]
    assert c.shape == (3, 4) and not np.allclose(c, out["lstm[1]"])


def test_initial_state_changes_the_result_and_zeros_change_nothing():
    layers = [{"name": "rnn", "type": "SimpleRNN", "units": 3, "inputs": ["x", "h0"]}]
    s = session(functional(layers, ["rnn"], inputs=[{"name": "x", "shape": [4, 2]}, {"name": "h0", "shape": [3]}]))
    plain = session(functional([{"name": "rnn", "type": "SimpleRNN", "units": 3, "inputs": ["x"]}], ["rnn"],
                               inputs=[{"name": "x", "shape": [4, 2]}]))
    plain.model.param_buffer[...] = s.model.param_buffer
    x = np.random.default_rng(0).normal(size=(2, 4, 2)).astype(np.float32)
    zeros = s.model.forward({"x": x, "h0": np.zeros((2, 3), np.float32)}, training=False).copy()
    np.testing.assert_allclose(zeros, plain.model.forward(x, training=False), rtol=1e-6)
    started = s.model.forward({"x": x, "h0": np.ones((2, 3), np.float32)}, training=False)
    assert not np.allclose(started, zeros)


def invoke(*args):
    return CliRunner().invoke(cli, [str(a) for a in args])


BAD = {
    "index past the outputs": ("""
  inputs: [{name: x, shape: [5, 3]}]
  layers:
    - {name: enc, type: LSTM, units: 4, return_state: true, inputs: [x]}
    - {name: out, type: Dense, units: 2, inputs: ["enc[3]"]}
  outputs: [out]""", "'enc[3]': 'enc' has 3 outputs (enc, enc[1], enc[2])"),
    "state without return_state": ("""
  inputs: [{name: x, shape: [5, 3]}]
  layers:
    - {name: enc, type: GRU, units: 4, inputs: [x]}
  outputs: ["enc[1]"]""", "'enc[1]': 'enc' has one output (enc)"),
    "return_state in a Sequential model": ("""
  input_shape: [5, 3]
  layers:
    - {type: LSTM, units: 4, return_state: true}
    - {type: Dense, units: 2}""", "gives 3 outputs (return_state); a Sequential model passes one on"),
    "too few initial states": ("""
  inputs: [{name: x, shape: [5, 3]}]
  layers:
    - {name: enc, type: LSTM, units: 4, return_state: true, inputs: [x]}
    - {name: dec, type: LSTM, units: 4, inputs: [x, "enc[1]"]}
  outputs: [dec]""", "LSTM takes one input, or 3 (the sequence, then the initial states h and c), got 2"),
    "initial state of the wrong size": ("""
  inputs: [{name: x, shape: [5, 3]}]
  layers:
    - {name: enc, type: GRU, units: 4, return_state: true, inputs: [x]}
    - {name: dec, type: GRU, units: 5, inputs: [x, "enc[1]"]}
  outputs: [dec]""", "initial state h (input 2) must have shape (5,) for 5 units, got (4,)"),
    "return_state inside TimeDistributed": ("""
  input_shape: [5, 3, 2]
  layers:
    - {type: TimeDistributed, layer: {type: LSTM, units: 4, return_state: true}}""",
        "return_state: TimeDistributed gives one output"),
    "too few initial states for Bidirectional": ("""
  inputs: [{name: x, shape: [5, 3]}]
  layers:
    - {name: enc, type: LSTM, units: 4, return_state: true, inputs: [x]}
    - {name: both, type: Bidirectional, layer: {type: LSTM, units: 4}, inputs: [x, "enc[1]", "enc[2]"]}
  outputs: [both]""", "Bidirectional takes one input, or 5 (the sequence, then the forward half's initial states"),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_state_mistakes_are_refused_with_one_line(case, write_config, tmp_path):
    model, message = BAD[case]
    path = write_config(f"""
name: bad
data: {{dataset: digits}}
model:{model}
compile: {{loss: mse}}
""")
    result = invoke("summary", path)
    assert result.exit_code == 2, result.output
    assert message in result.output
    assert "Traceback" not in result.output
    assert not os.path.exists(tmp_path / "runs")


def test_an_encoder_decoder_trains_and_predicts_from_its_run(tmp_path, write_config):
    """The encoder's states start the decoder; a run trains, checkpoints, evaluates and predicts with it."""
    path = write_config("""
name: states
seed: 3
data: {dataset: synthetic_sequences, samples: 600, steps: 12, features: 4, classes: 3, noise: 0.3,
       validation_split: 0.1, test_split: 0.2}
model:
  inputs: [{name: x, shape: [12, 4]}]
  layers:
    - {name: encoder, type: LSTM, units: 16, return_state: true, inputs: [x]}
    - {name: decoder, type: LSTM, units: 16, go_backwards: true, inputs: [x, "encoder[1]", "encoder[2]"]}
    - {name: out, type: Dense, units: 3, activation: softmax, inputs: [decoder]}
  outputs: [out]
compile: {optimizer: {type: adam, learning_rate: 0.02}, loss: sparse_categorical_crossentropy, metrics: [accuracy]}
train: {epochs: 6, batch_size: 32}
""")
    result = invoke("train", path, "--runs-dir", tmp_path / "runs", "-q")
    assert result.exit_code == 0, result.output
    run = tmp_path / "runs" / "states"
    scores = json.loads(invoke("evaluate", run, "--split", "test", "--json").stdout)
    assert scores["accuracy"] > 0.7, scores  # chance: 1/3
    x = np.random.default_rng(0).normal(size=(5, 12, 4)).astype(np.float32)
    np.save(tmp_path / "x.npy", x)
    assert invoke("predict", run, tmp_path / "x.npy", "-o", tmp_path / "p.npy").exit_code == 0
    p = np.load(tmp_path / "p.npy")
    assert p.shape == (5, 3)
    np.testing.assert_allclose(p.sum(axis=1), 1, rtol=1e-5)
