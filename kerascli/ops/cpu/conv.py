"""Numba twins of kerascli.ops.reference.conv: same names, signatures and results."""

from __future__ import annotations

import numpy as np
from numba import njit

from kerascli.ops.contract import LINEAR, RELU, SOFTMAX
from kerascli.ops.cpu.activations import (
    _activation_value,
    _softmax_rows,
    bias_activation_backward,
)
from kerascli.ops.cpu.jit import fma_opts, opts, trailing_zeros, window_span


@njit(**opts)
def _im2col_slices(x, kh, kw, sh, sw, pad_top, pad_left, out_h, out_w, out):
    n, h, w, c = x.shape
    rows_of = x.reshape(n, h, w * c)
    span = kw * c
    for b in range(n):
        for oy in range(out_h):
            for ox in range(out_w):
                patch = out[(b * out_h + oy) * out_w + ox]
                x0 = ox * sw - pad_left
                j0, j1 = window_span(x0, kw, w)
                for i in range(kh):
                    y = oy * sh + i - pad_top
                    dst = patch[i * span:(i + 1) * span]
                    if y < 0 or y >= h:
                        dst[:] = 0
                        continue
                    src = rows_of[b, y, (x0 + j0) * c:(x0 + j1) * c]
                    for t in range(j0 * c):
                        dst[t] = 0
                    inside = dst[j0 * c:j1 * c]
                    for t in range(src.size):
                        inside[t] = src[t]
                    for t in range(j1 * c, span):
                        dst[t] = 0
    return out


@njit(**opts)
def _im2col_values(x, kh, kw, sh, sw, pad_top, pad_left, out_h, out_w, out):
    n, h, w, c = x.shape
    rows_of = x.reshape(n, h, w * c)
    span = kw * c
    for b in range(n):
        for oy in range(out_h):
            for ox in range(out_w):
                row = (b * out_h + oy) * out_w + ox
                x0 = ox * sw - pad_left
                whole_rows = x0 >= 0 and x0 + kw <= w
                for i in range(kh):
                    y = oy * sh + i - pad_top
                    dst = i * span
                    if y < 0 or y >= h:
                        for t in range(span):
                            out[row, dst + t] = 0
                    elif whole_rows:
                        src = x0 * c
                        for t in range(span):
                            out[row, dst + t] = rows_of[b, y, src + t]
                    else:
                        for j in range(kw):
                            xx = x0 + j
                            inside = xx >= 0 and xx < w
                            for ch in range(c):
                                out[row, dst + j * c + ch] = rows_of[b, y, xx * c + ch] if inside else 0
    return out


@njit(**opts)
def im2col(x, kh, kw, sh, sw, pad_top, pad_left, out_h, out_w, out):
    # Rows are written in order; a kernel row of a patch (kw*C values) is contiguous in both x
    # and out. Long ones are copied through 1-D slices (1.5x faster), short ones (few channels)
    # value by value, where making slices would cost more than the copy.
    if kw * x.shape[3] >= 16:
        return _im2col_slices(x, kh, kw, sh, sw, pad_top, pad_left, out_h, out_w, out)
    return _im2col_values(x, kh, kw, sh, sw, pad_top, pad_left, out_h, out_w, out)


@njit(**opts)
def im2col_transposed(x, kh, kw, sh, sw, pad_top, pad_left, out_h, out_w, out):
    # With few channels a patch row is a handful of values, copied one by one (im2col: 6.8 ms per 1,024
    # 28x28 grey images, 3x3 windows); transposed, each (tap, output row) is one run of output pixels,
    # and the GEMM reads the patches as fast either way. The copy loops are written so that LLVM sees
    # indices that cannot be negative (Numba's wraparound for negative ones would make them gathers):
    # valid windows at stride 1 take 1.1 ms, others 2.7.
    if pad_top == 0 and pad_left == 0 and sh == 1 and sw == 1:
        return _im2col_transposed_valid(x, kh, kw, out_h, out_w, out)
    n, h, w, c = x.shape
    for b in range(n):
        for oy in range(out_h):
            p0 = (b * out_h + oy) * out_w
            for i in range(kh):
                y = oy * sh + i - pad_top
                for j in range(kw):
                    # output columns whose pixel is inside the image for this tap
                    lo = min(out_w, max(0, (pad_left - j + sw - 1) // sw))
                    hi = max(lo, min(out_w, (w - 1 - j + pad_left) // sw + 1))
                    for ch in range(c):
                        dst = out[(i * kw + j) * c + ch]
                        if y < 0 or y >= h:
                            for ox in range(out_w):
                                dst[p0 + ox] = 0
                            continue
                        row = x[b, y]
                        for ox in range(lo):
                            dst[p0 + ox] = 0
                        at, first, step = np.uint64(p0 + lo), np.uint64(lo * sw + j - pad_left), np.uint64(sw)
                        for t in range(np.uint64(hi - lo)):
                            dst[at + t] = row[first + t * step, ch]
                        for ox in range(hi, out_w):
                            dst[p0 + ox] = 0
    return out


@njit(**opts)
def _im2col_transposed_valid(x, kh, kw, out_h, out_w, out):
    n, h, w, c = x.shape
    for b in range(n):
        for oy in range(out_h):
            p0 = (b * out_h + oy) * out_w
            for i in range(kh):
                row = x[b, oy + i]
                for j in range(kw):
                    for ch in range(c):
                        dst = out[(i * kw + j) * c + ch]
                        for ox in range(out_w):
                            dst[p0 + ox] = row[ox + j, ch]
    return out


@njit(**opts)
def col2im(cols, kh, kw, sh, sw, pad_top, pad_left, out_h, out_w, out):
    n, h, w, c = out.shape
    for b in range(n):
        out[b] = 0
        for oy in range(out_h):
            for ox in range(out_w):
                row = (b * out_h + oy) * out_w + ox
                for i in range(kh):
                    y = oy * sh + i - pad_top
                    if y < 0 or y >= h:
                        continue
                    for j in range(kw):
                        xx = ox * sw + j - pad_left
                        if xx < 0 or xx >= w:
                            continue
                        base = (i * kw + j) * c
                        for ch in range(c):
                            out[b, y, xx, ch] += cols[row, base + ch]
    return out




@njit(inline="always", **fma_opts)
def _activate_loop(values, act):
    for f in range(values.size):
        values[f] = _activation_value(values[f], act)


@njit(**fma_opts)
def _activate(values, act):
    """An elementwise activation in place on a 1-D array (softmax is applied per pixel elsewhere); relu
    and linear with ``act`` a constant, so that the loop vectorises (as kerascli.ops.cpu.activations)."""
    if act == RELU:
        _activate_loop(values, RELU)
    elif act == LINEAR:
        _activate_loop(values, LINEAR)
    else:
        _activate_loop(values, act)


# The direct kernels work on 4 neighbouring output pixels at once where their
# windows lie inside the image: each weight row loaded feeds 4 multiply-adds
# (1.6x faster than one pixel at a time; 8 at a time stopped vectorising). The
# activation and its gradient run once per output row, over the whole row, so
# no per-pixel dispatch on ``act`` sits in the hot loop (that cost 20%).
@njit(inline="always", **fma_opts)
def _direct_pixels4(x, b, y0, i0, i1, x0, sw, kw, c, taps, b0, o0, o1, o2, o3):
    for f in range(b0.size):
        o0[f] = b0[f]
        o1[f] = b0[f]
        o2[f] = b0[f]
        o3[f] = b0[f]
    for i in range(i0, i1):
        row = x[b, y0 + i]
        for j in range(kw):
            for ch in range(c):
                v0, v1 = row[x0 + j, ch], row[x0 + sw + j, ch]
                v2, v3 = row[x0 + 2 * sw + j, ch], row[x0 + 3 * sw + j, ch]
                tap = taps[(i * kw + j) * c + ch]
                for f in range(b0.size):
                    t = tap[f]
                    o0[f] += v0 * t
                    o1[f] += v1 * t
                    o2[f] += v2 * t
                    o3[f] += v3 * t


@njit(inline="always", **fma_opts)
def _direct_pixel(x, b, y0, i0, i1, x0, kw, c, taps, b0, o):
    """One output pixel, with only the part of its window inside the image."""
    w = x.shape[2]
    for f in range(b0.size):
        o[f] = b0[f]
    for i in range(i0, i1):
        for j in range(*window_span(x0, kw, w)):
            for ch in range(c):
                v = x[b, y0 + i, x0 + j, ch]
                tap = taps[(i * kw + j) * c + ch]
                for f in range(b0.size):
                    o[f] += v * tap[f]


@njit(**fma_opts)
def _direct_row(x, b, oy, taps, b0, kh, kw, sh, sw, pad_top, pad_left, o):
    """Output row ``oy`` of image ``b`` before the activation, into ``o`` (columns, filters).

    ``o`` may hold fewer columns than the full output row (those a pooling
    window would drop are left out).
    """
    h, w, c = x.shape[1], x.shape[2], x.shape[3]
    cols = o.shape[0]
    y0 = oy * sh - pad_top
    i0, i1 = window_span(y0, kh, h)
    # columns [first, last) have their whole window inside the image (horizontally)
    first = min(cols, (pad_left + sw - 1) // sw)
    last = max(first, min(cols, (w - kw + pad_left) // sw + 1))
    blocks = (last - first) // 4
    for ox in range(first, first + 4 * blocks, 4):
        _direct_pixels4(x, b, y0, i0, i1, ox * sw - pad_left, sw, kw, c, taps, b0, o[ox], o[ox + 1], o[ox + 2],
                        o[ox + 3])
    tail = first + 4 * blocks
    if blocks > 0 and tail < last:
        # the rest as one block overlapping the one before (recomputed alike) beats single pixels
        ox = last - 4
        _direct_pixels4(x, b, y0, i0, i1, ox * sw - pad_left, sw, kw, c, taps, b0, o[ox], o[ox + 1], o[ox + 2],
                        o[ox + 3])
        tail = last
    for ox in range(first):
        _direct_pixel(x, b, y0, i0, i1, ox * sw - pad_left, kw, c, taps, b0, o[ox])
    for ox in range(tail, cols):
        _direct_pixel(x, b, y0, i0, i1, ox * sw - pad_left, kw, c, taps, b0, o[ox])


@njit(**fma_opts)
def _direct_grad_row(x, b, oy, d, kh, kw, sh, sw, pad_top, pad_left, g):
    """Adds output row ``oy`` of image ``b``'s share of the kernel gradient to ``g`` (taps, filters),
    from that row's pre-activation gradient ``d`` (columns, filters)."""
    h, w, c = x.shape[1], x.shape[2], x.shape[3]
    cols, filters = d.shape
    y0 = oy * sh - pad_top
    i0, i1 = window_span(y0, kh, h)
    ox = 0
    while ox < cols:
        x0 = ox * sw - pad_left
        if ox + 4 <= cols and x0 >= 0 and x0 + 3 * sw + kw <= w:
            d0, d1, d2, d3 = d[ox], d[ox + 1], d[ox + 2], d[ox + 3]
            for i in range(i0, i1):
                row = x[b, y0 + i]
                for j in range(kw):
                    for ch in range(c):
                        v0, v1 = row[x0 + j, ch], row[x0 + sw + j, ch]
                        v2, v3 = row[x0 + 2 * sw + j, ch], row[x0 + 3 * sw + j, ch]
                        gr = g[(i * kw + j) * c + ch]
                        for f in range(filters):
                            gr[f] += v0 * d0[f] + v1 * d1[f] + v2 * d2[f] + v3 * d3[f]
            ox += 4
            continue
        d0 = d[ox]
        for i in range(i0, i1):
            for j in range(*window_span(x0, kw, w)):
                for ch in range(c):
                    v = x[b, y0 + i, x0 + j, ch]
                    gr = g[(i * kw + j) * c + ch]
                    for f in range(filters):
                        gr[f] += v * d0[f]
        ox += 1


@njit(**fma_opts)
def conv2d_direct(x, kernel, bias, act, sh, sw, pad_top, pad_left, out_h, out_w, out):
    """Convolution + bias + activation without patches, for few input channels (a first layer).

    With kh*kw*C small, a GEMM over patches is starved (K=9 for a 3x3 grey
    image); looping over the window and vectorising over filters is faster and
    writes each output once.
    """
    n = x.shape[0]
    kh, kw, c, filters = kernel.shape
    taps = kernel.reshape(kh * kw * c, filters)
    b0 = bias if bias.size > 0 else np.zeros(filters, dtype=x.dtype)
    for b in range(n):
        for oy in range(out_h):
            o = out[b, oy]
            _direct_row(x, b, oy, taps, b0, kh, kw, sh, sw, pad_top, pad_left, o)
            if act == SOFTMAX:
                _softmax_rows(o, o)
            else:
                _activate(o.reshape(out_w * filters), act)
    return out


@njit(inline="always", **opts)
def _window_4x4(x, b, y0, x0, block):
    """The 4x4 window of single-channel image ``b`` at (y0, x0) into ``block``, zero outside the image."""
    h, w = x.shape[1], x.shape[2]
    if 0 <= y0 and y0 + 4 <= h and 0 <= x0 and x0 + 4 <= w:
        for i in range(4):
            for j in range(4):
                block[4 * i + j] = x[b, y0 + i, x0 + j, 0]
        return
    for i in range(4):
        for j in range(4):
            inside = 0 <= y0 + i < h and 0 <= x0 + j < w
            block[4 * i + j] = x[b, y0 + i, x0 + j, 0] if inside else 0


@njit(**fma_opts)
def conv2d_3x3_maxpool_2x2(x, kernel, bias, act, pad_top, pad_left, out):
    """Each pooled output from the 4x4 window under it: its four 3x3 sums per filter as four expressions
    in one loop over the filters (kept in registers and vectorised; patches and a GEMM with 9-long rows,
    then pooling, took twice as long), their maximum, bias, activation."""
    n = x.shape[0]
    _, pool_h, pool_w, filters = out.shape
    taps = kernel.reshape(9, filters)
    b0 = bias if bias.size > 0 else np.zeros(filters, dtype=x.dtype)
    block = np.empty(16, x.dtype)
    for b in range(n):
        for py in range(pool_h):
            for px in range(pool_w):
                _window_4x4(x, b, 2 * py - pad_top, 2 * px - pad_left, block)
                d00, d01, d02, d03 = block[0], block[1], block[2], block[3]
                d10, d11, d12, d13 = block[4], block[5], block[6], block[7]
                d20, d21, d22, d23 = block[8], block[9], block[10], block[11]
                d30, d31, d32, d33 = block[12], block[13], block[14], block[15]
                o = out[b, py, px]
                for f in range(filters):
                    w0, w1, w2 = taps[0, f], taps[1, f], taps[2, f]
                    w3, w4, w5 = taps[3, f], taps[4, f], taps[5, f]
                    w6, w7, w8 = taps[6, f], taps[7, f], taps[8, f]
                    top_left = (d00 * w0 + d01 * w1 + d02 * w2 + d10 * w3 + d11 * w4 + d12 * w5 + d20 * w6
                                + d21 * w7 + d22 * w8)
                    top_right = (d01 * w0 + d02 * w1 + d03 * w2 + d11 * w3 + d12 * w4 + d13 * w5 + d21 * w6
                                 + d22 * w7 + d23 * w8)
                    bottom_left = (d10 * w0 + d11 * w1 + d12 * w2 + d20 * w3 + d21 * w4 + d22 * w5 + d30 * w6
                                   + d31 * w7 + d32 * w8)
                    bottom_right = (d11 * w0 + d12 * w1 + d13 * w2 + d21 * w3 + d22 * w4 + d23 * w5 + d31 * w6
                                    + d32 * w7 + d33 * w8)
                    # max_pool_forward's order of strict comparisons (a NaN first in its window wins)
                    m = top_left
                    m = top_right if top_right > m else m
                    m = bottom_left if bottom_left > m else m
                    m = bottom_right if bottom_right > m else m
                    o[f] = m + b0[f]
        _activate(out[b].reshape(pool_h * pool_w * filters), act)  # once per image: long enough to vectorise
    return out


@njit(**fma_opts)
def conv2d_direct_backward(x, dy, y, act, kh, kw, sh, sw, pad_top, pad_left):
    """Kernel gradient (kh, kw, C, filters) and bias gradient of ``conv2d_direct``, summed over the batch.

    ``dy`` is the gradient after the activation and ``y`` the activation's
    output; the pre-activation gradient is formed one output row at a time in
    a small buffer and never stored whole (a separate pass wrote and re-read a
    tensor the size of the output).
    """
    n, c = x.shape[0], x.shape[3]
    _, out_h, out_w, filters = dy.shape
    g = np.zeros((kh * kw * c, filters), dtype=dy.dtype)  # one image's share, summed in float32
    total = np.zeros((kh * kw * c, filters))  # the images' shares, summed in float64
    db = np.zeros(filters)
    d = np.empty((out_w, filters), dtype=dy.dtype)
    for b in range(n):
        g[...] = 0
        for oy in range(out_h):
            row_db = bias_activation_backward(dy[b, oy], y[b, oy], act, d)[1]
            for f in range(filters):
                db[f] += row_db[f]
            _direct_grad_row(x, b, oy, d, kh, kw, sh, sw, pad_top, pad_left, g)
        total += g
    return total.astype(dy.dtype).reshape(kh, kw, c, filters), db.astype(dy.dtype)


# The backward of a first Conv2D -> MaxPooling2D whose windows tile the image
# (graph/fusion.py; the forward is conv2d_maxpool_forward in ops/algorithms):
# the convolution's full-size gradient is never formed, only a row at a time.
@njit(**fma_opts)
def conv2d_direct_maxpool_backward(x, dy, pooled, arg, act, kh, kw, sh, sw, pad_top, pad_left, ph, pw):
    """Kernel and bias gradients of a convolution (with a window small enough for the direct kernels)
    followed by max pooling, from the gradient ``dy`` of the pooled output ``pooled``: each window's gradient goes to the convolution output that won it."""
    n, c = x.shape[0], x.shape[3]
    _, pool_h, pool_w, filters = dy.shape
    g = np.zeros((kh * kw * c, filters), dtype=dy.dtype)  # one image's share, summed in float32
    total = np.zeros((kh * kw * c, filters))  # the images' shares, summed in float64
    db = np.zeros(filters)
    dz = np.empty((pool_w, filters), dtype=dy.dtype)
    d = np.empty((pool_w * pw, filters), dtype=dy.dtype)
    for b in range(n):
        g[...] = 0
        for py in range(pool_h):
            row_db = bias_activation_backward(dy[b, py], pooled[b, py], act, dz)[1]
            for f in range(filters):
                db[f] += row_db[f]
            for i in range(ph):
                for px in range(pool_w):
                    gz = dz[px]
                    where = arg[b, py, px]
                    for j in range(pw):
                        k = i * pw + j
                        dst = d[px * pw + j]
                        for f in range(filters):
                            dst[f] = gz[f] if where[f] == k else 0
                _direct_grad_row(x, b, py * ph + i, d, kh, kw, sh, sw, pad_top, pad_left, g)
        total += g
    return total.astype(dy.dtype).reshape(kh, kw, c, filters), db.astype(dy.dtype)


@njit(**opts)
def activation_backward_nonzero(dy, y, act, pixel, channel, value):
    """``bias_activation_backward`` that lists the nonzero gradient entries instead of storing them all.

    Writes the row, column and value of each nonzero entry of the
    pre-activation gradient (in row-major order) into ``pixel``, ``channel``
    and ``value``; returns (their count, column sums). A count of -1 means
    more nonzeros than ``value`` holds (the lists are then incomplete). Rows
    are done in blocks that stay in cache; each 64 columns' nonzeros are found
    from one bit mask.
    """
    rows, filters = dy.shape
    capacity = value.size
    db = np.zeros(filters, dy.dtype)
    block = 64
    d = np.empty((block, filters), dy.dtype)
    count = 0
    for r0 in range(0, rows, block):
        r1 = min(rows, r0 + block)
        dz, block_db = bias_activation_backward(dy[r0:r1], y[r0:r1], act, d[:r1 - r0])
        for f in range(filters):
            db[f] += block_db[f]
        for r in range(r0, r1):
            row = dz[r - r0]
            for f0 in range(0, filters, 64):
                mask = np.uint64(0)
                for f in range(min(64, filters - f0)):
                    mask |= np.uint64(row[f0 + f] != 0) << np.uint64(f)
                while mask:
                    if count == capacity:
                        return -1, db
                    f = f0 + trailing_zeros(mask)
                    pixel[count] = r
                    channel[count] = f
                    value[count] = row[f]
                    count += 1
                    mask &= mask - np.uint64(1)
    return count, db


@njit(**fma_opts)
def conv2d_sparse_backward(x, pixel, channel, value, count, out_h, out_w, kernel_t, kh, kw, sh, sw, pad_top,
                           pad_left, grad_t, dx):
    """Kernel and input gradients of a convolution from the nonzero entries of its output gradient.

    Behind a ReLU and a max pooling most of a convolution's output gradient is
    zero (at most 1 in 4 positions per channel survive the pooling; in the
    benchmark CNN 2-8% do). Each nonzero costs two rows of kh*kw*C
    multiply-adds here, against a dense GEMM's full product; the layer takes
    this path when the gradient is sparse enough (Conv2D.SPARSE_MAX_DENSITY).
    The kernel gradient is summed one filter at a time (its row stays in cache),
    the input gradient one output pixel at a time, 4 nonzeros per pass.
    """
    n, h, w, c = x.shape
    filters = kernel_t.shape[0]
    span = kw * c
    flat_x = x.reshape(-1)  # 1-D slices below vectorise; 2-D indexing did not (7x slower)
    # each output pixel's image and window corner, worked out once (a division per nonzero cost 2x)
    pixels = n * out_h * out_w
    image = np.empty(pixels, np.int64)
    top = np.empty(pixels, np.int64)
    left = np.empty(pixels, np.int64)
    whole = np.empty(pixels, np.bool_)
    r = 0
    for b in range(n):
        for oy in range(out_h):
            for ox in range(out_w):
                image[r], top[r], left[r] = b, oy * sh - pad_top, ox * sw - pad_left
                whole[r] = top[r] >= 0 and top[r] + kh <= h and left[r] >= 0 and left[r] + kw <= w
                r += 1
    # ---- kernel gradient: the nonzeros bucketed by filter (a counting sort)
    start = np.zeros(filters + 1, np.int64)
    for q in range(count):
        start[channel[q] + 1] += 1
    for f in range(filters):
        start[f + 1] += start[f]
    fill = start[:filters].copy()
    order = np.empty(count, np.int64)
    for q in range(count):
        order[fill[channel[q]]] = q
        fill[channel[q]] += 1
    corner = np.empty(4, np.int64)
    for f in range(filters):
        g_row = grad_t[f]
        q, end = start[f], start[f + 1]
        while q < end:
            if q + 4 <= end:
                p0, p1, p2, p3 = pixel[order[q]], pixel[order[q + 1]], pixel[order[q + 2]], pixel[order[q + 3]]
                if whole[p0] and whole[p1] and whole[p2] and whole[p3]:
                    # 4 whole windows: each gradient-row value loaded feeds 4 multiply-adds
                    for u, p in enumerate((p0, p1, p2, p3)):
                        corner[u] = ((image[p] * h + top[p]) * w + left[p]) * c
                    d0, d1, d2, d3 = (value[order[q]], value[order[q + 1]], value[order[q + 2]],
                                      value[order[q + 3]])
                    for i in range(kh):
                        step = i * w * c
                        s0 = flat_x[corner[0] + step:corner[0] + step + span]
                        s1 = flat_x[corner[1] + step:corner[1] + step + span]
                        s2 = flat_x[corner[2] + step:corner[2] + step + span]
                        s3 = flat_x[corner[3] + step:corner[3] + step + span]
                        g = g_row[i * span:(i + 1) * span]
                        for t in range(span):
                            g[t] += d0 * s0[t] + d1 * s1[t] + d2 * s2[t] + d3 * s3[t]
                    q += 4
                    continue
            p = pixel[order[q]]
            d = value[order[q]]
            y0, x0 = top[p], left[p]
            j0, j1 = window_span(x0, kw, w)
            for i in range(*window_span(y0, kh, h)):
                at = ((image[p] * h + y0 + i) * w + x0) * c
                s = flat_x[at + j0 * c:at + j1 * c]
                g = g_row[(i * kw + j0) * c:(i * kw + j1) * c]
                for t in range(s.size):
                    g[t] += d * s[t]
            q += 1
    if dx.size == 0:
        return grad_t, dx
    # ---- input gradient: the nonzeros in their own order, one output pixel at a time
    dx[...] = 0
    flat_dx = dx.reshape(-1)
    q = 0
    while q < count:
        p = pixel[q]
        e = q + 1
        while e < count and pixel[e] == p:
            e += 1
        y0, x0 = top[p], left[p]
        j0, j1 = window_span(x0, kw, w)
        width = (j1 - j0) * c
        for i in range(*window_span(y0, kh, h)):
            at = ((image[p] * h + y0 + i) * w + x0 + j0) * c
            dst = flat_dx[at:at + width]
            t0 = (i * kw + j0) * c
            u = q
            while u + 4 <= e:
                k0 = kernel_t[channel[u], t0:t0 + width]
                k1 = kernel_t[channel[u + 1], t0:t0 + width]
                k2 = kernel_t[channel[u + 2], t0:t0 + width]
                k3 = kernel_t[channel[u + 3], t0:t0 + width]
                d0, d1, d2, d3 = value[u], value[u + 1], value[u + 2], value[u + 3]
                for t in range(width):
                    dst[t] += d0 * k0[t] + d1 * k1[t] + d2 * k2[t] + d3 * k3[t]
                u += 4
            while u < e:
                k0 = kernel_t[channel[u], t0:t0 + width]
                d0 = value[u]
                for t in range(width):
                    dst[t] += d0 * k0[t]
                u += 1
        q = e
    return grad_t, dx
