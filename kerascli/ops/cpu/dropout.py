"""Numba twins of kerascli.ops.reference.dropout: same names, signatures and results."""

from __future__ import annotations

import numpy as np
from numba import njit

from kerascli.ops.cpu.jit import opts


@njit(**opts)
def dropout(x, u, rate):
    flat_x = x.ravel()
    flat_u = u.ravel()
    out = np.empty(flat_x.size, dtype=x.dtype)
    k = 1.0 / (1.0 - rate)
    for i in range(flat_x.size):
        out[i] = flat_x[i] * k if flat_u[i] >= rate else 0.0
    return out.reshape(x.shape)
