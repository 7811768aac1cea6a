"""Winograd F(4x4, 3x3) transforms (the definition the cpu and cuda twins follow); the 36 GEMMs between them
and the kernel's own transform are in kerascli.ops.algorithms.conv."""

from __future__ import annotations

import numpy as np

# Winograd F(4x4, 3x3) (Lavin and Gray, 2016, points 0, +-1, +-2): a 6x6 input tile d and a 3x3 kernel g give
# the 4x4 output tile A^T [(G g G^T) * (B^T d B)] A, 36 multiplications where the direct sum takes 144.
# Summed over channels, the products are 36 GEMMs (algorithms/conv.py). The transforms work on images laid
# out (height, width, batch, channels), so that their innermost loops run over batch and channels together.
WINOGRAD_BT = np.array([[4, 0, -5, 0, 1, 0], [0, -4, -4, 1, 1, 0], [0, 4, -4, -1, 1, 0], [0, -2, -1, 2, 1, 0],
                        [0, 2, -1, -2, 1, 0], [0, 4, 0, -5, 0, 1]])
WINOGRAD_AT = np.array([[1, 1, 1, 1, 1, 0], [0, 1, -1, 2, -2, 0], [0, 1, 1, 4, 4, 0], [0, 1, -1, 8, -8, 1]])
WINOGRAD_G = np.array([[1 / 4, 0, 0], [-1 / 6, -1 / 6, -1 / 6], [-1 / 6, 1 / 6, -1 / 6], [1 / 24, 1 / 12, 1 / 6],
                       [1 / 24, -1 / 12, 1 / 6], [0, 0, 1]])


def winograd_input_4x4(x, pad_top, pad_left, padded, down, v):
    """B^T d B of each 6x6 tile d of the images ``x`` (N, H, W, C) zero-padded by ``pad_top`` rows and
    ``pad_left`` columns before them (and as many as whole tiles need after), tile (ty, tx) starting at row
    4ty and column 4tx, into ``v`` (36, tiles_h, tiles_w, N, C) (element 6a+b of the tile first).
    ``padded`` (4*tiles_h + 2, 4*tiles_w + 2, N, C) and ``down`` (6, 4*tiles_w + 2, N, C) are scratch
    buffers the backends may use."""
    n, h, w, c = x.shape
    tiles_h, tiles_w = v.shape[1], v.shape[2]
    image = np.zeros((4 * tiles_h + 2, 4 * tiles_w + 2, n, c), x.dtype)
    image[pad_top:pad_top + h, pad_left:pad_left + w] = x.transpose(1, 2, 0, 3)
    tiles = np.lib.stride_tricks.sliding_window_view(image, (6, 6), axis=(0, 1))[::4, ::4]
    bt = WINOGRAD_BT.astype(x.dtype)
    v[...] = np.einsum("ar,bs,ytncrs->abytnc", bt, bt, tiles).reshape(v.shape)
    return v


def winograd_output_4x4(m, scratch, y):
    """A^T M A of each tile's 36 products ``m`` (36, tiles_h, tiles_w, N, K): the 4x4 output tiles into ``y``
    (4*tiles_h, 4*tiles_w, N, K). ``scratch`` is a (4, 6, N, K) buffer the backends may use."""
    _, tiles_h, tiles_w, n, k = m.shape
    at = WINOGRAD_AT.astype(m.dtype)
    tiles = np.einsum("ia,jb,abytnk->yitjnk", at, at, m.reshape(6, 6, tiles_h, tiles_w, n, k))
    y[...] = tiles.reshape(y.shape)
    return y
