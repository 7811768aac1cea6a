"""Scaled dot-product attention over heads, written with numpy (batched matrix products) around the softmax
kernels; a device backend overrides it.

Shapes: q (B, Tq, H, dk), k (B, Tv, H, dk), v (B, Tv, H, dv); scores and weights (B, H, Tq, Tv).
"""

from __future__ import annotations

import math

import numpy as np

from kerascli.ops.contract import SOFTMAX

MASKED = -1e9  # added to the scores of masked positions before the softmax (as Keras' softmax with a mask)


def attention_forward(ops, q, k, v, causal: bool, keep):
    """(output (B, Tq, H, dv), the attention weights after dropout, before it). ``keep`` is the dropout's
    scaled keep mask (B, H, Tq, Tv), or None."""
    scale = 1.0 / math.sqrt(q.shape[-1])
    scores = np.matmul(q.transpose(0, 2, 1, 3), k.transpose(0, 2, 3, 1)) * scale
    if causal:
        tq, tv = scores.shape[-2:]
        scores = scores + np.triu(np.full((tq, tv), MASKED, scores.dtype), 1)
    rows = np.ascontiguousarray(scores, dtype=q.dtype).reshape(-1, scores.shape[-1])
    weights = ops.bias_activation_forward(rows, ops.no_bias(q.dtype), SOFTMAX, np.empty_like(rows))
    weights = weights.reshape(scores.shape)
    used = weights if keep is None else weights * keep
    out = np.matmul(used, v.transpose(0, 2, 1, 3)).transpose(0, 2, 1, 3)
    return np.ascontiguousarray(out, dtype=q.dtype), used, weights


def attention_backward(ops, dout, q, k, v, used, weights, keep):
    """(dq, dk, dv) for attention_forward, from the gradient of its output."""
    d = dout.transpose(0, 2, 1, 3)  # (B, H, Tq, dv)
    dv = np.matmul(used.transpose(0, 1, 3, 2), d).transpose(0, 2, 1, 3)
    dused = np.matmul(d, v.transpose(0, 2, 3, 1))
    dweights = dused if keep is None else dused * keep
    rows = np.ascontiguousarray(dweights, dtype=q.dtype).reshape(-1, weights.shape[-1])
    dscores = ops.bias_activation_backward(rows, np.ascontiguousarray(weights).reshape(rows.shape), SOFTMAX,
                                           np.empty_like(rows))[0].reshape(weights.shape)
    dscores = dscores / math.sqrt(q.shape[-1])
    dq = np.matmul(dscores, k.transpose(0, 2, 1, 3)).transpose(0, 2, 1, 3)
    dk = np.matmul(dscores.transpose(0, 1, 3, 2), q.transpose(0, 2, 1, 3)).transpose(0, 2, 1, 3)
    dt = q.dtype
    return (np.ascontiguousarray(dq, dtype=dt), np.ascontiguousarray(dk, dtype=dt),
            np.ascontiguousarray(dv, dtype=dt))
