"""Table-driven tests over the layer registry: one row per registered layer type.

Each row builds the layer, checks the forward shape, checks input and weight
gradients against float64 central differences (with both kernel backends),
and round-trips the layer's config through the schema.
"""

import numpy as np
import pytest
from backends import HOST_BACKENDS
from gradcheck import assert_grad_close, numeric_grad

from kerascli.config.loader import LoadedConfig
from kerascli.config.params import Checker, common_params
from kerascli.graph.layer import ShapeError
from kerascli.ops import get_ops
from kerascli.ops.algorithms import conv as conv_algorithms
from kerascli.registry import INITIALIZERS, LAYERS, load_builtins

load_builtins()

# type -> list of (params, input shape or list of input shapes for merge layers)
ROWS = {
    "Dense": [({"units": 3, "activation": a}, (4,)) for a in ("linear", "relu", "sigmoid", "tanh", "softmax")]
    + [({"units": 2, "use_bias": False}, (3, 4)), ({"units": 3, "activation": "gelu"}, (2, 4)),
       ({"units": 4, "activation": "log_softmax"}, (3,)), ({"units": 3, "trainable": False}, (4,))],
    "Activation": [({"activation": a}, (2, 3)) for a in ("relu", "softmax", "sigmoid", "silu", "mish", "hard_silu",
                                                         "gelu_approximate", "log_softmax", "linear")],
    "Dropout": [({"rate": 0.4}, (6,)), ({"rate": 0.0}, (3,))],
    "SpatialDropout1D": [({"rate": 0.4}, (5, 6))],
    "SpatialDropout2D": [({"rate": 0.5}, (3, 2, 4))],
    "GaussianNoise": [({"stddev": 0.3}, (4,))],
    "GaussianDropout": [({"rate": 0.3}, (2, 3))],
    "AlphaDropout": [({"rate": 0.2}, (5,))],
    "Dot": [({"axes": 1}, [(4,), (4,)]), ({"axes": [2, 2]}, [(3, 4), (2, 4)]), ({"axes": [1, 2]}, [(3, 2), (4, 3)])],
    "EinsumDense": [({"equation": "ab,bc->ac", "output_shape": 4, "bias_axes": "c", "activation": "relu"}, (3,)),
                    ({"equation": "abc,cd->abd", "output_shape": [None, 3], "bias_axes": "d"}, (4, 2)),
                    ({"equation": "...b,bc->...c", "output_shape": 2, "activation": "tanh"}, (3, 4)),
                    ({"equation": "...ab,bc->...ac", "output_shape": 3}, (4,)),  # nothing elided but the form
                    ({"equation": "abc,cde->abde", "output_shape": [None, 2, 3], "bias_axes": "de"}, (3, 2)),
                    ({"equation": "abc,cd->ad", "output_shape": 3, "bias_axes": "d"}, (2, 4)),
                    ({"equation": "abc...,bd->adc...", "output_shape": [3, None], "bias_axes": "d"}, (2, 4, 2)),
                    ({"equation": "abcd,cde->abe", "output_shape": [None, 3], "bias_axes": "e",
                      "activation": "softmax"}, (2, 3, 2))],
    "Normalization": [({}, (3,)), ({"mean": 0.5, "variance": 4.0}, (2, 3)),
                      ({"axis": [1, 2], "mean": [1.0, -1.0, 0.5], "variance": [1.0, 2.0, 0.25]}, (2, 3)),
                      ({"axis": None, "invert": True, "mean": 1.0, "variance": 9.0}, (4,))],
    "Flatten": [({}, (2, 3, 2))],
    "Reshape": [({"target_shape": [3, -1]}, (6, 2))],
    "Rescaling": [({"scale": 0.5, "offset": 1.0}, (5,))],
    "Conv2D": [
        ({"filters": 2, "kernel_size": 3, "strides": 2, "padding": "same", "activation": "relu"}, (5, 5, 2)),
        ({"filters": 3, "kernel_size": [2, 3], "padding": "valid", "activation": "tanh"}, (4, 5, 1)),
        # a patch of 3*3*4 = 36 values: the GEMM (or sparse) path instead of the direct kernels
        ({"filters": 4, "kernel_size": 3, "strides": 2, "padding": "same", "activation": "relu"}, (5, 6, 4)),
        ({"filters": 2, "kernel_size": 2, "activation": "swish"}, (3, 4, 1)),  # an own-step activation
        ({"filters": 2, "kernel_size": [2, 3], "dilation_rate": [2, 1], "padding": "same", "activation": "relu"},
         (5, 4, 2)),
        ({"filters": 4, "kernel_size": 2, "groups": 2, "strides": 2, "activation": "tanh"}, (5, 5, 6)),
        ({"filters": 6, "kernel_size": 3, "groups": 3, "dilation_rate": 2, "use_bias": False}, (6, 5, 3)),
    ],
    "Conv1D": [({"filters": 3, "kernel_size": 3}, (6, 2)),
               ({"filters": 2, "kernel_size": 2, "strides": 2, "padding": "same", "activation": "relu"}, (5, 3)),
               ({"filters": 2, "kernel_size": 3, "padding": "causal", "activation": "tanh"}, (4, 2)),
               ({"filters": 4, "kernel_size": 5, "padding": "same", "activation": "relu"}, (7, 8)),  # GEMM path
               ({"filters": 2, "kernel_size": 2, "dilation_rate": 2, "padding": "causal"}, (6, 2)),
               ({"filters": 4, "kernel_size": 3, "groups": 2, "padding": "same", "activation": "relu"}, (5, 4))],
    "Conv2DTranspose": [({"filters": 2, "kernel_size": 3}, (3, 4, 2)),
                        ({"filters": 3, "kernel_size": [3, 2], "strides": 2, "padding": "same", "activation": "relu"},
                         (3, 2, 2)),
                        ({"filters": 2, "kernel_size": 4, "strides": 2, "padding": "same", "use_bias": False},
                         (2, 3, 1)),
                        ({"filters": 2, "kernel_size": 2, "strides": 3, "activation": "tanh"}, (2, 2, 3)),
                        ({"filters": 1, "kernel_size": 2, "dilation_rate": 2, "padding": "same"}, (3, 3, 2)),
                        ({"filters": 2, "kernel_size": 3, "strides": 2, "output_padding": 1}, (2, 3, 1))],
    "DepthwiseConv2D": [({"kernel_size": 3}, (4, 5, 2)),
                        ({"kernel_size": [2, 3], "strides": 2, "padding": "same", "depth_multiplier": 2,
                          "activation": "relu"}, (5, 4, 3)),
                        ({"kernel_size": 2, "dilation_rate": [1, 2], "padding": "same"}, (4, 5, 2))],
    "SeparableConv2D": [({"filters": 3, "kernel_size": 3, "activation": "tanh"}, (4, 5, 2)),
                        ({"filters": 2, "kernel_size": 2, "strides": 2, "padding": "same", "depth_multiplier": 2,
                          "use_bias": False}, (5, 5, 3)),
                        ({"filters": 2, "kernel_size": 2, "dilation_rate": 2, "activation": "relu"}, (5, 6, 2))],
    "SeparableConv1D": [({"filters": 3, "kernel_size": 3, "activation": "tanh"}, (6, 2)),
                        ({"filters": 2, "kernel_size": 2, "strides": 2, "padding": "same", "depth_multiplier": 2,
                          "use_bias": False}, (5, 3)),
                        ({"filters": 2, "kernel_size": 2, "dilation_rate": 2, "padding": "same",
                          "activation": "relu"}, (5, 2))],
    "MaxPooling1D": [({}, (6, 2)), ({"pool_size": 3, "strides": 2, "padding": "same"}, (5, 2))],
    "AveragePooling1D": [({"pool_size": 2}, (6, 2)), ({"pool_size": 3, "strides": 1, "padding": "same"}, (4, 3))],
    "GlobalAveragePooling1D": [({}, (5, 2)), ({"keepdims": True}, (3, 2))],
    "GlobalMaxPooling1D": [({}, (5, 2)), ({"keepdims": True}, (3, 4))],
    "ZeroPadding1D": [({}, (3, 2)), ({"padding": [0, 2]}, (2, 3))],
    "Cropping1D": [({}, (4, 2)), ({"cropping": [2, 0]}, (5, 1))],
    "UpSampling1D": [({}, (3, 2)), ({"size": 3}, (2, 2))],
    "MaxPooling2D": [({"pool_size": 2, "padding": "same"}, (5, 5, 2)), ({"pool_size": [2, 3]}, (4, 6, 1))],
    "AveragePooling2D": [({"pool_size": 3, "strides": 2, "padding": "same"}, (5, 4, 2)), ({}, (4, 4, 3))],
    "BatchNormalization": [({}, (4,)), ({"center": False, "momentum": 0.5}, (3, 3, 2)),
                           ({"trainable": False}, (2, 3)),  # frozen: inference mode in training too
                           ({"axis": 1, "momentum": 0.5}, (3, 2, 2))],
    "GroupNormalization": [({"groups": 2}, (3, 2, 4)), ({"groups": 3, "axis": 1, "center": False}, (3, 4))],
    "UnitNormalization": [({}, (4,)), ({"axis": [1, 2]}, (2, 3, 2))],
    "LayerNormalization": [({}, (5,)), ({"axis": [1, 3], "center": False}, (3, 2, 4)), ({"axis": -2}, (3, 4))],
    "Add": [({}, [(3,), (3,), (3,)])],
    "Subtract": [({}, [(2, 3), (2, 3)])],
    "Multiply": [({}, [(4,), (4,), (4,)])],
    "Average": [({}, [(3,), (3,)])],
    "Maximum": [({}, [(5,), (5,), (5,)])],
    "Minimum": [({}, [(2, 2), (2, 2)])],
    "GlobalAveragePooling2D": [({}, (3, 4, 2)), ({"keepdims": True}, (2, 2, 3))],
    "GlobalMaxPooling2D": [({}, (3, 4, 2)), ({"keepdims": True}, (2, 3, 1))],
    "Identity": [({}, (3, 2))],
    "Masking": [({}, (4, 3)), ({"mask_value": 0.5}, (3, 2))],
    "Permute": [({"dims": [2, 1]}, (3, 4)), ({"dims": [3, 1, 2]}, (2, 3, 4))],
    "RepeatVector": [({"n": 3}, (4,))],
    "ZeroPadding2D": [({}, (2, 3, 2)), ({"padding": [[0, 2], [1, 0]]}, (3, 2, 1))],
    "Cropping2D": [({"cropping": 1}, (4, 5, 2)), ({"cropping": [[0, 1], [2, 0]]}, (3, 4, 1))],
    "UpSampling2D": [({}, (2, 3, 2)), ({"size": [1, 3]}, (2, 2, 1))],
    "Concatenate": [({}, [(2, 3), (2, 2)]), ({"axis": 1}, [(1, 3), (2, 3)])],
    "Embedding": [({"input_dim": 6, "output_dim": 3}, (4,)), ({"input_dim": 5, "output_dim": 2}, (2, 3))],
    "SimpleRNN": [({"units": 3}, (4, 2)),
                  ({"units": 2, "return_sequences": True, "go_backwards": True, "activation": "relu"}, (3, 2))],
    "LSTM": [({"units": 3}, (4, 2)), ({"units": 2, "return_sequences": True, "go_backwards": True}, (3, 3)),
             ({"units": 2, "dropout": 0.3, "recurrent_dropout": 0.4, "return_sequences": True}, (3, 2)),
             ({"units": 2, "activation": "softsign", "recurrent_activation": "hard_sigmoid",
               "unit_forget_bias": False}, (3, 2))],
    "GRU": [({"units": 3}, (4, 2)), ({"units": 2, "reset_after": False, "return_sequences": True}, (3, 2)),
            ({"units": 2, "reset_after": False, "recurrent_dropout": 0.3, "dropout": 0.2}, (3, 2)),
            ({"units": 2, "go_backwards": True, "use_bias": False, "recurrent_dropout": 0.3}, (3, 2))],
    "MultiHeadAttention": [({"num_heads": 2, "key_dim": 3}, [(4, 5), (3, 2)]),
                           ({"num_heads": 1, "key_dim": 2, "value_dim": 3, "output_shape": 4}, [(3, 2), (5, 3), (5, 2)]),
                           ({"num_heads": 2, "key_dim": 2, "use_causal_mask": True, "dropout": 0.3}, [(4, 3), (4, 3)]),
                           ({"num_heads": 2, "key_dim": 2, "use_bias": False}, [(3, 4)])],  # self-attention
    "Attention": [({}, [(3, 4), (5, 4)]), ({"use_scale": True, "use_causal_mask": True}, [(4, 3), (4, 3)]),
                  ({"score_mode": "concat", "use_scale": True, "dropout": 0.3}, [(2, 3), (4, 3), (4, 3)]),
                  ({"score_mode": "concat"}, [(3, 2), (2, 2)])],
    "AdditiveAttention": [({}, [(3, 4), (5, 4)]), ({"use_scale": False, "use_causal_mask": True}, [(3, 2), (3, 2)])],
    "Bidirectional": [({"layer": {"type": "LSTM", "units": 2}}, (3, 2)),
                      ({"layer": {"type": "GRU", "units": 2, "return_sequences": True}, "merge_mode": "sum"}, (4, 3)),
                      ({"layer": {"type": "SimpleRNN", "units": 3, "return_sequences": True}, "merge_mode": "mul"},
                       (3, 2)),
                      ({"layer": {"type": "LSTM", "units": 2}, "merge_mode": "ave"}, (3, 2))],
    "TimeDistributed": [({"layer": {"type": "Dense", "units": 3, "activation": "tanh"}}, (4, 2)),
                        ({"layer": {"type": "Conv2D", "filters": 2, "kernel_size": 2}}, (3, 4, 4, 1))],
    "ReLU": [({}, (4,)), ({"max_value": 1.0, "negative_slope": 0.1, "threshold": 0.5}, (2, 3))],
    "LeakyReLU": [({}, (5,)), ({"negative_slope": 0.05}, (2, 2))],
    "PReLU": [({}, (4,)), ({"shared_axes": [1, 2]}, (3, 2, 2))],
    "ELU": [({}, (4,)), ({"alpha": 0.5}, (2, 3))],
    "Softmax": [({}, (4,)), ({"axis": 1}, (3, 2)), ({"axis": -2}, (2, 3, 2))],
}
BATCH = 3


def test_every_registered_layer_has_a_row():
    assert sorted(ROWS) == sorted(LAYERS.builtin_names())


def make_layer(type_name, params, input_shape, backend, seed=0):
    cls = LAYERS.get(type_name)
    checker = Checker(LoadedConfig(data={}, source="test"))
    config = cls.resolve_params(checker.params(params, {**cls.PARAMS, **common_params()}, ()),
                                lambda k, m: AssertionError(m))
    layer = cls("layer", config)
    layer.input_shape = input_shape
    layer.output_shape = tuple(layer.build(input_shape))
    rng = np.random.default_rng(seed)
    for spec in layer.weight_specs:
        # random values everywhere (not the zeros/ones defaults) so every gradient path is exercised
        value = rng.normal(size=spec.shape)
        layer.params[spec.name] = np.asarray(np.abs(value) + 0.5) if "variance" in spec.name else value
        if spec.trainable:
            layer.grads[spec.name] = np.zeros(spec.shape)
    layer.ops = get_ops(backend)
    layer.dtype = np.float64
    return layer, config


def cases():
    for type_name, rows in ROWS.items():
        for i, (params, shape) in enumerate(rows):
            yield pytest.param(type_name, params, shape, id=f"{type_name}-{i}")


def inputs_for(shape, rng, type_name=None):
    if type_name == "Embedding":  # ids, as floats the way the data pipeline hands them over
        return rng.integers(0, 5, size=(BATCH,) + shape).astype(np.float64)
    if isinstance(shape, list):
        return [rng.normal(size=(BATCH,) + s) for s in shape]
    return rng.normal(size=(BATCH,) + shape)


@pytest.mark.parametrize("type_name,params,shape", list(cases()))
def test_forward_shape(type_name, params, shape, rng):
    layer, _ = make_layer(type_name, params, shape, "cpu")
    layer.rng = np.random.default_rng(0)
    for training in (True, False):
        y = layer.forward(inputs_for(shape, rng, type_name), training)
        assert y.shape == (BATCH,) + layer.output_shape
        assert y.dtype == np.float64


@pytest.mark.parametrize("backend", HOST_BACKENDS)
@pytest.mark.parametrize("type_name,params,shape", list(cases()))
def test_gradients(type_name, params, shape, backend, rng):
    layer, _ = make_layer(type_name, params, shape, backend)
    x = inputs_for(shape, rng, type_name)
    r = rng.normal(size=(BATCH,) + layer.output_shape)  # the loss is sum(y * r)
    moving = {k: v.copy() for k, v in layer.params.items() if k.startswith("moving")}

    def loss():
        layer.rng = np.random.default_rng(7)  # the same dropout mask every call
        for k, v in moving.items():  # BatchNormalization updates these in training forward
            layer.params[k][...] = v
        return float((layer.forward(x, True) * r).sum())

    loss()
    dx = layer.backward(r.copy())
    analytic = {k: g.copy() for k, g in layer.grads.items()}
    xs = x if isinstance(x, list) else [x]
    dxs = dx if isinstance(dx, list) else [dx]
    if type_name == "Embedding":  # ids have no gradient
        assert dx is None
        xs = []
    for i, (xi, dxi) in enumerate(zip(xs, dxs)):
        assert_grad_close(dxi, numeric_grad(loss, xi), f"{type_name} input {i}")
    for name, g in analytic.items():
        assert_grad_close(g, numeric_grad(loss, layer.params[name]), f"{type_name} weight {name}")


@pytest.mark.parametrize("type_name,params,shape", list(cases()))
def test_config_round_trip(type_name, params, shape):
    layer, config = make_layer(type_name, params, shape, "cpu")
    saved = layer.get_config()
    assert saved["type"] == type_name and saved["name"] == "layer"
    again, _ = make_layer(type_name, {k: v for k, v in saved.items() if k not in ("type", "name")}, shape, "cpu")
    assert again.config == config
    assert again.output_shape == layer.output_shape


def test_dense_uses_keras_kernel_layout_and_math(rng):
    layer, _ = make_layer("Dense", {"units": 3, "activation": "relu"}, (4,), "cpu")
    assert layer.params["kernel"].shape == (4, 3)
    x = rng.normal(size=(2, 4))
    expected = np.maximum(x @ layer.params["kernel"] + layer.params["bias"], 0)
    np.testing.assert_allclose(layer.forward(x, False), expected)


def test_conv2d_matches_direct_convolution(rng):
    layer, _ = make_layer("Conv2D", {"filters": 2, "kernel_size": 3, "padding": "same"}, (4, 5, 3), "cpu")
    k, b = layer.params["kernel"], layer.params["bias"]
    assert k.shape == (3, 3, 3, 2)
    x = rng.normal(size=(2, 4, 5, 3))
    padded = np.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0)))
    expected = np.zeros((2, 4, 5, 2))
    for i in range(4):
        for j in range(5):
            expected[:, i, j, :] = np.einsum("nhwc,hwcf->nf", padded[:, i : i + 3, j : j + 3, :], k) + b
    np.testing.assert_allclose(layer.forward(x, False), expected)


def test_batch_norm_inference_uses_moving_statistics(rng):
    layer, _ = make_layer("BatchNormalization", {}, (3,), "cpu")
    x = rng.normal(size=(4, 3))
    p = layer.params
    expected = (x - p["moving_mean"]) / np.sqrt(p["moving_variance"] + 1e-3) * p["gamma"] + p["beta"]
    np.testing.assert_allclose(layer.forward(x, False), expected)
    before = p["moving_mean"].copy()
    layer.forward(x, True)
    np.testing.assert_allclose(p["moving_mean"], before * 0.99 + x.mean(axis=0) * 0.01)


def test_dropout_is_identity_at_inference_and_scales_in_training(rng):
    layer, _ = make_layer("Dropout", {"rate": 0.5}, (1000,), "cpu")
    layer.rng = np.random.default_rng(0)
    x = np.ones((2, 1000))
    np.testing.assert_array_equal(layer.forward(x, False), x)
    y = layer.forward(x, True)
    assert set(np.unique(y)) == {0.0, 2.0}
    assert 0.4 < (y == 0).mean() < 0.6


def test_initializers_follow_keras_definitions():
    rng = np.random.default_rng(0)
    w = INITIALIZERS.get("glorot_uniform")()(rng, (300, 200), np.float64)
    limit = np.sqrt(6 / 500)
    assert np.abs(w).max() <= limit and np.abs(w).max() > 0.95 * limit
    w = INITIALIZERS.get("he_normal")()(rng, (3, 3, 40, 64), np.float64)
    assert np.abs(w).max() <= 2 * np.sqrt(2 / 360) / 0.87962566103423978
    np.testing.assert_allclose(w.std(), np.sqrt(2 / 360), rtol=0.05)


@pytest.mark.parametrize("backend", HOST_BACKENDS)
def test_conv2d_chunked_patches_match_one_chunk(rng, monkeypatch, backend):
    """Conv2D builds patches a few images at a time; tiny chunks must give the same results."""
    params = {"filters": 3, "kernel_size": 3, "strides": 2, "padding": "same", "activation": "tanh"}
    x = rng.normal(size=(5, 6, 5, 2))
    r = rng.normal(size=(5, 3, 3, 3))
    results = []
    for chunk_bytes in (1 << 20, 1):
        monkeypatch.setattr(conv_algorithms, "CONV_CHUNK_BYTES", chunk_bytes)
        layer, _ = make_layer("Conv2D", params, (6, 5, 2), backend)
        y = layer.forward(x, True).copy()
        dx = layer.backward(r).copy()
        results.append((y, dx, layer.grads["kernel"].copy(), layer.grads["bias"].copy()))
    for a, b in zip(*results):
        np.testing.assert_allclose(a, b, rtol=1e-12)


@pytest.mark.parametrize("params,shape", [
    ({"filters": 4, "kernel_size": 3, "strides": 2, "padding": "same", "activation": "relu"}, (5, 6, 4)),
    ({"filters": 3, "kernel_size": 3, "padding": "same", "activation": "tanh"}, (5, 9, 2)),  # direct kernels
])
@pytest.mark.parametrize("sparse", [False, True])
@pytest.mark.parametrize("input_grad", [True, False])
@pytest.mark.parametrize("backend", HOST_BACKENDS)
def test_conv2d_backward_paths(params, shape, sparse, input_grad, backend, rng, monkeypatch):
    """Each way Conv2D computes gradients (dense GEMMs, nonzero entries only, direct; with and without
    an input gradient, as for a first layer) against central differences, on a gradient with zeros in
    it as behind max pooling."""
    monkeypatch.setattr(conv_algorithms, "CONV_SPARSE_MAX_DENSITY", 1.0 if sparse else -1.0)
    layer, _ = make_layer("Conv2D", params, shape, backend)
    layer.need_input_grad = input_grad
    x = rng.normal(size=(BATCH,) + shape)
    r = rng.normal(size=(BATCH,) + layer.output_shape) * (rng.random((BATCH,) + layer.output_shape) < 0.3)

    def loss():
        return float((layer.forward(x, True) * r).sum())

    loss()
    dx = layer.backward(r.copy())
    analytic = {k: g.copy() for k, g in layer.grads.items()}
    if input_grad:
        assert_grad_close(dx, numeric_grad(loss, x), "Conv2D input")
    else:
        assert dx is None
    for name, g in analytic.items():
        assert_grad_close(g, numeric_grad(loss, layer.params[name]), f"Conv2D weight {name}")


WEIGHTLESS_KERAS = ["MaxPooling1D", "AveragePooling1D", "GlobalAveragePooling1D", "GlobalMaxPooling1D",
                    "ZeroPadding1D", "Cropping1D", "UpSampling1D", "Dot", "Subtract", "Multiply", "Average", "Maximum", "Minimum", "GlobalAveragePooling2D",
                    "GlobalMaxPooling2D", "Add", "Concatenate", "Identity", "Permute", "RepeatVector", "ZeroPadding2D",
                    "Cropping2D", "UpSampling2D", "ReLU", "LeakyReLU", "ELU", "Softmax", "UnitNormalization"]


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
@pytest.mark.parametrize("type_name,params,shape", [c for c in cases() if c.values[0] in WEIGHTLESS_KERAS])
def test_weightless_layers_match_keras(type_name, params, shape, rng):
    """Outputs of the merge and global pooling layers against Keras 3's layers with the same arguments."""
    import os

    os.environ.setdefault("KERAS_BACKEND", "torch")
    keras = pytest.importorskip("keras")
    layer, _ = make_layer(type_name, params, shape, "cpu")
    x = inputs_for(shape, rng)
    theirs = getattr(keras.layers, type_name)(**params)(x if isinstance(x, list) else x)
    np.testing.assert_allclose(layer.forward(x, False), keras.ops.convert_to_numpy(theirs), rtol=1e-6, atol=1e-7)


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_prelu_matches_keras_with_the_same_alpha(rng):
    import os

    os.environ.setdefault("KERAS_BACKEND", "torch")
    keras = pytest.importorskip("keras")
    layer, _ = make_layer("PReLU", {"shared_axes": [2]}, (3, 4, 2), "cpu")
    assert layer.params["alpha"].shape == (3, 1, 2)  # Keras' layout
    x = rng.normal(size=(BATCH, 3, 4, 2))
    theirs = keras.layers.PReLU(shared_axes=[2])
    theirs.build((None, 3, 4, 2))
    theirs.set_weights([layer.params["alpha"]])
    np.testing.assert_allclose(layer.forward(x, False), keras.ops.convert_to_numpy(theirs(x)), rtol=1e-6, atol=1e-7)


WEIGHTED_KERAS = ["Dense", "EinsumDense", "Conv2D", "Conv1D", "Conv2DTranspose", "DepthwiseConv2D", "SeparableConv2D", "SeparableConv1D",
                  "BatchNormalization", "LayerNormalization", "GroupNormalization", "PReLU",
                  "Embedding", "SimpleRNN", "LSTM", "GRU"]


def keras_can_check(type_name, params):
    if params.get("activation") == "gelu_approximate":  # not a Keras name (Keras' gelu(approximate=True))
        return False
    # Keras 3's torch backend hands a single axis other than the last to torch's layer_norm as if it were
    # the last (a shape error): those rows are held to the numpy reference only
    return not (type_name == "LayerNormalization" and params.get("axis", -1) not in (-1, [1, 3]))


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
@pytest.mark.parametrize("type_name,params,shape", [
    c for c in cases() if c.values[0] in WEIGHTED_KERAS and keras_can_check(c.values[0], c.values[1])])
def test_layers_with_weights_match_keras(type_name, params, shape, rng):
    """Keras 3's layer with the same arguments and our weights (Keras' weight order and shapes) gives our
    outputs, in inference and in training (batch statistics for BatchNormalization)."""
    import os

    os.environ.setdefault("KERAS_BACKEND", "torch")
    keras = pytest.importorskip("keras")
    layer, _ = make_layer(type_name, params, shape, "cpu")
    theirs = getattr(keras.layers, type_name)(**params)
    theirs.build((None,) + shape)
    assert [tuple(w.shape) for w in theirs.weights] == [s.shape for s in layer.weight_specs]
    theirs.set_weights([layer.params[s.name] for s in layer.weight_specs])
    x = inputs_for(shape, rng, type_name)
    random = params.get("dropout", 0) or params.get("recurrent_dropout", 0)  # masks differ: inference only
    for training in (False,) if random else (False, True):
        expected = keras.ops.convert_to_numpy(theirs(x, training=training))
        np.testing.assert_allclose(layer.forward(x, training), expected, rtol=1e-5, atol=1e-6,
                                   err_msg=f"training={training}")


@pytest.mark.parametrize("type_name,params,shape,message", [
    ("Conv2D", {"filters": 2, "kernel_size": 2, "strides": 2, "dilation_rate": 2}, (6, 6, 1),
     r"strides \[2, 2\] and dilation_rate \[2, 2\]: one of them must be 1"),
    ("Conv1D", {"filters": 2, "kernel_size": 2, "strides": 2, "dilation_rate": 3}, (6, 1), "one of them must be 1"),
    ("DepthwiseConv2D", {"kernel_size": 2, "strides": [1, 2], "dilation_rate": [2, 1]}, (6, 6, 1),
     "one of them must be 1"),
    ("Conv2D", {"filters": 4, "kernel_size": 2, "groups": 2}, (5, 5, 3),
     r"groups: 2 must divide both the input channels \(3\) and filters \(4\)"),
    ("Conv1D", {"filters": 3, "kernel_size": 2, "groups": 2}, (5, 4), "must divide both"),
    ("Conv2D", {"filters": 2, "kernel_size": 3, "dilation_rate": 3}, (6, 6, 1), "does not fit input 6x6"),
    ("Conv2DTranspose", {"filters": 2, "kernel_size": 3, "strides": 2, "output_padding": [1, 2]}, (3, 3, 1),
     r"output_padding \[1, 2\] must be below strides \[2, 2\]"),
    ("Conv2DTranspose", {"filters": 2, "kernel_size": 2, "strides": 2, "dilation_rate": 2}, (3, 3, 1),
     "one of them must be 1"),
    ("Conv2DTranspose", {"filters": 2, "kernel_size": 2}, (3, 3), r"expects input of shape \(height, width"),
])
def test_convolutions_refuse_arguments_keras_refuses(type_name, params, shape, message):

    with pytest.raises(ShapeError, match=message):
        make_layer(type_name, params, shape, "cpu")


@pytest.mark.parametrize("params,shape,message", [
    ({"equation": "ab,bc", "output_shape": 2}, (3,), "must be of the form X,Y->Z"),
    ({"equation": "ab,bc->ac", "output_shape": 2}, (3, 4), r"names 2 input axes \(the batch first\), the input has 3"),
    ({"equation": "ab,bc->ac", "output_shape": [2, 3]}, (3,), "has 2 entries"),
    ({"equation": "abc,cd->abd", "output_shape": [5, 2]}, (4, 3), "disagree at axis 'b': 4 vs 5"),
    ({"equation": "ab,bc->ac", "output_shape": 2, "bias_axes": "x"}, (3,), "bias axis 'x' is not an output axis"),
    ({"equation": "ab,bcd->ac", "output_shape": 2}, (3,), "kernel axis 'd' appears in neither"),
    ({"equation": "ab,bc->acd", "output_shape": [2, 2]}, (3,), "output axis 'd' appears in neither"),
])
def test_einsum_dense_refuses_equations_keras_refuses(params, shape, message):

    with pytest.raises(ShapeError, match=message):
        make_layer("EinsumDense", params, shape, "cpu")


def test_embedding_refuses_ids_outside_its_table():
    from kerascli.errors import DataError

    layer, _ = make_layer("Embedding", {"input_dim": 4, "output_dim": 2}, (3,), "cpu")
    for bad in (4.0, -1.0, 1.5):
        with pytest.raises(DataError, match=r"layer 'layer' \(Embedding\) takes ids from 0 to 3, got"):
            layer.forward(np.array([[0.0, 1.0, bad]]), False)


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
@pytest.mark.parametrize("params,shape", [c.values[1:] for c in cases() if c.values[0] == "MultiHeadAttention"])
def test_multi_head_attention_matches_keras(params, shape, rng):
    """Keras 3's MultiHeadAttention with our weights (its order and shapes: query, key, value,
    attention_output) gives our outputs, in inference."""
    import os

    os.environ.setdefault("KERAS_BACKEND", "torch")
    keras = pytest.importorskip("keras")
    layer, _ = make_layer("MultiHeadAttention", params, shape, "cpu")
    xs = inputs_for(shape, rng)
    query, value = xs[0], xs[1] if len(xs) > 1 else xs[0]
    key = xs[2] if len(xs) > 2 else None
    causal = params.get("use_causal_mask", False)  # a call argument in Keras, a layer argument here
    theirs = keras.layers.MultiHeadAttention(**{k: v for k, v in params.items() if k != "use_causal_mask"})
    out = theirs(query, value, key, use_causal_mask=causal)
    assert [tuple(w.shape) for w in theirs.weights] == [s.shape for s in layer.weight_specs]
    theirs.set_weights([layer.params[s.name] for s in layer.weight_specs])
    out = theirs(query, value, key, use_causal_mask=causal)
    np.testing.assert_allclose(layer.forward(xs, False), keras.ops.convert_to_numpy(out), rtol=1e-5, atol=1e-6)


def test_noise_layers_follow_keras_definitions():
    """At inference each is the identity; in training: whole channels dropped (spatial), additive noise of
    the given deviation, multiplicative noise of mean 1 and deviation sqrt(rate / (1 - rate)), and
    AlphaDropout keeping a standard normal input's mean 0 and variance 1 (its reason to exist)."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=(400, 50, 8))
    for type_name, params in (("SpatialDropout1D", {"rate": 0.5}), ("GaussianNoise", {"stddev": 0.3}),
                              ("GaussianDropout", {"rate": 0.2}), ("AlphaDropout", {"rate": 0.2})):
        layer, _ = make_layer(type_name, params, (50, 8), "cpu")
        layer.rng = np.random.default_rng(1)
        np.testing.assert_array_equal(layer.forward(x, False), x)
        y = layer.forward(x, True)
        if type_name == "SpatialDropout1D":
            dropped = (y == 0).all(axis=1)  # (samples, channels): a channel is dropped at every step or none
            assert 0.45 < dropped.mean() < 0.55
            np.testing.assert_allclose(y[~np.repeat(dropped[:, None], 50, 1)], 2 * x[~np.repeat(dropped[:, None],
                                                                                               50, 1)])
        elif type_name == "GaussianNoise":
            np.testing.assert_allclose((y - x).std(), 0.3, rtol=0.02)
        elif type_name == "GaussianDropout":
            np.testing.assert_allclose((y / x).mean(), 1.0, atol=0.01)
            np.testing.assert_allclose((y / x).std(), np.sqrt(0.2 / 0.8), rtol=0.02)
        else:
            assert abs(y.mean()) < 0.01 and abs(y.var() - 1) < 0.02


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
@pytest.mark.parametrize("type_name,params,shape", [c for c in cases() if c.values[0] in ("Attention",
                                                                                          "AdditiveAttention")])
def test_dot_and_additive_attention_match_keras(type_name, params, shape, rng):
    import os

    os.environ.setdefault("KERAS_BACKEND", "torch")
    keras = pytest.importorskip("keras")
    layer, _ = make_layer(type_name, params, shape, "cpu")
    xs = inputs_for(shape, rng)
    causal = params.get("use_causal_mask", False)  # a call argument in Keras
    theirs = getattr(keras.layers, type_name)(**{k: v for k, v in params.items() if k != "use_causal_mask"})
    theirs(xs, use_causal_mask=causal)
    assert [tuple(w.shape) for w in theirs.weights] == [s.shape for s in layer.weight_specs]
    theirs.set_weights([np.asarray(layer.params[s.name]) for s in layer.weight_specs])
    out = keras.ops.convert_to_numpy(theirs(xs, use_causal_mask=causal))
    np.testing.assert_allclose(layer.forward(xs, False), out, rtol=1e-5, atol=1e-6)


def test_embedding_mask_zero_marks_the_zero_ids():
    layer, _ = make_layer("Embedding", {"input_dim": 4, "output_dim": 2, "mask_zero": True}, (3,), "cpu")
    ids = np.array([[0, 2, 0], [3, 1, 1]], np.float64)
    layer.forward(ids, False)
    np.testing.assert_array_equal(layer.output_mask([None]), ids != 0)


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
@pytest.mark.parametrize("params,shape", [c.values[1:] for c in cases() if c.values[0] == "Bidirectional"])
def test_bidirectional_matches_keras(params, shape, rng):
    """Keras' Bidirectional around the same recurrent layer, given our weights (forward half's, then the
    backward half's, as Keras orders them), gives our outputs."""
    import os

    os.environ.setdefault("KERAS_BACKEND", "torch")
    keras = pytest.importorskip("keras")
    layer, _ = make_layer("Bidirectional", params, shape, "cpu")
    inner = dict(params["layer"])
    theirs = keras.layers.Bidirectional(getattr(keras.layers, inner.pop("type"))(**inner),
                                        merge_mode=params.get("merge_mode", "concat"))
    x = inputs_for(shape, rng)
    theirs(x)
    names = [f"{w.path}" for w in theirs.weights]
    assert [tuple(w.shape) for w in theirs.weights] == [s.shape for s in layer.weight_specs], names
    theirs.set_weights([layer.params[s.name] for s in layer.weight_specs])
    np.testing.assert_allclose(layer.forward(x, False), keras.ops.convert_to_numpy(theirs(x)), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("inner,needle", [
    ("{type: Dense, units: 3}", "Bidirectional wraps SimpleRNN, LSTM or GRU, got Dense"),
    ("{type: LSTM, units: 3, activation: softmax}", "layer: activation: softmax cannot be a recurrent cell's"),
    ("{type: LSTM, unitz: 3}", "unknown key 'unitz'"),
    ("LSTM", "LSTM needs its arguments"),
])
def test_bidirectional_config_errors_name_the_wrapped_layer(inner, needle):
    from test_config import error_of

    text = f"""
name: bi
data: {{dataset: synthetic_sequences, samples: 40, steps: 5, features: 2}}
model:
  input_shape: [5, 2]
  layers:
    - {{type: Bidirectional, layer: {inner}}}
    - {{type: Dense, units: 3, activation: softmax}}
compile: {{optimizer: adam, loss: sparse_categorical_crossentropy}}
"""
    message = error_of(text)
    assert needle in message and "model.layers[0]" in message


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
@pytest.mark.parametrize("params,shape", [c.values[1:] for c in cases() if c.values[0] == "TimeDistributed"])
def test_time_distributed_matches_keras(params, shape, rng):
    import os

    os.environ.setdefault("KERAS_BACKEND", "torch")
    keras = pytest.importorskip("keras")
    layer, _ = make_layer("TimeDistributed", params, shape, "cpu")
    inner = dict(params["layer"])
    theirs = keras.layers.TimeDistributed(getattr(keras.layers, inner.pop("type"))(**inner))
    x = inputs_for(shape, rng)
    theirs(x)
    theirs.set_weights([layer.params[s.name] for s in layer.weight_specs])
    np.testing.assert_allclose(layer.forward(x, False), keras.ops.convert_to_numpy(theirs(x)), rtol=1e-5, atol=1e-6)
