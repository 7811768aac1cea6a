"""CUDA twins of kerascli.ops.reference.winograd."""

from __future__ import annotations

import numpy as np
from numba import cuda

from kerascli.ops.cuda.kernel import kernel
from kerascli.ops.cuda.launch import blocks


# Winograd F(4x4, 3x3) transforms: one thread per (tile, image, channel), the whole 6x6 tile in registers.
# The transforms' tuples are unpacked, never indexed by a loop variable: with float32 inputs their items
# can differ in type (an integer factor makes float64), and Numba indexes only uniform tuples at run time.
@cuda.jit(device=True)
def _bt(d0, d1, d2, d3, d4, d5):
    return (4 * d0 - 5 * d2 + d4, d4 + d3 - 4 * (d1 + d2), d4 - d3 + 4 * (d1 - d2), d4 - d2 + 2 * (d3 - d1),
            d4 - d2 + 2 * (d1 - d3), 4 * d1 - 5 * d3 + d5)


@cuda.jit(device=True)
def _at(m0, m1, m2, m3, m4, m5):
    return m0 + m1 + m2 + m3 + m4, m1 - m2 + 2 * (m3 - m4), m1 + m2 + 4 * (m3 + m4), m1 - m2 + 8 * (m3 - m4) + m5


@cuda.jit(device=True)
def _padded_value(x, img, y, col, ch):
    if 0 <= y < x.shape[1] and 0 <= col < x.shape[2]:
        return x[img, y, col, ch]
    return 0


@cuda.jit(device=True)
def _tile_place(i, tiles_w, n, c):
    """(tile row, tile column, image, channel) of thread ``i`` over (tiles_h, tiles_w, n, c)."""
    return i // (c * n * tiles_w), (i // (c * n)) % tiles_w, (i // c) % n, i % c


@kernel
def _winograd_input(x, pad_top, pad_left, v):
    i = cuda.grid(1)
    _, tiles_h, tiles_w, n, c = v.shape
    if i < tiles_h * tiles_w * n * c:
        ty, tx, img, ch = _tile_place(i, tiles_w, n, c)
        y0, x0 = 4 * ty - pad_top, 4 * tx - pad_left
        down = cuda.local.array(36, np.float64)  # down[6 * a + s]: B^T down column s
        for s in range(6):
            t = _bt(_padded_value(x, img, y0, x0 + s, ch), _padded_value(x, img, y0 + 1, x0 + s, ch),
                    _padded_value(x, img, y0 + 2, x0 + s, ch), _padded_value(x, img, y0 + 3, x0 + s, ch),
                    _padded_value(x, img, y0 + 4, x0 + s, ch), _padded_value(x, img, y0 + 5, x0 + s, ch))
            t0, t1, t2, t3, t4, t5 = t
            down[s], down[6 + s], down[12 + s], down[18 + s], down[24 + s], down[30 + s] = t0, t1, t2, t3, t4, t5
        for a in range(6):
            r0, r1, r2, r3, r4, r5 = _bt(down[6 * a], down[6 * a + 1], down[6 * a + 2], down[6 * a + 3],
                                         down[6 * a + 4], down[6 * a + 5])
            v[6 * a, ty, tx, img, ch] = r0
            v[6 * a + 1, ty, tx, img, ch] = r1
            v[6 * a + 2, ty, tx, img, ch] = r2
            v[6 * a + 3, ty, tx, img, ch] = r3
            v[6 * a + 4, ty, tx, img, ch] = r4
            v[6 * a + 5, ty, tx, img, ch] = r5


def winograd_input_4x4(x, pad_top, pad_left, padded, down, v):
    if v.size:
        _winograd_input[blocks(v.size // 36)](x, pad_top, pad_left, v)
    return v


@kernel
def _winograd_output(m, y):
    i = cuda.grid(1)
    _, tiles_h, tiles_w, n, k = m.shape
    if i < tiles_h * tiles_w * n * k:
        ty, tx, img, f = _tile_place(i, tiles_w, n, k)
        across = cuda.local.array(24, np.float64)  # across[6 * i + b]: A^T across product column b
        for b in range(6):
            t = _at(m[b, ty, tx, img, f], m[6 + b, ty, tx, img, f], m[12 + b, ty, tx, img, f],
                    m[18 + b, ty, tx, img, f], m[24 + b, ty, tx, img, f], m[30 + b, ty, tx, img, f])
            t0, t1, t2, t3 = t
            across[b], across[6 + b], across[12 + b], across[18 + b] = t0, t1, t2, t3
        for r in range(4):
            o0, o1, o2, o3 = _at(across[6 * r], across[6 * r + 1], across[6 * r + 2], across[6 * r + 3],
                                 across[6 * r + 4], across[6 * r + 5])
            y[4 * ty + r, 4 * tx, img, f] = o0
            y[4 * ty + r, 4 * tx + 1, img, f] = o1
            y[4 * ty + r, 4 * tx + 2, img, f] = o2
            y[4 * ty + r, 4 * tx + 3, img, f] = o3


def winograd_output_4x4(m, scratch, y):
    if m.size:
        _winograd_output[blocks(m.size // 36)](m, y)
    return y
