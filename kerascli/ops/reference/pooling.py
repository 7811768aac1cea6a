"""Max and average pooling, channels-last, Keras padding rules."""

from __future__ import annotations

import numpy as np


def max_pool_forward(x, ph, pw, sh, sw, pad_top, pad_left, out_h, out_w, out, arg):
    """Max over each window (padding never wins); ``arg`` gets the winner's place i*pw+j in its window (an
    empty ``arg``: the places are not kept, as in inference)."""
    n, h, w, c = x.shape
    kept = arg
    if arg.size == 0:
        arg = np.empty(out.shape, np.int32)
    out[...] = -np.inf
    arg[...] = -1
    for oy in range(out_h):
        for ox in range(out_w):
            for i in range(ph):
                yy = oy * sh + i - pad_top
                if not 0 <= yy < h:
                    continue
                for j in range(pw):
                    xx = ox * sw + j - pad_left
                    if not 0 <= xx < w:
                        continue
                    v = x[:, yy, xx, :]
                    better = (arg[:, oy, ox, :] < 0) | (v > out[:, oy, ox, :])
                    out[:, oy, ox, :] = np.where(better, v, out[:, oy, ox, :])
                    arg[:, oy, ox, :] = np.where(better, i * pw + j, arg[:, oy, ox, :])
    return out, kept


def max_pool_backward(dy, arg, ph, pw, sh, sw, pad_top, pad_left, out):
    """Route each output gradient to the input its window's max came from; ``out`` is (N, H, W, C)."""
    n, out_h, out_w, c = dy.shape
    out[...] = 0
    for oy in range(out_h):
        for ox in range(out_w):
            for k in range(ph * pw):
                yy = oy * sh + k // pw - pad_top
                xx = ox * sw + k % pw - pad_left
                hit = arg[:, oy, ox, :] == k
                if hit.any():
                    out[:, yy, xx, :] += np.where(hit, dy[:, oy, ox, :], 0)
    return out


def _window_counts(h, w, ph, pw, sh, sw, pad_top, pad_left, out_h, out_w):
    counts = np.zeros((out_h, out_w))
    for oy in range(out_h):
        ys = [oy * sh + i - pad_top for i in range(ph)]
        ny = sum(0 <= v < h for v in ys)
        for ox in range(out_w):
            xs = [ox * sw + j - pad_left for j in range(pw)]
            counts[oy, ox] = ny * sum(0 <= v < w for v in xs)
    return counts


def avg_pool_forward(x, ph, pw, sh, sw, pad_top, pad_left, out_h, out_w, out):
    """Mean over each window; padded positions are not counted (as in Keras)."""
    n, h, w, c = x.shape
    total = np.zeros((n, out_h, out_w, c), dtype=x.dtype)
    for oy in range(out_h):
        for ox in range(out_w):
            for i in range(ph):
                yy = oy * sh + i - pad_top
                for j in range(pw):
                    xx = ox * sw + j - pad_left
                    if 0 <= yy < h and 0 <= xx < w:
                        total[:, oy, ox, :] += x[:, yy, xx, :]
    counts = _window_counts(h, w, ph, pw, sh, sw, pad_top, pad_left, out_h, out_w)
    out[...] = total / counts[None, :, :, None]
    return out


def avg_pool_backward(dy, ph, pw, sh, sw, pad_top, pad_left, out):
    n, out_h, out_w, c = dy.shape
    h, w = out.shape[1], out.shape[2]
    counts = _window_counts(h, w, ph, pw, sh, sw, pad_top, pad_left, out_h, out_w)
    share = dy / counts[None, :, :, None]
    out[...] = 0
    for oy in range(out_h):
        for ox in range(out_w):
            for i in range(ph):
                yy = oy * sh + i - pad_top
                for j in range(pw):
                    xx = ox * sw + j - pad_left
                    if 0 <= yy < h and 0 <= xx < w:
                        out[:, yy, xx, :] += share[:, oy, ox, :]
    return out


def global_max_pool(x, out, arg):
    """x (N, P, C): out[n, c] = the maximum over the P positions, arg[n, c] its position (the first of ties;
    NaN wins, as numpy's argmax)."""
    where = x.argmax(axis=1)
    arg[...] = where
    out[...] = np.take_along_axis(x, where[:, None], axis=1)[:, 0]
    return out, arg
