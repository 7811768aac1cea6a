"""Activations with arguments (the ReLU, LeakyReLU, ELU and PReLU layers), written with numpy here: the
activation table's rows take no arguments, these do. A device backend overrides them."""

from __future__ import annotations

import numpy as np


def thresholded_relu_forward(ops, x, max_value, negative_slope, threshold):
    """Keras' relu with arguments: x above ``threshold`` (capped at ``max_value``, None for no cap), 0 from
    0 to the threshold, and ``negative_slope`` * (x - threshold) below it."""
    top = np.inf if max_value is None else max_value
    y = np.where(x > threshold, np.minimum(x, top), 0)
    if negative_slope:
        y = y + negative_slope * np.minimum(x - threshold, 0)
    return y.astype(x.dtype, copy=False)


def thresholded_relu_backward(ops, dy, x, max_value, negative_slope, threshold):
    top = np.inf if max_value is None else max_value
    slope = np.where((x > threshold) & (x < top), 1.0, np.where(x < threshold, negative_slope, 0.0))
    return (dy * slope).astype(dy.dtype, copy=False)


def elu_forward(ops, x, alpha):
    return np.where(x > 0, x, alpha * np.expm1(np.minimum(x, 0))).astype(x.dtype, copy=False)


def elu_backward(ops, dy, x, alpha):
    return np.where(x > 0, dy, dy * alpha * np.exp(np.minimum(x, 0))).astype(dy.dtype, copy=False)


def prelu_forward(ops, x, alpha):
    """x where positive, ``alpha`` * x elsewhere; ``alpha`` broadcasts over the batch (and shared axes)."""
    return np.where(x > 0, x, alpha * x).astype(x.dtype, copy=False)


def prelu_backward(ops, dy, x, alpha, grad_alpha):
    """The input gradient; the gradient of ``alpha`` (summed over the axes it is shared along) is written
    into ``grad_alpha``."""
    negative = np.minimum(x, 0)
    per_value = dy * negative
    axes = (0,) + tuple(i + 1 for i, n in enumerate(alpha.shape) if n == 1 and x.shape[i + 1] != 1)
    grad_alpha[...] = per_value.sum(axis=axes).reshape(alpha.shape)
    return np.where(x > 0, dy, alpha * dy).astype(dy.dtype, copy=False)
