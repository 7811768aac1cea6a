"""Bias plus activation and its gradient, defined by the activation table (kerascli.ops.contract)."""

from __future__ import annotations

import numpy as np

from kerascli.ops.contract import activation


def _activate(z: np.ndarray, act: int) -> np.ndarray:
    return activation(act).forward(z)


def bias_activation_forward(z: np.ndarray, bias: np.ndarray, act: int, out: np.ndarray) -> np.ndarray:
    """act(z + bias) into ``out`` (which may be ``z`` itself) for 2-D ``z``; ``bias`` is per column or empty."""
    if bias.size:
        z = z + bias
    out[...] = _activate(z, act)
    return out


def bias_activation_inplace(z: np.ndarray, bias: np.ndarray, act: int) -> np.ndarray:
    """act(z + bias) written over ``z``."""
    return bias_activation_forward(z, bias, act, z)


def bias_activation_backward(dy: np.ndarray, y: np.ndarray, act: int, dz: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Gradient through act given its output ``y``, into ``dz``: returns (dz, column sums of dz)."""
    g = activation(act).backward(dy, y)
    dz[...] = g
    return dz, dz.sum(axis=0)
