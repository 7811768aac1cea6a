"""Optimizers: golden values by hand from Keras' update rules, and PyTorch as an oracle where installed."""

import numpy as np
import pytest
from backends import HOST_BACKENDS

from kerascli.ops import get_ops
from kerascli.registry import OPTIMIZERS, load_builtins

load_builtins()


def make(name, backend="cpu", size=2, dtype=np.float64, **config):
    cls = OPTIMIZERS.get(name)
    full = {k: p.default for k, p in cls.PARAMS.items()}
    full.update(config)
    return cls(full, size, dtype, get_ops(backend))


def test_every_optimizer_is_tested():
    assert sorted(OPTIMIZERS.builtin_names()) == ["adam", "sgd"]


@pytest.mark.parametrize("backend", HOST_BACKENDS)
def test_sgd_golden_values(backend):
    g = np.array([0.5, -1.0])
    p = np.array([1.0, -2.0])
    opt = make("sgd", backend, learning_rate=0.1)
    opt.step(p, g)
    np.testing.assert_allclose(p, [0.95, -1.9])

    p = np.array([1.0, -2.0])
    opt = make("sgd", backend, learning_rate=0.1, momentum=0.9)
    opt.step(p, g)  # v = -0.05, p = 0.95
    opt.step(p, g)  # v = 0.9 * -0.05 - 0.05 = -0.095, p = 0.855
    np.testing.assert_allclose(p, [0.855, -1.71])

    p = np.array([1.0, -2.0])
    opt = make("sgd", backend, learning_rate=0.1, momentum=0.9, nesterov=True)
    opt.step(p, g)  # v = -0.05; p += 0.9 * v - 0.1 * g = -0.095
    np.testing.assert_allclose(p, [0.905, -1.81])


@pytest.mark.parametrize("backend", HOST_BACKENDS)
def test_adam_golden_values(backend):
    # the first Adam step moves each weight by about lr against the sign of its gradient
    p = np.array([1.0, -2.0])
    opt = make("adam", backend, learning_rate=0.1)
    opt.step(p, np.array([0.5, -1.0]))
    np.testing.assert_allclose(p, [0.9, -1.9], atol=1e-6)
    assert opt.iterations == 1


def adam_by_hand(p, grads, lr, b1, b2, eps):
    """Keras' Adam written out from its documentation, independent of the kernels."""
    m = np.zeros_like(p)
    v = np.zeros_like(p)
    for t, g in enumerate(grads, start=1):
        m = b1 * m + (1 - b1) * g
        v = b2 * v + (1 - b2) * g * g
        lr_t = lr * np.sqrt(1 - b2**t) / (1 - b1**t)
        p = p - lr_t * m / (np.sqrt(v) + eps)
    return p


@pytest.mark.parametrize("backend", HOST_BACKENDS)
def test_adam_matches_the_published_rule_over_several_steps(backend, rng):
    p0 = rng.normal(size=10)
    grads = [rng.normal(size=10) for _ in range(5)]
    p = p0.copy()
    opt = make("adam", backend, size=10, learning_rate=0.01, beta_1=0.8, beta_2=0.99, epsilon=1e-7)
    for g in grads:
        opt.step(p, g)
    np.testing.assert_allclose(p, adam_by_hand(p0, grads, 0.01, 0.8, 0.99, 1e-7), rtol=1e-12)


def test_state_round_trip():
    opt = make("adam", size=3)
    p = np.zeros(3)
    opt.step(p, np.ones(3))
    other = make("adam", size=3)
    other.load_state(opt.state())
    assert other.iterations == 1
    np.testing.assert_array_equal(other.slots["m"], opt.slots["m"])


@pytest.mark.parametrize("name,config,torch_name,torch_config", [
    ("sgd", {"learning_rate": 0.05, "momentum": 0.9}, "SGD", {"lr": 0.05, "momentum": 0.9}),
    ("sgd", {"learning_rate": 0.05, "momentum": 0.9, "nesterov": True}, "SGD",
     {"lr": 0.05, "momentum": 0.9, "nesterov": True}),
    ("adam", {"learning_rate": 0.01, "epsilon": 1e-12}, "Adam", {"lr": 0.01, "eps": 1e-12}),
])
def test_matches_pytorch(name, config, torch_name, torch_config, rng):
    torch = pytest.importorskip("torch")
    p0 = rng.normal(size=6)
    grads = [rng.normal(size=6) for _ in range(4)]
    p = p0.copy()
    opt = make(name, size=6, **config)
    tp = torch.tensor(p0.copy(), dtype=torch.float64, requires_grad=True)
    topt = getattr(torch.optim, torch_name)([tp], **torch_config)
    for g in grads:
        opt.step(p, g)
        tp.grad = torch.tensor(g)
        topt.step()
    np.testing.assert_allclose(p, tp.detach().numpy(), rtol=1e-9, atol=1e-10)
