"""Numba twins of kerascli.ops.reference.activations: same names, signatures and results."""

from __future__ import annotations

import math

import numpy as np
from numba import njit

from kerascli.ops import scalar
from kerascli.ops.contract import LOG_SOFTMAX, SOFTMAX
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


# The elementwise activations (kerascli.ops.scalar), inlined into each kernel's loop, where LLVM hoists the
# branch on ``act`` out of the loop and vectorises each case (as fast as one hand-written loop per
# activation, measured).
_activation_value = njit(inline="always", **opts)(scalar.activation_value)
_activation_gradient = njit(inline="always", **opts)(scalar.activation_gradient)


@njit(**opts)
def bias_activation_forward(z, bias, act, out):
    rows, cols = z.shape
    b = bias if bias.size > 0 else np.zeros(cols, dtype=z.dtype)
    for r in range(rows):
        for c in range(cols):
            out[r, c] = _activation_value(z[r, c] + b[c], act)
    _rowwise(out, act, out)
    return out


@njit(**opts)
def bias_activation_inplace(z, bias, act):
    """``bias_activation_forward(z, bias, act, z)``, 4x faster: with one array there is no input and
    output for the vectoriser to check against each other (the check fails when they coincide)."""
    rows, cols = z.shape
    b = bias if bias.size > 0 else np.zeros(cols, dtype=z.dtype)
    for r in range(rows):
        row = z[r]
        for c in range(cols):
            row[c] = _activation_value(row[c] + b[c], act)
    _rowwise(z, act, z)
    return z


@njit(**opts)
def bias_activation_backward(dy, y, act, dz):
    rows, cols = dy.shape
    if act == SOFTMAX:
        for r in range(rows):
            s = 0.0
            for c in range(cols):
                s += dy[r, c] * y[r, c]
            for c in range(cols):
                dz[r, c] = y[r, c] * (dy[r, c] - s)
    elif act == LOG_SOFTMAX:
        for r in range(rows):
            s = 0.0
            for c in range(cols):
                s += dy[r, c]
            for c in range(cols):
                dz[r, c] = dy[r, c] - math.exp(y[r, c]) * s
    else:
        for r in range(rows):
            for c in range(cols):
                dz[r, c] = _activation_gradient(dy[r, c], y[r, c], act)
    db = np.zeros(cols, dtype=dy.dtype)
    for r in range(rows):
        for c in range(cols):
            db[c] += dz[r, c]
    return dz, db
