"""Numba kernels with the names, signatures and results of ``kerascli.ops.reference``.

Large matrix products stay in BLAS (numpy's ``@`` in the layers); these kernels
fuse the elementwise work around them so each step makes one pass over memory
instead of several numpy temporaries. Every kernel is compiled with
``cache=True`` (a second process loads it from disk) and
``error_model="numpy"`` (no divide-by-zero checks that block vectorisation).
"""

from __future__ import annotations

import functools
import math
import os

# Numba's OpenMP workers and OpenBLAS's threads both spin while idle; on a
# small machine each steals the cores the other needs (a digits CNN epoch ran
# 25x slower). Passive waiting must be chosen before the OpenMP runtime loads.
# Waking sleeping workers then costs ~70 us a call, so parallel kernels run
# small inputs on the calling thread alone (see _parallel_kernel).
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import numpy as np  # noqa: E402
from numba import get_num_threads, njit, prange, set_num_threads  # noqa: E402

from kerascli.ops.reference import LINEAR, RELU, SIGMOID, SOFTMAX, TANH  # noqa: F401

_opts = dict(cache=True, error_model="numpy", nogil=True)

# inner-loop iterations below which a parallel kernel stays on one thread
PARALLEL_MIN_WORK = 1 << 17


def _parallel_kernel(work):
    """Compile with ``parallel=True``; calls where ``work(*args)`` is small run on one thread.

    (Thread counts are set here in Python: Numba cannot cache a kernel that
    calls set_num_threads itself.)
    """

    def decorate(fn):
        kernel = njit(parallel=True, **_opts)(fn)

        @functools.wraps(fn)
        def call(*args):
            if work(*args) >= PARALLEL_MIN_WORK:
                return kernel(*args)
            saved = get_num_threads()
            set_num_threads(1)
            try:
                return kernel(*args)
            finally:
                set_num_threads(saved)

        call.kernel = kernel
        return call

    return decorate


def _window_work(x, ph, pw, sh, sw, pad_top, pad_left, out_h, out_w):
    return x.shape[0] * out_h * out_w * ph * pw * x.shape[3]


# ---------------------------------------------------------------- activations
@njit(**_opts)
def _softmax_rows(z, out):
    rows, cols = z.shape
    for r in range(rows):
        m = z[r, 0]
        for c in range(1, cols):
            if z[r, c] > m:
                m = z[r, c]
        s = 0.0
        for c in range(cols):
            e = math.exp(z[r, c] - m)
            out[r, c] = e
            s += e
        inv = 1.0 / s
        for c in range(cols):
            out[r, c] *= inv


@njit(**_opts)
def bias_activation_forward(z, bias, act):
    rows, cols = z.shape
    out = np.empty_like(z)
    has_bias = bias.size > 0
    for r in range(rows):
        for c in range(cols):
            v = z[r, c]
            if has_bias:
                v += bias[c]
            if act == 1:
                v = 0.0 if v < 0 else v  # NaN passes through, as in numpy
            elif act == 2:
                v = 1.0 / (1.0 + math.exp(-v))
            elif act == 3:
                v = math.tanh(v)
            out[r, c] = v
    if act == 4:
        _softmax_rows(out, out)
    return out


@njit(**_opts)
def bias_activation_backward(dy, y, act):
    rows, cols = dy.shape
    dz = np.empty_like(dy)
    db = np.zeros(cols, dtype=dy.dtype)
    for r in range(rows):
        if act == 4:
            s = 0.0
            for c in range(cols):
                s += dy[r, c] * y[r, c]
            for c in range(cols):
                dz[r, c] = y[r, c] * (dy[r, c] - s)
        else:
            for c in range(cols):
                g = dy[r, c]
                if act == 1:
                    g = g if y[r, c] > 0 else 0.0
                elif act == 2:
                    g = g * y[r, c] * (1.0 - y[r, c])
                elif act == 3:
                    g = g * (1.0 - y[r, c] * y[r, c])
                dz[r, c] = g
        for c in range(cols):
            db[c] += dz[r, c]
    return dz, db


# ---------------------------------------------------------------- losses
@njit(**_opts)
def softmax_cross_entropy(z, t):
    rows, cols = z.shape
    probs = np.empty_like(z)
    loss = np.empty(rows, dtype=z.dtype)
    for r in range(rows):
        m = z[r, 0]
        for c in range(1, cols):
            if z[r, c] > m:
                m = z[r, c]
        s = 0.0
        for c in range(cols):
            e = math.exp(z[r, c] - m)
            probs[r, c] = e
            s += e
        log_s = math.log(s)
        inv = 1.0 / s
        acc = 0.0
        for c in range(cols):
            probs[r, c] *= inv
            acc -= t[r, c] * (z[r, c] - m - log_s)
        loss[r] = acc
    return loss, probs


@njit(**_opts)
def softmax_cross_entropy_grad(probs, t, scale):
    return ((probs - t) * scale).astype(probs.dtype)


@njit(**_opts)
def sparse_softmax_cross_entropy(z, labels):
    rows, cols = z.shape
    probs = np.empty_like(z)
    loss = np.empty(rows, dtype=z.dtype)
    for r in range(rows):
        m = z[r, 0]
        for c in range(1, cols):
            if z[r, c] > m:
                m = z[r, c]
        s = 0.0
        for c in range(cols):
            e = math.exp(z[r, c] - m)
            probs[r, c] = e
            s += e
        inv = 1.0 / s
        for c in range(cols):
            probs[r, c] *= inv
        loss[r] = -(z[r, labels[r]] - m - math.log(s))
    return loss, probs


@njit(**_opts)
def sparse_softmax_cross_entropy_grad(probs, labels, scale):
    rows, cols = probs.shape
    d = np.empty_like(probs)
    for r in range(rows):
        for c in range(cols):
            d[r, c] = probs[r, c] * scale
        d[r, labels[r]] -= scale
    return d


@njit(**_opts)
def sigmoid_binary_cross_entropy(z, t):
    rows, cols = z.shape
    probs = np.empty_like(z)
    loss = np.empty(rows, dtype=z.dtype)
    for r in range(rows):
        acc = 0.0
        for c in range(cols):
            v = z[r, c]
            acc += max(v, 0.0) - v * t[r, c] + math.log1p(math.exp(-abs(v)))
            probs[r, c] = 1.0 / (1.0 + math.exp(-v))
        loss[r] = acc / cols
    return loss, probs


@njit(**_opts)
def sigmoid_binary_cross_entropy_grad(probs, t, scale):
    return ((probs - t) * (scale / probs.shape[1])).astype(probs.dtype)


@njit(**_opts)
def categorical_cross_entropy(p, t, eps):
    rows, cols = p.shape
    loss = np.empty(rows, dtype=p.dtype)
    for r in range(rows):
        s = 0.0
        for c in range(cols):
            s += p[r, c]
        acc = 0.0
        for c in range(cols):
            q = min(max(p[r, c] / s, eps), 1.0 - eps)
            acc -= t[r, c] * math.log(q)
        loss[r] = acc
    return loss


@njit(**_opts)
def categorical_cross_entropy_grad(p, t, eps, scale):
    rows, cols = p.shape
    d = np.empty_like(p)
    for r in range(rows):
        s = 0.0
        for c in range(cols):
            s += p[r, c]
        dot = 0.0
        for c in range(cols):
            q = p[r, c] / s
            dq = -t[r, c] / q if eps < q < 1.0 - eps else 0.0
            d[r, c] = dq
            dot += dq * q
        for c in range(cols):
            d[r, c] = (d[r, c] - dot) / s * scale
    return d


@njit(**_opts)
def binary_cross_entropy(p, t, eps):
    rows, cols = p.shape
    loss = np.empty(rows, dtype=p.dtype)
    for r in range(rows):
        acc = 0.0
        for c in range(cols):
            q = min(max(p[r, c], eps), 1.0 - eps)
            acc -= t[r, c] * math.log(q) + (1.0 - t[r, c]) * math.log(1.0 - q)
        loss[r] = acc / cols
    return loss


@njit(**_opts)
def binary_cross_entropy_grad(p, t, eps, scale):
    rows, cols = p.shape
    d = np.empty_like(p)
    k = scale / cols
    for r in range(rows):
        for c in range(cols):
            q = p[r, c]
            if eps < q < 1.0 - eps:
                d[r, c] = (-t[r, c] / q + (1.0 - t[r, c]) / (1.0 - q)) * k
            else:
                d[r, c] = 0.0
    return d


@njit(**_opts)
def mean_squared_error(p, t):
    rows, cols = p.shape
    loss = np.empty(rows, dtype=p.dtype)
    for r in range(rows):
        acc = 0.0
        for c in range(cols):
            e = p[r, c] - t[r, c]
            acc += e * e
        loss[r] = acc / cols
    return loss


@njit(**_opts)
def mean_squared_error_grad(p, t, scale):
    return (2.0 * (p - t) * (scale / p.shape[1])).astype(p.dtype)


@njit(**_opts)
def row_argmax(p):
    rows, cols = p.shape
    out = np.empty(rows, dtype=np.int64)
    for r in range(rows):
        best = 0
        for c in range(1, cols):
            if p[r, c] > p[r, best]:
                best = c
        out[r] = best
    return out


# ---------------------------------------------------------------- convolution
@_parallel_kernel(_window_work)
def im2col(x, kh, kw, sh, sw, pad_top, pad_left, out_h, out_w):
    n, h, w, c = x.shape
    cols = np.zeros((n * out_h * out_w, kh * kw * c), dtype=x.dtype)
    for b in prange(n):
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
                            cols[row, base + ch] = x[b, y, xx, ch]
    return cols


@_parallel_kernel(lambda cols, n, h, w, c, *rest: cols.size)
def col2im(cols, n, h, w, c, kh, kw, sh, sw, pad_top, pad_left, out_h, out_w):
    x = np.zeros((n, h, w, c), dtype=cols.dtype)
    for b in prange(n):
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
                            x[b, y, xx, ch] += cols[row, base + ch]
    return x


# ---------------------------------------------------------------- pooling
@_parallel_kernel(_window_work)
def max_pool_forward(x, ph, pw, sh, sw, pad_top, pad_left, out_h, out_w):
    n, h, w, c = x.shape
    y = np.empty((n, out_h, out_w, c), dtype=x.dtype)
    idx = np.zeros((n, out_h, out_w, c), dtype=np.int64)
    for b in prange(n):
        for oy in range(out_h):
            for ox in range(out_w):
                for ch in range(c):
                    y[b, oy, ox, ch] = -np.inf
                for i in range(ph):
                    yy = oy * sh + i - pad_top
                    if yy < 0 or yy >= h:
                        continue
                    for j in range(pw):
                        xx = ox * sw + j - pad_left
                        if xx < 0 or xx >= w:
                            continue
                        for ch in range(c):
                            v = x[b, yy, xx, ch]
                            if v > y[b, oy, ox, ch]:
                                y[b, oy, ox, ch] = v
                                idx[b, oy, ox, ch] = yy * w + xx
    return y, idx


@_parallel_kernel(lambda dy, idx, h, w: dy.size)
def max_pool_backward(dy, idx, h, w):
    n, out_h, out_w, c = dy.shape
    dx = np.zeros((n, h, w, c), dtype=dy.dtype)
    for b in prange(n):
        for oy in range(out_h):
            for ox in range(out_w):
                for ch in range(c):
                    k = idx[b, oy, ox, ch]
                    dx[b, k // w, k % w, ch] += dy[b, oy, ox, ch]
    return dx


@njit(**_opts)
def _window_count(oy, ox, h, w, ph, pw, sh, sw, pad_top, pad_left):
    y0 = oy * sh - pad_top
    x0 = ox * sw - pad_left
    ny = min(y0 + ph, h) - max(y0, 0)
    nx = min(x0 + pw, w) - max(x0, 0)
    return max(ny, 0) * max(nx, 0)


@_parallel_kernel(_window_work)
def avg_pool_forward(x, ph, pw, sh, sw, pad_top, pad_left, out_h, out_w):
    n, h, w, c = x.shape
    y = np.zeros((n, out_h, out_w, c), dtype=x.dtype)
    for b in prange(n):
        for oy in range(out_h):
            for ox in range(out_w):
                for i in range(ph):
                    yy = oy * sh + i - pad_top
                    if yy < 0 or yy >= h:
                        continue
                    for j in range(pw):
                        xx = ox * sw + j - pad_left
                        if xx < 0 or xx >= w:
                            continue
                        for ch in range(c):
                            y[b, oy, ox, ch] += x[b, yy, xx, ch]
                inv = 1.0 / _window_count(oy, ox, h, w, ph, pw, sh, sw, pad_top, pad_left)
                for ch in range(c):
                    y[b, oy, ox, ch] *= inv
    return y


@_parallel_kernel(lambda dy, h, w, ph, pw, *rest: dy.size * ph * pw)
def avg_pool_backward(dy, h, w, ph, pw, sh, sw, pad_top, pad_left):
    n, out_h, out_w, c = dy.shape
    dx = np.zeros((n, h, w, c), dtype=dy.dtype)
    for b in prange(n):
        for oy in range(out_h):
            for ox in range(out_w):
                inv = 1.0 / _window_count(oy, ox, h, w, ph, pw, sh, sw, pad_top, pad_left)
                for i in range(ph):
                    yy = oy * sh + i - pad_top
                    if yy < 0 or yy >= h:
                        continue
                    for j in range(pw):
                        xx = ox * sw + j - pad_left
                        if xx < 0 or xx >= w:
                            continue
                        for ch in range(c):
                            dx[b, yy, xx, ch] += dy[b, oy, ox, ch] * inv
    return dx


# ---------------------------------------------------------------- normalization
@njit(**_opts)
def batch_norm_forward_train(x, gamma, beta, eps):
    rows, cols = x.shape
    mean = np.zeros(cols, dtype=x.dtype)
    var = np.zeros(cols, dtype=x.dtype)
    # accumulate in float64 whatever the storage type, for a stable variance
    acc = np.zeros(cols)
    for r in range(rows):
        for c in range(cols):
            acc[c] += x[r, c]
    mean64 = acc / rows
    acc[:] = 0.0
    for r in range(rows):
        for c in range(cols):
            d = x[r, c] - mean64[c]
            acc[c] += d * d
    var64 = acc / rows
    inv_std = np.empty(cols, dtype=x.dtype)
    for c in range(cols):
        mean[c] = mean64[c]
        var[c] = var64[c]
        inv_std[c] = 1.0 / math.sqrt(var64[c] + eps)
    xhat = np.empty_like(x)
    y = np.empty_like(x)
    for r in range(rows):
        for c in range(cols):
            v = (x[r, c] - mean64[c]) * inv_std[c]
            xhat[r, c] = v
            y[r, c] = v * gamma[c] + beta[c]
    return y, mean, var, xhat, inv_std


@njit(**_opts)
def batch_norm_backward(dy, xhat, gamma, inv_std):
    rows, cols = dy.shape
    dbeta = np.zeros(cols, dtype=dy.dtype)
    dgamma = np.zeros(cols, dtype=dy.dtype)
    for r in range(rows):
        for c in range(cols):
            dbeta[c] += dy[r, c]
            dgamma[c] += dy[r, c] * xhat[r, c]
    dx = np.empty_like(dy)
    for r in range(rows):
        for c in range(cols):
            k = gamma[c] * inv_std[c] / rows
            dx[r, c] = k * (rows * dy[r, c] - dbeta[c] - xhat[r, c] * dgamma[c])
    return dx, dgamma, dbeta


@njit(**_opts)
def batch_norm_inference(x, mean, var, gamma, beta, eps):
    rows, cols = x.shape
    y = np.empty_like(x)
    scale = np.empty(cols, dtype=x.dtype)
    for c in range(cols):
        scale[c] = gamma[c] / math.sqrt(var[c] + eps)
    for r in range(rows):
        for c in range(cols):
            y[r, c] = (x[r, c] - mean[c]) * scale[c] + beta[c]
    return y


@njit(**_opts)
def moving_average_update(moving, value, momentum):
    for i in range(moving.size):
        moving[i] = moving[i] * momentum + value[i] * (1.0 - momentum)


# ---------------------------------------------------------------- dropout
@njit(**_opts)
def dropout(x, u, rate):
    flat_x = x.ravel()
    flat_u = u.ravel()
    out = np.empty(flat_x.size, dtype=x.dtype)
    k = 1.0 / (1.0 - rate)
    for i in range(flat_x.size):
        out[i] = flat_x[i] * k if flat_u[i] >= rate else 0.0
    return out.reshape(x.shape)


# ---------------------------------------------------------------- optimizers
# Optimizer slots decay geometrically where a gradient stays zero (dead units,
# always-zero inputs); float32 values below ~1e-38 become denormal, and
# denormal arithmetic is ~100x slower on x86. Values below TINY are flushed to
# zero (as CPU frameworks do by enabling flush-to-zero).
TINY = np.float32(1e-30)


@njit(**_opts)
def sgd_update(param, grad, velocity, lr, momentum, nesterov):
    if momentum == 0:
        for i in range(param.size):
            param[i] -= lr * grad[i]
        return
    for i in range(param.size):
        v = momentum * velocity[i] - lr * grad[i]
        v *= np.float32(abs(v) >= TINY)  # a multiply, not a branch: it vectorises
        velocity[i] = v
        if nesterov:
            param[i] += momentum * v - lr * grad[i]
        else:
            param[i] += v


@njit(**_opts)
def adam_update(param, grad, m, v, alpha, one_minus_beta_1, one_minus_beta_2, epsilon):
    # scalars arrive in the parameters' dtype, so float32 stays float32 and vectorises
    for i in range(param.size):
        g = grad[i]
        mi = m[i] + (g - m[i]) * one_minus_beta_1
        vi = v[i] + (g * g - v[i]) * one_minus_beta_2
        mi *= np.float32(abs(mi) >= TINY)  # a multiply, not a branch: it vectorises
        vi *= np.float32(vi >= TINY)
        m[i] = mi
        v[i] = vi
        param[i] -= alpha * mi / (np.sqrt(vi) + epsilon)
