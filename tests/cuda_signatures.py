"""Real compilation of the cuda kernels without a GPU.

The simulator runs kernels as Python, so it never types them as numba.cuda does for a device: a kernel can
pass every simulator test and still fail to compile on a GPU (a tuple indexed by a loop variable whose
items differ in type did). Under the simulator, ``record`` notes the argument types of every launch; on
any machine with numba-cuda and NVRTC, ``compile_ptx`` then compiles each noted signature to PTX as the
GPU backend would (typing, lowering, NVVM), with no driver: the compute capability is given, not read
from a device. tests/test_cuda_ptx.py runs it when KERASCLI_CUDA_SIGNATURES names a recorded file.
"""

from __future__ import annotations

import fcntl
import importlib
import json

import numpy as np

COMPUTE_CAPABILITY = (9, 0)


def _describe(value):
    import numba

    array = getattr(value, "_ary", value)  # the simulator's device arrays wrap numpy arrays
    if isinstance(array, np.ndarray):
        kind = numba.typeof(array)
        return ["array", array.dtype.str, array.ndim, kind.layout]
    return ["scalar", str(numba.typeof(value))]


def record(path: str):
    """Note the argument types of every kernel launch from now on; returns a function that writes them to
    ``path`` as JSON (merged with what the file already holds)."""
    from kerascli.ops.cuda import kernel

    seen: set = set()
    original = kernel.Kernel.__getitem__

    def configured(self, config):
        launch = original(self, config)
        fn = self.dispatcher.py_func

        def call(*args):
            seen.add(json.dumps([fn.__module__, fn.__qualname__, [_describe(a) for a in args]]))
            return launch(*args)

        return call

    kernel.Kernel.__getitem__ = configured

    def write():
        kernel.Kernel.__getitem__ = original
        # test workers (pytest -n) each merge theirs into the one file, one at a time
        with open(path + ".lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                with open(path) as f:
                    seen.update(json.dumps(entry) for entry in json.load(f))
            except FileNotFoundError:
                pass
            with open(path, "w") as f:
                json.dump(sorted(json.loads(entry) for entry in seen), f, indent=0)

    return write


def signatures(path: str) -> dict:
    """{(module, qualname): [argument types, ...]} from a recorded file."""
    out: dict = {}
    with open(path) as f:
        for module, qualname, args in json.load(f):
            out.setdefault((module, qualname), []).append(args)
    return out


def _numba_types(args):
    from numba import from_dtype, typeof, types

    out = []
    for arg in args:
        if arg[0] == "array":
            _, dtype, ndim, layout = arg
            out.append(types.Array(from_dtype(np.dtype(dtype)), ndim, layout))
        else:
            out.append(typeof(np.dtype(arg[1]).type(0)))
    return tuple(out)


def _python_function(module: str, qualname: str, argtypes):
    """The Python function of a kernel; kernels made by a factory (the tiled GEMM, one per item type) are
    made here for the item type of their output argument."""
    mod = importlib.import_module(module)
    if qualname == "_make_kernel.<locals>.gemm_kernel":
        from numba import types

        made = mod._make_kernel(types.float64 if argtypes[2].dtype == types.float64 else types.float32)
        return made.dispatcher.py_func
    return getattr(mod, qualname).dispatcher.py_func


def compile_ptx(module: str, qualname: str, args) -> str:
    """PTX of one kernel for one recorded signature (raises what numba.cuda raises on a GPU)."""
    import numba.cuda.dispatcher as dispatcher
    from numba import cuda

    class Device:  # device functions ask the current device's compute capability; there is none here
        compute_capability = COMPUTE_CAPABILITY

    dispatcher.get_current_device = lambda: Device()
    argtypes = _numba_types(args)
    ptx, _ = cuda.compile_ptx(_python_function(module, qualname, argtypes), argtypes, cc=COMPUTE_CAPABILITY)
    return ptx
