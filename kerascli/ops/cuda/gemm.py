"""Matrix products on the GPU: a tiled shared-memory numba.cuda kernel, and cuBLAS through CuPy when CuPy is
installed (``KERASCLI_CUDA_GEMM=numba|cublas`` chooses; by default cuBLAS when it can be loaded).

Both compute op(a) @ op(b) into ``out`` (op transposing where asked) or add it to what ``out`` holds.
"""

from __future__ import annotations

import os
from collections import OrderedDict

import numpy as np
from numba import cuda, float32, float64

from kerascli.ops.cuda.kernel import Kernel, kernel
from kerascli.ops.cuda.launch import blocks, scratch
from kerascli.ops.tuning import (
    CUDA_GEMM_SPLIT_BELOW_TILES,
    CUDA_GEMM_SPLIT_MIN_K,
    CUDA_GEMM_STEP,
    CUDA_GEMM_TILE,
)

TILE, STEP = CUDA_GEMM_TILE, CUDA_GEMM_STEP
PER = TILE // 16  # values per thread along each axis
# +1 column: the threads that fill a tile write down its columns without bank conflicts (a module constant:
# shared array shapes must be known when the kernel compiles)
PADDED = TILE + 1


def _make_kernel(item):
    """The tiled kernel for one item type (the register and shared arrays need it at compile time)."""

    def gemm_kernel(a, b, c, trans_a, trans_b, accumulate, k_part, partial, split):
        """Block (x, y) computes output tile (y, x) over inner indices [z * k_part, (z + 1) * k_part) of
        blockIdx.z; with ``split`` it writes partial[z] (summed after), else c."""
        m, n = c.shape
        k_all = a.shape[0] if trans_a else a.shape[1]
        k_lo = cuda.blockIdx.z * k_part
        k = min(k_all, k_lo + k_part)
        a_tile = cuda.shared.array((STEP, PADDED), item)
        b_tile = cuda.shared.array((STEP, PADDED), item)
        acc = cuda.local.array((PER, PER), item)
        ra = cuda.local.array(PER, item)
        rb = cuda.local.array(PER, item)
        tx, ty = cuda.threadIdx.x, cuda.threadIdx.y
        tid = ty * 16 + tx
        row0 = cuda.blockIdx.y * TILE
        col0 = cuda.blockIdx.x * TILE
        for i in range(PER):
            for j in range(PER):
                acc[i, j] = 0
        for k0 in range(k_lo, k, STEP):
            for load in range(TILE * STEP // 256):
                e = tid + load * 256
                kk = e % STEP
                ii = e // STEP
                gi, gk = row0 + ii, k0 + kk
                if gi < m and gk < k:
                    a_tile[kk, ii] = a[gk, gi] if trans_a else a[gi, gk]
                else:
                    a_tile[kk, ii] = 0
                jj = e % TILE
                kk = e // TILE
                gj, gk = col0 + jj, k0 + kk
                if gj < n and gk < k:
                    b_tile[kk, jj] = b[gj, gk] if trans_b else b[gk, gj]
                else:
                    b_tile[kk, jj] = 0
            cuda.syncthreads()
            for kk in range(STEP):
                for i in range(PER):
                    ra[i] = a_tile[kk, ty + 16 * i]
                for j in range(PER):
                    rb[j] = b_tile[kk, tx + 16 * j]
                for i in range(PER):
                    for j in range(PER):
                        acc[i, j] += ra[i] * rb[j]
            cuda.syncthreads()
        for i in range(PER):
            gi = row0 + ty + 16 * i
            if gi < m:
                for j in range(PER):
                    gj = col0 + tx + 16 * j
                    if gj < n:
                        if split:
                            partial[cuda.blockIdx.z, gi, gj] = acc[i, j]
                        elif accumulate:
                            c[gi, gj] += acc[i, j]
                        else:
                            c[gi, gj] = acc[i, j]

    return Kernel(cuda.jit(gemm_kernel))  # a closure over the item type: compiled per process, not cached


@kernel
def _sum_parts(partial, c, accumulate):
    """c = (or +=) the sum over the first axis of ``partial``, in order."""
    i = cuda.grid(1)
    m, n = c.shape
    if i < m * n:
        r = i // n
        col = i - r * n
        s = partial[0, r, col]
        for p in range(1, partial.shape[0]):
            s += partial[p, r, col]
        if accumulate:
            c[r, col] += s
        else:
            c[r, col] = s


_KERNELS: dict = {}


def numba_gemm(a, b, out, trans_a=False, trans_b=False, accumulate=False):
    dtype = np.dtype(out.dtype)
    if dtype not in _KERNELS:
        _KERNELS[dtype] = _make_kernel(float64 if dtype == np.float64 else float32)
    m, n = out.shape
    k = a.shape[0] if trans_a else a.shape[1]
    if not (m and n):
        return out
    tiles = ((n + TILE - 1) // TILE, (m + TILE - 1) // TILE)
    parts = 1
    if tiles[0] * tiles[1] < CUDA_GEMM_SPLIT_BELOW_TILES:  # too few tiles to fill the GPU: split k too
        parts = max(1, min(CUDA_GEMM_SPLIT_BELOW_TILES // (tiles[0] * tiles[1]), k // CUDA_GEMM_SPLIT_MIN_K))
    k_part = -(-k // parts) if k else 0
    k_part = -(-k_part // STEP) * STEP  # whole steps, so only the last part is short
    parts = max(1, -(-k // k_part)) if k_part else 1
    if parts == 1:
        whole = out.reshape(1, m, n)  # (unused without a split)
        _KERNELS[dtype][tiles + (1,), (16, 16)](a, b, out, trans_a, trans_b, accumulate, max(k, 1), whole, False)
        return out
    partial = scratch("gemm_parts", parts * m * n, dtype).reshape(parts, m, n)
    _KERNELS[dtype][tiles + (parts,), (16, 16)](a, b, out, trans_a, trans_b, accumulate, k_part, partial, True)
    _sum_parts[blocks(m * n)](partial, out, accumulate)
    return out


_CUPY: list = []  # [module] once loaded, [None] when it cannot be


def cupy_module():
    """CuPy, when installed and working with this device; None otherwise (asked once)."""
    if not _CUPY:
        try:
            # both libraries run on the legacy default stream, which orders their work: CuPy need not wait
            # for the GPU each time it takes one of our arrays
            os.environ.setdefault("CUPY_CUDA_ARRAY_INTERFACE_SYNC", "0")
            import cupy

            cupy.cuda.runtime.getDeviceCount()
            _CUPY.append(cupy)
        except Exception:  # not installed, or built for another CUDA: the numba kernel does the work
            _CUPY.append(None)
    return _CUPY[0]


_VIEWS: OrderedDict = OrderedDict()  # CuPy views of our arrays, most recently used last
KEEP_VIEWS = 256


def _cupy_view(cp, a):
    """A CuPy array over the memory of device array ``a`` (made once per array: making one costs as much as
    a small product). The view keeps ``a``'s memory alive while it is cached."""
    interface = a.__cuda_array_interface__
    key = (interface["data"][0], interface["shape"], interface["strides"], interface["typestr"])
    view = _VIEWS.get(key)
    if view is None:
        view = _VIEWS[key] = cp.asarray(a)
        if len(_VIEWS) > KEEP_VIEWS:
            _VIEWS.popitem(last=False)
    else:
        _VIEWS.move_to_end(key)
    return view


def cublas_gemm(a, b, out, trans_a=False, trans_b=False, accumulate=False):
    if _raw_gemm(a, b, out, trans_a, trans_b, accumulate):
        return out
    cp = cupy_module()
    a, b, c = _cupy_view(cp, a), _cupy_view(cp, b), _cupy_view(cp, out)
    a, b = a.T if trans_a else a, b.T if trans_b else b
    if a.shape[1] == 0:  # an empty inner dimension: the product is zeros
        if not accumulate:
            c.fill(0)
        return out
    if accumulate:
        c += cp.matmul(a, b)
    else:
        cp.matmul(a, b, out=c)
    return out


# cuBLAS called directly, through CuPy's thin binding: CuPy's matmul checks, broadcasts and wraps its
# arguments on every call (and its ``+=`` makes a temporary and a second kernel), which on a GPU that
# finishes these products in microseconds is most of their cost. [state] once decided: the binding,
# handle and constants, or None when only CuPy's matmul is used.
_RAW: list = []
_OP_N, _OP_T = 0, 1  # cublasOperation_t


def _raw_binding():
    if not _RAW:
        _RAW.append(None)
        try:
            cp = cupy_module()
            try:
                from cupy_backends.cuda.libs import cublas
            except ImportError:
                from cupy.cuda import cublas
            handle = cp.cuda.device.get_cublas_handle()
            # host scalars (alpha, beta), kept alive here; cuBLAS reads them through host pointers
            cublas.setPointerMode(handle, 0)  # CUBLAS_POINTER_MODE_HOST
            constants = {}
            for t in (np.float32, np.float64):
                one, zero = np.ones(1, t), np.zeros(1, t)
                constants[np.dtype(t)] = (one, zero, one.ctypes.data, zero.ctypes.data)
            state = (handle, {np.dtype(np.float32): cublas.sgemm, np.dtype(np.float64): cublas.dgemm}, constants)
            if _raw_agrees(cp, state):
                _RAW[0] = state
        except Exception:  # an older or different CuPy: its matmul does the work
            _RAW[0] = None
    return _RAW[0]


def _leading(a, itemsize):
    """The leading dimension (row pitch in items) of a 2-d device array whose rows are contiguous, else
    None."""
    if a.ndim != 2:
        return None
    rows, cols = a.shape
    s0, s1 = a.strides
    if cols > 1 and s1 != itemsize:
        return None
    ld = s0 // itemsize if rows > 1 else cols
    return ld if ld >= max(cols, 1) and s0 % itemsize == 0 else None


def _raw_gemm(a, b, out, trans_a, trans_b, accumulate, state=None) -> bool:
    """op(a) @ op(b) into ``out`` by one cuBLAS call; False (nothing done) where that path does not apply.

    cuBLAS is column-major: a row-major (m, n) result is the column-major (n, m) matrix op(b)^T op(a)^T,
    and a row-major array read column-major is its transpose, so the call swaps the operands and keeps
    each one's transpose flag."""
    state = state or _raw_binding()
    if state is None:
        return False
    handle, calls, constants = state
    dtype = out.dtype
    call = calls.get(dtype)
    if call is None or a.dtype != dtype or b.dtype != dtype:
        return False
    m, n = out.shape
    k = a.shape[0] if trans_a else a.shape[1]
    if not (m and n and k):
        return False  # CuPy's path fills the zeros an empty inner dimension gives
    itemsize = dtype.itemsize
    lda, ldb, ldc = _leading(a, itemsize), _leading(b, itemsize), _leading(out, itemsize)
    if lda is None or ldb is None or ldc is None:
        return False
    one, zero = constants[dtype][2:]
    call(handle, _OP_T if trans_b else _OP_N, _OP_T if trans_a else _OP_N, n, m, k, one,
         _pointer(b), ldb, _pointer(a), lda, one if accumulate else zero, _pointer(out), ldc)
    return True


def _pointer(a) -> int:
    return int(a.gpu_data.device_pointer)


def _raw_agrees(cp, state) -> bool:
    """Whether the direct call gives what CuPy's matmul gives, on small products with every transpose,
    with and without accumulation, in both float types (checked once per process)."""
    rng = np.random.default_rng(0)
    for dtype in (np.float32, np.float64):
        for trans_a in (False, True):
            for trans_b in (False, True):
                a = rng.standard_normal((5, 3) if trans_a else (3, 5)).astype(dtype)
                b = rng.standard_normal((4, 5) if trans_b else (5, 4)).astype(dtype)
                c0 = rng.standard_normal((3, 4)).astype(dtype)
                expected = (a.T if trans_a else a) @ (b.T if trans_b else b)
                for accumulate in (False, True):
                    da, db, dc = cuda.to_device(a), cuda.to_device(b), cuda.to_device(c0)
                    if not _raw_gemm(da, db, dc, trans_a, trans_b, accumulate, state):
                        return False
                    want = expected + c0 if accumulate else expected
                    if not np.allclose(dc.copy_to_host(), want, rtol=1e-4, atol=1e-4):
                        return False
    return True


def choose() -> str:
    """Which GEMM the cuda Ops uses: KERASCLI_CUDA_GEMM if set, else cuBLAS when CuPy loads, else numba."""
    wanted = os.environ.get("KERASCLI_CUDA_GEMM", "").strip().lower()
    if wanted in ("numba", "cublas"):
        if wanted == "cublas" and cupy_module() is None:
            raise RuntimeError("KERASCLI_CUDA_GEMM=cublas needs CuPy (pip install cupy-cuda12x or cupy-cuda13x)")
        return wanted
    if wanted:
        raise RuntimeError(f"KERASCLI_CUDA_GEMM must be numba or cublas, got {wanted!r}")
    return "cublas" if cupy_module() is not None else "numba"


_CHOICE: list = []


def chosen():
    """(name, function) of the GEMM :func:`choose` picks, decided once."""
    if not _CHOICE:
        name = choose()
        _CHOICE.append((name, cublas_gemm if name == "cublas" else numba_gemm))
    return _CHOICE[0]


def gemm(a, b, out, trans_a=False, trans_b=False, accumulate=False):
    """op(a) @ op(b) into (or, with ``accumulate``, added to) ``out`` by the chosen GEMM."""
    return chosen()[1](a, b, out, trans_a, trans_b, accumulate)
