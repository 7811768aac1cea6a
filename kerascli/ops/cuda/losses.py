"""CUDA twins of kerascli.ops.reference.losses: one thread per row (a sample); same names and results."""

from __future__ import annotations

import math

import numpy as np
from numba import cuda

from kerascli.ops import scalar
from kerascli.ops.cuda.kernel import kernel
from kerascli.ops.cuda.launch import blocks, output_for


@kernel
def _softmax_xent(z, t, labels, sparse, loss, probs):
    r = cuda.grid(1)
    rows, cols = z.shape
    if r < rows:
        m = z[r, 0]
        for c in range(1, cols):
            if z[r, c] > m:
                m = z[r, c]
        s = 0.0
        for c in range(cols):
            e = math.exp(z[r, c] - m)
            probs[r, c] = e
            s += e
        log_s = math.log(s)
        inv = 1.0 / s
        acc = 0.0
        for c in range(cols):
            probs[r, c] *= inv
            if sparse:
                if c == labels[r]:
                    acc -= z[r, c] - m - log_s
            else:
                acc -= t[r, c] * (z[r, c] - m - log_s)
        loss[r] = acc


def _xent(z, t, labels, sparse):
    rows = z.shape[0]
    loss, probs = output_for("xent_loss", z, (rows,), z.dtype), output_for("xent_probs", z, z.shape, z.dtype)
    _softmax_xent[blocks(rows)](z, t, labels, sparse, loss, probs)
    return loss, probs


def softmax_cross_entropy(z, t):
    return _xent(z, t, _no_labels(), False)


def sparse_softmax_cross_entropy(z, labels):
    return _xent(z, z, labels, True)


_PLACEHOLDER: list = []


def _no_labels():
    """An int64 device array for the labels argument of the dense-target path (never read)."""
    if not _PLACEHOLDER:
        _PLACEHOLDER.append(cuda.to_device(np.zeros(1, np.int64)))
    return _PLACEHOLDER[0]


@kernel
def _probs_minus_targets(probs, t, labels, sparse, scale, out):
    i = cuda.grid(1)
    rows, cols = probs.shape
    if i < rows * cols:
        r = i // cols
        c = i - r * cols
        target = (1.0 if c == labels[r] else 0.0) if sparse else t[r, c]
        out[r, c] = (probs[r, c] - target) * scale


def _minus_targets(probs, t, labels, sparse, scale):
    out = output_for("minus_targets", probs, probs.shape, probs.dtype)
    if probs.size:
        _probs_minus_targets[blocks(probs.size)](probs, t, labels, sparse, scale, out)
    return out


def softmax_cross_entropy_grad(probs, t, scale):
    return _minus_targets(probs, t, _no_labels(), False, scale)


def sparse_softmax_cross_entropy_grad(probs, labels, scale):
    return _minus_targets(probs, probs, labels, True, scale)


@kernel
def _sigmoid_bce(z, t, loss, probs):
    r = cuda.grid(1)
    rows, cols = z.shape
    if r < rows:
        acc = 0.0
        for c in range(cols):
            v = z[r, c]
            # max(z, 0) - z*t + log(1 + exp(-|z|)): no overflow
            acc += max(v, 0.0) - v * t[r, c] + math.log1p(math.exp(-abs(v)))
            probs[r, c] = 1.0 / (1.0 + math.exp(-v))
        loss[r] = acc / cols


def sigmoid_binary_cross_entropy(z, t):
    rows = z.shape[0]
    loss, probs = output_for("bce_loss", z, (rows,), z.dtype), output_for("bce_probs", z, z.shape, z.dtype)
    _sigmoid_bce[blocks(rows)](z, t, loss, probs)
    return loss, probs


def sigmoid_binary_cross_entropy_grad(probs, t, scale):
    return _minus_targets(probs, t, _no_labels(), False, scale / probs.shape[1])


@kernel
def _categorical_xent(p, t, eps, loss):
    r = cuda.grid(1)
    rows, cols = p.shape
    if r < rows:
        s = 0.0
        for c in range(cols):
            s += p[r, c]
        acc = 0.0
        for c in range(cols):
            q = min(max(p[r, c] / s, eps), 1 - eps)
            acc -= t[r, c] * math.log(q)
        loss[r] = acc


def categorical_cross_entropy(p, t, eps):
    loss = output_for("cce_loss", p, (p.shape[0],), p.dtype)
    _categorical_xent[blocks(p.shape[0])](p, t, eps, loss)
    return loss


@kernel
def _categorical_xent_grad(p, t, eps, scale, out):
    r = cuda.grid(1)
    rows, cols = p.shape
    if r < rows:
        s = 0.0
        for c in range(cols):
            s += p[r, c]
        dot = 0.0  # sum of dq * q
        for c in range(cols):
            q = p[r, c] / s
            if eps < q < 1 - eps:
                dot += -t[r, c] / q * q
        for c in range(cols):
            q = p[r, c] / s
            dq = -t[r, c] / q if eps < q < 1 - eps else 0.0
            out[r, c] = (dq - dot) / s * scale


def categorical_cross_entropy_grad(p, t, eps, scale):
    out = output_for("cce_grad", p, p.shape, p.dtype)
    _categorical_xent_grad[blocks(p.shape[0])](p, t, eps, scale, out)
    return out


@kernel
def _bce(p, t, eps, loss):
    r = cuda.grid(1)
    rows, cols = p.shape
    if r < rows:
        acc = 0.0
        for c in range(cols):
            q = min(max(p[r, c], eps), 1 - eps)
            acc -= t[r, c] * math.log(q) + (1 - t[r, c]) * math.log(1 - q)
        loss[r] = acc / cols


def binary_cross_entropy(p, t, eps):
    loss = output_for("bce_plain_loss", p, (p.shape[0],), p.dtype)
    _bce[blocks(p.shape[0])](p, t, eps, loss)
    return loss


@kernel
def _bce_grad(p, t, eps, scale, out):
    i = cuda.grid(1)
    rows, cols = p.shape
    if i < rows * cols:
        r = i // cols
        c = i - r * cols
        q = p[r, c]
        d = 0.0
        if eps < q < 1 - eps:
            d = -t[r, c] / q + (1 - t[r, c]) / (1 - q)
        out[r, c] = d * (scale / cols)


def binary_cross_entropy_grad(p, t, eps, scale):
    out = output_for("bce_grad", p, p.shape, p.dtype)
    if p.size:
        _bce_grad[blocks(p.size)](p, t, eps, scale, out)
    return out


@kernel
def _mse(p, t, loss):
    r = cuda.grid(1)
    rows, cols = p.shape
    if r < rows:
        acc = 0.0
        for c in range(cols):
            d = p[r, c] - t[r, c]
            acc += d * d
        loss[r] = acc / cols


def mean_squared_error(p, t):
    loss = output_for("mse_loss", p, (p.shape[0],), p.dtype)
    _mse[blocks(p.shape[0])](p, t, loss)
    return loss


@kernel
def _mse_grad(p, t, scale, out):
    i = cuda.grid(1)
    rows, cols = p.shape
    if i < rows * cols:
        r = i // cols
        c = i - r * cols
        out[r, c] = 2 * (p[r, c] - t[r, c]) * (scale / cols)


def mean_squared_error_grad(p, t, scale):
    out = output_for("mse_grad", p, p.shape, p.dtype)
    if p.size:
        _mse_grad[blocks(p.size)](p, t, scale, out)
    return out


@kernel
def _row_argmax(p, out):
    r = cuda.grid(1)
    rows, cols = p.shape
    if r < rows:
        best = 0
        for c in range(1, cols):
            if p[r, c] > p[r, best]:
                best = c
        out[r] = best


def row_argmax(p):
    out = output_for("row_argmax", p, (p.shape[0],), np.int64)
    _row_argmax[blocks(p.shape[0])](p, out)
    return out


# The elementwise losses (kerascli.ops.contract.ELEMENT_LOSSES), from their one definition
_element_value = cuda.jit(device=True)(scalar.element_loss_value)
_element_gradient = cuda.jit(device=True)(scalar.element_loss_gradient)


@kernel
def _element_loss(p, t, code, param, loss):
    r = cuda.grid(1)
    rows, cols = p.shape
    if r < rows:
        acc = 0.0
        for c in range(cols):
            acc += _element_value(p[r, c], t[r, c], code, param)
        loss[r] = acc / cols


def element_loss(p, t, code, param):
    loss = output_for("element_loss", p, (p.shape[0],), p.dtype)
    _element_loss[blocks(p.shape[0])](p, t, code, param, loss)
    return loss


@kernel
def _element_loss_grad(p, t, code, param, scale, out):
    i = cuda.grid(1)
    rows, cols = p.shape
    if i < rows * cols:
        r = i // cols
        c = i - r * cols
        out[r, c] = _element_gradient(p[r, c], t[r, c], code, param) * (scale / cols)


def element_loss_grad(p, t, code, param, scale):
    out = output_for("element_loss_grad", p, p.shape, p.dtype)
    if p.size:
        _element_loss_grad[blocks(p.size)](p, t, code, param, scale, out)
    return out
