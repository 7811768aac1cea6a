"""Numba twins of kerascli.ops.reference.optim: same names, signatures and results."""

from __future__ import annotations

import numpy as np
from numba import njit

from kerascli.ops.cpu.jit import opts

# Optimizer slots decay geometrically where a gradient stays zero (dead units,
# always-zero inputs); float32 values below ~1e-38 become denormal, and
# denormal arithmetic is ~100x slower on x86. Values below TINY are flushed to
# zero (as CPU frameworks do by enabling flush-to-zero).
TINY = np.float32(1e-30)


@njit(**opts)
def sgd_update(param, grad, velocity, lr, momentum, nesterov):
    if momentum == 0:
        for i in range(param.size):
            param[i] -= lr * grad[i]
        return
    for i in range(param.size):
        v = momentum * velocity[i] - lr * grad[i]
        v *= np.float32(abs(v) >= TINY)  # a multiply, not a branch: it vectorises
        velocity[i] = v
        if nesterov:
            param[i] += momentum * v - lr * grad[i]
        else:
            param[i] += v


@njit(**opts)
def adam_update(param, grad, m, v, alpha, one_minus_beta_1, one_minus_beta_2, epsilon):
    # scalars arrive in the parameters' dtype, so float32 stays float32 and vectorises
    for i in range(param.size):
        g = grad[i]
        mi = m[i] + (g - m[i]) * one_minus_beta_1
        vi = v[i] + (g * g - v[i]) * one_minus_beta_2
        mi *= np.float32(abs(mi) >= TINY)  # a multiply, not a branch: it vectorises
        vi *= np.float32(vi >= TINY)
        m[i] = mi
        v[i] = vi
        param[i] -= alpha * mi / (np.sqrt(vi) + epsilon)
