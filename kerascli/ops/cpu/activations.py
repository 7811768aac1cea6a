"""Numba twins of kerascli.ops.reference.activations: same names, signatures and results."""

from __future__ import annotations

import math

import numpy as np
from numba import njit

from kerascli.ops import scalar
from kerascli.ops.contract import LINEAR, LOG_SOFTMAX, RELU, SIGMOID, SOFTMAX, TANH
from kerascli.ops.cpu.jit import opts


@njit(inline="always", **opts)
def _row_max(z, r):
    m = z[r, 0]
    for c in range(1, z.shape[1]):
        if z[r, c] > m:
            m = z[r, c]
    return m


@njit(inline="always", **opts)
def _softmax_row(z, r, out):
    """softmax of row r of ``z`` into row r of ``out`` (which may be ``z``); returns (row max, log of the
    sum of exp(z - max)), what a cross-entropy needs besides."""
    cols = z.shape[1]
    m = _row_max(z, r)
    s = 0.0
    for c in range(cols):
        e = math.exp(z[r, c] - m)
        out[r, c] = e
        s += e
    inv = 1.0 / s
    for c in range(cols):
        out[r, c] *= inv
    return m, math.log(s)


@njit(**opts)
def _softmax_rows(z, out):
    for r in range(z.shape[0]):
        _softmax_row(z, r, out)


@njit(**opts)
def _log_softmax_rows(z, out):
    rows, cols = z.shape
    for r in range(rows):
        m = _row_max(z, r)
        s = 0.0
        for c in range(cols):
            s += math.exp(z[r, c] - m)
        shift = m + math.log(s)
        for c in range(cols):
            out[r, c] = z[r, c] - shift


@njit(inline="always", **opts)
def _rowwise(z, act, out):
    """The activations that normalise whole rows, over rows of ``z`` into ``out`` (which may be ``z``)."""
    if act == SOFTMAX:
        _softmax_rows(z, out)
    elif act == LOG_SOFTMAX:
        _log_softmax_rows(z, out)


# The elementwise activations (kerascli.ops.scalar): the common ones (linear, relu, sigmoid, tanh) inlined,
# the others through a call to the table's whole chain of cases. With every case inlined into each loop,
# typing and compiling the two kernels below took 4-5 s, most of a first batch (a run-time ``act`` keeps
# the chain in the loop, not vectorised, either way).
_any_activation_value = njit(**opts)(scalar.activation_value)
_any_activation_gradient = njit(**opts)(scalar.activation_gradient)
_inlined = njit(inline="always", **opts)
_linear_value, _linear_gradient = _inlined(scalar.linear_value), _inlined(scalar.linear_gradient)
_relu_value, _relu_gradient = _inlined(scalar.relu_value), _inlined(scalar.relu_gradient)
_sigmoid_value, _sigmoid_gradient = _inlined(scalar.sigmoid_value), _inlined(scalar.sigmoid_gradient)
_tanh_value, _tanh_gradient = _inlined(scalar.tanh_value), _inlined(scalar.tanh_gradient)


@njit(inline="always", **opts)
def _activation_value(v, act):
    """One value's activation: the common ones inlined (a constant ``act`` leaves only its case), the rest
    through the table's chain."""
    if act == RELU:
        return _relu_value(v)
    if act == LINEAR:
        return _linear_value(v)
    if act == TANH:
        return _tanh_value(v)
    if act == SIGMOID:
        return _sigmoid_value(v)
    return _any_activation_value(v, act)


@njit(inline="always", **opts)
def _activation_gradient(dy, y, act):
    if act == RELU:
        return _relu_gradient(dy, y)
    if act == LINEAR:
        return _linear_gradient(dy, y)
    if act == TANH:
        return _tanh_gradient(dy, y)
    if act == SIGMOID:
        return _sigmoid_gradient(dy, y)
    return _any_activation_gradient(dy, y, act)


# Each kernel below runs its loop with ``act`` a compile-time constant for the common activations: the other
# cases then fold away and the loop vectorises. With ``act`` known only at run time the chain of cases stays
# in the loop: 13x (forward) to 25x (backward) slower for relu over a 6144 x 128 float32 batch.
@njit(inline="always", **opts)
def _bias_activation_loop(z, b, act, out):
    rows, cols = z.shape
    for r in range(rows):
        row, dst = z[r], out[r]
        for c in range(cols):
            dst[c] = _activation_value(row[c] + b[c], act)


@njit(inline="always", **opts)
def _bias_activation_rows(z, b, act, out):
    # (tanh's and sigmoid's forward loops call libm per value, which does not vectorise: no loop of their own)
    if act == RELU:
        _bias_activation_loop(z, b, RELU, out)
    elif act == LINEAR:
        _bias_activation_loop(z, b, LINEAR, out)
    else:
        _bias_activation_loop(z, b, act, out)
    _rowwise(out, act, out)


@njit(**opts)
def bias_activation_forward(z, bias, act, out):
    b = bias if bias.size > 0 else np.zeros(z.shape[1], dtype=z.dtype)
    _bias_activation_rows(z, b, act, out)
    return out


@njit(**opts)
def bias_activation_inplace(z, bias, act):
    """``bias_activation_forward(z, bias, act, z)``, 4x faster: with one array there is no input and
    output for the vectoriser to check against each other (the check fails when they coincide)."""
    b = bias if bias.size > 0 else np.zeros(z.shape[1], dtype=z.dtype)
    _bias_activation_rows(z, b, act, z)
    return z


@njit(inline="always", **opts)
def _gradient_loop(dy, y, act, dz, db):
    """dz = the activation's gradient, and db its column sums (one pass)."""
    rows, cols = dy.shape
    for r in range(rows):
        g_row, y_row, dst = dy[r], y[r], dz[r]
        for c in range(cols):
            g = _activation_gradient(g_row[c], y_row[c], act)
            dst[c] = g
            db[c] += g


@njit(**opts)
def bias_activation_backward(dy, y, act, dz):
    rows, cols = dy.shape
    db = np.zeros(cols, dtype=dy.dtype)
    if act == SOFTMAX or act == LOG_SOFTMAX:
        for r in range(rows):
            s = 0.0
            for c in range(cols):
                s += dy[r, c] if act == LOG_SOFTMAX else dy[r, c] * y[r, c]
            for c in range(cols):
                if act == LOG_SOFTMAX:
                    dz[r, c] = dy[r, c] - math.exp(y[r, c]) * s
                else:
                    dz[r, c] = y[r, c] * (dy[r, c] - s)
                db[c] += dz[r, c]
    elif act == RELU:
        _gradient_loop(dy, y, RELU, dz, db)
    elif act == LINEAR:
        _gradient_loop(dy, y, LINEAR, dz, db)
    elif act == TANH:
        _gradient_loop(dy, y, TANH, dz, db)
    elif act == SIGMOID:
        _gradient_loop(dy, y, SIGMOID, dz, db)
    else:
        _gradient_loop(dy, y, act, dz, db)
    return dz, db
