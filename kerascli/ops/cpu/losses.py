"""Numba twins of kerascli.ops.reference.losses: same names, signatures and results."""

from __future__ import annotations

import math

import numpy as np
from numba import njit

from kerascli.ops import scalar
from kerascli.ops.cpu.activations import _softmax_row
from kerascli.ops.cpu.jit import opts


@njit(**opts)
def softmax_cross_entropy(z, t):
    rows, cols = z.shape
    probs = np.empty_like(z)
    loss = np.empty(rows, dtype=z.dtype)
    for r in range(rows):
        m, log_s = _softmax_row(z, r, probs)
        acc = 0.0
        for c in range(cols):
            acc -= t[r, c] * (z[r, c] - m - log_s)
        loss[r] = acc
    return loss, probs


@njit(**opts)
def softmax_cross_entropy_grad(probs, t, scale):
    return ((probs - t) * scale).astype(probs.dtype)


@njit(**opts)
def sparse_softmax_cross_entropy(z, labels):
    rows, cols = z.shape
    probs = np.empty_like(z)
    loss = np.empty(rows, dtype=z.dtype)
    for r in range(rows):
        m, log_s = _softmax_row(z, r, probs)
        loss[r] = -(z[r, labels[r]] - m - log_s)
    return loss, probs


@njit(**opts)
def sparse_softmax_cross_entropy_grad(probs, labels, scale):
    rows, cols = probs.shape
    d = np.empty_like(probs)
    for r in range(rows):
        for c in range(cols):
            d[r, c] = probs[r, c] * scale
        d[r, labels[r]] -= scale
    return d


@njit(**opts)
def sigmoid_binary_cross_entropy(z, t):
    rows, cols = z.shape
    probs = np.empty_like(z)
    loss = np.empty(rows, dtype=z.dtype)
    for r in range(rows):
        acc = 0.0
        for c in range(cols):
            v = z[r, c]
            acc += max(v, 0.0) - v * t[r, c] + math.log1p(math.exp(-abs(v)))
            probs[r, c] = 1.0 / (1.0 + math.exp(-v))
        loss[r] = acc / cols
    return loss, probs


@njit(**opts)
def sigmoid_binary_cross_entropy_grad(probs, t, scale):
    return ((probs - t) * (scale / probs.shape[1])).astype(probs.dtype)


@njit(**opts)
def categorical_cross_entropy(p, t, eps):
    rows, cols = p.shape
    loss = np.empty(rows, dtype=p.dtype)
    for r in range(rows):
        s = 0.0
        for c in range(cols):
            s += p[r, c]
        acc = 0.0
        for c in range(cols):
            q = min(max(p[r, c] / s, eps), 1.0 - eps)
            acc -= t[r, c] * math.log(q)
        loss[r] = acc
    return loss


@njit(**opts)
def categorical_cross_entropy_grad(p, t, eps, scale):
    rows, cols = p.shape
    d = np.empty_like(p)
    for r in range(rows):
        s = 0.0
        for c in range(cols):
            s += p[r, c]
        dot = 0.0
        for c in range(cols):
            q = p[r, c] / s
            dq = -t[r, c] / q if eps < q < 1.0 - eps else 0.0
            d[r, c] = dq
            dot += dq * q
        for c in range(cols):
            d[r, c] = (d[r, c] - dot) / s * scale
    return d


@njit(**opts)
def binary_cross_entropy(p, t, eps):
    rows, cols = p.shape
    loss = np.empty(rows, dtype=p.dtype)
    for r in range(rows):
        acc = 0.0
        for c in range(cols):
            q = min(max(p[r, c], eps), 1.0 - eps)
            acc -= t[r, c] * math.log(q) + (1.0 - t[r, c]) * math.log(1.0 - q)
        loss[r] = acc / cols
    return loss


@njit(**opts)
def binary_cross_entropy_grad(p, t, eps, scale):
    rows, cols = p.shape
    d = np.empty_like(p)
    k = scale / cols
    for r in range(rows):
        for c in range(cols):
            q = p[r, c]
            if eps < q < 1.0 - eps:
                d[r, c] = (-t[r, c] / q + (1.0 - t[r, c]) / (1.0 - q)) * k
            else:
                d[r, c] = 0.0
    return d


@njit(**opts)
def mean_squared_error(p, t):
    rows, cols = p.shape
    loss = np.empty(rows, dtype=p.dtype)
    for r in range(rows):
        acc = 0.0
        for c in range(cols):
            e = p[r, c] - t[r, c]
            acc += e * e
        loss[r] = acc / cols
    return loss


@njit(**opts)
def mean_squared_error_grad(p, t, scale):
    return (2.0 * (p - t) * (scale / p.shape[1])).astype(p.dtype)


@njit(**opts)
def row_argmax(p):
    rows, cols = p.shape
    out = np.empty(rows, dtype=np.int64)
    for r in range(rows):
        best = 0
        for c in range(1, cols):
            if p[r, c] > p[r, best]:
                best = c
        out[r] = best
    return out


# The elementwise losses (kerascli.ops.contract.ELEMENT_LOSSES), from their one definition, inlined
_element_value = njit(inline="always", **opts)(scalar.element_loss_value)
_element_gradient = njit(inline="always", **opts)(scalar.element_loss_gradient)


@njit(**opts)
def element_loss(p, t, code, param):
    rows, cols = p.shape
    loss = np.empty(rows, dtype=p.dtype)
    for r in range(rows):
        acc = 0.0
        for c in range(cols):
            acc += _element_value(p[r, c], t[r, c], code, param)
        loss[r] = acc / cols
    return loss


@njit(**opts)
def element_loss_grad(p, t, code, param, scale):
    rows, cols = p.shape
    out = np.empty_like(p)
    for r in range(rows):
        for c in range(cols):
            out[r, c] = _element_gradient(p[r, c], t[r, c], code, param) * (scale / cols)
    return out
