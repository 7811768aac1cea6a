"""Definitions compiled by more than one backend (scalar functions, and loops over one row of an array):
plain Python on ``math`` alone, which Numba compiles both for the CPU (njit) and as numba.cuda device
functions, so each is written once. The numpy definitions in kerascli.ops.contract and
kerascli.ops.reference are their reference."""

from __future__ import annotations

import math

from kerascli.ops.contract import (
    ELU,
    EXPONENTIAL,
    FILL_REFLECT,
    FILL_WRAP,
    GELU,
    GELU_APPROXIMATE,
    GELU_TANH_C,
    GELU_TANH_K,
    HARD_SIGMOID,
    HARD_SILU,
    HINGE,
    HUBER,
    KL_DIVERGENCE,
    LEAKY_RELU,
    LEAKY_SLOPE,
    LOG_COSH,
    MAE,
    MAPE,
    MISH,
    MSLE,
    POISSON,
    RELU,
    RELU6,
    SELU,
    SELU_ALPHA,
    SELU_SCALE,
    SIGMOID,
    SILU,
    SOFTPLUS,
    SOFTSIGN,
    TANH,
)

EPS = 1e-7  # Keras' backend epsilon
SQRT_HALF = math.sqrt(0.5)
INV_SQRT_2PI = 1.0 / math.sqrt(2.0 * math.pi)


# The commonest activations on their own as well (the same formulas as their branches below, which a test
# holds them to): a cpu kernel compiles a loop for each of them with only its code (quick to compile, and
# vectorised), and calls the whole chain for the rest.
def linear_value(v):
    return v


def relu_value(v):
    return v if not v < 0 else 0.0  # NaN passes through, as in numpy


def sigmoid_value(v):
    return 1.0 / (1.0 + math.exp(-v))


def tanh_value(v):
    return math.tanh(v)


def linear_gradient(dy, y):
    return dy


def relu_gradient(dy, y):
    return dy if y > 0 else 0.0


def sigmoid_gradient(dy, y):
    return dy * y * (1.0 - y)


def tanh_gradient(dy, y):
    return dy * (1.0 - y * y)


# The elementwise activations of the table: value from the input, gradient from the output, or from the input
# for those whose row says needs_input (then ``y`` is the input). A new elementwise activation is a row in the
# table and a branch in each.
def activation_value(v, act):
    if act == RELU:
        return v if not v < 0 else 0.0  # NaN passes through, as in numpy
    if act == SIGMOID:
        return 1.0 / (1.0 + math.exp(-v))
    if act == TANH:
        return math.tanh(v)
    if act == RELU6:
        return min(v, 6.0) if not v < 0 else 0.0
    if act == LEAKY_RELU:
        return v if v > 0 else LEAKY_SLOPE * v
    if act == ELU:
        return v if v > 0 else math.expm1(min(v, 0.0))
    if act == SELU:
        return SELU_SCALE * (v if v > 0 else SELU_ALPHA * math.expm1(min(v, 0.0)))
    if act == SOFTPLUS:
        return max(v, 0.0) + math.log1p(math.exp(-abs(v)))
    if act == SOFTSIGN:
        return v / (1.0 + abs(v))
    if act == HARD_SIGMOID:
        return min(max(v + 3.0, 0.0), 6.0) / 6.0
    if act == EXPONENTIAL:
        return math.exp(v)
    if act == GELU:
        return 0.5 * v * (1.0 + math.erf(v * SQRT_HALF))
    if act == GELU_APPROXIMATE:
        return 0.5 * v * (1.0 + math.tanh(GELU_TANH_C * (v + GELU_TANH_K * v * v * v)))
    if act == SILU:
        return v / (1.0 + math.exp(-v))
    if act == MISH:
        return v * math.tanh(max(v, 0.0) + math.log1p(math.exp(-abs(v))))
    if act == HARD_SILU:
        return v * min(max(v + 3.0, 0.0), 6.0) / 6.0
    return v  # linear (softmax is applied per row by the callers)


def activation_gradient(dy, y, act):
    if act == RELU:
        return dy if y > 0 else 0.0
    if act == SIGMOID:
        return dy * y * (1.0 - y)
    if act == TANH:
        return dy * (1.0 - y * y)
    if act == RELU6:
        return dy if 0 < y < 6 else 0.0
    if act == LEAKY_RELU:
        return dy if y > 0 else LEAKY_SLOPE * dy
    if act == ELU:
        return dy if y > 0 else dy * (y + 1.0)
    if act == SELU:
        return SELU_SCALE * dy if y > 0 else dy * (y + SELU_SCALE * SELU_ALPHA)
    if act == SOFTPLUS:
        return dy * -math.expm1(-y)
    if act == SOFTSIGN:
        return dy * (1.0 - abs(y)) ** 2
    if act == HARD_SIGMOID:
        return dy / 6.0 if 0 < y < 1 else 0.0
    if act == EXPONENTIAL:
        return dy * y
    if act == GELU:  # y is the input from here on
        return dy * (0.5 * (1.0 + math.erf(y * SQRT_HALF)) + y * math.exp(-0.5 * y * y) * INV_SQRT_2PI)
    if act == GELU_APPROXIMATE:
        t = math.tanh(GELU_TANH_C * (y + GELU_TANH_K * y * y * y))
        return dy * (0.5 * (1.0 + t) + 0.5 * y * (1.0 - t * t) * GELU_TANH_C * (1.0 + 3.0 * GELU_TANH_K * y * y))
    if act == SILU:
        s = 1.0 / (1.0 + math.exp(-y))
        return dy * s * (1.0 + y * (1.0 - s))
    if act == MISH:
        t = math.tanh(max(y, 0.0) + math.log1p(math.exp(-abs(y))))
        return dy * (t + y * (1.0 - t * t) / (1.0 + math.exp(-y)))
    if act == HARD_SILU:
        if y < -3.0:
            return 0.0
        return dy if y > 3.0 else dy * (2.0 * y + 3.0) / 6.0
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
    if code == POISSON:
        return p - t * math.log(p + EPS)
    if code == KL_DIVERGENCE:
        tc, pc = min(max(t, EPS), 1.0), min(max(p, EPS), 1.0)
        return tc * math.log(tc / pc)
    tt = 2.0 * t - 1.0 if param else t  # the hinges (param: targets 0/1 taken as -1/1)
    margin = max(1.0 - tt * p, 0.0)
    return margin if code == HINGE else margin * margin


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
    if code == POISSON:
        return 1.0 - t / (p + EPS)
    if code == KL_DIVERGENCE:
        return -min(max(t, EPS), 1.0) / p if EPS <= p <= 1.0 else 0.0
    tt = 2.0 * t - 1.0 if param else t
    margin = 1.0 - tt * p
    if not margin > 0:
        return 0.0
    return -tt if code == HINGE else -2.0 * tt * margin


def ftrl_element(g, p, a, lin, lr, lr_power, l1, l2, l2_shrinkage):
    """Keras Ftrl for one parameter ``p`` with gradient ``g``, accumulator ``a`` and linear term ``lin``
    (``l2`` already holds beta / (2 lr)): returns the new (parameter, linear term, accumulator)."""
    new_a = a + g * g
    power_new, power_old = new_a ** -lr_power, a ** -lr_power
    lin = lin + g + 2 * l2_shrinkage * p - (power_new - power_old) / lr * p
    return (min(max(lin, -l1), l1) - lin) / (power_new / lr + 2 * l2), lin, new_a


def layer_norm_row(x, r, gamma, beta, eps, y, xhat):
    """Row r of layer_norm_forward (its mean and variance, then the normalised, scaled and shifted row into
    ``y`` and ``xhat``); returns the row's inverse standard deviation."""
    cols = x.shape[1]
    s = 0.0  # float64 sums whatever the storage type, for a stable variance
    for c in range(cols):
        s += x[r, c]
    mean = s / cols
    s = 0.0
    for c in range(cols):
        d = x[r, c] - mean
        s += d * d
    inv = 1.0 / math.sqrt(s / cols + eps)
    for c in range(cols):
        v = (x[r, c] - mean) * inv
        xhat[r, c] = v
        y[r, c] = v * gamma[c] + beta[c]
    return inv


def layer_norm_row_grad(dy, r, xhat, gamma, inv_std, dx):
    """Row r of layer_norm_backward's input gradient."""
    cols = dy.shape[1]
    s = 0.0
    sx = 0.0
    for c in range(cols):
        g = dy[r, c] * gamma[c]
        s += g
        sx += g * xhat[r, c]
    k = inv_std[r] / cols
    for c in range(cols):
        dx[r, c] = k * (cols * dy[r, c] * gamma[c] - s - xhat[r, c] * sx)


def image_coordinate(u, n, fill):
    """(a coordinate along an image axis of ``n`` pixels mapped into [0, n-1] as fill mode ``fill`` reads outside
    the image, whether it was outside): reflect is half-sample symmetric (d c b a | a b c d | d c b a), wrap
    has period n - 1 (the last pixel and the first coincide), nearest and constant clamp (constant's caller
    then uses cval where it was outside). scipy.ndimage's modes, as Keras' ImageDataGenerator uses them."""
    outside = u < 0 or u > n - 1
    if n == 1:
        return 0.0, outside
    if fill == FILL_REFLECT:
        u = u % (2 * n)
        if u > n - 1:
            u = 2 * n - 1 - u
    elif fill == FILL_WRAP and outside:
        u = u % (n - 1)
    return min(max(u, 0.0), n - 1.0), outside
