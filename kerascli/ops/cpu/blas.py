"""Matrix products from inside Numba kernels, through the BLAS numpy itself uses.

Numba calls BLAS from a kernel only with SciPy installed. A recurrent layer's loop over time steps is one
product and one cell update per step; to run that loop in one kernel (no return to Python between steps),
the kernel calls cblas ``sgemm``/``dgemm`` through its address: the address is a run-time argument, so
kernels stay cacheable on disk. Which library (``KERASCLI_KERNEL_BLAS``, default ``auto``):

* ``auto``: an MKL already loaded in the process (numpy built with it), else the ``mkl`` wheel where it is
  installed (``pip install 'kerascli[mkl]'``), else the BLAS numpy loaded (found by threadpoolctl, a
  dependency). MKL multiplies a recurrent step's small products faster than OpenBLAS, which packs the
  recurrent kernel again at every call (32 x 128 by 128 x 512: 33 against 47 us on one core of an
  AVX-512 Xeon); the wheel's MKL is loaded sequential, as the kernels' threads each call it.
* ``mkl``: MKL, or an error saying how to install it; ``numpy``: numpy's BLAS (OpenBLAS in PyPI's wheels);
  ``loops``: none.

Where the library is not one whose calling convention is known here (OpenBLAS, MKL's LP64 interface), the
kernels take a product written in Numba: correct, several times slower.

``handle()`` is what a kernel is given: int64 [sgemm address, dgemm address, 1 if integers are 64-bit];
zeros mean "no BLAS, use the loops".
"""

from __future__ import annotations

import ctypes
import os

import numpy as np
from llvmlite import ir
from numba import njit, types
from numba.extending import intrinsic

from kerascli.ops.cpu.jit import opts

_ROW_MAJOR, _NO_TRANS, _TRANS = 101, 111, 112


def _intrinsic_gemm(int_bits: int):
    """An intrinsic calling a cblas ?gemm whose integers are ``int_bits`` wide, at an address given at run
    time: (address, trans_a, trans_b, m, n, k, a, lda, b, ldb, beta, c, ldc); alpha is 1."""

    @intrinsic
    def call(typingctx, address, trans_a, trans_b, m, n, k, a, lda, b, ldb, beta, c, ldc):
        if not all(isinstance(x, types.Array) for x in (a, b, c)) or len({a.dtype, b.dtype, c.dtype}) != 1:
            return None
        if a.dtype not in (types.float32, types.float64):
            return None
        sig = types.void(address, trans_a, trans_b, m, n, k, a, lda, b, ldb, beta, c, ldc)

        def codegen(context, builder, signature, args):
            address, trans_a, trans_b, m, n, k, a, lda, b, ldb, beta, c, ldc = args
            arg_types = signature.args
            real = context.get_value_type(arg_types[6].dtype)
            integer, enum = ir.IntType(int_bits), ir.IntType(32)
            pointer = real.as_pointer()
            function = ir.FunctionType(ir.VoidType(), [enum, enum, enum, integer, integer, integer, real, pointer,
                                                       integer, pointer, integer, real, pointer, integer])

            def whole(i, value):  # an int64 argument at the library's integer width
                return context.cast(builder, value, arg_types[i], types.int64) if int_bits == 64 else \
                    builder.trunc(context.cast(builder, value, arg_types[i], types.int64), integer)

            def data(i, value):
                return context.make_array(arg_types[i])(context, builder, value).data

            def scalar(i, value):
                return context.cast(builder, value, arg_types[i], arg_types[6].dtype)

            def transposed(i, value):
                flag = builder.icmp_signed("!=", context.cast(builder, value, arg_types[i], types.int64),
                                           ir.Constant(ir.IntType(64), 0))
                return builder.select(flag, ir.Constant(enum, _TRANS), ir.Constant(enum, _NO_TRANS))

            target = builder.inttoptr(context.cast(builder, address, arg_types[0], types.int64),
                                      function.as_pointer())
            builder.call(target, [ir.Constant(enum, _ROW_MAJOR), transposed(1, trans_a), transposed(2, trans_b),
                                  whole(3, m), whole(4, n), whole(5, k), ir.Constant(real, 1.0), data(6, a),
                                  whole(7, lda), data(8, b), whole(9, ldb), scalar(10, beta), data(11, c),
                                  whole(12, ldc)])
            return context.get_dummy_value()

        return sig, codegen

    return call


_gemm_lp64 = _intrinsic_gemm(32)
_gemm_ilp64 = _intrinsic_gemm(64)


@njit(inline="always", **opts)
def _rows_apart(a):
    """The distance between a matrix's rows in elements, or -1 when BLAS cannot read it as it lies (its
    own elements not adjacent; rows overlapping or in reverse)."""
    if a.shape[1] > 1 and a.strides[1] != a.itemsize:
        return -1
    if a.shape[0] > 1:
        if a.strides[0] % a.itemsize != 0 or a.strides[0] < max(a.shape[1], 1) * a.itemsize:
            return -1
        return a.strides[0] // a.itemsize
    return max(a.shape[1], 1)


@njit(inline="always", **opts)
def _gemm_loops(a, b, c, trans_a, trans_b, beta):
    """c = op(a) @ op(b) + beta * c, written out (for a BLAS this module cannot call)."""
    inner = a.shape[0] if trans_a else a.shape[1]
    for i in range(c.shape[0]):
        for j in range(c.shape[1]):
            c[i, j] = c[i, j] * beta if beta != 0 else 0
        for p in range(inner):
            v = a[p, i] if trans_a else a[i, p]
            if trans_b:
                for j in range(c.shape[1]):
                    c[i, j] += v * b[j, p]
            else:
                for j in range(c.shape[1]):
                    c[i, j] += v * b[p, j]


@njit(inline="always", **opts)
def _gemm(blas, a, b, c, trans_a, trans_b, beta):
    m, n, k = c.shape[0], c.shape[1], a.shape[0] if trans_a else a.shape[1]
    address = blas[0] if c.itemsize == 4 else blas[1]
    lda, ldb, ldc = _rows_apart(a), _rows_apart(b), _rows_apart(c)
    if address == 0 or lda < 0 or ldb < 0 or ldc < 0 or m == 0 or n == 0:
        _gemm_loops(a, b, c, trans_a, trans_b, beta)
    elif k == 0:
        if beta == 0:
            c[...] = 0
    elif blas[2]:
        _gemm_ilp64(address, trans_a, trans_b, m, n, k, a, lda, b, ldb, beta, c, ldc)
    else:
        _gemm_lp64(address, trans_a, trans_b, m, n, k, a, lda, b, ldb, beta, c, ldc)


@njit(**opts)
def gemm(blas, a, b, c, trans_b, beta):
    """c = a @ b (``trans_b``: a @ b.T) + beta * c, for 2-D float arrays of one dtype; beta is 0 or 1."""
    _gemm(blas, a, b, c, False, trans_b, beta)


@njit(**opts)
def gemm_ops(blas, a, b, c, trans_a, trans_b, beta):
    """c = op(a) @ op(b) + beta * c (op transposing where asked), called from Python: the cpu Ops' products
    where the kernels' BLAS is MKL and numpy's would run on one thread anyway (kerascli.ops.backend)."""
    _gemm(blas, a, b, c, trans_a, trans_b, beta)


def readable(a: np.ndarray) -> bool:
    """Whether BLAS can read a 2-D array as it lies (the kernels' own test, asked from Python)."""
    return _rows_apart(a) >= 0


_FOUND: tuple[np.ndarray, str] | None = None  # (handle, what it calls), found once per process
NO_BLAS = np.zeros(3, np.int64)


CHOICES = ("auto", "mkl", "numpy", "loops")  # what KERASCLI_KERNEL_BLAS takes
_OFF = ("0", "off", "none", "loops")


class KernelBLASUnavailable(RuntimeError):
    """KERASCLI_KERNEL_BLAS asks for what this environment does not have; the message says why."""


def requested() -> str:
    """KERASCLI_KERNEL_BLAS, checked (KernelBLASUnavailable for a value it does not take)."""
    value = os.environ.get("KERASCLI_KERNEL_BLAS", "").strip().lower() or "auto"
    if value in _OFF:
        return "loops"
    if value not in CHOICES:
        raise KernelBLASUnavailable(f"KERASCLI_KERNEL_BLAS={value!r} is not one of {', '.join(CHOICES)}")
    return value


_NO_MKL = "KERASCLI_KERNEL_BLAS=mkl, but MKL is not installed here: pip install 'kerascli[mkl]'"


def check() -> None:
    """KernelBLASUnavailable where KERASCLI_KERNEL_BLAS asks for what cannot be had (loads nothing)."""
    if requested() == "mkl" and mkl_wheel_library() is None and \
            not any(lib.get("internal_api") == "mkl" for lib in _loaded()):
        raise KernelBLASUnavailable(_NO_MKL)


def mkl_wheel_library() -> str | None:
    """libmkl_rt of the ``mkl`` wheel in this Python environment (kerascli[mkl]), if installed."""
    import glob
    import sys

    for pattern in ("lib/libmkl_rt.so*", "lib/libmkl_rt*.dylib", "Library/bin/mkl_rt*.dll"):
        found = sorted(glob.glob(os.path.join(sys.prefix, pattern)))
        if found:
            return found[0]
    return None


def _loaded() -> list[dict]:
    try:
        from threadpoolctl import threadpool_info

        return [lib for lib in threadpool_info() if lib.get("user_api") == "blas"]
    except Exception:
        return []


def _handle(found) -> np.ndarray:
    sgemm, dgemm, ilp64 = found
    return np.array([sgemm, dgemm, int(ilp64)], np.int64)


def _from_loaded(libraries, api=None) -> tuple[np.ndarray, str] | None:
    for lib in libraries:
        if api is not None and lib.get("internal_api") != api:
            continue
        try:
            found = _symbols(ctypes.CDLL(lib["filepath"]), lib.get("internal_api"))
        except OSError:
            continue
        if found is not None:
            return _handle(found), f"{lib['internal_api']} {lib['filepath']}"
    return None


def _from_mkl_wheel() -> tuple[np.ndarray, str] | None:
    path = mkl_wheel_library()
    if path is None:
        return None
    try:
        library = ctypes.CDLL(path)
        # before MKL's first call: one thread per call (each kernel thread calls it), 32-bit integers
        library.MKL_Set_Threading_Layer.argtypes = [ctypes.c_int]
        library.MKL_Set_Threading_Layer(1)  # MKL_THREADING_SEQUENTIAL
        library.MKL_Set_Interface_Layer.argtypes = [ctypes.c_int]
        library.MKL_Set_Interface_Layer(0)  # MKL_INTERFACE_LP64
    except (OSError, AttributeError):
        return None
    found = _symbols(library, "mkl", lp64=True)
    return None if found is None else (_handle(found), f"mkl {path} (sequential)")


def _find() -> tuple[np.ndarray, str]:
    """(handle, what it calls) for the BLAS KERASCLI_KERNEL_BLAS asks for (see the module's docstring)."""
    choice = requested()
    if choice == "loops":
        return NO_BLAS, "loops (KERASCLI_KERNEL_BLAS)"
    # what numpy (or another library) loaded: once the wheel's MKL is loaded here, threadpoolctl lists it too
    wheel = mkl_wheel_library()
    wheel = wheel and os.path.realpath(wheel)
    loaded = [lib for lib in _loaded() if os.path.realpath(lib["filepath"]) != wheel]
    if choice in ("auto", "mkl"):
        found = _from_loaded(loaded, "mkl") or _from_mkl_wheel()
        if found is not None:
            return found
        if choice == "mkl":
            raise KernelBLASUnavailable(_NO_MKL)
    return _from_loaded(loaded) or (NO_BLAS, "loops (no OpenBLAS or MKL loaded)")


def _symbols(library, api, lp64: bool = False) -> tuple[int, int, bool] | None:
    def address(name):
        try:
            return ctypes.cast(getattr(library, name), ctypes.c_void_p).value
        except AttributeError:
            return None

    if api == "openblas":  # numpy's wheels bundle it renamed (scipy_ prefix, 64_ suffix for 64-bit integers)
        for prefix in ("scipy_", ""):
            for suffix in ("64_", ""):
                sgemm, dgemm = address(f"{prefix}cblas_sgemm{suffix}"), address(f"{prefix}cblas_dgemm{suffix}")
                config = address(f"{prefix}openblas_get_config{suffix}")
                if sgemm and dgemm and config:
                    get_config = ctypes.CFUNCTYPE(ctypes.c_char_p)(config)
                    return sgemm, dgemm, suffix == "64_" or b"USE64BITINT" in (get_config() or b"")
        return None
    if api == "mkl" and (lp64 or os.environ.get("MKL_INTERFACE_LAYER", "LP64").upper().startswith("LP64")):
        sgemm, dgemm = address("cblas_sgemm"), address("cblas_dgemm")
        return (sgemm, dgemm, False) if sgemm and dgemm else None
    return None


def _found() -> tuple[np.ndarray, str]:
    global _FOUND
    if _FOUND is None:
        _FOUND = _find()
    return _FOUND


def handle() -> np.ndarray:
    """What kernels pass to :func:`gemm`."""
    return _found()[0]


def describe() -> str:
    """Which BLAS the kernels call, for a run's summary and the benchmarks."""
    return _found()[1]


def described() -> str | None:
    """What :func:`describe` says once a kernel asked for the BLAS (None before: nothing is loaded for it)."""
    return None if _FOUND is None else _FOUND[1]
