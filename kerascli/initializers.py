"""Weight initializers with Keras' definitions and defaults.

Each takes (rng, shape, dtype) and returns a new array. Fans follow Keras: a
Dense kernel (in, out) has fan_in=in, fan_out=out; a Conv2D kernel
(kh, kw, in, out) multiplies both by the receptive field kh*kw.
"""

from __future__ import annotations

import math

import numpy as np


def fans(shape: tuple) -> tuple[float, float]:
    if len(shape) < 1:
        return 1.0, 1.0
    if len(shape) == 1:
        return float(shape[0]), float(shape[0])
    receptive = float(math.prod(shape[:-2])) if len(shape) > 2 else 1.0
    return shape[-2] * receptive, shape[-1] * receptive


def _truncated_normal(rng, shape, stddev):
    """Normal draws re-drawn until within two standard deviations (Keras' TruncatedNormal)."""
    out = rng.normal(0.0, stddev, size=shape)
    bad = np.abs(out) > 2 * stddev
    while bad.any():
        out[bad] = rng.normal(0.0, stddev, size=int(bad.sum()))
        bad = np.abs(out) > 2 * stddev
    return out


# 0.87962566103423978 is the stddev of a unit normal truncated to [-2, 2]
_TRUNC = 0.87962566103423978


def glorot_uniform(rng, shape, dtype):
    fan_in, fan_out = fans(shape)
    limit = np.sqrt(6.0 / (fan_in + fan_out))
    return rng.uniform(-limit, limit, size=shape).astype(dtype)


def glorot_normal(rng, shape, dtype):
    fan_in, fan_out = fans(shape)
    return _truncated_normal(rng, shape, np.sqrt(2.0 / (fan_in + fan_out)) / _TRUNC).astype(dtype)


def he_uniform(rng, shape, dtype):
    fan_in, _ = fans(shape)
    limit = np.sqrt(6.0 / fan_in)
    return rng.uniform(-limit, limit, size=shape).astype(dtype)


def he_normal(rng, shape, dtype):
    fan_in, _ = fans(shape)
    return _truncated_normal(rng, shape, np.sqrt(2.0 / fan_in) / _TRUNC).astype(dtype)


def random_normal(rng, shape, dtype):
    return rng.normal(0.0, 0.05, size=shape).astype(dtype)


def random_uniform(rng, shape, dtype):
    return rng.uniform(-0.05, 0.05, size=shape).astype(dtype)


def zeros(rng, shape, dtype):
    return np.zeros(shape, dtype=dtype)


def ones(rng, shape, dtype):
    return np.ones(shape, dtype=dtype)
