"""Numba kernels with the names, signatures and results of ``kerascli.ops.reference``.

Large matrix products stay in BLAS (numpy's ``@`` in the layers); these kernels
fuse the elementwise work around them so each step makes one pass over memory
instead of several numpy temporaries. Every kernel is compiled with
``cache=True`` (a second process loads it from disk) and
``error_model="numpy"`` (no divide-by-zero checks that block vectorisation).
Kernels are serial and release the GIL (``nogil``): layers run them on parts
of a batch in parallel threads (kerascli.ops.workers).
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

from kerascli.ops.reference import LINEAR, RELU, SIGMOID, SOFTMAX, TANH  # noqa: F401

_opts = dict(cache=True, error_model="numpy", nogil=True)


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


# One loop per activation, chosen before the loop starts: a branch on ``act``
# inside the inner loop kept it from vectorising (2x slower).
@njit(**_opts)
def bias_activation_forward(z, bias, act, out):
    rows, cols = z.shape
    b = bias if bias.size > 0 else np.zeros(cols, dtype=z.dtype)
    if act == 1:
        for r in range(rows):
            for c in range(cols):
                v = z[r, c] + b[c]
                out[r, c] = v if not v < 0 else 0.0  # NaN passes through, as in numpy
    elif act == 2:
        for r in range(rows):
            for c in range(cols):
                out[r, c] = 1.0 / (1.0 + math.exp(-(z[r, c] + b[c])))
    elif act == 3:
        for r in range(rows):
            for c in range(cols):
                out[r, c] = math.tanh(z[r, c] + b[c])
    else:
        for r in range(rows):
            for c in range(cols):
                out[r, c] = z[r, c] + b[c]
        if act == 4:
            _softmax_rows(out, out)
    return out


@njit(**_opts)
def bias_activation_backward(dy, y, act, dz):
    rows, cols = dy.shape
    if act == 1:
        for r in range(rows):
            for c in range(cols):
                dz[r, c] = dy[r, c] if y[r, c] > 0 else 0.0
    elif act == 2:
        for r in range(rows):
            for c in range(cols):
                dz[r, c] = dy[r, c] * y[r, c] * (1.0 - y[r, c])
    elif act == 3:
        for r in range(rows):
            for c in range(cols):
                dz[r, c] = dy[r, c] * (1.0 - y[r, c] * y[r, c])
    elif act == 4:
        for r in range(rows):
            s = 0.0
            for c in range(cols):
                s += dy[r, c] * y[r, c]
            for c in range(cols):
                dz[r, c] = y[r, c] * (dy[r, c] - s)
    else:
        dz[:, :] = dy
    db = np.zeros(cols, dtype=dy.dtype)
    for r in range(rows):
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
@njit(**_opts)
def im2col(x, kh, kw, sh, sw, pad_top, pad_left, out_h, out_w, out):
    n, h, w, c = x.shape
    rows_of = x.reshape(n, h, w * c)
    span = kw * c  # one kernel row of a patch: contiguous in both x and out
    for b in range(n):
        for oy in range(out_h):
            for ox in range(out_w):
                row = (b * out_h + oy) * out_w + ox  # rows are written in order, each contiguously
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


@njit(**_opts)
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


@njit(**_opts)
def _inside(origin, k, size):
    """The window offsets [lo, hi) that land inside [0, size) for a window starting at ``origin``."""
    return max(0, -origin), min(k, size - origin)


@njit(**_opts)
def conv2d_direct(x, kernel, bias, act, sh, sw, pad_top, pad_left, out_h, out_w, out):
    """Convolution + bias + activation without patches, for few input channels (a first layer).

    With kh*kw*C small, a GEMM over patches is starved (K=9 for a 3x3 grey
    image); looping over the window and vectorising over filters is faster and
    writes each output once.
    """
    n, h, w, c = x.shape
    kh, kw, _, filters = kernel.shape
    taps = kernel.reshape(kh * kw * c, filters)
    b0 = bias if bias.size > 0 else np.zeros(filters, dtype=x.dtype)
    acc = np.empty(filters, dtype=x.dtype)  # a separate accumulator lets the filter loop vectorise
    for b in range(n):
        for oy in range(out_h):
            for ox in range(out_w):
                for f in range(filters):
                    acc[f] = b0[f]
                y0, x0 = oy * sh - pad_top, ox * sw - pad_left
                # only the window's rows and columns inside the image: no bounds test in the hot loop
                i0, i1 = _inside(y0, kh, h)
                j0, j1 = _inside(x0, kw, w)
                for i in range(i0, i1):
                    for j in range(j0, j1):
                        for ch in range(c):
                            v = x[b, y0 + i, x0 + j, ch]
                            tap = (i * kw + j) * c + ch
                            for f in range(filters):
                                acc[f] += v * taps[tap, f]
                # the activation again rather than a call to bias_activation_forward: applied
                # while the pixel's sums are in registers it is 1.3x faster than a second pass
                if act == 1:
                    for f in range(filters):
                        a = acc[f]
                        out[b, oy, ox, f] = a if not a < 0 else 0.0
                elif act == 2:
                    for f in range(filters):
                        out[b, oy, ox, f] = 1.0 / (1.0 + math.exp(-acc[f]))
                elif act == 3:
                    for f in range(filters):
                        out[b, oy, ox, f] = math.tanh(acc[f])
                else:
                    for f in range(filters):
                        out[b, oy, ox, f] = acc[f]
        if act == 4:
            rows = out[b].reshape(out_h * out_w, filters)
            _softmax_rows(rows, rows)
    return out


@njit(**_opts)
def conv2d_direct_kernel_grad(x, dz, kh, kw, sh, sw, pad_top, pad_left):
    """d loss / d kernel (kh, kw, C, filters) of a convolution, summed over the batch without patches."""
    n, h, w, c = x.shape
    _, out_h, out_w, filters = dz.shape
    g = np.zeros((kh * kw * c, filters), dtype=dz.dtype)
    for b in range(n):
        for oy in range(out_h):
            for ox in range(out_w):
                y0, x0 = oy * sh - pad_top, ox * sw - pad_left
                i0, i1 = _inside(y0, kh, h)
                j0, j1 = _inside(x0, kw, w)
                for i in range(i0, i1):
                    for j in range(j0, j1):
                        for ch in range(c):
                            v = x[b, y0 + i, x0 + j, ch]
                            tap = (i * kw + j) * c + ch
                            for f in range(filters):
                                g[tap, f] += v * dz[b, oy, ox, f]
    return g.reshape(kh, kw, c, filters)


# ---------------------------------------------------------------- pooling
@njit(**_opts)
def max_pool_forward(x, ph, pw, sh, sw, pad_top, pad_left, out_h, out_w, out, arg):
    n, h, w, c = x.shape
    for b in range(n):
        for oy in range(out_h):
            for ox in range(out_w):
                for ch in range(c):
                    out[b, oy, ox, ch] = -np.inf
                    arg[b, oy, ox, ch] = -1
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
                            # the first valid value always counts, so NaN and -inf propagate
                            if arg[b, oy, ox, ch] < 0 or v > out[b, oy, ox, ch]:
                                out[b, oy, ox, ch] = v
                                arg[b, oy, ox, ch] = i * pw + j
    return out, arg


@njit(**_opts)
def max_pool_backward(dy, arg, ph, pw, sh, sw, pad_top, pad_left, out):
    n, out_h, out_w, c = dy.shape
    # window place -> (row, column) offset, looked up instead of a division per value
    row_of = np.empty(ph * pw, dtype=np.int64)
    col_of = np.empty(ph * pw, dtype=np.int64)
    for k in range(ph * pw):
        row_of[k] = k // pw
        col_of[k] = k % pw
    for b in range(n):
        out[b] = 0
        for oy in range(out_h):
            y0 = oy * sh - pad_top
            for ox in range(out_w):
                x0 = ox * sw - pad_left
                for ch in range(c):
                    k = arg[b, oy, ox, ch]
                    out[b, y0 + row_of[k], x0 + col_of[k], ch] += dy[b, oy, ox, ch]
    return out


@njit(**_opts)
def _window_count(oy, ox, h, w, ph, pw, sh, sw, pad_top, pad_left):
    y0 = oy * sh - pad_top
    x0 = ox * sw - pad_left
    ny = min(y0 + ph, h) - max(y0, 0)
    nx = min(x0 + pw, w) - max(x0, 0)
    return max(ny, 0) * max(nx, 0)


@njit(**_opts)
def avg_pool_forward(x, ph, pw, sh, sw, pad_top, pad_left, out_h, out_w, out):
    n, h, w, c = x.shape
    for b in range(n):
        out[b] = 0
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
                            out[b, oy, ox, ch] += x[b, yy, xx, ch]
                inv = 1.0 / _window_count(oy, ox, h, w, ph, pw, sh, sw, pad_top, pad_left)
                for ch in range(c):
                    out[b, oy, ox, ch] *= inv
    return out


@njit(**_opts)
def avg_pool_backward(dy, ph, pw, sh, sw, pad_top, pad_left, out):
    n, out_h, out_w, c = dy.shape
    h, w = out.shape[1], out.shape[2]
    for b in range(n):
        out[b] = 0
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
                            out[b, yy, xx, ch] += dy[b, oy, ox, ch] * inv
    return out


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
