"""Numba twins of kerascli.ops.reference.pooling: same names, signatures and results."""

from __future__ import annotations

import numpy as np
from numba import njit

from kerascli.ops.cpu.jit import opts, window_span


@njit(**opts)
def _max_pool_2x2(x, out, arg):
    """2x2 windows that tile the image (Keras' default pooling): the four values of a pixel's window in
    one channel loop (the general loop runs four, each with its setup: 2.3x slower). The same order of
    strict comparisons as the general case, so the same winners."""
    n, out_h, out_w, c = out.shape
    for b in range(n):
        for oy in range(out_h):
            top, bottom = x[b, 2 * oy], x[b, 2 * oy + 1]
            best_row, where_row = out[b, oy], arg[b, oy]
            for ox in range(out_w):
                v0, v1, v2, v3 = top[2 * ox], top[2 * ox + 1], bottom[2 * ox], bottom[2 * ox + 1]
                best, where = best_row[ox], where_row[ox]
                for ch in range(c):
                    m, k = v0[ch], 0
                    better = v1[ch] > m
                    m, k = (v1[ch], 1) if better else (m, k)
                    better = v2[ch] > m
                    m, k = (v2[ch], 2) if better else (m, k)
                    better = v3[ch] > m
                    m, k = (v3[ch], 3) if better else (m, k)
                    best[ch] = m
                    where[ch] = k
    return out, arg


@njit(**opts)
def _max_pool_2x2_values(x, out):
    """The maxima of 2x2 windows that tile the image, their places not kept: one loop per output row of
    channels, which vectorises (keeping the places does not)."""
    n, out_h, out_w, c = out.shape
    for b in range(n):
        for oy in range(out_h):
            top, bottom = x[b, 2 * oy], x[b, 2 * oy + 1]
            best_row = out[b, oy]
            for ox in range(out_w):
                v0, v1, v2, v3 = top[2 * ox], top[2 * ox + 1], bottom[2 * ox], bottom[2 * ox + 1]
                best = best_row[ox]
                for ch in range(c):
                    m = v0[ch]
                    m = v1[ch] if v1[ch] > m else m
                    m = v2[ch] if v2[ch] > m else m
                    best[ch] = v3[ch] if v3[ch] > m else m
    return out


@njit(**opts)
def max_pool_forward(x, ph, pw, sh, sw, pad_top, pad_left, out_h, out_w, out, arg):
    n, h, w, c = x.shape
    inside = 2 * out_h <= h and 2 * out_w <= w  # no window reaches into padding (below or right)
    if ph == 2 and pw == 2 and sh == 2 and sw == 2 and pad_top == 0 and pad_left == 0 and inside:
        if arg.size == 0:
            _max_pool_2x2_values(x, out)
            return out, arg
        return _max_pool_2x2(x, out, arg)
    kept = arg
    if arg.size == 0:  # places not kept (inference): the general loop records them all the same
        arg = np.empty(out.shape, np.int32)
    for b in range(n):
        for oy in range(out_h):
            y0 = oy * sh - pad_top
            i0, i1 = window_span(y0, ph, h)
            for ox in range(out_w):
                x0 = ox * sw - pad_left
                j0, j1 = window_span(x0, pw, w)
                best = out[b, oy, ox]
                where = arg[b, oy, ox]
                # the first value inside the image starts the window, so NaN and -inf propagate
                first = x[b, y0 + i0, x0 + j0]
                for ch in range(c):
                    best[ch] = first[ch]
                    where[ch] = i0 * pw + j0
                for i in range(i0, i1):
                    for j in range(j0, j1):
                        if i == i0 and j == j0:
                            continue
                        k = i * pw + j
                        v = x[b, y0 + i, x0 + j]
                        for ch in range(c):  # selects, not branches: the channel loop vectorises
                            better = v[ch] > best[ch]
                            best[ch] = v[ch] if better else best[ch]
                            where[ch] = k if better else where[ch]
    return out, kept


@njit(**opts)
def max_pool_backward(dy, arg, ph, pw, sh, sw, pad_top, pad_left, out):
    n, out_h, out_w, c = dy.shape
    h, w = out.shape[1], out.shape[2]
    if sh != ph or sw != pw:  # overlapping or gapped windows: clear, then add each gradient at its max
        for b in range(n):
            out[b] = 0
            for oy in range(out_h):
                for ox in range(out_w):
                    for ch in range(c):
                        k = arg[b, oy, ox, ch]
                        out[b, oy * sh - pad_top + k // pw, ox * sw - pad_left + k % pw, ch] += dy[b, oy, ox, ch]
        return out
    # Windows tile the image: every input lies in at most one window and is written exactly once
    # (the gradient where it was the max, else 0), vectorised over channels; a scatter after
    # clearing the image was 5x slower.
    covered_h = min(h, out_h * sh - pad_top)
    covered_w = min(w, out_w * sw - pad_left)
    for b in range(n):
        out[b, covered_h:] = 0
        out[b, :covered_h, covered_w:] = 0
        for oy in range(out_h):
            y0 = oy * sh - pad_top
            i0, i1 = window_span(y0, ph, h)
            for ox in range(out_w):
                x0 = ox * sw - pad_left
                j0, j1 = window_span(x0, pw, w)
                g = dy[b, oy, ox]
                where = arg[b, oy, ox]
                for i in range(i0, i1):
                    for j in range(j0, j1):
                        k = i * pw + j
                        dst = out[b, y0 + i, x0 + j]
                        for ch in range(c):
                            dst[ch] = g[ch] if where[ch] == k else 0
    return out


@njit(**opts)
def _window_count(oy, ox, h, w, ph, pw, sh, sw, pad_top, pad_left):
    y0 = oy * sh - pad_top
    x0 = ox * sw - pad_left
    ny = min(y0 + ph, h) - max(y0, 0)
    nx = min(x0 + pw, w) - max(x0, 0)
    return max(ny, 0) * max(nx, 0)


@njit(**opts)
def avg_pool_forward(x, ph, pw, sh, sw, pad_top, pad_left, out_h, out_w, out):
    n, h, w, c = x.shape
    for b in range(n):
        out[b] = 0
        for oy in range(out_h):
            for ox in range(out_w):
                for i in range(ph):
                    yy = oy * sh + i - pad_top
                    if yy < 0 or yy >= h:
                        continue
                    for j in range(pw):
                        xx = ox * sw + j - pad_left
                        if xx < 0 or xx >= w:
                            continue
                        for ch in range(c):
                            out[b, oy, ox, ch] += x[b, yy, xx, ch]
                inv = 1.0 / _window_count(oy, ox, h, w, ph, pw, sh, sw, pad_top, pad_left)
                for ch in range(c):
                    out[b, oy, ox, ch] *= inv
    return out


@njit(**opts)
def avg_pool_backward(dy, ph, pw, sh, sw, pad_top, pad_left, out):
    n, out_h, out_w, c = dy.shape
    h, w = out.shape[1], out.shape[2]
    for b in range(n):
        out[b] = 0
        for oy in range(out_h):
            for ox in range(out_w):
                inv = 1.0 / _window_count(oy, ox, h, w, ph, pw, sh, sw, pad_top, pad_left)
                for i in range(ph):
                    yy = oy * sh + i - pad_top
                    if yy < 0 or yy >= h:
                        continue
                    for j in range(pw):
                        xx = ox * sw + j - pad_left
                        if xx < 0 or xx >= w:
                            continue
                        for ch in range(c):
                            out[b, yy, xx, ch] += dy[b, oy, ox, ch] * inv
    return out


@njit(**opts)
def global_max_pool(x, out, arg):
    n, positions, c = x.shape
    for b in range(n):
        best, where = out[b], arg[b]
        for f in range(c):
            best[f] = x[b, 0, f]
            where[f] = 0
        for p in range(1, positions):
            row = x[b, p]
            for f in range(c):
                v, m = row[f], best[f]
                if v > m or (v != v and m == m):  # NaN wins, as numpy's argmax: the first NaN
                    best[f] = v
                    where[f] = p
    return out, arg
