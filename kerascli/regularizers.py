"""Weight and activity regularizers with Keras 3's names, arguments, defaults and definitions.

A regularizer adds ``penalty(w)`` to the loss; ``gradient(w)`` is that
penalty's gradient, added to the weight's. They run on host arrays with numpy
(a penalty is one reduction per weight per step).
"""

from __future__ import annotations

import numpy as np

from kerascli.config.params import Configured, Param, make_configured

EPS = 1e-7  # Keras' backend epsilon (the smallest norm orthogonal divides by)


class Regularizer(Configured):
    def penalty(self, w: np.ndarray) -> float:
        raise NotImplementedError

    def gradient(self, w: np.ndarray) -> np.ndarray:
        raise NotImplementedError


class L1L2(Regularizer):
    """l1 * sum(|w|) + l2 * sum(w**2)."""

    PARAMS = {"l1": Param("float", 0.0, min=0.0), "l2": Param("float", 0.0, min=0.0)}

    def penalty(self, w):
        l1, l2 = self.config.get("l1", 0.0), self.config.get("l2", 0.0)
        out = 0.0
        if l1:
            out += l1 * float(np.abs(w).sum(dtype=np.float64))
        if l2:
            out += l2 * float(np.square(w, dtype=np.float64).sum())
        return out

    def gradient(self, w):
        l1, l2 = self.config.get("l1", 0.0), self.config.get("l2", 0.0)
        return (l1 * np.sign(w) + 2 * l2 * w).astype(w.dtype, copy=False)


class L1(L1L2):
    PARAMS = {"l1": Param("float", 0.01, min=0.0)}


class L2(L1L2):
    PARAMS = {"l2": Param("float", 0.01, min=0.0)}


class OrthogonalRegularizer(Regularizer):
    """factor * mean |cosine similarity| over pairs of rows (``mode: rows``) or columns of a 2-D weight,
    as Keras' (0.5 * the off-diagonal sum of |normalised w w^T| over the number of pairs)."""

    PARAMS = {"factor": Param("float", 0.01, min=0.0), "mode": Param("str", "rows", choices=("rows", "columns"))}

    def check_shape(self, shape):
        return None if len(shape) == 2 else f"orthogonal regularization needs a 2-D weight, got shape {shape}"

    def _parts(self, w):
        v = np.asarray(w, np.float64)
        v = v if self.config["mode"] == "rows" else v.T
        norms = np.sqrt((v * v).sum(axis=1, keepdims=True))
        safe = np.maximum(norms, EPS)
        n = v / safe
        product = n @ n.T
        np.fill_diagonal(product, 0.0)
        size = len(v)
        pairs = size * (size - 1) / 2
        return v, norms, safe, n, product, pairs

    def penalty(self, w):
        _, _, _, _, product, pairs = self._parts(w)
        return float(self.config["factor"] * 0.5 * np.abs(product).sum() / pairs) if pairs else 0.0

    def gradient(self, w):
        v, norms, safe, n, product, pairs = self._parts(w)
        if not pairs:
            return np.zeros_like(w)
        d_product = self.config["factor"] * 0.5 / pairs * np.sign(product)  # symmetric, zero diagonal
        d_n = 2 * d_product @ n
        # through n = v / max(|v|, eps): the radial part drops out where the norm is above eps
        radial = np.where(norms > EPS, (n * d_n).sum(axis=1, keepdims=True), 0.0)
        d_v = (d_n - n * radial) / safe
        return (d_v if self.config["mode"] == "rows" else d_v.T).astype(w.dtype)


def make(value) -> Regularizer | None:
    """A regularizer from a resolved config value (a name, ``{type: name, ...}``, or None)."""
    from kerascli.registry import REGULARIZERS

    return make_configured(REGULARIZERS, value)
