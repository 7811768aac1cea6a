"""CUDA twins of kerascli.ops.reference.pooling: one thread per output (forward) or per input (backward:
each input gathers from the windows that cover it, so nothing is added concurrently)."""

from __future__ import annotations

import math

from numba import cuda

from kerascli.ops.cuda.kernel import kernel
from kerascli.ops.cuda.launch import blocks, nhwc


@kernel
def _max_forward(x, ph, pw, sh, sw, pad_top, pad_left, out, arg):
    i = cuda.grid(1)
    n, out_h, out_w, c = out.shape
    h, w = x.shape[1], x.shape[2]
    if i < out.size:
        img, oy, ox, ch = nhwc(i, out_h, out_w, c)
        best = -1
        for a in range(ph):
            yy = oy * sh + a - pad_top
            if 0 <= yy < h:
                for b in range(pw):
                    xx = ox * sw + b - pad_left
                    if 0 <= xx < w:
                        v = x[img, yy, xx, ch]
                        if best < 0 or v > out[img, oy, ox, ch]:
                            out[img, oy, ox, ch] = v
                            best = a * pw + b
        if best < 0:
            out[img, oy, ox, ch] = -math.inf  # no input in the window (cannot happen with Keras' padding)
        if arg.size > 0:  # empty: the places are not kept
            arg[img, oy, ox, ch] = best


def max_pool_forward(x, ph, pw, sh, sw, pad_top, pad_left, out_h, out_w, out, arg):
    if out.size:
        _max_forward[blocks(out.size)](x, ph, pw, sh, sw, pad_top, pad_left, out, arg)
    return out, arg


@cuda.jit(device=True)
def _first_window(pos, pad, k, s):
    """The first output index whose window (size k, stride s) covers input ``pos`` (may be past the last)."""
    lo = pos + pad - k + 1
    return 0 if lo <= 0 else (lo + s - 1) // s


@kernel
def _max_backward(dy, arg, ph, pw, sh, sw, pad_top, pad_left, out):
    i = cuda.grid(1)
    n, h, w, c = out.shape
    out_h, out_w = dy.shape[1], dy.shape[2]
    if i < out.size:
        img, y, x, ch = nhwc(i, h, w, c)
        s = 0.0
        for oy in range(_first_window(y, pad_top, ph, sh), min(out_h, (y + pad_top) // sh + 1)):
            a = y + pad_top - oy * sh
            for ox in range(_first_window(x, pad_left, pw, sw), min(out_w, (x + pad_left) // sw + 1)):
                b = x + pad_left - ox * sw
                if arg[img, oy, ox, ch] == a * pw + b:
                    s += dy[img, oy, ox, ch]
        out[img, y, x, ch] = s


def max_pool_backward(dy, arg, ph, pw, sh, sw, pad_top, pad_left, out):
    if out.size:
        _max_backward[blocks(out.size)](dy, arg, ph, pw, sh, sw, pad_top, pad_left, out)
    return out


@cuda.jit(device=True)
def _window_count(oy, ox, h, w, ph, pw, sh, sw, pad_top, pad_left):
    ny = min(oy * sh - pad_top + ph, h) - max(oy * sh - pad_top, 0)
    nx = min(ox * sw - pad_left + pw, w) - max(ox * sw - pad_left, 0)
    return max(ny, 0) * max(nx, 0)


@kernel
def _avg_forward(x, ph, pw, sh, sw, pad_top, pad_left, out):
    i = cuda.grid(1)
    n, out_h, out_w, c = out.shape
    h, w = x.shape[1], x.shape[2]
    if i < out.size:
        img, oy, ox, ch = nhwc(i, out_h, out_w, c)
        s = 0.0
        for a in range(ph):
            yy = oy * sh + a - pad_top
            if 0 <= yy < h:
                for b in range(pw):
                    xx = ox * sw + b - pad_left
                    if 0 <= xx < w:
                        s += x[img, yy, xx, ch]
        out[img, oy, ox, ch] = s / _window_count(oy, ox, h, w, ph, pw, sh, sw, pad_top, pad_left)


def avg_pool_forward(x, ph, pw, sh, sw, pad_top, pad_left, out_h, out_w, out):
    if out.size:
        _avg_forward[blocks(out.size)](x, ph, pw, sh, sw, pad_top, pad_left, out)
    return out


@kernel
def _avg_backward(dy, ph, pw, sh, sw, pad_top, pad_left, out):
    i = cuda.grid(1)
    n, h, w, c = out.shape
    out_h, out_w = dy.shape[1], dy.shape[2]
    if i < out.size:
        img, y, x, ch = nhwc(i, h, w, c)
        s = 0.0
        for oy in range(_first_window(y, pad_top, ph, sh), min(out_h, (y + pad_top) // sh + 1)):
            for ox in range(_first_window(x, pad_left, pw, sw), min(out_w, (x + pad_left) // sw + 1)):
                s += dy[img, oy, ox, ch] / _window_count(oy, ox, h, w, ph, pw, sh, sw, pad_top, pad_left)
        out[img, y, x, ch] = s


def avg_pool_backward(dy, ph, pw, sh, sw, pad_top, pad_left, out):
    if out.size:
        _avg_backward[blocks(out.size)](dy, ph, pw, sh, sw, pad_top, pad_left, out)
    return out


@kernel
def _global_max(x, out, arg):
    i = cuda.grid(1)
    n, positions, c = x.shape
    if i < n * c:
        b, f = i // c, i % c
        m, where = x[b, 0, f], 0
        for p in range(1, positions):
            v = x[b, p, f]
            if v > m or (v != v and m == m):
                m, where = v, p
        out[b, f] = m
        arg[b, f] = where


def global_max_pool(x, out, arg):
    if out.size:
        _global_max[blocks(out.size)](x, out, arg)
    return out, arg
