"""Convolution windows, channels-last: im2col/col2im, direct and fused convolution + max pooling, the
sparse backward from the nonzero entries of an output gradient."""

from __future__ import annotations

import numpy as np

from kerascli.ops.contract import LINEAR
from kerascli.ops.reference.activations import (
    bias_activation_backward,
    bias_activation_forward,
)
from kerascli.ops.reference.pooling import max_pool_backward, max_pool_forward

# Window kernels write into ``out`` (and ``arg``), arrays the caller allocates
# once and reuses, and return them.


def im2col(x, kh, kw, sh, sw, pad_top, pad_left, out_h, out_w, out):
    """Patches of channels-last ``x`` as rows of ``out`` (N*out_h*out_w, kh*kw*C), ordered (i, j, c)."""
    n, h, w, c = x.shape
    cols = np.zeros((n, out_h, out_w, kh, kw, c), dtype=x.dtype)
    for i in range(kh):
        for j in range(kw):
            for oy in range(out_h):
                y = oy * sh + i - pad_top
                if not 0 <= y < h:
                    continue
                for ox in range(out_w):
                    xx = ox * sw + j - pad_left
                    if 0 <= xx < w:
                        cols[:, oy, ox, i, j, :] = x[:, y, xx, :]
    out[...] = cols.reshape(n * out_h * out_w, kh * kw * c)
    return out


def im2col_transposed(x, kh, kw, sh, sw, pad_top, pad_left, out_h, out_w, out):
    """``im2col``'s patches as columns: ``out`` is (kh*kw*C, N*out_h*out_w)."""
    n, _, _, c = x.shape
    out[...] = im2col(x, kh, kw, sh, sw, pad_top, pad_left, out_h, out_w,
                      np.empty((n * out_h * out_w, kh * kw * c), x.dtype)).T
    return out


def col2im(cols, kh, kw, sh, sw, pad_top, pad_left, out_h, out_w, out):
    """Adjoint of im2col: scatter-add patch rows into the (N, H, W, C) image ``out``."""
    n, h, w, c = out.shape
    cols = cols.reshape(n, out_h, out_w, kh, kw, c)
    out[...] = 0
    for i in range(kh):
        for j in range(kw):
            for oy in range(out_h):
                y = oy * sh + i - pad_top
                if not 0 <= y < h:
                    continue
                for ox in range(out_w):
                    xx = ox * sw + j - pad_left
                    if 0 <= xx < w:
                        out[:, y, xx, :] += cols[:, oy, ox, i, j, :]
    return out


def conv2d_direct(x, kernel, bias, act, sh, sw, pad_top, pad_left, out_h, out_w, out):
    """act(conv(x, kernel) + bias) into ``out`` (N, out_h, out_w, filters); kernel (kh, kw, C, filters)."""
    kh, kw, c, filters = kernel.shape
    n = x.shape[0]
    cols = im2col(x, kh, kw, sh, sw, pad_top, pad_left, out_h, out_w,
                  np.empty((n * out_h * out_w, kh * kw * c), x.dtype))
    z = cols @ kernel.reshape(-1, filters)
    out[...] = bias_activation_forward(z, bias, act, z).reshape(n, out_h, out_w, filters)
    return out


def conv2d_3x3_maxpool_2x2(x, kernel, bias, act, pad_top, pad_left, out):
    """max_pool_2x2(act(conv(x, kernel) + bias)) into ``out`` (N, pool_h, pool_w, filters) for single-channel
    images ``x`` (N, H, W, 1), a (3, 3, 1, filters) kernel at stride 1 and 2x2 pooling windows that tile the
    convolution's output (a grey first layer in inference; ``act`` increasing, as graph/fusion.py checks)."""
    n, pool_h, pool_w, filters = out.shape
    z = conv2d_direct(x, kernel, bias, act, 1, 1, pad_top, pad_left, 2 * pool_h, 2 * pool_w,
                      np.empty((n, 2 * pool_h, 2 * pool_w, filters), x.dtype))
    max_pool_forward(z, 2, 2, 2, 2, 0, 0, pool_h, pool_w, out, np.empty((0, 0, 0, 0), np.int32))
    return out


def conv2d_direct_backward(x, dy, y, act, kh, kw, sh, sw, pad_top, pad_left):
    """Kernel gradient (kh, kw, C, filters) and bias gradient of ``conv2d_direct`` from the gradient
    ``dy`` after activation ``act`` and that activation's output ``y``, summed over the batch."""
    n, _, _, c = x.shape
    _, out_h, out_w, filters = dy.shape
    dz, db = bias_activation_backward(dy.reshape(-1, filters), y.reshape(-1, filters), act,
                                      np.empty((dy.size // filters, filters), dy.dtype))
    cols = im2col(x, kh, kw, sh, sw, pad_top, pad_left, out_h, out_w,
                  np.empty((n * out_h * out_w, kh * kw * c), x.dtype))
    return (cols.T @ dz).reshape(kh, kw, c, filters), db


def conv2d_direct_maxpool_backward(x, dy, pooled, arg, act, kh, kw, sh, sw, pad_top, pad_left, ph, pw):
    """Kernel and bias gradients of maxpool(act(conv(x) + bias)) over (ph, pw) windows that tile the
    convolution's output (kerascli.ops.algorithms.conv.conv2d_maxpool_forward) from the gradient ``dy`` of
    that pooled output ``pooled``, whose windows' winners ``arg`` are as in ``max_pool_forward``."""
    n, pool_h, pool_w, filters = dy.shape
    dz, _ = bias_activation_backward(dy.reshape(-1, filters), pooled.reshape(-1, filters), act,
                                     np.empty((dy.size // filters, filters), dy.dtype))
    d = max_pool_backward(dz.reshape(dy.shape), arg, ph, pw, ph, pw, 0, 0,
                          np.empty((n, pool_h * ph, pool_w * pw, filters), dy.dtype))
    return conv2d_direct_backward(x, d, d, LINEAR, kh, kw, sh, sw, pad_top, pad_left)


def activation_backward_nonzero(dy, y, act, pixel, channel, value):
    """The nonzero entries of ``bias_activation_backward``'s gradient, in row-major order: their rows,
    columns and values into ``pixel``, ``channel`` and ``value``. Returns (their count, column sums);
    the count is -1 when there are more than ``value`` holds."""
    dz, db = bias_activation_backward(dy, y, act, np.empty(dy.shape, dy.dtype))
    rows, cols = np.nonzero(dz)
    if rows.size > value.size:
        return -1, db
    pixel[: rows.size] = rows
    channel[: rows.size] = cols
    value[: rows.size] = dz[rows, cols]
    return rows.size, db


def conv2d_sparse_backward(x, pixel, channel, value, count, out_h, out_w, kernel_t, kh, kw, sh, sw, pad_top,
                           pad_left, grad_t, dx):
    """Both gradients of a convolution from the ``count`` nonzero output-gradient entries listed by
    ``activation_backward_nonzero``. ``kernel_t`` and ``grad_t`` are (filters, kh*kw*C): the kernel
    gradient is added into ``grad_t``; ``dx`` (N, H, W, C) is overwritten unless it is empty (size 0)."""
    n, _, _, c = x.shape
    dz = np.zeros((n * out_h * out_w, kernel_t.shape[0]), x.dtype)
    dz[pixel[:count], channel[:count]] = value[:count]
    cols = im2col(x, kh, kw, sh, sw, pad_top, pad_left, out_h, out_w,
                  np.empty((n * out_h * out_w, kh * kw * c), x.dtype))
    grad_t += (cols.T @ dz).T
    if dx.size:
        col2im(dz @ kernel_t, kh, kw, sh, sw, pad_top, pad_left, out_h, out_w, dx)
    return grad_t, dx
