"""Scalar definitions compiled by more than one backend: plain Python on ``math`` alone, which Numba compiles
both for the CPU (njit) and as numba.cuda device functions, so each is written once. The numpy definitions
in kerascli.ops.contract are their reference."""

from __future__ import annotations

import math

from kerascli.ops.contract import HUBER, LOG_COSH, MAE, MAPE, MSLE, RELU, SIGMOID, TANH

EPS = 1e-7  # Keras' backend epsilon


# The elementwise activations of the table: value from the input, gradient from the output. A new elementwise
# activation is a row in the table and a branch in each.
def activation_value(v, act):
    if act == RELU:
        return v if not v < 0 else 0.0  # NaN passes through, as in numpy
    if act == SIGMOID:
        return 1.0 / (1.0 + math.exp(-v))
    if act == TANH:
        return math.tanh(v)
    return v  # linear (softmax is applied per row by the callers)


def activation_gradient(dy, y, act):
    if act == RELU:
        return dy if y > 0 else 0.0
    if act == SIGMOID:
        return dy * y * (1.0 - y)
    if act == TANH:
        return dy * (1.0 - y * y)
    return dy


def element_loss_value(p, t, code, param):
    """f(prediction, target) of the elementwise loss ``code`` (ELEMENT_LOSSES)."""
    if code == MAE:
        return abs(p - t)
    if code == MAPE:
        return 100.0 * abs((t - p) / max(abs(t), EPS))
    if code == MSLE:
        d = math.log(max(p, EPS) + 1.0) - math.log(max(t, EPS) + 1.0)
        return d * d
    if code == HUBER:
        e = abs(p - t)
        return 0.5 * e * e if e <= param else param * e - 0.5 * param * param
    if code == LOG_COSH:
        x = p - t  # log(cosh x) = x + softplus(-2x) - log 2, without overflow
        return x + max(-2.0 * x, 0.0) + math.log1p(math.exp(-abs(2.0 * x))) - math.log(2.0)
    return p - t * math.log(p + EPS)  # poisson


def element_loss_gradient(p, t, code, param):
    """df/dprediction of the elementwise loss ``code``."""
    e = p - t
    sign = 1.0 if e > 0 else (-1.0 if e < 0 else 0.0)
    if code == MAE:
        return sign
    if code == MAPE:
        return 100.0 * sign / max(abs(t), EPS)
    if code == MSLE:
        if not p > EPS:
            return 0.0
        return 2.0 * (math.log(p + 1.0) - math.log(max(t, EPS) + 1.0)) / (p + 1.0)
    if code == HUBER:
        return e if abs(e) <= param else param * sign
    if code == LOG_COSH:
        return math.tanh(e)
    return 1.0 - t / (p + EPS)  # poisson


def ftrl_element(g, p, a, lin, lr, lr_power, l1, l2, l2_shrinkage):
    """Keras Ftrl for one parameter ``p`` with gradient ``g``, accumulator ``a`` and linear term ``lin``
    (``l2`` already holds beta / (2 lr)): returns the new (parameter, linear term, accumulator)."""
    new_a = a + g * g
    power_new, power_old = new_a ** -lr_power, a ** -lr_power
    lin = lin + g + 2 * l2_shrinkage * p - (power_new - power_old) / lr * p
    return (min(max(lin, -l1), l1) - lin) / (power_new / lr + 2 * l2), lin, new_a
