"""CUDA twins of kerascli.ops.reference.conv. im2col and col2im are kernels (col2im gathers: each input
value sums the patch entries that came from it, so nothing is added concurrently); the direct and fused
convolutions are composed of them, a GEMM and the activation kernels, as their reference twins are."""

from __future__ import annotations

import numpy as np
from numba import cuda

from kerascli.ops.contract import LINEAR
from kerascli.ops.cuda.activations import (
    _launch_activation_gradient,
    _launch_bias_activation,
)
from kerascli.ops.cuda.gemm import gemm
from kerascli.ops.cuda.kernel import kernel
from kerascli.ops.cuda.launch import (
    as2d,
    blocks,
    column_sums,
    device_empty,
    fill,
    nhwc,
)
from kerascli.ops.cuda.pooling import max_pool_backward, max_pool_forward


@cuda.jit(device=True)
def _patch_value(x, row, col, kw, sh, sw, pad_top, pad_left, out_h, out_w):
    """Entry (row, col) of the patch matrix: output pixel ``row``'s value at window place ``col``
    ((i, j, channel) order), 0 in the padding."""
    n, h, w, c = x.shape
    ch = col % c
    b = (col // c) % kw
    a = col // (c * kw)
    ox = row % out_w
    oy = (row // out_w) % out_h
    img = row // (out_w * out_h)
    y = oy * sh + a - pad_top
    xx = ox * sw + b - pad_left
    if 0 <= y < h and 0 <= xx < w:
        return x[img, y, xx, ch]
    return 0


@kernel
def _im2col(x, kh, kw, sh, sw, pad_top, pad_left, out_h, out_w, out):
    i = cuda.grid(1)
    rows, patch = out.shape
    if i < rows * patch:
        row = i // patch
        col = i - row * patch
        out[row, col] = _patch_value(x, row, col, kw, sh, sw, pad_top, pad_left, out_h, out_w)


def im2col(x, kh, kw, sh, sw, pad_top, pad_left, out_h, out_w, out):
    if out.size:
        _im2col[blocks(out.size)](x, kh, kw, sh, sw, pad_top, pad_left, out_h, out_w, out)
    return out


@kernel
def _im2col_transposed(x, kh, kw, sh, sw, pad_top, pad_left, out_h, out_w, out):
    i = cuda.grid(1)
    patch, rows = out.shape
    if i < rows * patch:
        col = i // rows
        row = i - col * rows
        out[col, row] = _patch_value(x, row, col, kw, sh, sw, pad_top, pad_left, out_h, out_w)


def im2col_transposed(x, kh, kw, sh, sw, pad_top, pad_left, out_h, out_w, out):
    if out.size:
        _im2col_transposed[blocks(out.size)](x, kh, kw, sh, sw, pad_top, pad_left, out_h, out_w, out)
    return out


@kernel
def _col2im(cols, kh, kw, sh, sw, pad_top, pad_left, out_h, out_w, out):
    i = cuda.grid(1)
    n, h, w, c = out.shape
    if i < out.size:
        img, y, x, ch = nhwc(i, h, w, c)
        s = 0.0
        for a in range(kh):
            ty = y + pad_top - a
            if ty >= 0 and ty % sh == 0 and ty // sh < out_h:
                oy = ty // sh
                for b in range(kw):
                    tx = x + pad_left - b
                    if tx >= 0 and tx % sw == 0 and tx // sw < out_w:
                        row = (img * out_h + oy) * out_w + tx // sw
                        s += cols[row, (a * kw + b) * c + ch]
        out[img, y, x, ch] = s


def col2im(cols, kh, kw, sh, sw, pad_top, pad_left, out_h, out_w, out):
    if out.size:
        _col2im[blocks(out.size)](cols, kh, kw, sh, sw, pad_top, pad_left, out_h, out_w, out)
    return out


def _patches(x, kh, kw, sh, sw, pad_top, pad_left, out_h, out_w):
    n, _, _, c = x.shape
    return im2col(x, kh, kw, sh, sw, pad_top, pad_left, out_h, out_w,
                  device_empty((n * out_h * out_w, kh * kw * c), x.dtype))


def conv2d_direct(x, kernel, bias, act, sh, sw, pad_top, pad_left, out_h, out_w, out):
    kh, kw, c, filters = kernel.shape
    cols = _patches(x, kh, kw, sh, sw, pad_top, pad_left, out_h, out_w)
    z = out.reshape(cols.shape[0], filters)
    gemm(cols, kernel.reshape(kh * kw * c, filters), z)
    _launch_bias_activation(z, bias, act, z)
    return out


def conv2d_3x3_maxpool_2x2(x, kernel, bias, act, pad_top, pad_left, out):
    n, pool_h, pool_w, filters = out.shape
    z = conv2d_direct(x, kernel, bias, act, 1, 1, pad_top, pad_left, 2 * pool_h, 2 * pool_w,
                      device_empty((n, 2 * pool_h, 2 * pool_w, filters), x.dtype))
    max_pool_forward(z, 2, 2, 2, 2, 0, 0, pool_h, pool_w, out, device_empty((0, 0, 0, 0), np.int32))
    return out


def conv2d_direct_backward(x, dy, y, act, kh, kw, sh, sw, pad_top, pad_left):
    n, _, _, c = x.shape
    _, out_h, out_w, filters = dy.shape
    dz = _launch_activation_gradient(as2d(dy), as2d(y), act, device_empty((dy.size // filters, filters), dy.dtype))
    cols = _patches(x, kh, kw, sh, sw, pad_top, pad_left, out_h, out_w)
    grad = device_empty((kh * kw * c, filters), x.dtype)
    gemm(cols, dz, grad, trans_a=True)
    return grad.reshape(kh, kw, c, filters), column_sums(dz, device_empty((filters,), dy.dtype))


def conv2d_direct_maxpool_backward(x, dy, pooled, arg, act, kh, kw, sh, sw, pad_top, pad_left, ph, pw):
    n, pool_h, pool_w, filters = dy.shape
    dz = _launch_activation_gradient(as2d(dy), as2d(pooled), act, device_empty((dy.size // filters, filters),
                                                                              dy.dtype))
    d = max_pool_backward(dz.reshape(*dy.shape), arg, ph, pw, ph, pw, 0, 0,
                          device_empty((n, pool_h * ph, pool_w * pw, filters), dy.dtype))
    return conv2d_direct_backward(x, d, d, LINEAR, kh, kw, sh, sw, pad_top, pad_left)


@kernel
def _nonzero_lists(dz, pixel, channel, value, count):
    """One thread walks ``dz`` in row-major order (the lists' order must be the reference's)."""
    if cuda.grid(1) == 0:
        rows, cols = dz.shape
        k = 0
        for r in range(rows):
            for c in range(cols):
                v = dz[r, c]
                if v != 0:
                    if k < value.size:
                        pixel[k] = r
                        channel[k] = c
                        value[k] = v
                    k += 1
        count[0] = k if k <= value.size else -1


def activation_backward_nonzero(dy, y, act, pixel, channel, value):
    """As the reference. The count is copied to the host (the cuda algorithms never use this kernel:
    a GPU runs the dense backward)."""
    dz = _launch_activation_gradient(dy, y, act, device_empty(dy.shape, dy.dtype))
    count = device_empty((1,), np.int64)
    _nonzero_lists[1, 1](dz, pixel, channel, value, count)
    return int(count.copy_to_host()[0]), column_sums(dz, device_empty((dz.shape[1],), dz.dtype))


@kernel
def _scatter_entries(pixel, channel, value, count, dz):
    i = cuda.grid(1)
    if i < count:
        dz[pixel[i], channel[i]] = value[i]


def conv2d_sparse_backward(x, pixel, channel, value, count, out_h, out_w, kernel_t, kh, kw, sh, sw, pad_top,
                           pad_left, grad_t, dx):
    n = x.shape[0]
    dz = fill(device_empty((n * out_h * out_w, kernel_t.shape[0]), x.dtype), 0)
    if count > 0:
        _scatter_entries[blocks(count)](pixel, channel, value, count, dz)
    cols = _patches(x, kh, kw, sh, sw, pad_top, pad_left, out_h, out_w)
    gemm(dz, cols, grad_t, trans_a=True, accumulate=True)
    if dx.size:
        dcols = gemm(dz, kernel_t, device_empty(cols.shape, x.dtype))
        col2im(dcols, kh, kw, sh, sw, pad_top, pad_left, out_h, out_w, dx)
    return grad_t, dx
