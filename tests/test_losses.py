"""Losses: float64 gradient checks (fused and on probabilities) and golden values from Keras' formulas."""

import numpy as np
import pytest
from backends import HOST_BACKENDS
from gradcheck import assert_grad_close, numeric_grad

from kerascli.errors import DataError
from kerascli.metrics import make_metric
from kerascli.ops import get_ops
from kerascli.registry import LOSSES, load_builtins

load_builtins()
N, C = 4, 3


def targets_for(name, rng):
    if name == "sparse_categorical_crossentropy":
        return rng.integers(0, C, size=N)
    if name == "categorical_crossentropy":
        return np.eye(C)[rng.integers(0, C, size=N)]
    return rng.random(size=(N, C))


ELEMENTWISE = ["mean_absolute_error", "mean_absolute_percentage_error", "mean_squared_logarithmic_error", "huber",
               "log_cosh", "poisson"]


def test_every_loss_is_tested():
    assert sorted(LOSSES.builtin_names()) == sorted(
        ["categorical_crossentropy", "sparse_categorical_crossentropy", "binary_crossentropy", "mean_squared_error"]
        + ELEMENTWISE)


def outputs_for(name, rng):
    """Predictions in the loss's domain (poisson and msle take logarithms of them)."""
    if name in ("poisson", "mean_squared_logarithmic_error"):
        return rng.random(size=(N, C)) * 3 + 0.1
    return rng.normal(size=(N, C)) * 2


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
@pytest.mark.parametrize("name", ELEMENTWISE)
def test_elementwise_losses_match_keras(name, rng):
    """Value per sample and gradient against Keras 3 (torch backend) with torch's autograd (Keras computes in
    float32: the float64 gradient checks are test_loss_gradient's)."""
    import os

    os.environ.setdefault("KERAS_BACKEND", "torch")
    keras = pytest.importorskip("keras")
    torch = pytest.importorskip("torch")
    out = outputs_for(name, rng)
    t = rng.random(size=(N, C)) * 2
    t[0, 0] = 0.0  # a zero target (mape divides by it, clipped)
    loss = LOSSES.get(name)()
    rows, pred = loss.forward(get_ops("cpu"), out, t, False)
    grad = loss.backward(get_ops("cpu"), out, pred, t, 1.0 / N, False)
    p = torch.tensor(out, requires_grad=True)
    theirs = getattr(keras.losses, name)(torch.tensor(t), p)
    theirs.mean().backward()
    np.testing.assert_allclose(rows, theirs.detach().numpy(), rtol=2e-6, atol=1e-7)
    np.testing.assert_allclose(grad, p.grad.numpy(), rtol=2e-6, atol=1e-7)


LOSS_CASES = [(name, False) for name in LOSSES.builtin_names()] + [
    (name, True) for name in LOSSES.builtin_names() if LOSSES.get(name).fuses is not None
]


@pytest.mark.parametrize("backend", HOST_BACKENDS)
@pytest.mark.parametrize("name,fused", LOSS_CASES)
def test_loss_gradient(name, fused, backend, rng):
    loss = LOSSES.get(name)()
    ops = get_ops(backend)
    t = targets_for(name, rng)
    if fused or loss.fuses is None:
        out = outputs_for(name, rng)
    else:  # probabilities from the activation the loss expects
        act = loss.fuses
        z = rng.normal(size=(N, C))
        out = get_ops("reference").bias_activation_forward(z, np.zeros(0), act, np.empty_like(z))

    def value():
        rows, _ = loss.forward(ops, out, t, fused)
        return float(rows.mean())

    _, pred = loss.forward(ops, out, t, fused)
    analytic = loss.backward(ops, out, pred, t, 1.0 / N, fused)
    assert_grad_close(analytic, numeric_grad(value, out), name)


def test_golden_values():
    ops = get_ops("cpu")
    p = np.array([[0.7, 0.2, 0.1], [0.1, 0.1, 0.8]])
    onehot = np.array([[1.0, 0, 0], [0, 1.0, 0]])
    labels = np.array([0, 1])
    cce = LOSSES.get("categorical_crossentropy")()
    rows, _ = cce.forward(ops, p, onehot, fused=False)
    np.testing.assert_allclose(rows, [-np.log(0.7), -np.log(0.1)])
    scce = LOSSES.get("sparse_categorical_crossentropy")()
    rows, _ = scce.forward(ops, p, labels, fused=False)
    np.testing.assert_allclose(rows, [-np.log(0.7), -np.log(0.1)])
    # fused path: logits whose softmax is p give the same values
    rows, probs = scce.forward(ops, np.log(p), labels, fused=True)
    np.testing.assert_allclose(rows, [-np.log(0.7), -np.log(0.1)])
    np.testing.assert_allclose(probs, p)
    bce = LOSSES.get("binary_crossentropy")()
    t = np.array([[1.0, 0.0, 1.0], [0.0, 0.0, 1.0]])
    rows, _ = bce.forward(ops, p, t, fused=False)
    np.testing.assert_allclose(rows, -(t * np.log(p) + (1 - t) * np.log(1 - p)).mean(axis=1))
    mse = LOSSES.get("mean_squared_error")()
    rows, _ = mse.forward(ops, p, t, fused=False)
    np.testing.assert_allclose(rows, ((p - t) ** 2).mean(axis=1))


def test_keras_clipping_on_probabilities():
    ops = get_ops("cpu")
    rows, _ = LOSSES.get("categorical_crossentropy")().forward(
        ops, np.array([[1.0, 0.0]]), np.array([[0.0, 1.0]]), fused=False
    )
    np.testing.assert_allclose(rows, [-np.log(1e-7)])


def test_fused_cross_entropy_is_finite_for_extreme_logits():
    ops = get_ops("cpu")
    z = np.array([[1000.0, -1000.0]], dtype=np.float32)
    rows, probs = LOSSES.get("sparse_categorical_crossentropy")().forward(ops, z, np.array([1]), fused=True)
    assert np.isfinite(rows).all() and rows[0] == pytest.approx(2000.0)


def test_targets_conversion_and_label_mismatch():
    cce = LOSSES.get("categorical_crossentropy")()
    np.testing.assert_array_equal(cce.targets(np.array([2, 0]), 3, np.float32), [[0, 0, 1], [1, 0, 0]])
    with pytest.raises(DataError, match="labels range over 0..9 but the model's output has 3 units"):
        cce.targets(np.array([0, 9]), 3, np.float32)
    with pytest.raises(DataError, match="integer class ids"):
        LOSSES.get("sparse_categorical_crossentropy")().targets(np.array([0.5]), 3, np.float32)
    with pytest.raises(DataError, match="targets in \\[0, 1\\]"):
        LOSSES.get("binary_crossentropy")().targets(np.array([2.0]), 1, np.float32)
    with pytest.raises(DataError, match="do not match the model output"):
        LOSSES.get("mean_squared_error")().targets(np.zeros((2, 3)), 2, np.float32)


@pytest.mark.parametrize(
    "loss,units,pred,t,expected",
    [
        ("sparse_categorical_crossentropy", 3, [[0.1, 0.8, 0.1], [0.6, 0.3, 0.1]], [1, 2], 0.5),
        ("categorical_crossentropy", 3, [[0.1, 0.8, 0.1], [0.6, 0.3, 0.1]], [[0, 1, 0], [0, 1, 0]], 0.5),
        ("binary_crossentropy", 1, [[0.9], [0.4], [0.7]], [[1.0], [1.0], [0.0]], 1 / 3),
    ],
)
def test_accuracy_follows_the_loss(loss, units, pred, t, expected):
    metric = make_metric("accuracy", loss, units)
    total, count = metric.update(get_ops("cpu"), np.array(pred), np.array(t))
    assert total / count == pytest.approx(expected)
