"""Batch normalization over the last axis, and the moving-average update of its statistics."""

from __future__ import annotations

import numpy as np


def batch_norm_forward_train(x, gamma, beta, eps):
    """Normalise each column of 2-D ``x`` by its batch mean and (biased) variance.

    Returns (y, mean, var, xhat, inv_std); the last two feed the backward pass.
    """
    mean = x.mean(axis=0)
    var = x.var(axis=0)
    inv_std = 1 / np.sqrt(var + eps)
    xhat = (x - mean) * inv_std
    y = xhat * gamma + beta
    dt = x.dtype
    return y.astype(dt), mean.astype(dt), var.astype(dt), xhat.astype(dt), inv_std.astype(dt)


def batch_norm_backward(dy, xhat, gamma, inv_std):
    """(dx, dgamma, dbeta) for batch_norm_forward_train."""
    m = dy.shape[0]
    dbeta = dy.sum(axis=0)
    dgamma = (dy * xhat).sum(axis=0)
    dx = (gamma * inv_std / m) * (m * dy - dbeta - xhat * dgamma)
    return dx.astype(dy.dtype), dgamma.astype(dy.dtype), dbeta.astype(dy.dtype)


def batch_norm_inference(x, mean, var, gamma, beta, eps):
    return ((x - mean) / np.sqrt(var + eps) * gamma + beta).astype(x.dtype)


def moving_average_update(moving, value, momentum):
    """moving = moving * momentum + value * (1 - momentum), in place."""
    moving *= momentum
    moving += value * (1 - momentum)


def layer_norm_forward(x, gamma, beta, eps):
    """Normalise each row of 2-D ``x`` by its own mean and (biased) variance, then scale and shift each
    column. Returns (y, xhat, inv_std per row); the last two feed the backward pass."""
    mean = x.mean(axis=1, keepdims=True)
    var = x.var(axis=1, keepdims=True)
    inv_std = 1 / np.sqrt(var + eps)
    xhat = (x - mean) * inv_std
    dt = x.dtype
    return (xhat * gamma + beta).astype(dt), xhat.astype(dt), inv_std[:, 0].astype(dt)


def layer_norm_backward(dy, xhat, gamma, inv_std):
    """(dx, dgamma, dbeta) for layer_norm_forward."""
    cols = dy.shape[1]
    g = dy * gamma
    dx = inv_std[:, None] / cols * (cols * g - g.sum(axis=1, keepdims=True)
                                    - xhat * (g * xhat).sum(axis=1, keepdims=True))
    dt = dy.dtype
    return dx.astype(dt), (dy * xhat).sum(axis=0).astype(dt), dy.sum(axis=0).astype(dt)
