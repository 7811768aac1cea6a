"""The kernel contract: ``reference`` (numpy) and ``cpu`` (Numba) expose the same functions.

Layers receive a backend module from :func:`get_backend` and call kernels by
name; nothing else chooses between implementations. ``cpu`` is imported only
when asked for, so importing this package does not import Numba.
"""

from __future__ import annotations

import importlib
import math
import os
from types import ModuleType

BACKENDS = ("cpu", "reference")


def get_backend(name: str = "cpu") -> ModuleType:
    if name not in BACKENDS:
        raise ValueError(f"unknown backend {name!r} (valid: {', '.join(BACKENDS)})")
    return importlib.import_module(f"kerascli.ops.{name}")


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


def kernels_on_disk(backend: ModuleType) -> bool:
    """Whether ``backend`` has compiled kernels in Numba's on-disk cache, i.e. this is not its first run
    on this installation (a backend without compiled kernels never compiles: True).

    Reads where each cached kernel keeps its index from Numba's dispatcher, an internal detail: if a
    Numba release moves it, this answers False (the display then mentions compiling) and nothing breaks.
    """
    kernels = [f for f in vars(backend).values() if hasattr(f, "py_func") and hasattr(f, "_cache")]
    try:
        return not kernels or any(os.path.exists(f._cache._cache_file._index_path) for f in kernels)
    except AttributeError:
        return False
