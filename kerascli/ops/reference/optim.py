"""Optimizer updates over flat parameter buffers, in place."""

from __future__ import annotations

import numpy as np

# Slot values below TINY are flushed to zero: decaying float32 slots would
# otherwise turn denormal, which is ~100x slower on x86.
TINY = 1e-30


def _flush(a):
    a[np.abs(a) < TINY] = 0


def sgd_update(param, grad, velocity, lr, momentum, nesterov):
    """Keras SGD: v = momentum*v - lr*g; p += v (nesterov: p += momentum*v - lr*g).

    Scalars come in the parameters' dtype (see optimizers.SGD).
    """
    if momentum == 0:
        param -= lr * grad
        return
    velocity *= momentum
    velocity -= lr * grad
    _flush(velocity)
    if nesterov:
        param += momentum * velocity - lr * grad
    else:
        param += velocity


def adam_update(param, grad, m, v, alpha, one_minus_beta_1, one_minus_beta_2, epsilon):
    """Adam with the step size ``alpha`` already bias-corrected by the caller (see optimizers.Adam)."""
    m += (grad - m) * one_minus_beta_1
    v += (grad * grad - v) * one_minus_beta_2
    _flush(m)
    _flush(v)
    param -= alpha * m / (np.sqrt(v) + epsilon)
