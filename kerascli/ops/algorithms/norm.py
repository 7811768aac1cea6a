"""Group and unit normalization, written with numpy here (a device backend overrides them)."""

from __future__ import annotations

import numpy as np


def group_norm_forward(ops, x3, groups, gamma, beta, eps):
    """``x3`` (samples, positions, channels): each sample's channels in ``groups`` consecutive groups, each
    group normalised by its mean and variance over every position and its channels, then scaled and
    shifted per channel. Returns (y, xhat, inv_std (samples, 1, groups, 1))."""
    n, p, c = x3.shape
    g = x3.reshape(n, p, groups, c // groups)
    mean = g.mean(axis=(1, 3), keepdims=True)
    inv_std = 1 / np.sqrt(g.var(axis=(1, 3), keepdims=True) + eps)
    xhat = ((g - mean) * inv_std).reshape(x3.shape)
    return (xhat * gamma + beta).astype(x3.dtype), xhat.astype(x3.dtype), inv_std


def group_norm_backward(ops, dy3, xhat, inv_std, gamma):
    """(dx, dgamma, dbeta) for group_norm_forward."""
    n, p, c = dy3.shape
    groups = inv_std.shape[2]
    d = (dy3 * gamma).reshape(n, p, groups, c // groups)
    h = xhat.reshape(d.shape)
    m = p * (c // groups)
    dx = inv_std / m * (m * d - d.sum(axis=(1, 3), keepdims=True) - h * (d * h).sum(axis=(1, 3), keepdims=True))
    dt = dy3.dtype
    return (dx.reshape(dy3.shape).astype(dt), (dy3 * xhat).sum(axis=(0, 1)).astype(dt),
            dy3.sum(axis=(0, 1)).astype(dt))


def unit_normalize(ops, x2, eps):
    """Each row of ``x2`` over its L2 norm (at most 1/eps times the row, as Keras' normalize): (y, the
    factor per row, whether the factor was capped)."""
    factor = 1 / np.sqrt((x2.astype(np.float64) ** 2).sum(axis=1, keepdims=True))
    capped = factor > 1 / eps
    factor = np.minimum(factor, 1 / eps)
    return (x2 * factor).astype(x2.dtype), factor, capped


def unit_normalize_backward(ops, dy2, y, factor, capped):
    radial = np.where(capped, 0.0, (y * dy2).sum(axis=1, keepdims=True))
    return (factor * (dy2 - y * radial)).astype(dy2.dtype)


def standardize(ops, x, mean, variance, invert: bool, eps: float):
    """Keras' Normalization: (x - mean) / max(sqrt(variance), eps), or with ``invert`` mean + x * that
    scale; mean and variance broadcast against the per-sample axes."""
    scale = np.maximum(np.sqrt(variance), eps)
    y = mean + x * scale if invert else (x - mean) / scale
    return np.ascontiguousarray(y, dtype=x.dtype)


def standardize_backward(ops, dy, variance, invert: bool, eps: float):
    scale = np.maximum(np.sqrt(variance), eps)
    return np.ascontiguousarray(dy * scale if invert else dy / scale, dtype=dy.dtype)


def moments_update(ops, state, x, axes):
    """Fold the batch ``x`` into running (count, mean, M2) over ``axes`` (float64, Chan et al.'s parallel
    combination): adapting on a split batch by batch gives its whole mean and (population) variance."""
    count, mean, m2 = state
    xs = np.asarray(ops.to_host(x), np.float64)
    n = int(np.prod([xs.shape[a] for a in axes])) if axes else 1
    batch_mean = xs.mean(axis=axes)
    batch_m2 = ((xs - xs.mean(axis=axes, keepdims=True)) ** 2).sum(axis=axes)
    if count == 0:
        return n, batch_mean, batch_m2
    total = count + n
    delta = batch_mean - mean
    return total, mean + delta * (n / total), m2 + batch_m2 + delta ** 2 * (count * n / total)


def statistic_array(ops, values, shape, axis):
    """``values`` (one number, or one per entry of ``axis``) as an array of ``shape`` (float64)."""
    if axis is None or len(values) == 1:
        return np.full(shape, float(values[0]))
    along = [1] * len(shape)
    along[axis] = len(values)
    return np.broadcast_to(np.asarray(values, np.float64).reshape(along), shape).copy()
