"""Dense layers and activations: a GEMM with the bias and activation fused after it, and back."""

from __future__ import annotations


def dense_forward(ops, x2, kernel, bias, act, out):
    """out = act(x2 @ kernel + bias) for 2-D ``x2``; rows split across threads."""
    rows, units = out.shape

    def part(i, lo, hi):
        ops.gemm(x2[lo:hi], kernel, out=out[lo:hi])
        ops.bias_activation_inplace(out[lo:hi], bias, act)

    ops.parallel(part, rows, rows * x2.shape[1] * units)
    return out


def matmul_rows(ops, a, b, out):
    """out = a @ b, rows split across threads."""
    ops.parallel(lambda i, lo, hi: ops.gemm(a[lo:hi], b, out=out[lo:hi]), len(a), a.size * b.shape[1])
    return out


def activation_backward(ops, dy, y, act, dz, grad_bias=None):
    """Gradient through ``act`` from its output ``y`` into ``dz`` (rows split across threads); returns
    (dz, its column sums: the bias gradient, written into ``grad_bias`` when given)."""

    def part(i, lo, hi):
        return ops.bias_activation_backward(dy[lo:hi], y[lo:hi], act, dz[lo:hi])[1]

    db = sum(ops.parallel(part, len(y), y.size))
    if grad_bias is not None:
        grad_bias[...] = db
        db = grad_bias
    return dz, db


def dense_backward(ops, x2, kernel, dz, grad_kernel, dx):
    """grad_kernel = x2.T @ dz (split by kernel rows; not when it is None: a frozen kernel) and, unless
    ``dx`` is None, dx = dz @ kernel.T (split by samples)."""
    rows, units = dz.shape
    inputs = x2.shape[1]
    work = rows * inputs * units
    if grad_kernel is not None:
        ops.parallel(lambda i, lo, hi: ops.gemm(x2[:, lo:hi], dz, out=grad_kernel[lo:hi], trans_a=True), inputs,
                     work)
    if dx is not None:
        ops.parallel(lambda i, lo, hi: ops.gemm(dz[lo:hi], kernel, out=dx[lo:hi], trans_b=True), rows, work)
    return dx


def scale_shift(ops, x, scale, offset):
    """x * scale + offset (Rescaling), in x's dtype."""
    y = x * x.dtype.type(scale)
    if offset:
        y += x.dtype.type(offset)
    return y
