"""The backend boundary: every computation goes through an Ops object (kerascli.ops.backend).

``get_ops(name)`` gives the one Ops of a backend (it owns the thread pool);
importing this package imports neither numpy-heavy kernels nor Numba.
"""

from __future__ import annotations

import math

BACKENDS = ("cpu", "reference")
_OPS: dict = {}


def get_ops(name: str = "cpu"):
    if name not in BACKENDS:
        raise ValueError(f"unknown backend {name!r} (valid: {', '.join(BACKENDS)})")
    if name not in _OPS:
        from kerascli.ops.backend import NumbaCPUOps, ReferenceOps

        _OPS[name] = {"cpu": NumbaCPUOps, "reference": ReferenceOps}[name]()
    return _OPS[name]


def conv_geometry(size: int, kernel: int, stride: int, padding: str) -> tuple[int, int]:
    """(output size, padding before) along one axis, with Keras' rules.

    valid: out = floor((size - kernel) / stride) + 1, no padding.
    same:  out = ceil(size / stride); the total padding needed is split with
    the smaller half before (TensorFlow/Keras convention).
    """
    if padding == "valid":
        out = (size - kernel) // stride + 1
        return out, 0
    out = math.ceil(size / stride)
    total = max((out - 1) * stride + kernel - size, 0)
    return out, total // 2
