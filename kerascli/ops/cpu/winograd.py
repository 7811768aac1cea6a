"""Numba twins of kerascli.ops.reference.winograd: same names, signatures and results."""

from __future__ import annotations

from numba import njit

from kerascli.ops.cpu.jit import opts


# Winograd F(4x4, 3x3) transforms (the reference twin defines them). Each output row is its own loop: LLVM
# does not vectorise a loop that stores to several rows of one array (the distance between them is unknown),
# and the constants are of the arrays' type (an integer constant would turn float32 arithmetic into float64).
@njit(inline="always", **opts)
def _bt_rows(src, r, step, dst, d, dstep):
    """dst rows d + b*dstep (b < 6) = B^T applied down src rows r + s*step (s < 6)."""
    two, four, five = src.dtype.type(2), src.dtype.type(4), src.dtype.type(5)
    s1, s2, s3, s4, s5 = r + step, r + 2 * step, r + 3 * step, r + 4 * step, r + 5 * step
    for e in range(src.shape[1]):
        dst[d, e] = four * src[r, e] - five * src[s2, e] + src[s4, e]
    for e in range(src.shape[1]):
        dst[d + dstep, e] = src[s4, e] + src[s3, e] - four * (src[s1, e] + src[s2, e])
    for e in range(src.shape[1]):
        dst[d + 2 * dstep, e] = src[s4, e] - src[s3, e] + four * (src[s1, e] - src[s2, e])
    for e in range(src.shape[1]):
        dst[d + 3 * dstep, e] = src[s4, e] - src[s2, e] + two * (src[s3, e] - src[s1, e])
    for e in range(src.shape[1]):
        dst[d + 4 * dstep, e] = src[s4, e] - src[s2, e] + two * (src[s1, e] - src[s3, e])
    for e in range(src.shape[1]):
        dst[d + 5 * dstep, e] = four * src[s1, e] - five * src[s3, e] + src[s5, e]


@njit(inline="always", **opts)
def _at_rows(src, r, step, dst, d, dstep):
    """dst rows d + i*dstep (i < 4) = A^T applied down src rows r + a*step (a < 6)."""
    two, four, eight = src.dtype.type(2), src.dtype.type(4), src.dtype.type(8)
    s1, s2, s3, s4, s5 = r + step, r + 2 * step, r + 3 * step, r + 4 * step, r + 5 * step
    for e in range(src.shape[1]):
        dst[d, e] = src[r, e] + src[s1, e] + src[s2, e] + src[s3, e] + src[s4, e]
    for e in range(src.shape[1]):
        dst[d + dstep, e] = src[s1, e] - src[s2, e] + two * (src[s3, e] - src[s4, e])
    for e in range(src.shape[1]):
        dst[d + 2 * dstep, e] = src[s1, e] + src[s2, e] + four * (src[s3, e] + src[s4, e])
    for e in range(src.shape[1]):
        dst[d + 3 * dstep, e] = src[s1, e] - src[s2, e] + eight * (src[s3, e] - src[s4, e]) + src[s5, e]


@njit(**opts)
def _pad_transposed(x, top, left, out):
    """x (N, H, W, C) into out (rows, columns, N, C), zero around it."""
    n, h, w, c = x.shape
    rows, columns = out.shape[0], out.shape[1]
    pixels = out.reshape(rows, columns, n * c)
    for y in range(rows):
        for col in range(columns):
            dst = pixels[y, col]
            if 0 <= y - top < h and 0 <= col - left < w:
                for img in range(n):
                    src = x[img, y - top, col - left]
                    for ch in range(c):
                        dst[img * c + ch] = src[ch]
            else:
                for e in range(n * c):
                    dst[e] = 0
    return out


@njit(**opts)
def winograd_input_4x4(x, pad_top, pad_left, padded, down, v):
    """The images padded and laid out (rows, columns, N, C) first; then down the rows of a row of tiles (runs
    of columns*N*C values), then along each tile's columns (runs of N*C values)."""
    n, _, _, c = x.shape
    _, tiles_h, tiles_w, _, _ = v.shape
    _pad_transposed(x, pad_top, pad_left, padded)
    width = padded.shape[1]
    tiles = tiles_h * tiles_w
    image_rows = padded.reshape(padded.shape[0], width * n * c)
    rows_down = down.reshape(6, width * n * c)
    columns_down = down.reshape(6 * width, n * c)
    out = v.reshape(36 * tiles, n * c)
    for ty in range(tiles_h):
        _bt_rows(image_rows, 4 * ty, 1, rows_down, 0, 1)
        for tx in range(tiles_w):
            for a in range(6):
                _bt_rows(columns_down, a * width + 4 * tx, 1, out, 6 * a * tiles + ty * tiles_w + tx, tiles)
    return v


@njit(**opts)
def winograd_output_4x4(m, scratch, y):
    """Across the tile's rows of products first, then along the rows that gives, through ``scratch``."""
    _, tiles_h, tiles_w, n, k = m.shape
    tiles = tiles_h * tiles_w
    products = m.reshape(36 * tiles, n * k)
    across = scratch.reshape(24, n * k)
    out = y.reshape(y.shape[0] * y.shape[1], n * k)
    for ty in range(tiles_h):
        for tx in range(tiles_w):
            tile = ty * tiles_w + tx
            for b in range(6):
                _at_rows(products, b * tiles + tile, 6 * tiles, across, b, 6)
            for i in range(4):
                _at_rows(across, 6 * i, 1, out, (4 * ty + i) * 4 * tiles_w + 4 * tx, 1)
    return y
