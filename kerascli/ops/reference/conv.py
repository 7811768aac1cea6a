"""Convolution windows, channels-last: im2col/col2im, direct and fused convolution + max pooling, the
sparse backward from the nonzero entries of an output gradient, Winograd F(4x4, 3x3) transforms."""

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


# Winograd F(4x4, 3x3) (Lavin and Gray, 2016, points 0, +-1, +-2): a 6x6 input tile d and a 3x3 kernel g give
# the 4x4 output tile A^T [(G g G^T) * (B^T d B)] A, 36 multiplications where the direct sum takes 144.
# Summed over channels, the products are 36 GEMMs (algorithms/conv.py). The transforms work on images laid
# out (height, width, batch, channels), so that their innermost loops run over batch and channels together.
WINOGRAD_BT = np.array([[4, 0, -5, 0, 1, 0], [0, -4, -4, 1, 1, 0], [0, 4, -4, -1, 1, 0], [0, -2, -1, 2, 1, 0],
                        [0, 2, -1, -2, 1, 0], [0, 4, 0, -5, 0, 1]])
WINOGRAD_AT = np.array([[1, 1, 1, 1, 1, 0], [0, 1, -1, 2, -2, 0], [0, 1, 1, 4, 4, 0], [0, 1, -1, 8, -8, 1]])


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
