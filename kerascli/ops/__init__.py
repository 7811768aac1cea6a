"""The backend boundary: every computation goes through an Ops object (kerascli.ops.backend).

``get_ops(name)`` gives the one Ops of a backend (it owns the thread pool);
importing this package imports neither numpy-heavy kernels nor Numba.
"""

from __future__ import annotations

import math

BACKENDS = ("cpu", "reference", "cuda")
CHOICES = ("cpu", "cuda", "auto", "reference")  # what train.backend and --backend accept
_OPS: dict = {}


class BackendUnavailable(RuntimeError):
    """The backend asked for cannot run here; the message says why."""


def get_ops(name: str = "cpu"):
    """The one Ops of a backend; ``auto`` is cuda when a GPU is usable, else cpu."""
    if name == "auto":
        name = "cuda" if _gpu_likely() and cuda_unusable() is None else "cpu"
    if name not in BACKENDS:
        raise ValueError(f"unknown backend {name!r} (valid: {', '.join(CHOICES)})")
    if name not in _OPS:
        if name == "cuda":
            reason = cuda_unusable()
            if reason:
                raise BackendUnavailable(f"backend cuda cannot run here: {reason}")
        from kerascli.ops.backend import NumbaCPUOps, NumbaCUDAOps, ReferenceOps

        _OPS[name] = {"cpu": NumbaCPUOps, "reference": ReferenceOps, "cuda": NumbaCUDAOps}[name]()
    return _OPS[name]


def _gpu_likely() -> bool:
    """Cheap signs that a GPU could be used, so that ``auto`` on a machine without one imports nothing of
    CUDA: numba-cuda installed, and an NVIDIA device node or the CUDA simulator."""
    import importlib.util
    import os

    if importlib.util.find_spec("numba_cuda") is None and importlib.util.find_spec("numba.cuda") is None:
        return False
    return os.environ.get("NUMBA_ENABLE_CUDASIM") == "1" or os.path.exists("/dev/nvidiactl") or \
        os.path.exists("/dev/nvidia0") or os.environ.get("KERASCLI_ASSUME_GPU") == "1"


# numba-cuda's oldest supported GPU generation (Maxwell); older ones fail to compile kernels
MIN_COMPUTE_CAPABILITY = (5, 0)


def cuda_unusable() -> str | None:
    """Why the cuda backend cannot run on this machine (one line), or None when it can. Imports numba.cuda."""
    import importlib.util
    import os

    if importlib.util.find_spec("numba_cuda") is None:
        return "numba-cuda is not installed (pip install 'kerascli[cuda]')"
    try:
        from numba import cuda
    except Exception as exc:  # a broken installation
        return f"numba.cuda cannot be imported ({type(exc).__name__}: {exc})"
    if os.environ.get("NUMBA_ENABLE_CUDASIM") == "1":
        return None  # the simulator runs the kernels on the CPU
    try:  # what compiling a kernel loads first: it fails where numba-cuda and numpy do not match
        import numba.cuda.cudaimpl  # noqa: F401
    except Exception as exc:
        import importlib.metadata as meta

        import numpy

        return (f"numba-cuda {meta.version('numba-cuda')} cannot compile kernels with numpy {numpy.__version__} "
                f"({type(exc).__name__}: {exc}); install a numpy it supports (pip install 'kerascli[cuda]')")
    try:
        from numba.cuda.cudadrv.driver import driver

        count = driver.get_device_count()
    except Exception as exc:  # no libcuda, or it failed to start
        detail = " ".join(line.strip() for line in str(exc).splitlines() if line.strip() not in ("", ":"))
        detail = detail.removeprefix("Error at driver init:").strip().split(". ")[0].rstrip(".")
        return f"no usable NVIDIA driver ({detail or type(exc).__name__})"
    if count == 0:
        return "no NVIDIA GPU is visible (check CUDA_VISIBLE_DEVICES)"
    try:
        device = cuda.get_current_device()
    except Exception as exc:
        return f"the GPU cannot be opened ({str(exc).strip().splitlines()[0] if str(exc).strip() else exc})"
    capability = tuple(device.compute_capability)
    if capability < MIN_COMPUTE_CAPABILITY:
        return (f"the GPU has compute capability {capability[0]}.{capability[1]}, below the "
                f"{MIN_COMPUTE_CAPABILITY[0]}.{MIN_COMPUTE_CAPABILITY[1]} numba-cuda needs")
    return None


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
