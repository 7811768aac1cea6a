"""Array plumbing that layers, losses and metrics need besides kernels: merging, one-hot targets, random
draws, counts for metrics. Written with numpy here; a device backend overrides them."""

from __future__ import annotations

import numpy as np


def add_n(ops, xs):
    """The elementwise sum of two or more arrays of one shape, in a new array."""
    out = xs[0] + xs[1]
    for x in xs[2:]:
        out += x
    return out


def concatenate(ops, xs, axis):
    return np.concatenate(xs, axis=axis)


def split(ops, x, sizes, axis):
    """The inverse of concatenate: pieces of ``x`` along ``axis`` with the given sizes."""
    return np.split(x, np.cumsum(sizes)[:-1], axis=axis)


def one_hot(ops, labels, units, dtype):
    out = np.zeros((len(labels), units), dtype=dtype)
    out[np.arange(len(labels)), labels] = 1
    return out


def uniform(ops, rng, shape, dtype, out=None):
    """Uniform [0, 1) draws from ``rng`` (a numpy Generator whose state checkpoints record), into ``out``
    when given."""
    return rng.random(shape, dtype=dtype, out=out)


def count_argmax_agree(ops, pred, t):
    """How many rows of ``pred`` and one-hot ``t`` have their largest value in the same column."""
    return int(np.count_nonzero(ops.row_argmax(pred) == ops.row_argmax(t)))


def count_argmax_hits(ops, pred, labels):
    """How many rows of ``pred`` have their largest value at the integer label."""
    return int(np.count_nonzero(ops.row_argmax(pred) == labels))


def mean_threshold_agree(ops, pred, t, threshold):
    """Per row, the fraction of columns where ``pred`` and ``t`` fall on the same side of ``threshold``;
    summed over rows."""
    return float(np.count_nonzero((pred > threshold) == (t > threshold))) / pred.shape[1]


def sum_row_mean_abs_error(ops, pred, t):
    return float(np.abs(pred - t).mean(axis=1).sum())


def class_ids(ops, t):
    """The class of each target row: an integer label as it is, the largest column of a one-hot row, a
    single probability rounded (0 or 1), as Keras reads targets for class weights."""
    if t.ndim == 1:
        return t.astype(np.int64)
    if t.shape[1] == 1:
        return np.round(t[:, 0]).astype(np.int64)
    return t.argmax(axis=1)


def class_weights(ops, t, table):
    """Each target row's weight from ``table`` (the weight of each class id)."""
    return table[ops.class_ids(t)]


def scale_rows(ops, x, weights):
    """``x`` (per-sample values, or rows of them) times each sample's weight, in a new array."""
    return x * weights.reshape((len(x),) + (1,) * (x.ndim - 1)).astype(x.dtype, copy=False)


def multiply_n(ops, xs):
    """The elementwise product of two or more arrays of one shape, in a new array."""
    out = xs[0] * xs[1]
    for x in xs[2:]:
        out *= x
    return out


def elementwise_extreme(ops, xs, largest: bool):
    """(the elementwise maximum or minimum of arrays of one shape, the index of the input each value came
    from: the first of ties)."""
    stacked = np.stack(xs)
    which = stacked.argmax(axis=0) if largest else stacked.argmin(axis=0)
    return np.take_along_axis(stacked, which[None], axis=0)[0], which


def route_by_index(ops, dy, which, count: int):
    """The gradient of each input of elementwise_extreme: ``dy`` where it was chosen, 0 elsewhere."""
    return [np.where(which == i, dy, 0).astype(dy.dtype) for i in range(count)]


def global_pool2d_forward(ops, x, largest: bool):
    """(N, H, W, C) -> (N, C): the maximum (with each winner's place, the first of ties) or the mean over
    every pixel."""
    flat = x.reshape(len(x), -1, x.shape[-1])
    if largest:
        n, c = flat.shape[0], flat.shape[2]
        return ops.global_max_pool(flat, np.empty((n, c), x.dtype), np.empty((n, c), np.int64))
    return flat.mean(axis=1), None


def global_pool2d_backward(ops, dy, where, shape):
    """The input gradient of global_pool2d_forward for inputs of ``shape`` (N, H, W, C)."""
    n, h, w, c = shape
    if where is None:
        return np.broadcast_to((dy / (h * w))[:, None, :], (n, h * w, c)).reshape(shape).astype(dy.dtype)
    dx = np.zeros((n, h * w, c), dy.dtype)
    np.put_along_axis(dx, where[:, None], dy[:, None], axis=1)
    return dx.reshape(shape)


def transpose_samples(ops, x, axes):
    """``x`` with its per-sample axes in the order ``axes`` (0-based, the batch axis left first), copied."""
    return np.ascontiguousarray(np.transpose(x, (0,) + tuple(a + 1 for a in axes)))


def pad2d(ops, x, margins):
    """(N, H, W, C) with zeros around: margins [[top, bottom], [left, right]]."""
    (top, bottom), (left, right) = margins
    return np.pad(x, ((0, 0), (top, bottom), (left, right), (0, 0)))


def crop2d(ops, x, margins):
    """(N, H, W, C) without its margins [[top, bottom], [left, right]], copied."""
    (top, bottom), (left, right) = margins
    return np.ascontiguousarray(x[:, top:x.shape[1] - bottom, left:x.shape[2] - right, :])


def upsample2d(ops, x, rows: int, cols: int):
    """Each pixel repeated rows x cols times (nearest neighbour)."""
    return np.repeat(np.repeat(x, rows, axis=1), cols, axis=2)


def upsample2d_backward(ops, dy, rows: int, cols: int):
    """The gradient of upsample2d: each block of rows x cols summed back into its pixel."""
    n, h, w, c = dy.shape
    return dy.reshape(n, h // rows, rows, w // cols, cols, c).sum(axis=(2, 4))


def repeat_vector(ops, x, times: int):
    """(N, F) -> (N, times, F)."""
    return np.repeat(x[:, None, :], times, axis=1)


def time_major_rows(ops, x, ones: bool, out=None):
    """(B, T, F) sequences as (T * B, F) rows, step after step, with a column of ones after the features when
    ``ones`` (a product with [kernel; bias] then adds the bias, and its gradient comes with the kernel's)."""
    b, t, f = x.shape
    rows = np.empty((t, b, f + ones), x.dtype) if out is None else out.reshape(t, b, f + ones)
    rows[:, :, :f] = np.swapaxes(x, 0, 1)
    if ones:
        rows[:, :, f] = 1
    return rows.reshape(t * b, f + ones)


def swap_batch_and_time(ops, x):
    """(A, B, ...) -> (B, A, ...), copied: batch-major sequences to time-major and back."""
    return np.ascontiguousarray(np.swapaxes(x, 0, 1))


def reverse_time(ops, x):
    """(B, T, ...) with its steps in reverse order, copied."""
    return np.ascontiguousarray(x[:, ::-1])


def scale_by(ops, x, factor):
    """x * factor (broadcast), in a new array."""
    return (x * factor).astype(x.dtype, copy=False)


def embedding_ids(ops, x, input_dim: int, layer: str):
    """Ids as integers, checked to lie in [0, input_dim) (a DataError naming the layer and the id)."""
    from kerascli.errors import DataError

    ids = x.astype(np.int64)
    if ids.size and (ids.min() < 0 or ids.max() >= input_dim or not np.array_equal(ids, x)):
        bad = x[(ids != x) | (ids < 0) | (ids >= input_dim)].ravel()[0]
        raise DataError(f"layer {layer!r} (Embedding) takes ids from 0 to {input_dim - 1}, got {bad!r}")
    return ids


def gather_rows(ops, table, ids):
    """table[ids]: one row of ``table`` per id."""
    return table[ids]




def dropout_mask(ops, rng, shape, dtype, rate, out=None):
    """A scaled keep mask: each value 0 with probability ``rate``, else 1 / (1 - rate) (``out``: where the
    uniform draws go)."""
    return ops.dropout(ops.full(shape, 1.0, dtype), ops.uniform(rng, shape, dtype, out=out), rate)


def normal(ops, rng, shape, dtype, mean=0.0, stddev=1.0):
    """Normal draws from ``rng`` (a numpy Generator whose state checkpoints record)."""
    return rng.normal(mean, stddev, size=shape).astype(dtype)


def batched_dot(ops, a, b, axes):
    """Keras' Dot: per sample, the sum of a * b over a's axis ``axes[0]`` and b's ``axes[1]`` (per-sample axes,
    counted from 0), the remaining axes of a then b."""
    sa, sb = "abcdefgh"[:a.ndim - 1], "ijklmnop"[:b.ndim - 1]
    sb = sb[:axes[1]] + sa[axes[0]] + sb[axes[1] + 1:]
    out = "z" + sa.replace(sa[axes[0]], "") + sb.replace(sa[axes[0]], "")
    return np.einsum(f"z{sa},z{sb}->{out}", a, b).astype(a.dtype, copy=False)


def batched_dot_backward(ops, dy, a, b, axes):
    """(da, db) for batched_dot."""
    sa, sb = "abcdefgh"[:a.ndim - 1], "ijklmnop"[:b.ndim - 1]
    sb = sb[:axes[1]] + sa[axes[0]] + sb[axes[1] + 1:]
    out = "z" + sa.replace(sa[axes[0]], "") + sb.replace(sa[axes[0]], "")
    da = np.einsum(f"{out},z{sb}->z{sa}", dy, b).astype(a.dtype, copy=False)
    db = np.einsum(f"{out},z{sa}->z{sb}", dy, a).astype(b.dtype, copy=False)
    return da, db


def einsum_dense_forward(ops, specs, x, kernel, bias=None):
    """einsum(``in,kernel->out`` of ``specs``, x, kernel) + bias (broadcast against the output's last axes),
    contiguous, in x's type: Keras' EinsumDense before its activation."""
    in_spec, w_spec, out_spec = specs
    z = np.einsum(f"{in_spec},{w_spec}->{out_spec}", x, kernel, optimize=True)
    if bias is not None:
        z += bias
    return np.ascontiguousarray(z, dtype=x.dtype)


def einsum_dense_backward(ops, specs, x, kernel, dz, grad_kernel, grad_bias, need_dx: bool):
    """The gradients of einsum_dense_forward from its output's ``dz``: into ``grad_kernel`` and ``grad_bias``
    (each may be None), and the input's (or None). Input axes the forward summed away (in neither the
    kernel nor the output) receive the gradient unchanged along them."""
    in_spec, w_spec, out_spec = specs
    if grad_bias is not None:
        lead = dz.ndim - grad_bias.ndim
        axes = tuple(range(lead)) + tuple(lead + i for i, n in enumerate(grad_bias.shape) if n == 1)
        grad_bias[...] = dz.sum(axis=axes, keepdims=True).reshape(grad_bias.shape)
    if grad_kernel is not None:
        grad_kernel[...] = np.einsum(f"{in_spec},{out_spec}->{w_spec}", x, dz, optimize=True)
    if not need_dx:
        return None
    kept = "".join(letter for letter in in_spec if letter in out_spec or letter in w_spec)
    dx = np.einsum(f"{out_spec},{w_spec}->{kept}", dz, kernel, optimize=True)
    if kept != in_spec:
        summed = tuple(i for i, letter in enumerate(in_spec) if letter not in kept)
        dx = np.broadcast_to(np.expand_dims(dx, summed), x.shape)
    return np.ascontiguousarray(dx, dtype=x.dtype)
