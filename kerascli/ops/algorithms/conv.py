"""Conv2D, channels-last, over an Ops' window kernels.

Forward: im2col + one GEMM + fused bias/activation a few images at a time,
or direct kernels when a patch is small (a first layer). Backward: GEMMs over
patches, or, when the output gradient is mostly zero (behind ReLU and max
pooling), a kernel that visits only its nonzero entries. A convolution
followed by max pooling whose windows tile the image runs as one: patches,
GEMM and pooling a few images at a time, the full-size output never written
out (a first convolution in training too, its backward one direct kernel;
others in inference; graph/fusion.py decides when).

Images are split across threads; ``ws(name, shape, dtype=None)`` hands out
workspaces that live as long as the layer (their contents until the same name
is asked for again).
"""

from __future__ import annotations

import numpy as np

from kerascli.ops.contract import LINEAR, Conv2DGeometry
from kerascli.ops.reference.winograd import WINOGRAD_G
from kerascli.ops.tuning import (
    CONV_CHUNK_BYTES,
    CONV_DIRECT_MAX_PATCH,
    CONV_SPARSE_MAX_DENSITY,
    CONV_TRANSPOSED_PATCHES_BELOW,
    WINOGRAD_CHUNK_BYTES,
    WINOGRAD_MIN_CHANNELS,
)

NO_PLACES = np.empty((0, 0, 0, 0), np.int32)  # max_pool_forward's ``arg`` when the places are not kept


def conv2d_is_direct(ops, g: Conv2DGeometry) -> bool:
    """Small patches (a first layer's) are convolved directly, without patches and a GEMM."""
    return g.patch_size <= CONV_DIRECT_MAX_PATCH


def conv2d_fuses_pool_in_inference(ops, g: Conv2DGeometry) -> bool:
    """Whether inference runs a convolution and the max pooling after it as one (conv2d_maxpool_forward;
    graph/fusion.py decides when it is correct)."""
    return True


def conv2d_uses_winograd(ops, g: Conv2DGeometry) -> bool:
    """Whether inference runs this convolution as Winograd F(4x4, 3x3): 3x3 windows at stride 1, with
    enough input channels that its 36 GEMMs pay for the transforms, on an Ops whose transforms are fast.
    Its float32 results differ from the direct sum's by a few units in the 6th digit (the transforms
    scale values by up to 100 and back)."""
    return (ops.winograd_inference and g.kh == 3 and g.kw == 3 and g.sh == 1 and g.sw == 1
            and g.channels >= WINOGRAD_MIN_CHANNELS)


def conv2d_pools_in_one_kernel(ops, g: Conv2DGeometry, ph: int, pw: int) -> bool:
    """Whether inference runs a convolution and the max pooling after it as conv2d_3x3_maxpool_2x2: single-
    channel images, 3x3 windows at stride 1, 2x2 pooling (a grey first layer)."""
    return g.channels == 1 and g.kh == 3 and g.kw == 3 and g.sh == 1 and g.sw == 1 and ph == 2 and pw == 2


def _chunks(g: Conv2DGeometry, itemsize: int, lo: int, hi: int):
    """(first image, end image, their output rows) of chunks of about CONV_CHUNK_BYTES of patches."""
    rows = g.out_h * g.out_w
    step = max(1, CONV_CHUNK_BYTES // (rows * g.patch_size * itemsize))
    for start in range(lo, hi, step):
        stop = min(hi, start + step)
        yield start, stop, slice(start * rows, stop * rows)


def conv2d_workspace_bytes(ops, g: Conv2DGeometry, filters: int, batch: int, threads: int, itemsize: int) -> dict:
    """Bytes of the workspaces conv2d_forward/backward ask for, beyond the output and input gradient
    (upper bounds, exact integers): checked before anything is allocated."""
    per_image = g.out_h * g.out_w * g.patch_size * itemsize
    images = min(batch, max(1, CONV_CHUNK_BYTES // per_image))  # per chunk: at least one image
    parts = min(threads, batch)
    kernel = g.patch_size * filters * itemsize
    fused_images = min(batch, max(1, CONV_CHUNK_BYTES // (g.out_h * g.out_w * (g.patch_size + filters) * itemsize)))
    winograd = {}
    if ops.conv2d_uses_winograd(g):
        images, per_winograd_image = _winograd_step(g, filters, itemsize)
        winograd = {"Winograd tiles (all threads)": parts * min(batch, images) * per_winograd_image,
                    "Winograd kernel": 36 * g.channels * filters * itemsize}
    return {**winograd, "patches (all threads)": parts * images * per_image,
            "outputs before pooling (all threads)": parts * fused_images * g.out_h * g.out_w * filters * itemsize,
            "patch gradients (all threads)": parts * images * per_image,
            "kernel gradients (all threads)": 3 * parts * kernel,
            "sparse gradient lists": batch * g.out_h * g.out_w * filters * (4 + 4 + itemsize) // 4}


def _patches(ops, x, g, start, stop, ws, part):
    rows = (stop - start) * g.out_h * g.out_w
    return ops.im2col(x[start:stop], *g.window(), ws(f"cols{part}", (rows, g.patch_size)))


def _patch_product(ops, x, g, kernel, start, stop, ws, part, out):
    """The convolution of images [start, stop) before bias and activation, into ``out`` (rows, filters):
    patches and one GEMM. With few channels the patches are built as columns (a long contiguous run per
    tap; as rows each is a few values), and the GEMM reads them transposed."""
    if g.kw * g.channels >= CONV_TRANSPOSED_PATCHES_BELOW:
        return ops.gemm(_patches(ops, x, g, start, stop, ws, part), kernel, out=out)
    cols = ops.im2col_transposed(x[start:stop], *g.window(), ws(f"cols_t{part}", (g.patch_size, len(out))))
    return ops.gemm(cols, kernel, out=out, trans_a=True)


def conv2d_forward(ops, x, kernel4, bias, act, g: Conv2DGeometry, ws, inference=False):
    """act(conv(x, kernel4) + bias) as an (N, out_h, out_w, filters) view of a workspace (``inference``: no
    gradient will follow, so Winograd may compute it)."""
    x = np.ascontiguousarray(x)
    n, filters = x.shape[0], kernel4.shape[3]
    y = ws("y", (n * g.out_h * g.out_w, filters))
    y4 = y.reshape(n, g.out_h, g.out_w, filters)
    kernel = kernel4.reshape(-1, filters)
    if inference and ops.conv2d_uses_winograd(g):
        def emit(i, start, stop, z):
            y4[start:stop] = z[:g.out_h, :g.out_w].transpose(2, 0, 1, 3)
            ops.bias_activation_inplace(y4[start:stop].reshape(-1, filters), bias, act)

        return _winograd_forward(ops, x, kernel4, g, ws, emit, y4)

    def part(i, lo, hi):
        if ops.conv2d_is_direct(g):
            ops.conv2d_direct(x[lo:hi], kernel4, bias, act, g.sh, g.sw, g.pad_top, g.pad_left, g.out_h, g.out_w,
                              y4[lo:hi])
            return
        for start, stop, rows in _chunks(g, x.dtype.itemsize, lo, hi):
            z = ops.gemm(_patches(ops, x, g, start, stop, ws, i), kernel, out=y[rows])
            ops.bias_activation_inplace(z, bias, act)  # while the chunk is in cache

    ops.parallel(part, n, g.work(n, filters))
    return y4


def conv2d_backward(ops, x, y4, dy, kernel4, act, g: Conv2DGeometry, grad_kernel, grad_bias, need_dx, ws):
    """Fill grad_kernel (and grad_bias unless None); return the input gradient, or None if not needed."""
    filters = kernel4.shape[3]
    x = np.ascontiguousarray(x)
    n = len(x)
    dy2 = np.ascontiguousarray(dy).reshape(-1, filters)
    if ops.conv2d_is_direct(g) and not need_dx:
        return _direct_backward(ops, x, y4, dy2.reshape(y4.shape), act, g, grad_kernel, grad_bias)
    dx = ws("dx", x.shape) if need_dx else None
    kernel = kernel4.reshape(-1, filters)
    kernel_t = ws("kernel_t", kernel.T.shape)
    kernel_t[...] = kernel.T
    rows = g.out_h * g.out_w
    y2 = y4.reshape(-1, filters)
    results = ops.parallel(
        lambda i, lo, hi: _backward_part(ops, i, lo, hi, x, y2[lo * rows:hi * rows], dy2[lo * rows:hi * rows],
                                         kernel_t, act, g, dx, ws), n, 2 * g.work(n, filters))
    _store_weight_grads([(gk.reshape(grad_kernel.shape), db) for gk, db in results], grad_kernel, grad_bias)
    return dx


def _store_weight_grads(parts, grad_kernel, grad_bias):
    """Store the sum over threads of (kernel gradient, bias gradient) pairs."""
    grad_kernel[...] = sum(gk for gk, _ in parts)
    if grad_bias is not None:
        grad_bias[...] = sum(db for _, db in parts)


def _backward_part(ops, i, lo, hi, x, y, dy2, kernel_t, act, g, dx, ws):
    """Kernel and bias gradients of images [lo, hi) (returned) and their input gradient (into dx)."""
    oh, ow = g.out_h, g.out_w
    if not ops.conv2d_is_direct(g):
        room = max(0, int(CONV_SPARSE_MAX_DENSITY * dy2.size))  # longer lists: the GEMMs are faster
        pixel = ws(f"pixel{i}", (room,), np.int32)
        channel = ws(f"channel{i}", (room,), np.int32)
        value = ws(f"value{i}", (room,))
        count, db = ops.activation_backward_nonzero(dy2, y, act, pixel, channel, value)
        if count >= 0:
            grad_t = ws(f"grad_t{i}", kernel_t.shape)
            grad_t[...] = 0
            part_dx = np.empty((0, 0, 0, 0), x.dtype) if dx is None else dx[lo:hi]
            ops.conv2d_sparse_backward(x[lo:hi], pixel, channel, value, count, oh, ow, kernel_t,
                                       g.kh, g.kw, g.sh, g.sw, g.pad_top, g.pad_left, grad_t, part_dx)
            return grad_t.T, db
    # dense: the pre-activation gradient in full, then GEMMs over patches a few images at a time
    dz, db = ops.bias_activation_backward(dy2, y, act, ws(f"dz{i}", dy2.shape))
    kernel = kernel_t.T
    if ops.conv2d_is_direct(g):
        dz4 = dz.reshape(hi - lo, oh, ow, -1)
        grad = ops.conv2d_direct_backward(x[lo:hi], dz4, dz4, LINEAR, g.kh, g.kw, g.sh, g.sw, g.pad_top,
                                          g.pad_left)[0]
        grad = grad.reshape(kernel.shape)
    else:
        grad = ws(f"grad{i}", kernel.shape)
        grad[...] = 0
        step_grad = ws(f"step_grad{i}", kernel.shape)
    for start, stop, rows in _chunks(g, x.dtype.itemsize, lo, hi):
        local = slice(rows.start - lo * oh * ow, rows.stop - lo * oh * ow)
        # patches are rebuilt rather than kept from forward: cheaper than a round trip to memory
        cols = _patches(ops, x, g, start, stop, ws, i)
        if not ops.conv2d_is_direct(g):
            ops.gemm(cols, dz[local], out=step_grad, trans_a=True)
            grad += step_grad
        if dx is not None:
            dcols = ops.gemm(dz[local], kernel, out=ws(f"dcols{i}", cols.shape), trans_b=True)
            ops.col2im(dcols, g.kh, g.kw, g.sh, g.sw, g.pad_top, g.pad_left, oh, ow, dx[start:stop])
    return grad, db


def _direct_backward(ops, x, y4, dy4, act, g, grad_kernel, grad_bias):
    """Weight gradients only (a first layer), the activation's gradient fused in: one pass over dy."""

    def part(i, lo, hi):
        return ops.conv2d_direct_backward(x[lo:hi], dy4[lo:hi], y4[lo:hi], act, g.kh, g.kw, g.sh, g.sw,
                                          g.pad_top, g.pad_left)

    _store_weight_grads(ops.parallel(part, len(x), g.work(len(x), dy4.shape[3])), grad_kernel, grad_bias)
    return None


def conv2d_maxpool_forward(ops, x, kernel4, bias, act, g: Conv2DGeometry, ph, pw, out, arg, ws, inference=False):
    """A convolution and the max pooling after it, a few images at a time: patches, one GEMM into a
    buffer still in cache, then its windows' maxima (and their places in ``arg``), bias and activation
    into ``out``. The convolution's full-size output never goes to memory. With ``inference`` (no
    gradient will follow) ``arg`` is not written, and a grey 3x3 first layer is one kernel, a 3x3
    convolution with more channels may be Winograd's."""
    x = np.ascontiguousarray(x)
    n, filters = len(x), kernel4.shape[3]
    pool_h, pool_w = out.shape[1], out.shape[2]
    if inference and ops.conv2d_pools_in_one_kernel(g, ph, pw):
        ops.parallel(lambda i, lo, hi: ops.conv2d_3x3_maxpool_2x2(x[lo:hi], kernel4, bias, act, g.pad_top, g.pad_left,
                                                                  out[lo:hi]), n, g.work(n, filters))
        return out
    if inference and ops.conv2d_uses_winograd(g):
        def emit(i, start, stop, z):
            # pooled in the (rows, columns, images, filters) layout the transforms leave, as one image of
            # images*filters channels (whole, tiles' padding included: contiguous, and no window reaches the
            # padding), then put back in image order
            images = stop - start
            pooled = ws(f"winograd_pooled{i}", (1, pool_h, pool_w, images * filters))
            ops.max_pool_forward(z.reshape(1, z.shape[0], z.shape[1], -1), ph, pw, ph, pw, 0, 0, pool_h, pool_w,
                                 pooled, NO_PLACES)
            ops.bias_activation_inplace(pooled.reshape(-1, filters), bias, act)
            out[start:stop] = pooled.reshape(pool_h, pool_w, images, filters).transpose(2, 0, 1, 3)

        return _winograd_forward(ops, x, kernel4, g, ws, emit, out)
    kernel = kernel4.reshape(-1, filters)
    per_image = g.out_h * g.out_w * (g.patch_size + filters) * x.dtype.itemsize
    step = max(1, CONV_CHUNK_BYTES // per_image)

    def part(i, lo, hi):
        for start in range(lo, hi, step):
            stop = min(hi, start + step)
            z = _patch_product(ops, x, g, kernel, start, stop, ws, i,
                               ws(f"z{i}", ((stop - start) * g.out_h * g.out_w, filters)))
            pooled = out[start:stop]
            ops.max_pool_forward(z.reshape(stop - start, g.out_h, g.out_w, filters), ph, pw, ph, pw, 0, 0, pool_h,
                                 pool_w, pooled, NO_PLACES if inference else arg[start:stop])
            ops.bias_activation_inplace(pooled.reshape(-1, filters), bias, act)

    ops.parallel(part, n, g.work(n, filters))
    return out


def _winograd_kernel(kernel4) -> np.ndarray:
    """G g G^T of each (input channel, filter) pair of a (3, 3, C, filters) kernel: (36, C, filters), the 36
    right-hand sides of Winograd F(4x4, 3x3)'s GEMMs (computed in float64)."""
    u = np.einsum("ai,bj,ijcf->abcf", WINOGRAD_G, WINOGRAD_G, kernel4.astype(np.float64))
    return u.reshape(36, *kernel4.shape[2:]).astype(kernel4.dtype)


def _winograd_tiles(g: Conv2DGeometry) -> tuple[int, int]:
    return -(-g.out_h // 4), -(-g.out_w // 4)


def _winograd_step(g: Conv2DGeometry, filters: int, itemsize: int) -> tuple[int, int]:
    """(images per chunk, bytes of workspace per image) of the Winograd path."""
    tiles_h, tiles_w = _winograd_tiles(g)
    tiles, width, c = tiles_h * tiles_w, 4 * tiles_w + 2, g.channels
    values = ((4 * tiles_h + 2) * width * c + 6 * width * c + 36 * tiles * (c + filters) + 24 * filters
              + 16 * tiles * filters + 2 * g.out_h * g.out_w * filters)  # the last: a pooled output and its arg
    return max(1, WINOGRAD_CHUNK_BYTES // (values * itemsize)), values * itemsize


def _winograd_forward(ops, x, kernel4, g: Conv2DGeometry, ws, emit, result):
    """The convolution (before bias) of a few images at a time, split across threads: each chunk's tiles
    transformed, 36 GEMMs, transformed back; ``emit(part, start, stop, z)`` takes each chunk's (rows, columns, images, filters),
    whole tiles: the output is its first out_h rows and out_w columns."""
    n, c, filters = len(x), x.shape[3], kernel4.shape[3]
    u = ws("winograd_kernel", (36, c, filters))
    u[...] = _winograd_kernel(kernel4)
    tiles_h, tiles_w = _winograd_tiles(g)
    step = _winograd_step(g, filters, x.dtype.itemsize)[0]

    def part(i, lo, hi):
        for start in range(lo, hi, step):
            stop = min(hi, start + step)
            images = stop - start
            width = 4 * tiles_w + 2
            v = ops.winograd_input_4x4(x[start:stop], g.pad_top, g.pad_left,
                                       ws(f"winograd_x{i}", (4 * tiles_h + 2, width, images, c)),
                                       ws(f"winograd_down{i}", (6, width, images, c)),
                                       ws(f"winograd_v{i}", (36, tiles_h, tiles_w, images, c)))
            m = ws(f"winograd_m{i}", (36, tiles_h, tiles_w, images, filters))
            ops.gemm(v.reshape(36, -1, c), u, out=m.reshape(36, -1, filters))
            z = ops.winograd_output_4x4(m, ws(f"winograd_across{i}", (4, 6, images, filters)),
                                        ws(f"winograd_y{i}", (4 * tiles_h, 4 * tiles_w, images, filters)))
            emit(i, start, stop, z)

    ops.parallel(part, n, g.work(n, filters))
    return result


def conv2d_maxpool_backward(ops, x, dy, pooled, arg, act, g: Conv2DGeometry, ph, pw, grad_kernel, grad_bias):
    """Weight gradients of the fused convolution + max pooling (its input gradient is never needed)."""
    x, dy = np.ascontiguousarray(x), np.ascontiguousarray(dy)

    def part(i, lo, hi):
        return ops.conv2d_direct_maxpool_backward(x[lo:hi], dy[lo:hi], pooled[lo:hi], arg[lo:hi], act, g.kh, g.kw,
                                                  g.sh, g.sw, g.pad_top, g.pad_left, ph, pw)

    _store_weight_grads(ops.parallel(part, len(x), g.work(len(x), grad_kernel.shape[3])), grad_kernel, grad_bias)


def _padded_shape(g: Conv2DGeometry, dilation, shape):
    """The shape of an (N, H, W, C) image zero-padded as ``g`` says: its top and left padding, and below
    and right as much as the last windows (taps ``dilation`` apart) reach past it."""
    n, h, w, c = shape
    span_h, span_w = (g.kh - 1) * dilation[0] + 1, (g.kw - 1) * dilation[1] + 1
    bottom = max(0, (g.out_h - 1) * g.sh + span_h - h - g.pad_top)
    right = max(0, (g.out_w - 1) * g.sw + span_w - w - g.pad_left)
    return n, g.pad_top + h + bottom, g.pad_left + w + right, c


def _windows(x, g: Conv2DGeometry, dilation=(1, 1)):
    """(N, oh, ow, C, kh, kw) windows of ``x`` zero-padded as ``g`` says, taps ``dilation`` apart (a view
    into the padded copy), and the padded copy's shape."""
    dh, dw = dilation
    _, hp, wp, _ = padded_shape = _padded_shape(g, dilation, x.shape)
    h, w = x.shape[1:3]
    padded = np.pad(x, ((0, 0), (g.pad_top, hp - g.pad_top - h), (g.pad_left, wp - g.pad_left - w), (0, 0)))
    span = ((g.kh - 1) * dh + 1, (g.kw - 1) * dw + 1)
    windows = np.lib.stride_tricks.sliding_window_view(padded, span, axis=(1, 2))
    return windows[:, ::g.sh, ::g.sw, :, ::dh, ::dw][:, :g.out_h, :g.out_w], padded_shape


def _scatter_windows(dwindows, padded_shape, g: Conv2DGeometry, dilation, shape):
    """The gradient of ``_windows``: each tap's window gradients added back where it read, unpadded to
    ``shape`` (N, H, W, C)."""
    dh, dw = dilation
    dpadded = np.zeros(padded_shape, dwindows.dtype)
    for i in range(g.kh):
        for j in range(g.kw):
            top, left = i * dh, j * dw
            dpadded[:, top:top + g.sh * g.out_h:g.sh, left:left + g.sw * g.out_w:g.sw] += dwindows[..., i, j]
    h, w = shape[1:3]
    return np.ascontiguousarray(dpadded[:, g.pad_top:g.pad_top + h, g.pad_left:g.pad_left + w])


def depthwise_conv2d_forward(ops, x, kernel, g: Conv2DGeometry, dilation=(1, 1)):
    """Each input channel convolved with its own ``depth_multiplier`` filters: x (N, H, W, C), kernel
    (kh, kw, C, m) -> (N, oh, ow, C * m), channel c's filters next to each other (Keras' order)."""
    patches, _ = _windows(x, g, dilation)
    out = np.einsum("nhwcij,ijcm->nhwcm", patches, kernel, optimize=True)
    return np.ascontiguousarray(out.reshape(out.shape[:3] + (-1,)), dtype=x.dtype)


def depthwise_conv2d_backward(ops, x, dy, kernel, g: Conv2DGeometry, need_dx: bool, dilation=(1, 1)):
    """(the kernel's gradient, the input's or None) for depthwise_conv2d_forward."""
    patches, padded_shape = _windows(x, g, dilation)
    dy5 = dy.reshape(dy.shape[:3] + kernel.shape[2:])
    grad = np.einsum("nhwcij,nhwcm->ijcm", patches, dy5, optimize=True).astype(x.dtype)
    if not need_dx:
        return grad, None
    dpatches = np.einsum("nhwcm,ijcm->nhwcij", dy5, kernel, optimize=True)
    return grad, _scatter_windows(dpatches, padded_shape, g, dilation, x.shape)


def _grouped(patches, kernel, groups):
    """patches (N, oh, ow, C, kh, kw) as (N, oh, ow, G, C/G, kh, kw); kernel (kh, kw, C/G, F) as
    (kh, kw, C/G, G, F/G): group g reads input channels and writes filters of block g."""
    n, oh, ow, c, kh, kw = patches.shape
    kernel5 = kernel.reshape(kh, kw, c // groups, groups, kernel.shape[3] // groups)
    return patches.reshape(n, oh, ow, groups, c // groups, kh, kw), kernel5


def grouped_conv2d_forward(ops, x, kernel, g: Conv2DGeometry, dilation=(1, 1), groups=1):
    """A convolution with taps ``dilation`` apart and ``groups`` channel groups: x (N, H, W, C), kernel
    (kh, kw, C / groups, F) (Keras' layout) -> (N, oh, ow, F), no bias. Host numpy (windows and einsum)."""
    patches, _ = _windows(x, g, dilation)
    patches7, kernel5 = _grouped(patches, kernel, groups)
    out = np.einsum("nhwgcij,ijcgf->nhwgf", patches7, kernel5, optimize=True)
    return np.ascontiguousarray(out.reshape(out.shape[:3] + (-1,)), dtype=x.dtype)


def grouped_conv2d_backward(ops, x, dz, kernel, g: Conv2DGeometry, need_dx: bool, dilation=(1, 1), groups=1):
    """(the kernel's gradient, the input's or None) for grouped_conv2d_forward, from the gradient ``dz`` of
    its output."""
    patches, padded_shape = _windows(x, g, dilation)
    patches7, kernel5 = _grouped(patches, kernel, groups)
    dz5 = dz.reshape(dz.shape[:3] + (groups, kernel5.shape[4]))
    grad = np.einsum("nhwgcij,nhwgf->ijcgf", patches7, dz5, optimize=True)
    grad = np.ascontiguousarray(grad.reshape(kernel.shape), dtype=x.dtype)
    if not need_dx:
        return grad, None
    dpatches = np.einsum("nhwgf,ijcgf->nhwgcij", dz5, kernel5, optimize=True)
    return grad, _scatter_windows(dpatches.reshape(patches.shape), padded_shape, g, dilation, x.shape)


def conv2d_transpose_forward(ops, x, kernel, g: Conv2DGeometry, dilation, out_hw):
    """The transposed convolution (the gradient of a convolution with respect to its input): x (N, h, w, C),
    kernel (kh, kw, F, C) as Keras' Conv2DTranspose -> (N, out_h, out_w, F), no bias. ``g`` is the
    geometry of that convolution over the (out_h, out_w) output (its windows, one per input pixel): each
    input pixel's x . kernel[i, j] goes back where tap (i, j) of its window reads. Host numpy."""
    taps = np.einsum("nhwc,ijfc->nhwfij", x, kernel, optimize=True)
    shape = (len(x),) + tuple(out_hw) + (kernel.shape[2],)
    return _scatter_windows(taps, _padded_shape(g, dilation, shape), g, dilation, shape).astype(x.dtype, copy=False)


def conv2d_transpose_backward(ops, x, dy, kernel, g: Conv2DGeometry, dilation, need_dx: bool):
    """(the kernel's gradient, the input's or None) for conv2d_transpose_forward, from its output's gradient
    ``dy``: each tap reads back, through the windows of ``g``, what it wrote."""
    dtaps, _ = _windows(dy, g, dilation)  # (N, h, w, F, kh, kw)
    grad = np.ascontiguousarray(np.einsum("nhwfij,nhwc->ijfc", dtaps, x, optimize=True), dtype=x.dtype)
    if not need_dx:
        return grad, None
    return grad, np.ascontiguousarray(np.einsum("nhwfij,ijfc->nhwc", dtaps, kernel, optimize=True), dtype=x.dtype)
