"""Scaled dot-product attention over heads, written with numpy (batched matrix products) around the softmax
kernels; a device backend overrides it.

Shapes: q (B, Tq, H, dk), k (B, Tv, H, dk), v (B, Tv, H, dv); scores and weights (B, H, Tq, Tv).
"""

from __future__ import annotations

import math

import numpy as np

from kerascli.ops.contract import SOFTMAX

MASKED = -1e9  # added to the scores of masked positions before the softmax (as Keras' softmax with a mask)


def _masked_softmax(ops, scores, causal: bool, dtype, allowed=None, fill=False):
    """softmax over the last axis of ``scores`` (any leading axes), through the softmax kernels; each query
    step is kept from later steps with ``causal``, and from the key steps where ``allowed`` (broadcast to
    ``scores``, or None) is False. A masked score is lowered by 1e9 (Keras' Attention), or with ``fill``
    replaced by -1e9 (Keras' MultiHeadAttention, whose softmax takes the mask)."""
    if causal:
        lower = np.tril(np.ones(scores.shape[-2:], bool))
        allowed = lower if allowed is None else allowed & lower
    if allowed is not None:
        scores = np.where(allowed, scores, MASKED if fill else scores + MASKED)
    rows = np.ascontiguousarray(scores, dtype=dtype).reshape(-1, scores.shape[-1])
    return ops.bias_activation_forward(rows, ops.no_bias(dtype), SOFTMAX, np.empty_like(rows)).reshape(scores.shape)


def _softmax_backward(ops, dweights, weights, keep):
    """The scores' gradient from the (dropped-out, when ``keep``) weights' gradient."""
    if keep is not None:
        dweights = dweights * keep
    rows = np.ascontiguousarray(dweights, dtype=weights.dtype).reshape(-1, weights.shape[-1])
    return ops.bias_activation_backward(rows, np.ascontiguousarray(weights).reshape(rows.shape), SOFTMAX,
                                        np.empty_like(rows))[0].reshape(weights.shape)


def attention_forward(ops, q, k, v, causal: bool, keep, allowed=None):
    """(output (B, Tq, H, dv), the attention weights after dropout, before it). ``keep`` is the dropout's
    scaled keep mask (B, H, Tq, Tv), or None; ``allowed`` (B, 1, Tq, Tv) False where masks keep a query
    from a key step, or None."""
    scale = 1.0 / math.sqrt(q.shape[-1])
    scores = np.matmul(q.transpose(0, 2, 1, 3), k.transpose(0, 2, 3, 1)) * scale
    weights = _masked_softmax(ops, scores, causal, q.dtype, allowed, fill=True)
    used = weights if keep is None else weights * keep
    out = np.matmul(used, v.transpose(0, 2, 1, 3)).transpose(0, 2, 1, 3)
    return np.ascontiguousarray(out, dtype=q.dtype), used, weights


def attention_backward(ops, dout, q, k, v, used, weights, keep, allowed=None):
    """(dq, dk, dv) for attention_forward, from the gradient of its output."""
    d = dout.transpose(0, 2, 1, 3)  # (B, H, Tq, dv)
    dv = np.matmul(used.transpose(0, 1, 3, 2), d).transpose(0, 2, 1, 3)
    dscores = _softmax_backward(ops, np.matmul(d, v.transpose(0, 2, 3, 1)), weights, keep) / math.sqrt(q.shape[-1])
    if allowed is not None:  # a masked score was replaced: nothing flows back to it
        dscores = np.where(allowed, dscores, 0)
    dq = np.matmul(dscores, k.transpose(0, 2, 1, 3)).transpose(0, 2, 1, 3)
    dk = np.matmul(dscores.transpose(0, 1, 3, 2), q.transpose(0, 2, 1, 3)).transpose(0, 2, 1, 3)
    dt = q.dtype
    return (np.ascontiguousarray(dq, dtype=dt), np.ascontiguousarray(dk, dtype=dt),
            np.ascontiguousarray(dv, dtype=dt))


def scored_attention_forward(ops, q, k, v, mode: str, scale, weight, causal: bool, keep, allowed=None):
    """Keras' Attention and AdditiveAttention: q (B, Tq, d), k and v (B, Tv, d), ``allowed`` (B, 1, Tv) False at
    padded value steps or None. Scores: ``dot``, q . k
    times ``scale`` (a scalar, or None); ``concat``, ``weight`` * sum(tanh(scale * (q + k))) (scalars, or
    None); ``additive``, sum(scale * tanh(q + k)) (``scale`` a (d,) vector, or None). Returns (output, a
    cache for the backward pass)."""
    if mode == "dot":
        raw = np.matmul(q, k.transpose(0, 2, 1))
        scores, tanh = raw * scale if scale is not None else raw, None
    elif mode == "concat":
        pair = q[:, :, None, :] + k[:, None, :, :]
        tanh = np.tanh(pair * scale if scale is not None else pair)
        raw = tanh.sum(axis=-1)
        scores = raw * weight if weight is not None else raw
    else:
        tanh = np.tanh(q[:, :, None, :] + k[:, None, :, :])
        raw = None
        scores = (tanh * scale).sum(axis=-1) if scale is not None else tanh.sum(axis=-1)
    weights = _masked_softmax(ops, scores, causal, q.dtype, allowed)
    used = weights if keep is None else weights * keep
    out = np.matmul(used, v).astype(q.dtype)
    return out, (raw, tanh, weights, used)


def scored_attention_backward(ops, dout, q, k, v, mode: str, scale, weight, keep, cache):
    """(dq, dk, dv, d scale or None, d weight or None) for scored_attention_forward."""
    raw, tanh, weights, used = cache
    dv = np.matmul(used.transpose(0, 2, 1), dout)
    dscores = _softmax_backward(ops, np.matmul(dout, v.transpose(0, 2, 1)), weights, keep)
    dscale = dweight = None
    if mode == "dot":
        if scale is not None:
            dscale = float((dscores * raw).sum())
            dscores = dscores * scale
        dq, dk = np.matmul(dscores, k), np.matmul(dscores.transpose(0, 2, 1), q)
    elif mode == "additive":
        if scale is not None:
            dscale = (dscores[..., None] * tanh).sum(axis=(0, 1, 2))
            dpre = dscores[..., None] * scale * (1 - tanh * tanh)
        else:
            dpre = dscores[..., None] * (1 - tanh * tanh)
        dq, dk = dpre.sum(axis=2), dpre.sum(axis=1)
    else:
        if weight is not None:
            dweight = float((dscores * raw).sum())
            dscores = dscores * weight
        dpre = dscores[..., None] * (1 - tanh * tanh)  # (B, Tq, Tv, d)
        if scale is not None:
            dscale = float((dpre * (q[:, :, None, :] + k[:, None, :, :])).sum())
            dpre = dpre * scale
        dq, dk = dpre.sum(axis=2), dpre.sum(axis=1)
    dt = q.dtype
    return dq.astype(dt), dk.astype(dt), dv.astype(dt), dscale, dweight
