"""CUDA twins of kerascli.ops.reference.winograd."""

from __future__ import annotations

import numpy as np
from numba import cuda

from kerascli.ops.cuda.kernel import kernel
from kerascli.ops.cuda.launch import blocks


# Winograd F(4x4, 3x3) transforms: one thread per (tile, image, channel), the whole 6x6 tile in registers.
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
            for a in range(6):
                down[6 * a + s] = t[a]
        for a in range(6):
            r = _bt(down[6 * a], down[6 * a + 1], down[6 * a + 2], down[6 * a + 3], down[6 * a + 4],
                    down[6 * a + 5])
            for b in range(6):
                v[6 * a + b, ty, tx, img, ch] = r[b]


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
            for r in range(4):
                across[6 * r + b] = t[r]
        for r in range(4):
            o = _at(across[6 * r], across[6 * r + 1], across[6 * r + 2], across[6 * r + 3], across[6 * r + 4],
                    across[6 * r + 5])
            for j in range(4):
                y[4 * ty + r, 4 * tx + j, img, f] = o[j]


def winograd_output_4x4(m, scratch, y):
    if m.size:
        _winograd_output[blocks(m.size // 36)](m, y)
    return y
