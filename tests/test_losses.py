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
    if name in ("categorical_crossentropy", "categorical_hinge", "categorical_focal_crossentropy"):
        return np.eye(C)[rng.integers(0, C, size=N)]
    if name in ("binary_focal_crossentropy", "dice", "tversky"):
        return (rng.random(size=(N, C)) > 0.5).astype(float)
    return rng.random(size=(N, C))


ELEMENTWISE = ["mean_absolute_error", "mean_absolute_percentage_error", "mean_squared_logarithmic_error", "huber",
               "log_cosh", "poisson", "kl_divergence", "hinge", "squared_hinge"]


ROW_LOSSES = ["categorical_hinge", "cosine_similarity", "binary_focal_crossentropy", "categorical_focal_crossentropy",
              "tversky", "dice"]


def test_every_loss_is_tested():
    assert sorted(LOSSES.builtin_names()) == sorted(
        ["categorical_crossentropy", "sparse_categorical_crossentropy", "binary_crossentropy", "mean_squared_error"]
        + ELEMENTWISE + ROW_LOSSES)


def outputs_for(name, rng):
    """Predictions in the loss's domain (poisson and msle take logarithms of them)."""
    if name in ("poisson", "mean_squared_logarithmic_error"):
        return rng.random(size=(N, C)) * 3 + 0.1
    if name in ("binary_focal_crossentropy", "dice", "tversky"):
        return rng.random(size=(N, C)) * 0.9 + 0.05
    if name == "categorical_focal_crossentropy":  # rows that do not sum to 1: the loss divides by their sum
        return rng.random(size=(N, C)) + 0.1
    if name == "kl_divergence":  # probabilities (and one beyond the clip at 1, whose gradient is 0)
        p = rng.random(size=(N, C)) * 0.9 + 0.05
        p[0, 0] = 1.5
        return p
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


# ---------------------------------------------------------------- arguments (Keras' constructor arguments)
ARGUMENT_CASES = [
    ("categorical_crossentropy", {"label_smoothing": 0.2}, False),
    ("categorical_crossentropy", {"from_logits": True}, True),
    ("categorical_crossentropy", {"from_logits": True, "label_smoothing": 0.1}, True),
    ("sparse_categorical_crossentropy", {"from_logits": True}, True),
    ("sparse_categorical_crossentropy", {"from_logits": True, "ignore_class": 1}, True),
    ("binary_crossentropy", {"label_smoothing": 0.3}, False),
    ("binary_crossentropy", {"from_logits": True, "label_smoothing": 0.1}, True),
    ("huber", {"delta": 0.4}, False),
    ("categorical_hinge", {}, False),
    ("cosine_similarity", {}, False),
    ("binary_focal_crossentropy", {}, False),
    ("binary_focal_crossentropy", {"apply_class_balancing": True, "alpha": 0.4, "gamma": 1.5, "label_smoothing": 0.1},
     False),
    ("binary_focal_crossentropy", {"from_logits": True, "gamma": 3.0}, True),
    ("categorical_focal_crossentropy", {}, False),
    ("categorical_focal_crossentropy", {"alpha": 0.5, "gamma": 0.5, "label_smoothing": 0.2}, False),
    ("categorical_focal_crossentropy", {"from_logits": True}, True),
    ("dice", {}, False),
    ("dice", {"axis": -1}, False),
    ("tversky", {}, False),
    ("tversky", {"alpha": 0.3, "beta": 0.7, "axis": -1}, False),
]


def keras_loss(name, config, reduction=None):
    import os

    os.environ.setdefault("KERAS_BACKEND", "torch")
    keras = pytest.importorskip("keras")
    pytest.importorskip("torch")
    cls = LOSSES.get(name).__name__  # kerascli's loss classes have Keras' names
    return getattr(keras.losses, cls)(reduction=reduction, **config)


def loss_inputs(name, from_logits, rng):
    """(outputs, targets): logits where the loss takes them, else probabilities in the loss's domain."""
    z = rng.normal(size=(N, C)) * 2
    t = targets_for(name, rng)
    if name == "binary_crossentropy":
        t = (rng.random((N, C)) > 0.5).astype(float)
    if name in ("binary_focal_crossentropy", "categorical_focal_crossentropy", "dice", "tversky") and not from_logits:
        return outputs_for(name, rng), t
    if from_logits or LOSSES.get(name).fuses is None:
        return z, t
    return get_ops("reference").bias_activation_forward(z, np.zeros(0), LOSSES.get(name).fuses,
                                                       np.empty_like(z)), t


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
@pytest.mark.parametrize("name,config,from_logits", ARGUMENT_CASES)
def test_loss_arguments_match_keras(name, config, from_logits, rng):
    """Per-sample values against Keras 3's loss built with the same arguments; the float64 gradient by
    central differences (the fused path where the loss takes logits)."""
    torch = pytest.importorskip("torch")

    loss = LOSSES.get(name)(config)
    assert loss.from_logits == from_logits
    ops = get_ops("cpu")
    out, t = loss_inputs(name, from_logits, rng)
    t_loss = loss.targets(t, C, np.float64)
    rows, pred = loss.forward(ops, out, t_loss, from_logits)
    if "ignore_class" in config:  # the batch's mean is over the kept samples: compare the reduced values
        theirs = keras_loss(name, config, "sum_over_batch_size")(torch.tensor(t), torch.tensor(out)).numpy()
        np.testing.assert_allclose(rows.mean(), theirs, rtol=1e-5, atol=1e-6)
    else:
        theirs = keras_loss(name, config)(torch.tensor(t), torch.tensor(out)).numpy()
        np.testing.assert_allclose(rows, theirs, rtol=1e-5, atol=1e-6)

    def value():
        return float(loss.forward(ops, out, t_loss, from_logits)[0].mean())

    analytic = loss.backward(ops, out, pred, t_loss, 1.0 / N, from_logits)
    assert_grad_close(analytic, numeric_grad(value, out), f"{name} {config}")


def resolve_loss(loss_yaml, layers="[{type: Dense, units: 3, activation: softmax}]"):
    from kerascli.config.loader import parse_yaml_text
    from kerascli.config.schema import resolve_config

    text = f"""
data: {{dataset: synthetic_classification, samples: 40, features: 4, classes: 3}}
model: {{input_shape: [4], layers: {layers}}}
compile: {{optimizer: adam, loss: {loss_yaml}}}
"""
    return resolve_config(parse_yaml_text(text, "c.yaml"))


def test_loss_arguments_resolve_with_every_default():
    spec = resolve_loss("{type: cce, label_smoothing: 0.1}")
    assert spec.compile["loss"] == {"type": "categorical_crossentropy", "from_logits": False,
                                    "label_smoothing": 0.1, "axis": -1}
    assert resolve_loss("huber").compile["loss"] == {"type": "huber", "delta": 1.0}
    assert resolve_loss("mse").compile["loss"] == "mean_squared_error"  # no arguments: the name alone


@pytest.mark.parametrize("loss_yaml,message", [
    ("{type: mse, delta: 2}", "c.yaml:4: compile.loss.delta: loss 'mean_squared_error' takes no arguments"),
    ("{type: huber, delat: 2}", "compile.loss.delat: unknown key 'delat'; did you mean 'delta'?"),
    ("{type: cce, label_smoothing: 1.5}", "compile.loss.label_smoothing"),
    ("{type: cce, axis: 2}", "compile.loss.axis: axis: outputs here are (batch, units)"),
    ("{from_logits: true}", "compile.loss: missing required key 'type'"),
    ("{type: scce, label_smoothing: 0.1}", "unknown key 'label_smoothing'"),  # as in Keras
])
def test_bad_loss_arguments_name_the_key(loss_yaml, message):
    from kerascli.errors import ConfigError

    with pytest.raises(ConfigError) as err:
        resolve_loss(loss_yaml)
    assert message in str(err.value)


def test_from_logits_refuses_an_output_with_its_own_activation():
    from kerascli.errors import ConfigError
    from kerascli.train.session import build_session

    spec = resolve_loss("{type: scce, from_logits: true}")
    with pytest.raises(ConfigError, match="sparse_categorical_crossentropy has from_logits: true, but the model's "
                                          "output \\(layer 'dense'\\) ends in softmax"):
        build_session(spec)
    linear = resolve_loss("{type: scce, from_logits: true}", "[{type: Dense, units: 3}]")
    session = build_session(linear)
    assert session.trainer.objective.fused["dense"]
    x = np.random.default_rng(0).normal(size=(5, 4)).astype(np.float32)
    logits = session.model.predict_batch(x)  # predictions are the model's outputs: logits, as in Keras
    assert not np.allclose(logits.sum(axis=1), 1.0)


def test_metrics_see_the_outputs_a_from_logits_loss_takes():
    """As in Keras, metrics compare the model's outputs (here logits) with the targets: binary accuracy
    thresholds logits at 0.5."""
    from kerascli.train.loop import Totals
    from kerascli.train.session import build_session

    spec = resolve_loss("{type: bce, from_logits: true}", "[{type: Dense, units: 1}]")
    spec.compile["metrics"] = ["binary_accuracy"]
    objective = build_session(spec).trainer.objective
    out = np.array([[0.3], [0.7], [-2.0], [0.2]])  # logits: probabilities 0.57, 0.67, 0.12, 0.55
    t = np.array([[1.0], [1.0], [0.0], [1.0]])
    totals = Totals(objective.names)
    objective.forward(get_ops("cpu"), out, t, totals)
    assert totals.means()["binary_accuracy"] == pytest.approx(0.5)  # logits > 0.5: 0, 1, 0, 0 (probabilities
    # would give 1, 1, 0, 1: all four right)


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
@pytest.mark.parametrize("name", ["hinge", "squared_hinge"])
@pytest.mark.parametrize("targets", ["binary", "signed"])
def test_hinge_losses_take_binary_targets_as_signs_batch_by_batch(name, targets, rng):
    """Targets all 0 or 1 are taken as -1 and 1 (Keras decides per batch); -1/1 targets as they are."""
    import os

    os.environ.setdefault("KERAS_BACKEND", "torch")
    keras = pytest.importorskip("keras")
    torch = pytest.importorskip("torch")
    t = (rng.random((N, C)) > 0.5).astype(np.float64)
    if targets == "signed":
        t = 2 * t - 1
    out = rng.normal(size=(N, C))
    loss = LOSSES.get(name)()
    rows, pred = loss.forward(get_ops("cpu"), out, t, False)
    p = torch.tensor(out, requires_grad=True)
    theirs = getattr(keras.losses, name)(torch.tensor(t), p)
    theirs.mean().backward()
    np.testing.assert_allclose(rows, theirs.detach().numpy(), rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(loss.backward(get_ops("cpu"), out, pred, t, 1.0 / N, False), p.grad.numpy(),
                               rtol=1e-6, atol=1e-7)


def test_ignore_class_may_lie_outside_the_classes(rng):
    """A segmentation-style 'void' label (255): kept through the targets, weighing nothing in the loss."""
    loss = LOSSES.get("sparse_categorical_crossentropy")({"from_logits": True, "ignore_class": 255})
    t = loss.targets(np.array([0, 255, 2, 255]), C, np.float64)
    assert list(t) == [0, 255, 2, 255]
    with pytest.raises(DataError, match="labels range over"):
        loss.targets(np.array([0, 7]), C, np.float64)
    z = rng.normal(size=(4, C))
    rows, pred = loss.forward(get_ops("cpu"), z, t, True)
    assert rows[1] == rows[3] == 0 and rows.mean() == pytest.approx((rows[0] + rows[2]) / 4)
    grad = loss.backward(get_ops("cpu"), z, pred, t, 0.25, True)
    assert not grad[1].any() and not grad[3].any()
