"""The ``kernel`` decorator: a numba.cuda kernel with a shorter launch path for the calls a training step
repeats.

numba.cuda's launch types every argument, looks the compiled overload up, wraps each device array in a
strided view and converts every value before the driver call: on a GPU that finishes a small layer's kernel
in microseconds, that host work decides the step time (about 60% of it for the benchmark MLP on an H200).
Here the first launch of each argument signature goes through numba.cuda as usual (it compiles, and its
values are the reference), and later launches with that signature convert their arguments directly: a
device array becomes (meminfo 0, parent 0, size, itemsize, pointer, shape, strides), a number the C type of
its parameter, which is what numba.cuda passes for the C-contiguous arrays and plain numbers kerascli's
kernels take.

The short path is learned, not assumed: on the first launch of a signature the values it would pass are
compared with numba.cuda's own; when they differ in anything (another numba-cuda version, an argument
kind it does not know), that signature keeps numba.cuda's launch. Arrays that are not C-contiguous or
are empty, and anything but device arrays and numbers, always take numba.cuda's launch. Under the CUDA
simulator there is no driver call to shorten, and every launch is numba.cuda's.
"""

from __future__ import annotations

import ctypes
import os
import threading

import numpy as np
from numba import cuda

from kerascli.ops import kernel_cache

kernel_cache.install_for_cuda()  # cached kernels keyed by every source under ops/ (kerascli.ops.kernel_cache)
SIMULATED = os.environ.get("NUMBA_ENABLE_CUDASIM") == "1"
_UNSEEN = object()

if not SIMULATED:
    from numba.cuda.cudadrv.devicearray import DeviceNDArray

    try:  # the driver call numba.cuda's own launch makes, and its configuration
        from numba.cuda.dispatcher import CUDA_CORE_GE_1_0, LaunchConfig
        from numba.cuda.dispatcher import launch as _core_launch
    except ImportError:  # another numba-cuda layout: numba.cuda's launch only
        _core_launch = None
else:
    DeviceNDArray = None
    _core_launch = None


def kernel(fn):
    """``numba.cuda.jit(cache=True)`` whose launches, ``fn[grid, block](*args)``, take the short path."""
    return Kernel(cuda.jit(cache=True)(fn))


class Kernel:
    """A compiled kernel's launch configurations and the argument signatures learned for the short path."""

    def __init__(self, dispatcher):
        self.dispatcher = dispatcher
        self.__name__ = getattr(dispatcher, "__name__", "kernel")
        self.__doc__ = getattr(dispatcher, "__doc__", None)
        self._launchers: dict = {}
        self._signatures: dict = {}  # (thread, signature) -> (cufunc, converters), or None: numba's launch

    def __getitem__(self, config):
        if _core_launch is None:  # the simulator (whose configured kernels are not reused), or no short path
            return self.dispatcher[config]
        launcher = self._launchers.get(config)
        if launcher is None:
            launcher = self._launchers[config] = _Launcher(self, config)
        return launcher

    @property
    def short_path_signatures(self) -> int:
        """How many argument signatures launch by the short path (for tests and profiles)."""
        return sum(entry is not None for entry in self._signatures.values())


class _Launcher:
    def __init__(self, owner: Kernel, config):
        self.owner = owner
        self.numba_launch = owner.dispatcher[config]
        self.core_config = None
        c = self.numba_launch
        flag = {"is_cooperative": False} if CUDA_CORE_GE_1_0 else {"cooperative_launch": False}
        try:
            self.core_config = LaunchConfig(grid=c.griddim, block=c.blockdim, shmem_size=c.sharedmem, **flag)
        except Exception:  # a configuration cuda.core would not take here: numba.cuda launches it
            self.core_config = None

    def __call__(self, *args):
        if self.core_config is None:
            return self.numba_launch(*args)
        key = _signature(args)
        if key is None:
            return self.numba_launch(*args)
        table = self.owner._signatures
        entry = table.get(key, _UNSEEN)
        if entry is _UNSEEN:
            self.numba_launch(*args)  # compiles on first use; its argument values are the reference
            table[key] = _learn(self.owner.dispatcher, args)
            return None
        if entry is None:
            return self.numba_launch(*args)
        cufunc, converters = entry
        values: list = []
        for convert, a in zip(converters, args):
            convert(a, values)
        try:
            _core_launch(self.numba_launch.stream, self.core_config, cufunc, *values)
        except Exception:  # refused before anything was queued: this signature goes back to numba.cuda's launch
            table[key] = None
            return self.numba_launch(*args)
        return None


def _signature(args):
    """A hashable key of the argument kinds (and the launching thread, whose context the kernel runs in),
    or None where some argument must take numba.cuda's launch."""
    key = [threading.get_ident()]
    for a in args:
        kind = type(a)
        if kind is DeviceNDArray:
            if a.size == 0 or not _c_contiguous(a.shape, a.strides, a.dtype.itemsize):
                return None
            key.append((a.dtype, a.ndim))
        elif kind in _NUMBERS:
            key.append(kind)
        else:
            return None
    return tuple(key)


def _c_contiguous(shape, strides, itemsize) -> bool:
    expected = itemsize
    for n, s in zip(reversed(shape), reversed(strides)):
        if n != 1 and s != expected:
            return False
        expected *= n
    return True


def _array_values(a, values):
    values.append(0)  # meminfo
    values.append(0)  # parent
    values.append(a.size)
    itemsize = a.dtype.itemsize
    values.append(itemsize)
    values.append(int(a.gpu_data.device_pointer))
    shape = a.shape
    values.extend(shape)
    stride = itemsize
    strides = []
    for n in reversed(shape):
        strides.append(stride)
        stride *= n
    values.extend(reversed(strides))


def _number_converter(numba_type):
    """How numba.cuda passes a number of this parameter type to the driver, or None if not known here."""
    from numba.cuda import types

    if numba_type == types.boolean:
        return lambda v, values: values.append(v)
    if numba_type == types.float64:
        return lambda v, values: values.append(ctypes.c_double(v))
    if numba_type == types.float32:
        return lambda v, values: values.append(ctypes.c_float(v))
    if isinstance(numba_type, types.Integer):
        ctype = getattr(ctypes, f"c_{numba_type}", None)
        return None if ctype is None else (lambda v, values: values.append(ctype(v)))
    return None


_NUMBERS = frozenset((bool, int, float, np.bool_, np.float32, np.float64, np.int8, np.int16, np.int32,
                      np.int64, np.uint8, np.uint16, np.uint32, np.uint64))


def _learn(dispatcher, args):
    """(cufunc, converters) for launching ``args``' signature directly, or None when the direct values would
    differ from numba.cuda's for these arguments."""
    from numba.cuda import types

    try:
        argtypes = tuple(dispatcher.typeof_pyval(a) for a in args)
        overload = dispatcher.overloads.get(argtypes)
        if overload is None or overload.debug or overload.cooperative or getattr(overload, "extensions", None):
            return None
        converters = []
        for t, a in zip(overload.argument_types, args):
            if isinstance(t, types.Array):
                if t.layout != "C" or type(a) is not DeviceNDArray:
                    return None
                converters.append(_array_values)
            else:
                convert = _number_converter(t)
                if convert is None:
                    return None
                converters.append(convert)
        reference: list = []
        for t, a in zip(overload.argument_types, args):
            overload._prepare_args(t, a, 0, [], reference)
        direct: list = []
        for convert, a in zip(converters, args):
            convert(a, direct)
        if not _same_values(direct, reference):
            return None
        return overload._codelibrary.get_cufunc().kernel, tuple(converters)
    except Exception:  # anything unexpected in numba.cuda's internals: its own launch stays correct
        return None


def _same_values(direct, reference) -> bool:
    if len(direct) != len(reference):
        return False
    for d, r in zip(direct, reference):
        if type(d) is not type(r):
            return False
        if isinstance(d, ctypes._SimpleCData):
            if d.value != r.value:
                return False
        elif d != r:
            return False
    return True
