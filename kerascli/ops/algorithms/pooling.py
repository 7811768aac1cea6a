"""2-D max and average pooling over a batch, images split across threads."""

from __future__ import annotations

import numpy as np


def max_pool2d_forward(ops, x, window, out_h, out_w, out, arg):
    """``window`` is (ph, pw, sh, sw, pad_top, pad_left); ``arg`` records each window's argmax (unless it is
    empty)."""
    x = np.ascontiguousarray(x)
    ops.parallel(lambda i, lo, hi: ops.max_pool_forward(x[lo:hi], *window, out_h, out_w, out[lo:hi], arg[lo:hi]),
                 len(x), x.size)
    return out


def max_pool2d_backward(ops, dy, arg, window, dx):
    dy = np.ascontiguousarray(dy)
    ops.parallel(lambda i, lo, hi: ops.max_pool_backward(dy[lo:hi], arg[lo:hi], *window, dx[lo:hi]), len(dy), dx.size)
    return dx


def avg_pool2d_forward(ops, x, window, out_h, out_w, out):
    x = np.ascontiguousarray(x)
    ops.parallel(lambda i, lo, hi: ops.avg_pool_forward(x[lo:hi], *window, out_h, out_w, out[lo:hi]), len(x), x.size)
    return out


def avg_pool2d_backward(ops, dy, window, dx):
    dy = np.ascontiguousarray(dy)
    ops.parallel(lambda i, lo, hi: ops.avg_pool_backward(dy[lo:hi], *window, dx[lo:hi]), len(dy), dx.size)
    return dx
