"""Initializers: every registered name against Keras 3's definition (values where they are fixed, the
distribution's moments and bounds where they are random), seeds as Keras has them, and the config forms."""

import os

import numpy as np
import pytest
from test_config import error_of, resolve_text

from kerascli.graph.builder import build_model
from kerascli.initializers import fans, make
from kerascli.ops import get_ops
from kerascli.registry import INITIALIZERS, load_builtins

load_builtins()
pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

SHAPE = (3, 3, 40, 64)  # a Conv2D kernel: fan_in 360, fan_out 576
# name -> (arguments, expected variance over SHAPE or None, expected bound on |w| or None)
FAN_IN, FAN_OUT = fans(SHAPE)
ROWS = {
    "glorot_uniform": ({}, 2 / (FAN_IN + FAN_OUT), np.sqrt(6 / (FAN_IN + FAN_OUT))),
    "glorot_normal": ({}, 2 / (FAN_IN + FAN_OUT), 2 * np.sqrt(2 / (FAN_IN + FAN_OUT)) / 0.87962566103423978),
    "he_uniform": ({}, 2 / FAN_IN, np.sqrt(6 / FAN_IN)),
    "he_normal": ({}, 2 / FAN_IN, 2 * np.sqrt(2 / FAN_IN) / 0.87962566103423978),
    "lecun_uniform": ({}, 1 / FAN_IN, np.sqrt(3 / FAN_IN)),
    "lecun_normal": ({}, 1 / FAN_IN, 2 * np.sqrt(1 / FAN_IN) / 0.87962566103423978),
    "variance_scaling": ({"scale": 3.0, "mode": "fan_out", "distribution": "untruncated_normal"}, 3 / FAN_OUT,
                         None),
    "random_normal": ({"mean": 0.0, "stddev": 0.2}, 0.04, None),
    "random_uniform": ({"minval": -0.3, "maxval": 0.3}, 0.09 / 3, 0.3),
    "truncated_normal": ({"stddev": 0.1}, 0.1 ** 2 * 0.87962566103423978 ** 2, 0.2),
    "orthogonal": ({"gain": 2.0}, None, None),
    "identity": ({"gain": 3.0}, None, None),
    "constant": ({"value": 0.25}, None, None),
    "zeros": ({}, None, None),
    "ones": ({}, None, None),
}
KERAS_CLASS = {"identity": "IdentityInitializer"}


def test_every_registered_initializer_has_a_row():
    assert sorted(ROWS) == sorted(INITIALIZERS.builtin_names())


def keras_values(name, args, shape):
    os.environ.setdefault("KERAS_BACKEND", "torch")
    keras = pytest.importorskip("keras")
    cls_name = KERAS_CLASS.get(name, "".join(p.capitalize() for p in name.split("_")))
    init = getattr(keras.initializers, cls_name)(**args, **({"seed": 5} if "seed" in make(name).PARAMS else {}))
    return keras.ops.convert_to_numpy(init(shape, dtype="float64"))


@pytest.mark.parametrize("name", sorted(ROWS))
def test_matches_keras_definition(name):
    args, variance, bound = ROWS[name]
    shape = (7, 5) if name in ("identity", "orthogonal") else SHAPE
    ours = make({"type": name, **args} if args else name)(np.random.default_rng(0), shape, np.float64)
    theirs = keras_values(name, args, shape)
    assert ours.shape == theirs.shape == shape
    if variance is None and name != "orthogonal":  # fixed values
        np.testing.assert_array_equal(ours, theirs)
        return
    if name == "orthogonal":  # columns orthonormal up to the gain, as theirs
        for w in (ours, theirs):
            np.testing.assert_allclose(w.T @ w, 4.0 * np.eye(5), atol=1e-6)
        return
    assert abs(ours.mean() - theirs.mean()) < 4 * np.sqrt(variance / ours.size) + 1e-12
    np.testing.assert_allclose(ours.var(), variance, rtol=0.05)
    np.testing.assert_allclose(theirs.var(), variance, rtol=0.05)
    if bound is not None:
        assert np.abs(ours).max() <= bound and np.abs(theirs).max() <= bound + 1e-7
        assert np.abs(ours).max() > 0.9 * bound


def test_orthogonal_wide_and_tall_and_conv_shapes():
    init = make("orthogonal")
    for shape in ((4, 9), (9, 4), (3, 3, 2, 5)):
        w = init(np.random.default_rng(1), shape, np.float64)
        flat = w.reshape(-1, shape[-1])
        gram = flat @ flat.T if flat.shape[0] < flat.shape[1] else flat.T @ flat
        np.testing.assert_allclose(gram, np.eye(min(flat.shape)), atol=1e-10)


def test_a_seed_fixes_the_values_and_no_seed_follows_the_model_generator():
    seeded = make({"type": "he_normal", "seed": 7})
    a = seeded(np.random.default_rng(1), (4, 3), np.float32)
    b = seeded(np.random.default_rng(2), (4, 3), np.float32)
    np.testing.assert_array_equal(a, b)  # the model's generator plays no part
    assert not np.array_equal(a, make({"type": "he_normal", "seed": 8})(np.random.default_rng(1), (4, 3), np.float32))
    rng = np.random.default_rng(1)
    unseeded = make("he_normal")
    assert not np.array_equal(unseeded(rng, (4, 3), np.float32), unseeded(rng, (4, 3), np.float32))


MODEL = """
name: init
data: {dataset: synthetic_classification, samples: 30, features: 4, classes: 3}
model:
  input_shape: [4]
  layers:
    - {type: Dense, units: 4, kernel_initializer: KERNEL, bias_initializer: {type: constant, value: 0.5}}
    - {type: Dense, units: 3, activation: softmax, kernel_initializer: {type: glorot_uniform, seed: 3}}
compile: {optimizer: sgd, loss: sparse_categorical_crossentropy}
"""


def build(kernel="{type: identity, gain: 2}"):
    config = resolve_text(MODEL.replace("KERNEL", kernel))
    model = build_model(config.model)
    model.set_backend(get_ops("reference"), seed=0)
    model.allocate(np.float64, seed=0)
    return config, model


def test_initializer_mappings_in_a_config():
    config, model = build()
    first = config.model.layers[0]
    assert first["kernel_initializer"] == {"type": "identity", "gain": 2.0}
    dense, dense_1 = model.layers
    np.testing.assert_array_equal(dense.params["kernel"], 2 * np.eye(4))
    np.testing.assert_array_equal(dense.params["bias"], 0.5)
    expected = make({"type": "glorot_uniform", "seed": 3})(None, (4, 3), np.float64)
    np.testing.assert_array_equal(dense_1.params["kernel"], expected)
    # names resolve to their canonical spelling, mappings too
    config, _ = build("{type: HeNormal}")
    assert config.model.layers[0]["kernel_initializer"] == {"type": "he_normal", "seed": None}
    config, _ = build("Orthogonal")
    assert config.model.layers[0]["kernel_initializer"] == "orthogonal"


@pytest.mark.parametrize("kernel,needle", [
    ("{type: he_normal, scale: 2}", "unknown key 'scale'"),
    ("{type: nope}", "unknown initializer 'nope'"),
    ("{gain: 2}", "missing required key 'type'"),
    ("{type: random_uniform, minval: 1, maxval: 0}", "minval (1.0) must not be above maxval (0.0)"),
    ("{type: variance_scaling, mode: fan_up}", "invalid value 'fan_up'"),
    ("{type: variance_scaling, scale: 0}", "must be > 0.0"),
    ("[1, 2]", "expected the name of an initializer or a mapping"),
])
def test_bad_initializers_are_config_errors(kernel, needle):
    assert needle in error_of(MODEL.replace("KERNEL", kernel))


def test_an_initializer_that_cannot_fill_a_shape_names_the_layer():
    from kerascli.errors import ConfigError

    text = MODEL.replace("KERNEL", "identity").replace("{type: constant, value: 0.5}", "orthogonal")
    with pytest.raises(ConfigError) as info:
        build_model(resolve_text(text).model)
    assert "orthogonal needs a weight of 2 or more axes, got shape (4,)" in str(info.value)
    assert "dense" in str(info.value)
