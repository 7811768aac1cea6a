"""Keras' masks: Embedding(mask_zero) marks padding; the recurrent layers carry their state over padded
steps, Bidirectional zeroes their outputs, GlobalAveragePooling1D averages the kept steps, other layers
keep or end the mask as Keras' do. Checked by float64 gradients, by invariance to padding and against
Keras (the same weights, exported)."""

from __future__ import annotations

import os

import numpy as np
import pytest
from click.testing import CliRunner
from gradcheck import assert_grad_close, numeric_grad
from test_layers import BATCH, HOST_BACKENDS, make_layer

from kerascli.cli import cli
from kerascli.config import resolve_config
from kerascli.config.loader import LoadedConfig
from kerascli.errors import ConfigError
from kerascli.train.session import build_session

STEPS, FEATURES = 5, 3
MASK = np.array([[1, 1, 0, 1, 0],   # padding in the middle and at the end
                 [0, 0, 0, 0, 0],   # all padding
                 [1, 1, 1, 1, 1]], dtype=np.float64)

MASKED_LAYERS = [
    ("SimpleRNN", {"units": 2, "return_sequences": True}),
    ("SimpleRNN", {"units": 3, "go_backwards": True}),
    ("LSTM", {"units": 2, "return_sequences": True, "go_backwards": True}),
    ("LSTM", {"units": 3}),
    ("GRU", {"units": 2, "return_sequences": True}),
    ("GRU", {"units": 2, "reset_after": False, "go_backwards": True}),
    ("Bidirectional", {"layer": {"type": "LSTM", "units": 2, "return_sequences": True}}),
    ("Bidirectional", {"layer": {"type": "GRU", "units": 2}, "merge_mode": "mul"}),
    ("GlobalAveragePooling1D", {}),
]


@pytest.mark.parametrize("backend", HOST_BACKENDS)
@pytest.mark.parametrize("type_name,params", MASKED_LAYERS, ids=[f"{t}-{i}" for i, (t, _) in enumerate(MASKED_LAYERS)])
def test_masked_gradients(type_name, params, backend, rng):
    layer, _ = make_layer(type_name, params, (STEPS, FEATURES), backend)
    x = rng.normal(size=(BATCH, STEPS, FEATURES))
    r = rng.normal(size=(BATCH,) + layer.output_shape)

    def loss():
        layer.mask = MASK
        return float((layer.forward(x, True) * r).sum())

    loss()
    dx = layer.backward(r.copy())
    analytic = {k: g.copy() for k, g in layer.grads.items()}
    assert_grad_close(dx, numeric_grad(loss, x), f"{type_name} input")
    assert not dx[MASK == 0].any()  # a padded step passes nothing back
    for name, g in analytic.items():
        assert_grad_close(g, numeric_grad(loss, layer.params[name]), f"{type_name} weight {name}")


VALUE_MASK = np.array([[1, 0, 1, 1, 0], [1, 1, 1, 0, 0], [0, 0, 0, 0, 0]], dtype=np.float64)
ATTENTION_LAYERS = [
    ("MultiHeadAttention", {"num_heads": 2, "key_dim": 2}),
    ("MultiHeadAttention", {"num_heads": 1, "key_dim": 3, "value_dim": 2, "use_causal_mask": True}),
    ("Attention", {"use_scale": True}),
    ("Attention", {"score_mode": "concat", "use_causal_mask": True}),
    ("AdditiveAttention", {}),
]


@pytest.mark.parametrize("backend", HOST_BACKENDS)
@pytest.mark.parametrize("type_name,params", ATTENTION_LAYERS,
                         ids=[f"{t}-{i}" for i, (t, _) in enumerate(ATTENTION_LAYERS)])
def test_masked_attention_gradients(type_name, params, backend, rng):
    """Query and value masks (a query all padding, a value all padding) through the attention layers."""
    layer, _ = make_layer(type_name, params, [(STEPS, FEATURES)] * 2, backend)
    xs = [rng.normal(size=(BATCH, STEPS, FEATURES)) for _ in range(2)]
    r = rng.normal(size=(BATCH,) + layer.output_shape)

    # Keras' Attention lowers a padded score by 1e9: with every value step padding, the scores sit near -1e9,
    # where float64 central differences cannot resolve them; that case is checked for MultiHeadAttention
    value_mask = VALUE_MASK.copy()
    if type_name != "MultiHeadAttention":
        value_mask[2, :2] = 1  # (and with use_causal_mask, the first query step sees the first value step)

    def loss():
        layer.mask = [MASK, value_mask]
        return float((layer.forward(xs, True) * r).sum())

    loss()
    dxs = layer.backward(r.copy())
    analytic = {k: g.copy() for k, g in layer.grads.items()}
    for i, (x, dx) in enumerate(zip(xs, dxs)):
        assert_grad_close(dx, numeric_grad(loss, x), f"{type_name} input {i}")
    if type_name != "MultiHeadAttention":  # (whose padded queries attend evenly to every step, as Keras')
        # a padded value step gets nothing back where some step is kept (with none, Keras' attention goes
        # to all of them)
        assert not dxs[1][0][value_mask[0] == 0].any()
    for name, g in analytic.items():
        assert_grad_close(g, numeric_grad(loss, layer.params[name]), f"{type_name} weight {name}")


def session(layers, steps=STEPS, seed=3):
    spec = resolve_config(LoadedConfig(data={
        "name": "masks", "seed": seed, "data": {"dataset": "digits"}, "compile": {"loss": "mse"},
        "model": {"input_shape": [steps], "layers": layers}}, source="test"))
    return spec, build_session(spec)


EMBEDDING = {"type": "Embedding", "input_dim": 9, "output_dim": 4, "mask_zero": True}


@pytest.mark.parametrize("recurrent", [{"type": "LSTM", "units": 3}, {"type": "GRU", "units": 3},
                                       {"type": "SimpleRNN", "units": 3, "go_backwards": True}])
def test_padding_does_not_change_predictions(recurrent, rng):
    """The same reviews padded to 6 and to 11 steps, in front or behind, predict the same."""
    short = rng.integers(1, 9, (4, 6)).astype(np.float32)
    short[0, 4:] = 0  # shorter reviews, padded behind
    short[1, :2] = 0  # and in front
    predictions = []
    for steps, front in ((6, False), (11, False), (11, True)):
        _, s = session([EMBEDDING, recurrent, {"type": "Dense", "units": 2}], steps=steps)
        x = np.zeros((4, steps), np.float32)
        if front:
            x[:, steps - 6:] = short
        else:
            x[:, :6] = short
        predictions.append(s.trainer.predict(x, 8))
    np.testing.assert_allclose(predictions[1], predictions[0], rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(predictions[2], predictions[0], rtol=1e-6, atol=1e-7)


KERAS_CASES = {
    "lstm": [EMBEDDING, {"type": "LSTM", "units": 3, "return_sequences": True}, {"type": "Dropout", "rate": 0.2},
             {"type": "Dense", "units": 4, "activation": "tanh"}, {"type": "GRU", "units": 2, "go_backwards": True},
             {"type": "Dense", "units": 2}],
    "pooling": [EMBEDDING, {"type": "SimpleRNN", "units": 3, "return_sequences": True},
                {"type": "LayerNormalization"}, {"type": "GlobalAveragePooling1D"}, {"type": "Dense", "units": 2}],
    "bidirectional": [EMBEDDING, {"type": "Bidirectional", "layer": {"type": "GRU", "units": 3,
                                                                     "return_sequences": True}},
                      {"type": "Bidirectional", "merge_mode": "ave",
                       "layer": {"type": "LSTM", "units": 2, "return_sequences": True}},
                      {"type": "GlobalAveragePooling1D"}],
    "ended": [EMBEDDING, {"type": "Flatten"}, {"type": "Dense", "units": 2}],  # Flatten ends the mask
    # self-attention over the padded sequence (query, value and key masks; a Sequential model's one input),
    # then the mean of the kept steps
    "self_attention": [EMBEDDING, {"type": "MultiHeadAttention", "num_heads": 2, "key_dim": 3},
                       {"type": "MultiHeadAttention", "num_heads": 1, "key_dim": 2, "use_causal_mask": True},
                       {"type": "GlobalAveragePooling1D"}],
    # what padded steps output, seen through Flatten: the carried output, and Bidirectional's zeros
    "carried": [EMBEDDING, {"type": "LSTM", "units": 2, "return_sequences": True}, {"type": "Flatten"}],
    "zeroed": [EMBEDDING, {"type": "Bidirectional", "layer": {"type": "SimpleRNN", "units": 2,
                                                              "return_sequences": True}}, {"type": "Flatten"}],
}


@pytest.mark.parametrize("case", sorted(KERAS_CASES))
def test_masks_agree_with_keras(case, tmp_path, rng):
    pytest.importorskip("h5py")
    os.environ.setdefault("KERAS_BACKEND", "torch")
    pytest.importorskip("torch")
    keras = pytest.importorskip("keras")
    import warnings

    from kerascli import exchange
    from kerascli.graph.builder import build_model
    from kerascli.runs.checkpoint import apply_weights

    spec, s = session(KERAS_CASES[case], steps=7)
    weights = {k: (v + rng.normal(scale=0.3, size=v.shape)).astype(np.float32)
               for k, v in s.model.get_weights().items()}
    apply_weights(s.model, weights, "test")
    (tmp_path / "m.keras").write_bytes(exchange.keras_archive(spec, build_model(spec.model, spec.source), weights))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # Keras warns that Flatten ends the mask
        theirs = keras.saving.load_model(tmp_path / "m.keras")
        x = rng.integers(1, 9, (6, 7)).astype(np.float32)
        x[0, 5:] = 0
        x[1, :3] = 0
        x[2, 2:4] = 0
        x[3, 1::2] = 0
        want = np.asarray(theirs.predict(x, verbose=0))
    np.testing.assert_allclose(s.trainer.predict(x, 8), want, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("backend", HOST_BACKENDS)
def test_masking_pads_steps_of_values(backend, rng):
    """Keras' Masking: steps whose every feature is mask_value are zeroed and masked; their gradient is 0."""
    layer, _ = make_layer("Masking", {"mask_value": 0.5}, (STEPS, FEATURES), backend)
    x = rng.normal(size=(BATCH, STEPS, FEATURES))
    x[MASK == 0] = 0.5
    x[0, 0, 1] = 0.5  # one feature at the mask value does not make a step padding
    y = layer.forward(x, True)
    np.testing.assert_array_equal(layer.output_mask([None]), MASK)
    np.testing.assert_array_equal(y, x * MASK[:, :, None])
    np.testing.assert_array_equal(layer.backward(np.ones_like(x)), np.broadcast_to(MASK[:, :, None], x.shape))


def test_cross_attention_masks_agree_with_keras(tmp_path, rng):
    """A functional model: two padded inputs, each through its Embedding with mask_zero, into
    MultiHeadAttention, Attention and AdditiveAttention, pooled over the query's kept steps."""
    pytest.importorskip("h5py")
    os.environ.setdefault("KERAS_BACKEND", "torch")
    pytest.importorskip("torch")
    keras = pytest.importorskip("keras")
    from kerascli import exchange
    from kerascli.graph.builder import build_model
    from kerascli.runs.checkpoint import apply_weights

    def pooled(name, layer, inputs):
        return [{**layer, "name": name, "inputs": inputs},
                {"type": "GlobalAveragePooling1D", "name": f"{name}_mean", "inputs": [name]}]

    layers = [{**EMBEDDING, "name": "q_embed", "inputs": ["q"]}, {**EMBEDDING, "name": "v_embed", "inputs": ["v"]},
              *pooled("mha", {"type": "MultiHeadAttention", "num_heads": 2, "key_dim": 2}, ["q_embed", "v_embed"]),
              *pooled("luong", {"type": "Attention", "use_scale": True}, ["q_embed", "v_embed"]),
              *pooled("bahdanau", {"type": "AdditiveAttention"}, ["q_embed", "v_embed", "v_embed"]),
              {"type": "Concatenate", "name": "joined", "inputs": ["mha_mean", "luong_mean", "bahdanau_mean"]},
              {"type": "Dense", "units": 2, "name": "out", "inputs": ["joined"]}]
    spec = resolve_config(LoadedConfig(data={
        "name": "cross", "seed": 1, "data": {"dataset": "digits"}, "compile": {"loss": "mse"},
        "model": {"inputs": [{"name": "q", "shape": [5]}, {"name": "v", "shape": [7]}], "layers": layers,
                  "outputs": ["out"]}}, source="test"))
    s = build_session(spec)
    weights = {k: (v + rng.normal(scale=0.3, size=v.shape)).astype(np.float32)
               for k, v in s.model.get_weights().items()}
    apply_weights(s.model, weights, "test")
    (tmp_path / "m.keras").write_bytes(exchange.keras_archive(spec, build_model(spec.model, spec.source), weights))
    theirs = keras.saving.load_model(tmp_path / "m.keras")
    x = {"q": rng.integers(1, 9, (5, 5)).astype(np.float32), "v": rng.integers(1, 9, (5, 7)).astype(np.float32)}
    x["q"][0, 3:] = 0
    x["q"][1, :2] = 0
    x["v"][0, 4:] = 0
    x["v"][2, ::2] = 0
    x["v"][3, :] = 0  # a sample with nothing to attend to
    want = np.asarray(theirs.predict(x, verbose=0))
    np.testing.assert_allclose(s.trainer.predict(x, 8), want, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("layers, needle", [
    ([EMBEDDING, {"type": "LSTM", "units": 2, "return_sequences": True}],
     "output 'lstm' carries the mask of an Embedding with mask_zero"),
    ([EMBEDDING, {"type": "MultiHeadAttention", "num_heads": 1, "key_dim": 2}],
     "output 'multi_head_attention' carries the mask"),  # attention keeps the query's
])
def test_masks_where_kerascli_cannot_follow_are_refused(layers, needle):
    with pytest.raises(ConfigError, match=needle):
        session(layers)


def test_train_with_masks_through_the_cli(tmp_path, write_config):
    """Token sequences whose class is one keyword, padded behind to different lengths: an LSTM over the
    mask learns it."""
    config = write_config(f"""
        name: masked
        seed: 4
        data: {{dataset: npz, path: {tmp_path / "d.npz"}, validation_split: 0.2}}
        model:
          input_shape: [12]
          layers:
            - {{type: Embedding, input_dim: 20, output_dim: 6, mask_zero: true}}
            - {{type: LSTM, units: 8}}
            - {{type: Dense, units: 2, activation: softmax}}
        compile: {{optimizer: {{type: adam, learning_rate: 0.03}}, loss: sparse_categorical_crossentropy,
                   metrics: [accuracy]}}
        train: {{epochs: 25, batch_size: 16, threads: 1}}
    """)
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 240)
    x = np.zeros((240, 12), np.float32)
    for i, label in enumerate(y):
        length = rng.integers(3, 13)
        x[i, :length] = rng.integers(3, 20, length)
        x[i, rng.integers(0, length)] = 1 + label  # keyword 1 or 2, anywhere before the padding
    np.savez(tmp_path / "d.npz", x=x, y=y)
    result = CliRunner().invoke(cli, ["train", config, "--runs-dir", str(tmp_path / "runs"), "-q"])
    assert result.exit_code == 0, result.output
    import json

    summary = json.loads((tmp_path / "runs" / "masked" / "summary.json").read_text())
    assert summary["evaluation"]["val"]["accuracy"] > 0.9
