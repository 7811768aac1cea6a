"""Numba twins of kerascli.ops.reference.pooling: same names, signatures and results."""

from __future__ import annotations

from numba import njit

from kerascli.ops.cpu.jit import opts, window_span


@njit(**opts)
def max_pool_forward(x, ph, pw, sh, sw, pad_top, pad_left, out_h, out_w, out, arg):
    n, h, w, c = x.shape
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
    return out, arg


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
