"""The activation table against Keras 3: every activation's values (keras.activations, torch backend) and
its gradient (from the output, or from the input where the row says needs_input) against torch's autograd,
in float64; kernels are held to the table by the parity tests."""

import math
import os

import numpy as np
import pytest

from kerascli.ops import scalar
from kerascli.ops.contract import ACTIVATION_TABLE, BY_NAME
from kerascli.registry import ACTIVATIONS

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")
ROWS = [a for a in ACTIVATION_TABLE if a.name != "linear"]
# rows that are a Keras function called with an argument
KERAS_CALLS = {"gelu_approximate": lambda keras, x: keras.activations.gelu(x, approximate=True)}


@pytest.mark.parametrize("act", ROWS, ids=[a.name for a in ROWS])
def test_values_and_gradients_match_keras(act, rng):
    os.environ.setdefault("KERAS_BACKEND", "torch")
    keras = pytest.importorskip("keras")
    torch = pytest.importorskip("torch")
    z = rng.normal(size=(6, 9)) * 4
    z[0, :3] = [0.5, -0.5, 7.0]  # inside, and beyond relu6's and hard_sigmoid's flat ends
    x = torch.tensor(z, requires_grad=True)
    call = KERAS_CALLS.get(act.name, lambda keras, x: getattr(keras.activations, act.name)(x))
    theirs = call(keras, x)
    dy = rng.normal(size=z.shape)
    theirs.backward(torch.tensor(dy))
    y = act.forward(z)
    np.testing.assert_allclose(y, theirs.detach().numpy(), rtol=1e-12, atol=1e-12)
    # (rtol 1e-7: Keras multiplies hard_sigmoid by 1/6 rounded to float32)
    np.testing.assert_allclose(act.backward(dy, z if act.needs_input else y), x.grad.numpy(), rtol=1e-7, atol=1e-12)


def test_activations_after_max_pooling_are_fused_only_when_increasing():
    """The table's monotonic flags, checked on values: the rows marked increasing commute with a max,
    and each row not so marked has inputs where they do not (a wrong flag would let a convolution fuse
    with the max pooling after it and give wrong outputs)."""
    z = np.linspace(-6, 6, 241)
    for act in ACTIVATION_TABLE:
        if not act.elementwise:
            continue
        y = act.forward(z[None])[0]
        assert (np.diff(y) >= 0).all() == act.increasing, act.name


def test_every_activation_is_registered_under_its_keras_name():
    assert sorted(ACTIVATIONS.builtin_names()) == sorted(a.name for a in ACTIVATION_TABLE)
    assert all(ACTIVATIONS.get(a.name) == a.code for a in ACTIVATION_TABLE)


@pytest.mark.parametrize("name", ["linear", "relu", "sigmoid", "tanh"])
def test_common_activations_alone_equal_their_case_of_the_table(name):
    """kerascli.ops.scalar writes the common activations out a second time, on their own (the cpu kernels
    inline them); they must stay the table's cases."""
    code = BY_NAME[name].code
    values = [-700.0, -40.0, -3.0, -1.0, -1e-8, 0.0, 1e-8, 0.5, 2.0, 40.0, 700.0, float("inf"), float("-inf")]
    for v in values:
        assert getattr(scalar, f"{name}_value")(v) == scalar.activation_value(v, code)
        for dy in (-2.0, 0.0, 1.5):
            y = scalar.activation_value(v, code)
            assert getattr(scalar, f"{name}_gradient")(dy, y) == scalar.activation_gradient(dy, y, code)
    nan = float("nan")
    assert math.isnan(getattr(scalar, f"{name}_value")(nan)) == math.isnan(scalar.activation_value(nan, code))
