"""Launch helpers and the small kernels every family uses: grids, fills, copies, deterministic reductions.

Reductions never use atomics: a sum is formed in a fixed order (per-thread strides, then a tree in shared
memory, then parts in order), so the same inputs give the same bits on every run: a resume on the same
device and backend repeats a run exactly.
"""

from __future__ import annotations

import math

import numpy as np
from numba import cuda, float64

from kerascli.ops.cuda.kernel import kernel
from kerascli.ops.tuning import CUDA_REDUCE_PART_ROWS, CUDA_REDUCE_PARTS, CUDA_THREADS


def blocks(n: int, threads: int = 0) -> tuple[int, int]:
    """(blocks, threads per block: CUDA_THREADS unless given) covering ``n`` threads; at least one block."""
    threads = threads or CUDA_THREADS
    return max(1, (n + threads - 1) // threads), threads


def device_empty(shape, dtype):
    return cuda.device_array(tuple(int(s) for s in shape), dtype=np.dtype(dtype))


_SCRATCH: dict = {}


def scratch(key: str, size: int, dtype=np.float64):
    """A flat device array of at least ``size`` items kept for reuse (grows only). Its contents live until a
    later launch with the same key: only for values that kernels consume within one call."""
    dtype = np.dtype(dtype)
    have = _SCRATCH.get((key, dtype))
    if have is None or have.size < size:
        have = cuda.device_array(max(size, 1), dtype)
        _SCRATCH[(key, dtype)] = have
    return have[:max(size, 1)]


def address(a) -> int:
    """Where a device array's data starts."""
    try:
        return a.__cuda_array_interface__["data"][0]
    except AttributeError:  # the simulator's device arrays wrap numpy arrays
        return a.__array_interface__["data"][0]


_OUTPUTS: dict = {}


def output_for(kind: str, sources, shape, dtype):
    """The output array of a ``kind`` of kernel applied to ``source``, made once and reused on later calls
    with the same source buffer (a layer's workspace, the same every step).

    Freeing device memory makes the GPU wait for all queued work, so kernels called every step must not
    allocate. Outputs are new on every call in the reference backend; here one lives until the same kernel
    is applied to the same buffers again, as a layer's workspaces do (the next step). The key holds every
    source's address, so two calls on different inputs never share an output."""
    sources = sources if isinstance(sources, (tuple, list)) else (sources,)
    key = (kind, tuple(address(s) for s in sources), tuple(int(s) for s in shape), np.dtype(dtype))
    out = _OUTPUTS.get(key)
    if out is None:
        out = _OUTPUTS[key] = cuda.device_array(key[2], key[3])
    return out


@cuda.jit(device=True)
def nhwc(i, h, w, c):
    """(image, row, column, channel) of item ``i`` of a C-ordered (N, h, w, c) array."""
    return i // (c * w * h), (i // (c * w)) % h, (i // c) % w, i % c


# ---------------------------------------------------------------- elementwise plumbing
@kernel
def _fill(a, value):
    i = cuda.grid(1)
    if i < a.size:
        a[i] = value


def fill(a, value):
    """Set every item of the contiguous device array ``a`` to ``value``."""
    flat = a.reshape(a.size)
    if flat.size:
        _fill[blocks(flat.size)](flat, value)
    return a


@kernel
def _copy2d(src, dst):
    i = cuda.grid(1)
    cols = dst.shape[1]
    if i < dst.shape[0] * cols:
        r = i // cols
        c = i - r * cols
        dst[r, c] = src[r, c]


def copy2d(src, dst):
    """dst[...] = src for 2-D device arrays of one shape (either may be a strided view)."""
    if dst.size:
        _copy2d[blocks(dst.size)](src, dst)
    return dst


def as2d(a):
    """A contiguous device array viewed as (rows, last axis); 0-d and 1-d as one row."""
    if a.ndim == 2:
        return a
    if a.ndim < 2:
        return a.reshape(1, a.size)
    last = a.shape[a.ndim - 1]  # (the simulator's shapes take no negative index)
    return a.reshape(a.size // last, last)


# ---------------------------------------------------------------- reductions
@kernel
def _column_partials(a, rows_per_part, partial):
    """partial[p, c] = sum of a[r, c] over the rows of part p. Blocks of 32 columns x 8 row lanes."""
    rows, cols = a.shape
    tx, ty = cuda.threadIdx.x, cuda.threadIdx.y
    c = cuda.blockIdx.x * 32 + tx
    p = cuda.blockIdx.y
    lanes = cuda.shared.array((8, 32), float64)
    s = 0.0
    lo = p * rows_per_part
    hi = min(rows, lo + rows_per_part)
    if c < cols:
        for r in range(lo + ty, hi, 8):
            s += a[r, c]
    lanes[ty, tx] = s
    cuda.syncthreads()
    if ty == 0 and c < cols:
        for k in range(1, 8):
            s += lanes[k, tx]
        partial[p, c] = s


@kernel
def _column_finish(partial, out, accumulate):
    c = cuda.grid(1)
    if c < out.size:
        s = 0.0
        for p in range(partial.shape[0]):
            s += partial[p, c]
        if accumulate:
            out[c] += s
        else:
            out[c] = s


def column_sums(a, out, accumulate=False):
    """out[c] = sum over rows of 2-D ``a`` (added to out with ``accumulate``), in a fixed order."""
    rows, cols = a.shape
    parts = max(1, min(CUDA_REDUCE_PARTS, math.ceil(rows / CUDA_REDUCE_PART_ROWS)))
    per_part = math.ceil(rows / parts) if rows else 0
    if cols and parts == 1 and not accumulate:  # one pass writes the sums
        _column_partials[(math.ceil(cols / 32), 1), (32, 8)](a, per_part, out.reshape(1, cols))
        return out
    partial = scratch("column_partials", parts * cols).reshape(parts, cols)
    if cols:
        _column_partials[(math.ceil(cols / 32), parts), (32, 8)](a, per_part, partial)
        _column_finish[blocks(cols)](partial, out, accumulate)
    return out


@cuda.jit(device=True)
def block_total(tree, t):
    """The sum of the 256 values in shared ``tree`` (thread t wrote tree[t]), added as a tree in a fixed
    order; every thread of the 256-thread block calls this and gets the sum."""
    cuda.syncthreads()
    step = 128
    while step > 0:
        if t < step:
            tree[t] += tree[t + step]
        cuda.syncthreads()
        step //= 2
    return tree[0]


@kernel
def _accumulate_sum(values, acc, index, weight):
    """acc[index] += weight * sum(values), by one block: strided sums, then a tree."""
    tree = cuda.shared.array(256, float64)
    t = cuda.threadIdx.x
    s = 0.0
    for i in range(t, values.size, 256):
        s += values[i]
    tree[t] = s
    total = block_total(tree, t)
    if t == 0:
        acc[index] += weight * total


def accumulate_sum(values, acc, index: int, weight: float = 1.0):
    _accumulate_sum[1, 256](values.reshape(values.size), acc, index, weight)
