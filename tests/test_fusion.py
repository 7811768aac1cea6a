"""Model.fuse_layers: a first Conv2D and the MaxPooling2D after it run as one, in training and inference;
any other Conv2D and its MaxPooling2D in inference only; with the results of running them apart."""

import numpy as np
import pytest

from kerascli.config.loader import parse_yaml_text
from kerascli.config.schema import resolve_config
from kerascli.graph import fusion
from kerascli.train.session import build_session


def config(layers, input_shape=(100,), dtype="float64"):
    lines = "\n".join(f"    - {layer}" for layer in layers)
    return f"""
name: fuse
seed: 5
data: {{dataset: synthetic_classification, samples: 24, features: 100, classes: 3}}
model:
  input_shape: {list(input_shape)}
  layers:
{lines}
compile: {{optimizer: adam, loss: sparse_categorical_crossentropy}}
train: {{dtype: {dtype}}}
"""


# 10x10 grey images; conv1 gives 9x9 with a 2x2 kernel, so the pooling drops a row and a column
CNN = [
    "{type: Reshape, target_shape: [10, 10, 1]}",
    "{type: Rescaling, scale: 0.5}",
    "{type: Conv2D, filters: 5, kernel_size: 2, activation: relu}",
    "{type: MaxPooling2D, pool_size: 2}",
    "{type: Conv2D, filters: 4, kernel_size: 3, padding: same, activation: tanh}",
    "{type: MaxPooling2D, pool_size: 2}",
    "{type: Flatten}",
    "{type: Dense, units: 3, activation: softmax}",
]


def session(layers=CNN):
    return build_session(resolve_config(parse_yaml_text(config(layers), "cfg.yaml")))


def step(s, x, r):
    out = s.model.forward(x, training=True).copy()
    s.model.backward(r)
    return out, s.model.grad_buffer.copy(), s.model.predict_batch(x).copy()


def test_first_convolution_and_its_pooling_fuse():
    s = session()
    conv, pool = s.model.layers[2], s.model.layers[3]
    assert conv.pool is pool and pool.absorbed_by is conv
    conv2, pool2 = s.model.layers[4], s.model.layers[5]
    assert conv2.pool is None  # needs an input gradient, and its patches go through a GEMM ...
    assert conv2.inference_pool is pool2 and pool2.inference_absorbed_by is conv2  # ... but not in inference
    assert pool2.absorbed_by is None


def test_a_pooling_fused_for_inference_only_still_trains_as_a_layer(rng):
    s = session()
    pool2 = s.model.layers[5]
    seen = []
    forward = pool2.forward
    pool2.forward = lambda x, training: seen.append(training) or forward(x, training)
    x = rng.normal(size=(4, 100))
    s.model.forward(x, training=True)
    s.model.predict_batch(x)
    assert seen == [True]  # run in training, skipped in inference (its convolution pooled already)


@pytest.mark.parametrize("activation", ["relu", "tanh", "sigmoid", "linear"])
def test_fused_and_separate_layers_agree(activation, monkeypatch, rng):
    layers = [CNN[0], CNN[1], CNN[2].replace("relu", activation)] + CNN[3:]
    fused = session(layers)
    assert fused.model.layers[2].pool is not None
    monkeypatch.setattr(fusion, "PATTERNS", ())
    apart = session(layers)
    assert apart.model.layers[2].pool is None
    np.testing.assert_array_equal(fused.model.param_buffer, apart.model.param_buffer)
    x = rng.normal(size=(6, 100))
    r = rng.normal(size=(6, 3))
    for a, b in zip(step(fused, x, r), step(apart, x, r)):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("change", [
    ("{type: MaxPooling2D, pool_size: 2}", "{type: MaxPooling2D, pool_size: 2, strides: 1}"),  # windows overlap
    ("{type: MaxPooling2D, pool_size: 2}", "{type: MaxPooling2D, pool_size: 2, padding: same}"),
    ("{type: MaxPooling2D, pool_size: 2}", "{type: AveragePooling2D, pool_size: 2}"),
    ("activation: relu}", "activation: softmax}"),  # does not commute with the max
    ("{type: Rescaling, scale: 0.5}", "{type: BatchNormalization}"),  # weights before: needs an input gradient
])
def test_no_fusion_where_the_kernel_does_not_apply(change):
    old, new = change
    layers = [layer.replace(old, new, 1) if i in (1, 2, 3) else layer for i, layer in enumerate(CNN)]
    assert layers != CNN
    s = session(layers)
    assert all(layer.absorbed_by is None for layer in s.model.layers)
    first_pool = s.model.layers[3]
    if "BatchNormalization" in new:  # only the input gradient stood in the way: inference fuses them
        assert first_pool.inference_absorbed_by is s.model.layers[2]
    else:
        assert first_pool.inference_absorbed_by is None


def test_no_fusion_when_another_layer_reads_the_convolution():
    layers = [
        "{name: image, type: Reshape, target_shape: [10, 10, 1], inputs: [input]}",
        "{name: conv, type: Conv2D, filters: 2, kernel_size: 2, activation: relu, inputs: [image]}",
        "{name: pool, type: MaxPooling2D, pool_size: 3, inputs: [conv]}",
        "{name: a, type: Flatten, inputs: [pool]}",
        "{name: b, type: Flatten, inputs: [conv]}",
        "{name: both, type: Concatenate, inputs: [a, b]}",
        "{name: out, type: Dense, units: 3, activation: softmax, inputs: [both]}",
    ]
    text = config(layers).replace("  input_shape: [100]\n", "  inputs: [{name: input, shape: [100]}]\n  outputs: [out]\n")
    s = build_session(resolve_config(parse_yaml_text(text, "cfg.yaml")))
    assert all(layer.absorbed_by is None and layer.inference_absorbed_by is None for layer in s.model.layers)
