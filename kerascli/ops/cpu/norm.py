"""Numba twins of kerascli.ops.reference.norm: same names, signatures and results."""

from __future__ import annotations

import math

import numpy as np
from numba import njit

from kerascli.ops import scalar
from kerascli.ops.cpu.jit import opts


@njit(**opts)
def batch_norm_forward_train(x, gamma, beta, eps):
    rows, cols = x.shape
    mean = np.zeros(cols, dtype=x.dtype)
    var = np.zeros(cols, dtype=x.dtype)
    # accumulate in float64 whatever the storage type, for a stable variance
    acc = np.zeros(cols)
    for r in range(rows):
        for c in range(cols):
            acc[c] += x[r, c]
    mean64 = acc / rows
    acc[:] = 0.0
    for r in range(rows):
        for c in range(cols):
            d = x[r, c] - mean64[c]
            acc[c] += d * d
    var64 = acc / rows
    inv_std = np.empty(cols, dtype=x.dtype)
    for c in range(cols):
        mean[c] = mean64[c]
        var[c] = var64[c]
        inv_std[c] = 1.0 / math.sqrt(var64[c] + eps)
    xhat = np.empty_like(x)
    y = np.empty_like(x)
    for r in range(rows):
        for c in range(cols):
            v = (x[r, c] - mean64[c]) * inv_std[c]
            xhat[r, c] = v
            y[r, c] = v * gamma[c] + beta[c]
    return y, mean, var, xhat, inv_std


@njit(**opts)
def batch_norm_backward(dy, xhat, gamma, inv_std):
    rows, cols = dy.shape
    dbeta = np.zeros(cols, dtype=dy.dtype)
    dgamma = np.zeros(cols, dtype=dy.dtype)
    for r in range(rows):
        for c in range(cols):
            dbeta[c] += dy[r, c]
            dgamma[c] += dy[r, c] * xhat[r, c]
    dx = np.empty_like(dy)
    for r in range(rows):
        for c in range(cols):
            k = gamma[c] * inv_std[c] / rows
            dx[r, c] = k * (rows * dy[r, c] - dbeta[c] - xhat[r, c] * dgamma[c])
    return dx, dgamma, dbeta


@njit(**opts)
def batch_norm_inference(x, mean, var, gamma, beta, eps):
    rows, cols = x.shape
    y = np.empty_like(x)
    scale = np.empty(cols, dtype=x.dtype)
    for c in range(cols):
        scale[c] = gamma[c] / math.sqrt(var[c] + eps)
    for r in range(rows):
        for c in range(cols):
            y[r, c] = (x[r, c] - mean[c]) * scale[c] + beta[c]
    return y


@njit(**opts)
def moving_average_update(moving, value, momentum):
    for i in range(moving.size):
        moving[i] = moving[i] * momentum + value[i] * (1.0 - momentum)


_layer_norm_row = njit(inline="always", **opts)(scalar.layer_norm_row)
_layer_norm_row_grad = njit(inline="always", **opts)(scalar.layer_norm_row_grad)


@njit(**opts)
def layer_norm_forward(x, gamma, beta, eps):
    rows = x.shape[0]
    y = np.empty_like(x)
    xhat = np.empty_like(x)
    inv_std = np.empty(rows, dtype=x.dtype)
    for r in range(rows):
        inv_std[r] = _layer_norm_row(x, r, gamma, beta, eps, y, xhat)
    return y, xhat, inv_std


@njit(**opts)
def layer_norm_backward(dy, xhat, gamma, inv_std):
    rows, cols = dy.shape
    dx = np.empty_like(dy)
    dgamma = np.zeros(cols, dtype=dy.dtype)
    dbeta = np.zeros(cols, dtype=dy.dtype)
    for r in range(rows):
        _layer_norm_row_grad(dy, r, xhat, gamma, inv_std, dx)
        for c in range(cols):
            dgamma[c] += dy[r, c] * xhat[r, c]
            dbeta[c] += dy[r, c]
    return dx, dgamma, dbeta
