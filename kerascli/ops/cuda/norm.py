"""CUDA twins of kerascli.ops.reference.norm: batch statistics by the deterministic column sums, the rest
elementwise."""

from __future__ import annotations

import math

from numba import cuda

from kerascli.ops import scalar
from kerascli.ops.cuda.kernel import kernel
from kerascli.ops.cuda.launch import blocks, column_sums, output_for


@kernel
def _center(x, mean_sum, rows, centered, squares):
    """centered = x - mean; squares = centered**2 (mean_sum holds column sums)."""
    i = cuda.grid(1)
    n, cols = x.shape
    if i < n * cols:
        r = i // cols
        c = i - r * cols
        d = x[r, c] - mean_sum[c] / rows
        centered[r, c] = d
        squares[r, c] = d * d


@kernel
def _statistics(sums, square_sums, rows, eps, mean, var, inv_std):
    c = cuda.grid(1)
    if c < mean.size:
        mean[c] = sums[c] / rows
        v = square_sums[c] / rows
        var[c] = v
        inv_std[c] = 1.0 / math.sqrt(var[c] + eps)


@kernel
def _normalize(centered, inv_std, gamma, beta, xhat, y):
    i = cuda.grid(1)
    n, cols = centered.shape
    if i < n * cols:
        r = i // cols
        c = i - r * cols
        h = centered[r, c] * inv_std[c]
        xhat[r, c] = h
        y[r, c] = h * gamma[c] + beta[c]


def batch_norm_forward_train(x, gamma, beta, eps):
    rows, cols = x.shape
    dt = x.dtype
    sums = column_sums(x, output_for("bn_sums", x, (cols,), "float64"))
    centered, squares = output_for("bn_centered", x, x.shape, dt), output_for("bn_squares", x, x.shape, dt)
    if x.size:
        _center[blocks(x.size)](x, sums, rows, centered, squares)
    square_sums = column_sums(squares, output_for("bn_square_sums", x, (cols,), "float64"))
    mean, var, inv_std = (output_for(f"bn_{name}", x, (cols,), dt) for name in ("mean", "var", "inv_std"))
    _statistics[blocks(cols)](sums, square_sums, rows, eps, mean, var, inv_std)
    xhat, y = squares, output_for("bn_y", x, x.shape, dt)  # squares are no longer needed
    if x.size:
        _normalize[blocks(x.size)](centered, inv_std, gamma, beta, xhat, y)
    return y, mean, var, xhat, inv_std


@kernel
def _product(a, b, out):
    i = cuda.grid(1)
    n, cols = a.shape
    if i < n * cols:
        r = i // cols
        c = i - r * cols
        out[r, c] = a[r, c] * b[r, c]


@kernel
def _bn_input_grad(dy, xhat, gamma, inv_std, dbeta, dgamma, dx):
    i = cuda.grid(1)
    m, cols = dy.shape
    if i < m * cols:
        r = i // cols
        c = i - r * cols
        dx[r, c] = (gamma[c] * inv_std[c] / m) * (m * dy[r, c] - dbeta[c] - xhat[r, c] * dgamma[c])


def batch_norm_backward(dy, xhat, gamma, inv_std):
    m, cols = dy.shape
    dt = dy.dtype
    dbeta = column_sums(dy, output_for("bn_dbeta", dy, (cols,), dt))
    prod = output_for("bn_dx", dy, dy.shape, dt)
    if dy.size:
        _product[blocks(dy.size)](dy, xhat, prod)
    dgamma = column_sums(prod, output_for("bn_dgamma", dy, (cols,), dt))
    dx = prod  # the products are summed: their buffer takes the input gradient
    if dy.size:
        _bn_input_grad[blocks(dy.size)](dy, xhat, gamma, inv_std, dbeta, dgamma, dx)
    return dx, dgamma, dbeta


@kernel
def _bn_inference(x, mean, var, gamma, beta, eps, y):
    i = cuda.grid(1)
    n, cols = x.shape
    if i < n * cols:
        r = i // cols
        c = i - r * cols
        y[r, c] = (x[r, c] - mean[c]) / math.sqrt(var[c] + eps) * gamma[c] + beta[c]


def batch_norm_inference(x, mean, var, gamma, beta, eps):
    y = output_for("bn_inference", x, x.shape, x.dtype)
    if x.size:
        _bn_inference[blocks(x.size)](x, mean, var, gamma, beta, eps, y)
    return y


@kernel
def _moving_average(moving, value, momentum):
    i = cuda.grid(1)
    if i < moving.size:
        moving[i] = moving[i] * momentum + value[i] * (1 - momentum)


def moving_average_update(moving, value, momentum):
    if moving.size:
        _moving_average[blocks(moving.size)](moving, value, momentum)


_layer_norm_row = cuda.jit(device=True)(scalar.layer_norm_row)
_layer_norm_row_grad = cuda.jit(device=True)(scalar.layer_norm_row_grad)


@kernel
def _layer_norm_rows(x, gamma, beta, eps, y, xhat, inv_std):
    r = cuda.grid(1)
    if r < x.shape[0]:
        inv_std[r] = _layer_norm_row(x, r, gamma, beta, eps, y, xhat)


def layer_norm_forward(x, gamma, beta, eps):
    rows, cols = x.shape
    y, xhat = output_for("ln_y", x, x.shape, x.dtype), output_for("ln_xhat", x, x.shape, x.dtype)
    inv_std = output_for("ln_inv_std", x, (rows,), x.dtype)
    if x.size:
        _layer_norm_rows[blocks(rows)](x, gamma, beta, eps, y, xhat, inv_std)
    return y, xhat, inv_std


@kernel
def _layer_norm_input_grad(dy, xhat, gamma, inv_std, dx):
    r = cuda.grid(1)
    if r < dy.shape[0]:
        _layer_norm_row_grad(dy, r, xhat, gamma, inv_std, dx)


def layer_norm_backward(dy, xhat, gamma, inv_std):
    rows, cols = dy.shape
    dx = output_for("ln_dx", dy, dy.shape, dy.dtype)
    products = output_for("ln_products", dy, dy.shape, dy.dtype)
    if dy.size:
        _layer_norm_input_grad[blocks(rows)](dy, xhat, gamma, inv_std, dx)
        _product[blocks(dy.size)](dy, xhat, products)
    dgamma = column_sums(products, output_for("ln_dgamma", dy, (cols,), dy.dtype))
    dbeta = column_sums(dy, output_for("ln_dbeta", dy, (cols,), dy.dtype))
    return dx, dgamma, dbeta
