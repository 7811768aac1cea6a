"""Losses (one value per row) and their gradients (scaled by the caller's ``scale``); row argmax."""

from __future__ import annotations

import numpy as np


def softmax_cross_entropy(z: np.ndarray, t: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Cross-entropy of softmax(z) against target rows ``t``: (loss per row, probabilities)."""
    shifted = z - z.max(axis=1, keepdims=True)
    log_sum = np.log(np.exp(shifted).sum(axis=1, keepdims=True))
    log_p = shifted - log_sum
    return -(t * log_p).sum(axis=1), np.exp(log_p)


def softmax_cross_entropy_grad(probs: np.ndarray, t: np.ndarray, scale: float) -> np.ndarray:
    return ((probs - t) * scale).astype(probs.dtype, copy=False)


def sparse_softmax_cross_entropy(z: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """As softmax_cross_entropy with integer class ids per row."""
    t = np.zeros_like(z)
    t[np.arange(len(labels)), labels] = 1
    return softmax_cross_entropy(z, t)


def sparse_softmax_cross_entropy_grad(probs: np.ndarray, labels: np.ndarray, scale: float) -> np.ndarray:
    d = probs.copy()
    d[np.arange(len(labels)), labels] -= 1
    return (d * scale).astype(probs.dtype, copy=False)


def sigmoid_binary_cross_entropy(z: np.ndarray, t: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Binary cross-entropy of sigmoid(z), mean over columns: (loss per row, probabilities)."""
    # max(z, 0) - z*t + log(1 + exp(-|z|)) is the overflow-free form
    elem = np.maximum(z, 0) - z * t + np.log1p(np.exp(-np.abs(z)))
    return elem.mean(axis=1), 1 / (1 + np.exp(-z))


def sigmoid_binary_cross_entropy_grad(probs: np.ndarray, t: np.ndarray, scale: float) -> np.ndarray:
    return ((probs - t) * (scale / probs.shape[1])).astype(probs.dtype, copy=False)


def categorical_cross_entropy(p: np.ndarray, t: np.ndarray, eps: float) -> np.ndarray:
    """Keras' categorical_crossentropy on probabilities: rows renormalised, clipped to [eps, 1-eps]."""
    q = p / p.sum(axis=1, keepdims=True)
    return -(t * np.log(np.clip(q, eps, 1 - eps))).sum(axis=1)


def categorical_cross_entropy_grad(p: np.ndarray, t: np.ndarray, eps: float, scale: float) -> np.ndarray:
    s = p.sum(axis=1, keepdims=True)
    q = p / s
    inside = (q > eps) & (q < 1 - eps)
    dq = np.where(inside, -t / np.clip(q, eps, 1 - eps), 0)
    dp = (dq - (dq * q).sum(axis=1, keepdims=True)) / s
    return (dp * scale).astype(p.dtype, copy=False)


def binary_cross_entropy(p: np.ndarray, t: np.ndarray, eps: float) -> np.ndarray:
    c = np.clip(p, eps, 1 - eps)
    return -(t * np.log(c) + (1 - t) * np.log(1 - c)).mean(axis=1)


def binary_cross_entropy_grad(p: np.ndarray, t: np.ndarray, eps: float, scale: float) -> np.ndarray:
    inside = (p > eps) & (p < 1 - eps)
    c = np.clip(p, eps, 1 - eps)
    d = np.where(inside, -t / c + (1 - t) / (1 - c), 0)
    return (d * (scale / p.shape[1])).astype(p.dtype, copy=False)


def mean_squared_error(p: np.ndarray, t: np.ndarray) -> np.ndarray:
    return ((p - t) ** 2).mean(axis=1)


def mean_squared_error_grad(p: np.ndarray, t: np.ndarray, scale: float) -> np.ndarray:
    return (2 * (p - t) * (scale / p.shape[1])).astype(p.dtype, copy=False)


def row_argmax(p: np.ndarray) -> np.ndarray:
    return p.argmax(axis=1).astype(np.int64)


def element_loss(p, t, code, param):
    """Mean over each row of the elementwise loss ``code`` (kerascli.ops.contract.ELEMENT_LOSSES)."""
    from kerascli.ops.contract import ELEMENT_LOSSES

    return ELEMENT_LOSSES[code].value(p, t, param).mean(axis=1).astype(p.dtype)


def element_loss_grad(p, t, code, param, scale):
    from kerascli.ops.contract import ELEMENT_LOSSES

    return (ELEMENT_LOSSES[code].gradient(p, t, param) * (scale / p.shape[1])).astype(p.dtype)
