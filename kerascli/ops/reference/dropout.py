"""Inverted dropout from uniform draws."""

from __future__ import annotations

import numpy as np


def dropout(x, u, rate):
    """Inverted dropout: keep where the uniform draw ``u >= rate`` and scale by 1/(1-rate)."""
    return np.where(u >= rate, x / (1 - rate), 0).astype(x.dtype)
