"""What the cuda Ops computes differently from kerascli/ops/algorithms/: whole batches at once (a GPU is
filled by one launch over the batch; there are no host threads to split work over), convolutions as
im2col + one GEMM each way, and summaries (losses, metric counts) that stay on the device until they are
read (:class:`DeviceSum`). Each function takes the Ops as ``self`` and is bound as a method of it."""

from __future__ import annotations

import math

import numpy as np
from numba import cuda

from kerascli.ops.contract import LINEAR
from kerascli.ops.cuda import activations as act_kernels
from kerascli.ops.cuda.conv import col2im, im2col
from kerascli.ops.cuda.kernel import kernel
from kerascli.ops.cuda.launch import (
    accumulate_sum,
    as2d,
    blocks,
    column_sums,
    copy2d,
    device_empty,
    fill,
    output_for,
    scratch,
)
from kerascli.ops.cuda.losses import _no_labels


# ---------------------------------------------------------------- dense
def dense_forward(ops, x2, kernel, bias, act, out):
    ops.gemm(x2, kernel, out=out)
    return act_kernels._launch_bias_activation(out, bias, act, out)


def activation_backward(ops, dy, y, act, dz, grad_bias=None):
    if act == LINEAR and dy.is_c_contiguous():
        dz = dy  # nothing to apply (an output whose activation the loss took over): no copy
    else:
        act_kernels._launch_activation_gradient(dy, y, act, dz)
    db = grad_bias if grad_bias is not None else output_for("column_sums", dz, (dz.shape[1],), dz.dtype)
    return dz, column_sums(dz, db)


def dense_backward(ops, x2, kernel, dz, grad_kernel, dx):
    if grad_kernel is not None:
        ops.gemm(x2, dz, out=grad_kernel, trans_a=True)
    if dx is not None:
        ops.gemm(dz, kernel, out=dx, trans_b=True)
    return dx


@kernel
def _scale_shift(x, scale, offset, out):
    i = cuda.grid(1)
    rows, cols = x.shape
    if i < rows * cols:
        r = i // cols
        c = i - r * cols
        out[r, c] = x[r, c] * scale + offset


def scale_shift(ops, x, scale, offset):
    out = output_for("scale_shift", x, x.shape, x.dtype)
    if x.size:
        item = np.dtype(x.dtype).type
        _scale_shift[blocks(x.size)](as2d(x), item(scale), item(offset), as2d(out))
    return out


# ---------------------------------------------------------------- convolution
def conv2d_is_direct(ops, g) -> bool:
    """Never on a GPU: one GEMM over the whole batch's patches fills it better."""
    return False


def conv2d_fuses_pool_in_inference(ops, g) -> bool:
    """Not on a GPU: the fused forward works a few images at a time, which suits host caches, not a GPU."""
    return False


def conv2d_workspace_bytes(ops, g, filters, batch, threads, itemsize) -> dict:
    patches = batch * g.out_h * g.out_w * g.patch_size * itemsize
    return {"patches": patches, "patch gradients": patches, "pre-activation gradient":
            batch * g.out_h * g.out_w * filters * itemsize}


def conv2d_forward(ops, x, kernel4, bias, act, g, ws, inference=False):
    """Patches and one GEMM, in training and inference alike (the Winograd path is the host's)."""
    n, filters = x.shape[0], kernel4.shape[3]
    rows = n * g.out_h * g.out_w
    cols = im2col(x, *g.window(), ws("cols", (rows, g.patch_size)))
    y = ws("y", (rows, filters))
    ops.gemm(cols, kernel4.reshape(g.patch_size, filters), out=y)
    act_kernels._launch_bias_activation(y, bias, act, y)
    return y.reshape(n, g.out_h, g.out_w, filters)


def conv2d_backward(ops, x, y4, dy, kernel4, act, g, grad_kernel, grad_bias, need_dx, ws):
    n, filters = x.shape[0], kernel4.shape[3]
    rows = n * g.out_h * g.out_w
    dz = act_kernels._launch_activation_gradient(dy.reshape(rows, filters), y4.reshape(rows, filters), act,
                                                ws("dz", (rows, filters)))
    if grad_bias is not None:
        column_sums(dz, grad_bias)
    cols = ws("cols", (rows, g.patch_size))  # forward's patches, still there (nothing else writes them)
    ops.gemm(cols, dz, out=grad_kernel.reshape(g.patch_size, filters), trans_a=True)
    if not need_dx:
        return None
    dcols = ops.gemm(dz, kernel4.reshape(g.patch_size, filters), out=ws("dcols", (rows, g.patch_size)),
                     trans_b=True)
    return col2im(dcols, *g.window(), ws("dx", x.shape))


# ---------------------------------------------------------------- pooling
def max_pool2d_forward(ops, x, window, out_h, out_w, out, arg):
    ops.max_pool_forward(x, *window, out_h, out_w, out, arg)
    return out


def max_pool2d_backward(ops, dy, arg, window, dx):
    return ops.max_pool_backward(dy, arg, *window, dx)


def avg_pool2d_forward(ops, x, window, out_h, out_w, out):
    return ops.avg_pool_forward(x, *window, out_h, out_w, out)


def avg_pool2d_backward(ops, dy, window, dx):
    return ops.avg_pool_backward(dy, *window, dx)


# ---------------------------------------------------------------- optimizers
def optimizer_step(ops, kernel, arrays, scalars=()):
    """One launch over the whole flat buffers."""
    getattr(ops, kernel)(*arrays, *scalars)


# ---------------------------------------------------------------- class weights
@kernel
def _class_weights(t, table, out):
    i = cuda.grid(1)
    if i < out.size:
        rows, cols = t.shape
        if cols == 1:  # a label (or one probability): rounded to the class id
            label = int(math.floor(t[i, 0] + 0.5))
        else:  # a one-hot row: its largest column (the first of ties)
            label = 0
            for c in range(1, cols):
                if t[i, c] > t[i, label]:
                    label = c
        out[i] = table[label]


def class_weights(ops, t, table):
    out = output_for("class_weights", t, (len(t),), table.dtype)
    if len(t):
        _class_weights[blocks(len(t))](t.reshape(len(t), 1) if t.ndim == 1 else t, table, out)
    return out


@kernel
def _scale_rows(x, weights, out):
    i = cuda.grid(1)
    rows, cols = x.shape
    if i < rows * cols:
        r = i // cols
        out[r, i - r * cols] = x[r, i - r * cols] * weights[r]


def scale_rows(ops, x, weights):
    out = output_for("scale_rows", (x, weights), x.shape, x.dtype)
    if x.size:
        _scale_rows[blocks(x.size)](as2d(x) if x.ndim > 1 else x.reshape(len(x), 1), weights,
                                    as2d(out) if out.ndim > 1 else out.reshape(len(out), 1))
    return out


# ---------------------------------------------------------------- arrays
@kernel
def _add_into(out, x):
    i = cuda.grid(1)
    if i < out.size:
        out[i] += x[i]


def add_n(ops, xs):
    out = output_for("add_n", tuple(xs), xs[0].shape, xs[0].dtype)
    flat = out.reshape(out.size)
    copy2d(as2d(xs[0]), as2d(out))
    for x in xs[1:]:
        if flat.size:
            _add_into[blocks(flat.size)](flat, x.reshape(x.size))
    return out


def _blocks_view(a, axis):
    """``a`` (contiguous) as (outer, size along axis * inner): concatenation along ``axis`` is a
    concatenation of these rows."""
    outer = math.prod(a.shape[:axis])
    return a.reshape(outer, a.size // max(outer, 1))


def concatenate(ops, xs, axis):
    shape = list(xs[0].shape)
    shape[axis] = sum(x.shape[axis] for x in xs)
    out = output_for("concatenate", tuple(xs), tuple(shape), xs[0].dtype)
    rows = _blocks_view(out, axis)
    start = 0
    for x in xs:
        part = _blocks_view(x, axis)
        copy2d(part, rows[:, start:start + part.shape[1]])
        start += part.shape[1]
    return out


def split(ops, x, sizes, axis):
    rows = _blocks_view(x, axis)
    pieces, start = [], 0
    for size in sizes:
        shape = list(x.shape)
        shape[axis] = size
        piece = output_for(f"split{len(pieces)}", x, tuple(shape), x.dtype)
        view = _blocks_view(piece, axis)
        copy2d(rows[:, start:start + view.shape[1]], view)
        start += view.shape[1]
        pieces.append(piece)
    return pieces


@kernel
def _one_hot(labels, out):
    i = cuda.grid(1)
    rows, units = out.shape
    if i < rows * units:
        r = i // units
        c = i - r * units
        out[r, c] = 1 if labels[r] == c else 0


def one_hot(ops, labels, units, dtype):
    out = output_for("one_hot", labels, (len(labels), units), dtype)
    if out.size:
        _one_hot[blocks(out.size)](labels, out)
    return out


@cuda.jit(device=True)
def _mix(z):
    """splitmix64's finaliser: a well-mixed 64-bit value from a counter."""
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return z ^ (z >> np.uint64(31))


@kernel
def _uniform(seed, out):
    i = cuda.grid(1)
    if i < out.size:
        bits = _mix(seed + np.uint64(i) * np.uint64(0x9E3779B97F4A7C15))
        out[i] = (bits >> np.uint64(40)) * (1.0 / 16777216.0)  # 24 bits: exact in float32, below 1


def uniform(ops, rng, shape, dtype, out=None):
    """Uniform [0, 1) draws made on the device from a counter-based generator, seeded by one draw of ``rng``
    (whose state checkpoints record): the same rng state gives the same draws. Into ``out`` when given."""
    out = device_empty(shape, dtype) if out is None else out
    flat = out.reshape(out.size)
    seed = np.uint64(rng.integers(0, 2**63))
    if flat.size:
        _uniform[blocks(flat.size)](seed, flat)
    return out


class DeviceSum:
    """A number still on the GPU: the sum of ``values`` (a device array), times ``weight``. Training adds it
    to a device accumulator (kerascli.train.loop.Totals) and nothing is copied to the host until the sums
    are read."""

    def __init__(self, values, weight=1.0):
        self.values, self.weight = values, weight

    def scaled(self, weight):
        return DeviceSum(self.values, self.weight * weight)

    @staticmethod
    def accumulator(size):
        return fill(device_empty((size,), np.float64), 0.0)

    def add_to(self, acc, index):
        accumulate_sum(self.values, acc, index, self.weight)

    @staticmethod
    def read(acc):
        """The accumulated sums as host floats; the accumulator starts again from zero."""
        values = acc.copy_to_host()
        fill(acc, 0.0)
        return [float(v) for v in values]

    def __float__(self):
        acc = self.accumulator(1)
        self.add_to(acc, 0)
        return self.read(acc)[0]


def total(ops, values):
    return DeviceSum(values)


@kernel
def _argmax_hits(pred, t, labels, sparse, hits):
    r = cuda.grid(1)
    rows, cols = pred.shape
    if r < rows:
        best = 0
        for c in range(1, cols):
            if pred[r, c] > pred[r, best]:
                best = c
        if sparse:
            want = labels[r]
        else:
            want = 0
            for c in range(1, cols):
                if t[r, c] > t[r, want]:
                    want = c
        hits[r] = 1.0 if best == want else 0.0


def count_argmax_agree(ops, pred, t):
    hits = scratch("argmax_hits", len(pred))
    _argmax_hits[blocks(len(pred))](pred, t, _no_labels(), False, hits)
    return DeviceSum(hits)


def count_argmax_hits(ops, pred, labels):
    hits = scratch("argmax_hits", len(pred))
    _argmax_hits[blocks(len(pred))](pred, pred, labels, True, hits)
    return DeviceSum(hits)


@kernel
def _threshold_agree(pred, t, threshold, out):
    r = cuda.grid(1)
    rows, cols = pred.shape
    if r < rows:
        same = 0
        for c in range(cols):
            if (pred[r, c] > threshold) == (t[r, c] > threshold):
                same += 1
        out[r] = same / cols


def mean_threshold_agree(ops, pred, t, threshold):
    out = scratch("threshold_agree", len(pred))
    _threshold_agree[blocks(len(pred))](pred, t, threshold, out)
    return DeviceSum(out)


@kernel
def _row_mean_abs(pred, t, out):
    r = cuda.grid(1)
    rows, cols = pred.shape
    if r < rows:
        s = 0.0
        for c in range(cols):
            s += abs(pred[r, c] - t[r, c])
        out[r] = s / cols


def sum_row_mean_abs_error(ops, pred, t):
    out = scratch("row_mean_abs", len(pred))
    _row_mean_abs[blocks(len(pred))](pred, t, out)
    return DeviceSum(out)
