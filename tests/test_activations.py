"""The activation table against Keras 3: every elementwise activation's values (keras.activations, torch
backend) and its gradient from the output against torch's autograd, in float64; kernels are held to the
table by the parity tests."""

import os

import numpy as np
import pytest

from kerascli.ops.contract import ACTIVATION_TABLE
from kerascli.registry import ACTIVATIONS

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")
ELEMENTWISE = [a for a in ACTIVATION_TABLE if a.elementwise and a.name != "linear"]


@pytest.mark.parametrize("act", ELEMENTWISE, ids=[a.name for a in ELEMENTWISE])
def test_values_and_gradients_match_keras(act, rng):
    os.environ.setdefault("KERAS_BACKEND", "torch")
    keras = pytest.importorskip("keras")
    torch = pytest.importorskip("torch")
    z = rng.normal(size=(6, 9)) * 4
    z[0, :3] = [0.5, -0.5, 7.0]  # inside, and beyond relu6's and hard_sigmoid's flat ends
    x = torch.tensor(z, requires_grad=True)
    theirs = getattr(keras.activations, act.name)(x)
    dy = rng.normal(size=z.shape)
    theirs.backward(torch.tensor(dy))
    y = act.forward(z)
    np.testing.assert_allclose(y, theirs.detach().numpy(), rtol=1e-12, atol=1e-12)
    # (rtol 1e-7: Keras multiplies hard_sigmoid by 1/6 rounded to float32)
    np.testing.assert_allclose(act.backward(dy, y), x.grad.numpy(), rtol=1e-7, atol=1e-12)


def test_every_activation_is_registered_under_its_keras_name():
    assert sorted(ACTIVATIONS.builtin_names()) == sorted(a.name for a in ACTIVATION_TABLE)
    assert all(ACTIVATIONS.get(a.name) == a.code for a in ACTIVATION_TABLE)
