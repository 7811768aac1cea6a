"""Numba twins of kerascli.ops.reference.activations: same names, signatures and results."""

from __future__ import annotations

import math

import numpy as np
from numba import njit

from kerascli.ops.cpu.jit import opts


@njit(**opts)
def _softmax_rows(z, out):
    rows, cols = z.shape
    for r in range(rows):
        m = z[r, 0]
        for c in range(1, cols):
            if z[r, c] > m:
                m = z[r, c]
        s = 0.0
        for c in range(cols):
            e = math.exp(z[r, c] - m)
            out[r, c] = e
            s += e
        inv = 1.0 / s
        for c in range(cols):
            out[r, c] *= inv


# One loop per activation, chosen before the loop starts: a branch on ``act``
# inside the inner loop kept it from vectorising (2x slower).
@njit(**opts)
def bias_activation_forward(z, bias, act, out):
    rows, cols = z.shape
    b = bias if bias.size > 0 else np.zeros(cols, dtype=z.dtype)
    if act == 1:
        for r in range(rows):
            for c in range(cols):
                v = z[r, c] + b[c]
                out[r, c] = v if not v < 0 else 0.0  # NaN passes through, as in numpy
    elif act == 2:
        for r in range(rows):
            for c in range(cols):
                out[r, c] = 1.0 / (1.0 + math.exp(-(z[r, c] + b[c])))
    elif act == 3:
        for r in range(rows):
            for c in range(cols):
                out[r, c] = math.tanh(z[r, c] + b[c])
    else:
        for r in range(rows):
            for c in range(cols):
                out[r, c] = z[r, c] + b[c]
        if act == 4:
            _softmax_rows(out, out)
    return out


@njit(**opts)
def bias_activation_inplace(z, bias, act):
    """``bias_activation_forward(z, bias, act, z)``, 4x faster: with one array there is no input and
    output for the vectoriser to check against each other (the check fails when they coincide)."""
    rows, cols = z.shape
    b = bias if bias.size > 0 else np.zeros(cols, dtype=z.dtype)
    for r in range(rows):
        row = z[r]
        if act == 1:
            for c in range(cols):
                v = row[c] + b[c]
                row[c] = v if not v < 0 else 0.0
        elif act == 2:
            for c in range(cols):
                row[c] = 1.0 / (1.0 + math.exp(-(row[c] + b[c])))
        elif act == 3:
            for c in range(cols):
                row[c] = math.tanh(row[c] + b[c])
        else:
            for c in range(cols):
                row[c] += b[c]
    if act == 4:
        _softmax_rows(z, z)
    return z


@njit(**opts)
def bias_activation_backward(dy, y, act, dz):
    rows, cols = dy.shape
    if act == 1:
        for r in range(rows):
            for c in range(cols):
                dz[r, c] = dy[r, c] if y[r, c] > 0 else 0.0
    elif act == 2:
        for r in range(rows):
            for c in range(cols):
                dz[r, c] = dy[r, c] * y[r, c] * (1.0 - y[r, c])
    elif act == 3:
        for r in range(rows):
            for c in range(cols):
                dz[r, c] = dy[r, c] * (1.0 - y[r, c] * y[r, c])
    elif act == 4:
        for r in range(rows):
            s = 0.0
            for c in range(cols):
                s += dy[r, c] * y[r, c]
            for c in range(cols):
                dz[r, c] = y[r, c] * (dy[r, c] - s)
    else:
        dz[:, :] = dy
    db = np.zeros(cols, dtype=dy.dtype)
    for r in range(rows):
        for c in range(cols):
            db[c] += dz[r, c]
    return dz, db
