"""Ops: the one object through which layers, losses, metrics and optimizers compute.

``ReferenceOps`` is the definition: numpy kernels (kerascli/ops/reference/),
serial work, and the algorithms of kerascli/ops/algorithms/ composed from
them. ``NumbaCPUOps`` subclasses it: the same algorithms over Numba kernels
(kerascli/ops/cpu/, mirrored name for name), run on a thread pool it owns.
A backend overrides what it can; anything it leaves out falls back to a
correct definition. Importing this module imports neither Numba nor a GPU
library: each backend loads its kernels when it is first made.
"""

from __future__ import annotations

import importlib
import inspect
import math
import os
from types import ModuleType

import numpy as np

from kerascli.ops.algorithms import (
    activations,
    arrays,
    attention,
    conv,
    dense,
    norm,
    optim,
    pooling,
    recurrent,
)
from kerascli.ops.contract import KERNEL_FAMILIES
from kerascli.ops.memory import aligned_empty

ALGORITHM_MODULES = (dense, conv, pooling, optim, arrays, activations, norm, attention, recurrent)


def public_functions(module: ModuleType) -> dict:
    """Functions defined in ``module`` (Numba dispatchers count by their Python function) not starting with _."""

    def defined_here(f):
        f = getattr(f, "py_func", f)
        return inspect.isfunction(f) and f.__module__ == module.__name__

    return {name: f for name, f in vars(module).items() if not name.startswith("_") and defined_here(f)}


def kernel_modules(package: str) -> dict[str, ModuleType]:
    """{family: module} of a backend's kernel package (kerascli.ops.reference, kerascli.ops.cpu...)."""
    return {family: importlib.import_module(f"{package}.{family}") for family in KERNEL_FAMILIES}


class ReferenceOps:
    name = "reference"
    kernel_package = "kerascli.ops.reference"
    # whether inference takes the Winograd convolution (algorithms/conv.py) where it applies: the numpy
    # transforms are there to define the kernels, not to be fast
    winograd_inference = False

    def __init__(self):
        self._threads = 1
        self._no_bias: dict = {}
        # kernels are plain functions (no self): the reference ones first, then each backend's over its twins,
        # so a kernel a backend lacks falls back to the definition
        packages = [c.kernel_package for c in reversed(type(self).__mro__) if "kernel_package" in vars(c)]
        for package in packages:
            self.kernels = kernel_modules(package)
            for module in self.kernels.values():
                for name, f in public_functions(module).items():
                    setattr(self, name, f)

    # ---------------------------------------------------------------- memory
    def empty(self, shape, dtype) -> np.ndarray:
        """An uninitialised array whose data starts on a 64-byte boundary."""
        shape = tuple(shape)
        return aligned_empty(math.prod(shape), dtype).reshape(shape)

    def zeros(self, shape, dtype) -> np.ndarray:
        out = self.empty(shape, dtype)
        out[...] = 0
        return out

    def no_bias(self, dtype) -> np.ndarray:
        """The empty bias kernels take for 'no bias' (one per dtype, never written)."""
        dtype = np.dtype(dtype)
        if dtype not in self._no_bias:
            self._no_bias[dtype] = np.zeros(0, dtype)
        return self._no_bias[dtype]

    def full(self, shape, value, dtype) -> np.ndarray:
        out = self.empty(shape, dtype)
        out[...] = value
        return out

    # ---------------------------------------------------------------- host and device
    # Arrays of this Ops live in host memory: these move nothing (a device backend copies).
    def to_host(self, a) -> np.ndarray:
        """A host copy of ``a`` (a copy even here: the caller may keep it while ``a`` is reused)."""
        return np.array(a)

    def to_device(self, a):
        """``a`` (a host array) where this Ops' kernels can read it."""
        return a

    def assign(self, dst, src) -> None:
        """dst[...] = src for arrays of this Ops (src may be a host array)."""
        dst[...] = src

    def total(self, values) -> float:
        """The sum of ``values`` as a number (a device backend may keep it on the device: see
        kerascli.train.loop.Totals)."""
        return float(values.sum())

    def batches(self, split, batch_size: int, order=None):
        """(x, y) batches of a dataset split, as arrays of this Ops (kerascli.data.pipeline.batches)."""
        from kerascli.data.pipeline import batches

        return batches(split, batch_size, order)

    memory_name = "this machine's"  # where memory_bytes() comes from, for messages

    def memory_bytes(self) -> int:
        """Memory this Ops' arrays are allocated from."""
        from kerascli.data.npyfile import memory_bytes

        return memory_bytes()

    def unsupported(self, model, objective) -> str | None:
        """Why this Ops cannot run ``model`` with ``objective`` (a layer, loss or metric it has no kernels
        for), or None."""
        return None

    def describe(self) -> dict:
        """What a run's summary records of the backend."""
        return {"name": self.name}

    # ---------------------------------------------------------------- products
    def gemm(self, a, b, out=None, trans_a=False, trans_b=False, accumulate=False):
        """op(a) @ op(b) into ``out`` (allocated when None), op transposing where asked; with ``accumulate``,
        added to what ``out`` holds."""
        a, b = a.T if trans_a else a, b.T if trans_b else b
        if accumulate:
            out += np.matmul(a, b)  # BLAS could add in place (beta = 1); numpy's matmul cannot
            return out
        return np.matmul(a, b, out=out)

    # ---------------------------------------------------------------- threads
    @property
    def threads(self) -> int:
        return self._threads

    def set_threads(self, threads: int, batch_parallel: bool = True) -> int:
        """Use ``threads`` threads (0: every available core); returns the count applied. The reference
        kernels are numpy: only BLAS runs in parallel."""
        from threadpoolctl import threadpool_limits

        n = threads or available_cores()
        threadpool_limits(limits=n, user_api="blas")
        self._threads = n
        return n

    def parallel(self, task, n: int, work: int) -> list:
        """Call ``task(part, lo, hi)`` over parts of range(n); results in part order. Serial here."""
        return [task(0, 0, n)]

    def kernels_on_disk(self) -> bool:
        """Whether compiled kernels are cached on disk (numpy kernels need no compiling)."""
        return True

    def synchronize(self) -> None:
        """Wait for queued work (a device backend's); host work is done when its call returns."""


for _module in ALGORITHM_MODULES:  # algorithms are methods: they take the Ops as ``self``
    for _name, _f in public_functions(_module).items():
        setattr(ReferenceOps, _name, _f)


class NumbaCPUOps(ReferenceOps):
    """Numba kernels, compiled on first use and cached on disk; one thread pool for all parallel work."""

    name = "cpu"
    kernel_package = "kerascli.ops.cpu"
    winograd_inference = True

    def __init__(self):
        super().__init__()
        from kerascli.ops.cpu import algorithms, blas, workers

        self._blas = blas
        try:  # KERASCLI_KERNEL_BLAS is checked now, not when a recurrent layer first needs it
            blas.check()
        except blas.KernelBLASUnavailable as exc:
            from kerascli.ops import BackendUnavailable

            raise BackendUnavailable(f"backend cpu cannot run here: {exc}") from None
        self._workers = workers
        for name, f in public_functions(algorithms).items():  # its own algorithms over the definitions
            setattr(self, name, f.__get__(self))

    def describe(self) -> dict:
        kernel_blas = self._blas.described()  # known once a recurrent layer's loop ran
        return {**super().describe(), **({"kernel_blas": kernel_blas} if kernel_blas else {})}

    def set_threads(self, threads: int, batch_parallel: bool = True) -> int:
        """Use ``threads`` threads (0: every available core); returns the count applied.

        Two regimes, never both at once (on a small machine an idle pool spinning
        next to a busy one halves the busy one's speed):

        * ``batch_parallel``: work is split across this Ops' own pool, with BLAS and
          Numba single-threaded inside it. Best for convolutional models, whose
          window kernels are most of the work.
        * otherwise: BLAS parallelises each matrix product itself and everything
          else runs on one thread. Best for models made of Dense layers, where
          the products are the work and handing parts to threads would cost more
          than it saves at small batches.
        """
        import numba
        from threadpoolctl import threadpool_limits

        n = threads or available_cores()
        numba.set_num_threads(1)
        threadpool_limits(limits=1 if batch_parallel else n, user_api="blas")
        self._workers.set_workers(n if batch_parallel else 1)
        self._threads = n
        # where numpy's BLAS runs on one thread, products go to the mkl wheel's MKL where it is installed
        # and the kernels use it (faster at every shape measured, 1.3-1.45x on one core of an AVX-512 Xeon)
        self._mkl_products = None
        blas = self._blas
        if (batch_parallel or n == 1) and blas.requested() in ("auto", "mkl") and blas.mkl_wheel_library():
            if blas.describe().endswith("(sequential)"):
                self._mkl_products = blas.handle()
        return n

    _mkl_products = None  # the kernels' BLAS handle when gemm calls MKL (set_threads)

    def gemm(self, a, b, out=None, trans_a=False, trans_b=False, accumulate=False):
        handle = self._mkl_products
        if handle is not None and type(a) is np.ndarray and type(b) is np.ndarray and a.ndim == b.ndim == 2 \
                and a.dtype == b.dtype and a.dtype in (np.float32, np.float64):
            m, k = (a.shape[1], a.shape[0]) if trans_a else a.shape
            k2, n = (b.shape[1], b.shape[0]) if trans_b else b.shape
            if out is None and k == k2:
                out = np.empty((m, n), a.dtype)
            if k == k2 and type(out) is np.ndarray and out.shape == (m, n) and out.dtype == a.dtype \
                    and out.flags.writeable and self._blas.readable(a) and self._blas.readable(b) \
                    and self._blas.readable(out) and not np.may_share_memory(out, a) \
                    and not np.may_share_memory(out, b):
                self._blas.gemm_ops(handle, a, b, out, trans_a, trans_b, 1.0 if accumulate else 0.0)
                return out
        return super().gemm(a, b, out, trans_a, trans_b, accumulate)

    def parallel(self, task, n: int, work: int) -> list:
        return self._workers.run(task, n, work)

    def kernels_on_disk(self) -> bool:
        """Whether this installation has compiled kernels in Numba's on-disk cache (not its first run).

        Reads where each cached kernel keeps its index from Numba's dispatcher, an internal detail: if a
        Numba release moves it, this answers False (the display then mentions compiling) and nothing breaks.
        """
        kernels = [f for module in self.kernels.values() for f in vars(module).values()
                   if hasattr(f, "py_func") and hasattr(f, "_cache")]
        try:
            return any(os.path.exists(f._cache._cache_file._index_path) for f in kernels)
        except AttributeError:
            return False


def available_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


class NumbaCUDAOps(ReferenceOps):
    """numba.cuda kernels (kerascli/ops/cuda/): arrays are device arrays, and parameters, gradients,
    optimizer slots, workspaces and (when it fits) the dataset stay on the GPU for the whole run. Every
    kernel and algorithm is its own (a host kernel given a device array would copy it to the host and back
    on every call), and a model with a layer it has no kernels for (a plugin's) is refused up front.
    Made only after kerascli.ops.cuda_unusable() said the GPU can be used."""

    name = "cuda"
    kernel_package = "kerascli.ops.cuda"
    memory_name = "the GPU's"
    # built-in layers whose every computation this Ops has kernels for
    LAYERS = frozenset({"Dense", "Activation", "Dropout", "Flatten", "Reshape", "Rescaling", "Conv2D",
                        "MaxPooling2D", "AveragePooling2D", "BatchNormalization", "Add", "Concatenate",
                        "LayerNormalization"})

    def __init__(self):
        super().__init__()
        import numba
        from numba import cuda

        numba.config.CUDA_LOW_OCCUPANCY_WARNINGS = 0  # small kernels (a bias, one row per sample) are meant
        from kerascli.ops.cuda import algorithms, gemm

        self._cuda = cuda
        for name, f in public_functions(algorithms).items():
            setattr(self, name, f.__get__(self))
        self.gemm_name, self._gemm = gemm.chosen()
        self.device_name = _device_name(cuda)

    def empty(self, shape, dtype):
        return self._cuda.device_array(tuple(int(s) for s in shape), dtype=np.dtype(dtype))

    def zeros(self, shape, dtype):
        return self.full(shape, 0, dtype)

    def full(self, shape, value, dtype):
        from kerascli.ops.cuda.launch import fill

        return fill(self.empty(shape, dtype), value)

    def no_bias(self, dtype):
        dtype = np.dtype(dtype)
        if dtype not in self._no_bias:
            self._no_bias[dtype] = self.empty((0,), dtype)
        return self._no_bias[dtype]

    def to_host(self, a) -> np.ndarray:
        return a.copy_to_host() if hasattr(a, "copy_to_host") else np.array(a)

    def to_device(self, a):
        return self._cuda.to_device(np.ascontiguousarray(a))

    def assign(self, dst, src) -> None:
        from kerascli.ops.cuda.launch import as2d, copy2d

        if hasattr(src, "copy_to_host"):  # device to device: a kernel, no wait
            copy2d(as2d(src), as2d(dst))
        else:  # device arrays take no [...] = (numba-cuda); dst is a contiguous buffer or a view of one
            # a copy, not ascontiguousarray: a broadcast's size-1 axis keeps a 0 stride there, which
            # numba-cuda's copy drops as a broadcast axis (a (4, 1) kernel then failed to load)
            dst.copy_to_device(np.array(np.broadcast_to(np.asarray(src, dst.dtype), dst.shape), order="C"))

    def gemm(self, a, b, out=None, trans_a=False, trans_b=False, accumulate=False):
        if out is None:
            out = self.empty((a.shape[1] if trans_a else a.shape[0], b.shape[0] if trans_b else b.shape[1]),
                             a.dtype)
        return self._gemm(a, b, out, trans_a, trans_b, accumulate)

    def batches(self, split, batch_size: int, order=None):
        from kerascli.data.pipeline import made_one_at_a_time
        from kerascli.ops.cuda.data import DeviceBatches, upload_batches

        if made_one_at_a_time(split):  # each batch goes up as it comes
            return upload_batches(split.batches(batch_size, order))
        on_device = split.__dict__.get("_device_batches")
        if on_device is None:
            on_device = split.__dict__["_device_batches"] = DeviceBatches(split)
        return on_device(batch_size, order)

    def memory_bytes(self) -> int:
        try:
            return int(self._cuda.current_context().get_memory_info()[1])
        except Exception:  # the simulator
            return super().memory_bytes()

    def unsupported(self, model, objective) -> str | None:
        for layer in model.layers:
            if layer.type_name not in self.LAYERS or type(layer).__module__.split(".")[0] != "kerascli":
                return (f"layer {layer.name!r} ({layer.type_name}) has no cuda kernels; train it with "
                        "backend: cpu")
            if layer.host_only:
                return (f"layer {layer.name!r} ({layer.type_name}) computes on the host with these arguments "
                        f"({layer.host_only_reason}); train it with backend: cpu")
            weighed = [f"{w.name}'s {what}" for w in layer.weight_specs for what in ("regularizer", "constraint")
                       if getattr(w, what) is not None]
            if layer.activity_regularizer is not None:
                weighed.append("activity_regularizer")
            if weighed:
                return (f"layer {layer.name!r} has {weighed[0]}: regularizers and constraints run on host arrays; "
                        "train it with backend: cpu")
        for output in objective.outputs:
            for item in [objective.losses[output]] + objective.metrics[output]:
                if item.host_only:
                    return (f"{item.name!r} is a plugin loss or metric, computed on host arrays; train it with "
                            "backend: cpu")
        return None

    def describe(self) -> dict:
        return {**super().describe(), "device": self.device_name, "gemm": self.gemm_name}

    def kernels_on_disk(self) -> bool:
        return True

    def synchronize(self) -> None:
        self._cuda.synchronize()


def _device_name(cuda) -> str:
    try:
        name = cuda.get_current_device().name
        return name.decode() if isinstance(name, bytes) else str(name)
    except Exception:
        return "unknown GPU"


del _module, _name, _f
