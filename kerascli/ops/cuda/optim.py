"""CUDA twins of kerascli.ops.reference.optim: one thread per parameter of the flat buffers."""

from __future__ import annotations

import math

from numba import cuda

from kerascli.ops.cuda.launch import CACHE, blocks

TINY = 1e-30  # slots below this are flushed to zero, as in the other backends


@cuda.jit(**CACHE)
def _sgd(param, grad, velocity, lr, momentum, nesterov):
    i = cuda.grid(1)
    if i < param.size:
        if momentum == 0:
            param[i] -= lr * grad[i]
            return
        v = momentum * velocity[i] - lr * grad[i]
        if abs(v) < TINY:
            v = v - v  # zero in the parameters' type
        velocity[i] = v
        if nesterov:
            param[i] += momentum * v - lr * grad[i]
        else:
            param[i] += v


def sgd_update(param, grad, velocity, lr, momentum, nesterov):
    if param.size:
        _sgd[blocks(param.size)](param, grad, velocity, lr, momentum, nesterov)


@cuda.jit(**CACHE)
def _adam(param, grad, m, v, alpha, one_minus_beta_1, one_minus_beta_2, epsilon):
    i = cuda.grid(1)
    if i < param.size:
        g = grad[i]
        mi = m[i] + (g - m[i]) * one_minus_beta_1
        vi = v[i] + (g * g - v[i]) * one_minus_beta_2
        if abs(mi) < TINY:
            mi = mi - mi  # zero in the parameters' type
        if vi < TINY:
            vi = vi - vi
        m[i] = mi
        v[i] = vi
        param[i] -= alpha * mi / (math.sqrt(vi) + epsilon)


def adam_update(param, grad, m, v, alpha, one_minus_beta_1, one_minus_beta_2, epsilon):
    if param.size:
        _adam[blocks(param.size)](param, grad, m, v, alpha, one_minus_beta_1, one_minus_beta_2, epsilon)
