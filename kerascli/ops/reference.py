"""Plain-numpy definitions of every kernel: the readable spec and the test oracle.

``kerascli.ops.cpu`` holds Numba versions with the same names, signatures and
results; parity tests compare the two. Conventions shared by both:

* activations are coded as ints (``LINEAR`` .. ``SOFTMAX``); elementwise ones
  work on any 2-D array, softmax normalises each row;
* images are channels-last ``(N, H, W, C)``; ``pad_top``/``pad_left`` and the
  output size come from :func:`kerascli.ops.conv_geometry`;
* losses return one value per row (a sample) and their gradient functions take
  ``scale`` (usually ``1 / batch``) so the caller chooses the reduction;
* optimizer updates change ``param`` and their slot arrays in place.
"""

from __future__ import annotations

import numpy as np

LINEAR, RELU, SIGMOID, TANH, SOFTMAX = 0, 1, 2, 3, 4


# ---------------------------------------------------------------- activations
def _activate(z: np.ndarray, act: int) -> np.ndarray:
    if act == LINEAR:
        return z.copy()
    if act == RELU:
        return np.maximum(z, 0)
    if act == SIGMOID:
        return 1 / (1 + np.exp(-z))
    if act == TANH:
        return np.tanh(z)
    if act == SOFTMAX:
        e = np.exp(z - z.max(axis=1, keepdims=True))
        return e / e.sum(axis=1, keepdims=True)
    raise ValueError(f"unknown activation code {act}")


def bias_activation_forward(z: np.ndarray, bias: np.ndarray, act: int, out: np.ndarray) -> np.ndarray:
    """act(z + bias) into ``out`` (which may be ``z`` itself) for 2-D ``z``; ``bias`` is per column or empty."""
    if bias.size:
        z = z + bias
    out[...] = _activate(z, act)
    return out


def bias_activation_inplace(z: np.ndarray, bias: np.ndarray, act: int) -> np.ndarray:
    """act(z + bias) written over ``z``."""
    return bias_activation_forward(z, bias, act, z)


def bias_activation_backward(dy: np.ndarray, y: np.ndarray, act: int, dz: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Gradient through act given its output ``y``, into ``dz``: returns (dz, column sums of dz)."""
    if act == LINEAR:
        g = dy
    elif act == RELU:
        g = dy * (y > 0)
    elif act == SIGMOID:
        g = dy * y * (1 - y)
    elif act == TANH:
        g = dy * (1 - y * y)
    elif act == SOFTMAX:
        g = y * (dy - (dy * y).sum(axis=1, keepdims=True))
    else:
        raise ValueError(f"unknown activation code {act}")
    dz[...] = g
    return dz, dz.sum(axis=0)


# ---------------------------------------------------------------- losses
def softmax_cross_entropy(z: np.ndarray, t: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Cross-entropy of softmax(z) against target rows ``t``: (loss per row, probabilities)."""
    shifted = z - z.max(axis=1, keepdims=True)
    log_sum = np.log(np.exp(shifted).sum(axis=1, keepdims=True))
    log_p = shifted - log_sum
    return -(t * log_p).sum(axis=1), np.exp(log_p)


def softmax_cross_entropy_grad(probs: np.ndarray, t: np.ndarray, scale: float) -> np.ndarray:
    return ((probs - t) * scale).astype(probs.dtype, copy=False)


def sparse_softmax_cross_entropy(z: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """As softmax_cross_entropy with integer class ids per row."""
    t = np.zeros_like(z)
    t[np.arange(len(labels)), labels] = 1
    return softmax_cross_entropy(z, t)


def sparse_softmax_cross_entropy_grad(probs: np.ndarray, labels: np.ndarray, scale: float) -> np.ndarray:
    d = probs.copy()
    d[np.arange(len(labels)), labels] -= 1
    return (d * scale).astype(probs.dtype, copy=False)


def sigmoid_binary_cross_entropy(z: np.ndarray, t: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Binary cross-entropy of sigmoid(z), mean over columns: (loss per row, probabilities)."""
    # max(z, 0) - z*t + log(1 + exp(-|z|)) is the overflow-free form
    elem = np.maximum(z, 0) - z * t + np.log1p(np.exp(-np.abs(z)))
    return elem.mean(axis=1), 1 / (1 + np.exp(-z))


def sigmoid_binary_cross_entropy_grad(probs: np.ndarray, t: np.ndarray, scale: float) -> np.ndarray:
    return ((probs - t) * (scale / probs.shape[1])).astype(probs.dtype, copy=False)


def categorical_cross_entropy(p: np.ndarray, t: np.ndarray, eps: float) -> np.ndarray:
    """Keras' categorical_crossentropy on probabilities: rows renormalised, clipped to [eps, 1-eps]."""
    q = p / p.sum(axis=1, keepdims=True)
    return -(t * np.log(np.clip(q, eps, 1 - eps))).sum(axis=1)


def categorical_cross_entropy_grad(p: np.ndarray, t: np.ndarray, eps: float, scale: float) -> np.ndarray:
    s = p.sum(axis=1, keepdims=True)
    q = p / s
    inside = (q > eps) & (q < 1 - eps)
    dq = np.where(inside, -t / np.clip(q, eps, 1 - eps), 0)
    dp = (dq - (dq * q).sum(axis=1, keepdims=True)) / s
    return (dp * scale).astype(p.dtype, copy=False)


def binary_cross_entropy(p: np.ndarray, t: np.ndarray, eps: float) -> np.ndarray:
    c = np.clip(p, eps, 1 - eps)
    return -(t * np.log(c) + (1 - t) * np.log(1 - c)).mean(axis=1)


def binary_cross_entropy_grad(p: np.ndarray, t: np.ndarray, eps: float, scale: float) -> np.ndarray:
    inside = (p > eps) & (p < 1 - eps)
    c = np.clip(p, eps, 1 - eps)
    d = np.where(inside, -t / c + (1 - t) / (1 - c), 0)
    return (d * (scale / p.shape[1])).astype(p.dtype, copy=False)


def mean_squared_error(p: np.ndarray, t: np.ndarray) -> np.ndarray:
    return ((p - t) ** 2).mean(axis=1)


def mean_squared_error_grad(p: np.ndarray, t: np.ndarray, scale: float) -> np.ndarray:
    return (2 * (p - t) * (scale / p.shape[1])).astype(p.dtype, copy=False)


def row_argmax(p: np.ndarray) -> np.ndarray:
    return p.argmax(axis=1).astype(np.int64)


# ---------------------------------------------------------------- convolution
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


def conv2d_direct_maxpool(x, kernel, bias, act, sh, sw, pad_top, pad_left, ph, pw, out, arg):
    """maxpool(act(conv(x) + bias)) over (ph, pw) windows that tile the convolution's output (the rows
    and columns left over are dropped) into ``out``, with ``arg`` as in ``max_pool_forward``."""
    n, pool_h, pool_w, filters = out.shape
    out_h, out_w = pool_h * ph, pool_w * pw  # the convolution's rows and columns that some window covers
    z = conv2d_direct(x, kernel, bias, LINEAR, sh, sw, pad_top, pad_left, out_h, out_w,
                      np.empty((n, out_h, out_w, filters), x.dtype))
    max_pool_forward(z, ph, pw, ph, pw, 0, 0, pool_h, pool_w, out, arg)
    out[...] = _activate(out, act)
    return out, arg


def conv2d_direct_maxpool_backward(x, dy, pooled, arg, act, kh, kw, sh, sw, pad_top, pad_left, ph, pw):
    """Kernel and bias gradients of ``conv2d_direct_maxpool`` from the gradient ``dy`` of its output."""
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


# ---------------------------------------------------------------- pooling
def max_pool_forward(x, ph, pw, sh, sw, pad_top, pad_left, out_h, out_w, out, arg):
    """Max over each window (padding never wins); ``arg`` gets the winner's place i*pw+j in its window."""
    n, h, w, c = x.shape
    out[...] = -np.inf
    arg[...] = -1
    for oy in range(out_h):
        for ox in range(out_w):
            for i in range(ph):
                yy = oy * sh + i - pad_top
                if not 0 <= yy < h:
                    continue
                for j in range(pw):
                    xx = ox * sw + j - pad_left
                    if not 0 <= xx < w:
                        continue
                    v = x[:, yy, xx, :]
                    better = (arg[:, oy, ox, :] < 0) | (v > out[:, oy, ox, :])
                    out[:, oy, ox, :] = np.where(better, v, out[:, oy, ox, :])
                    arg[:, oy, ox, :] = np.where(better, i * pw + j, arg[:, oy, ox, :])
    return out, arg


def max_pool_backward(dy, arg, ph, pw, sh, sw, pad_top, pad_left, out):
    """Route each output gradient to the input its window's max came from; ``out`` is (N, H, W, C)."""
    n, out_h, out_w, c = dy.shape
    out[...] = 0
    for oy in range(out_h):
        for ox in range(out_w):
            for k in range(ph * pw):
                yy = oy * sh + k // pw - pad_top
                xx = ox * sw + k % pw - pad_left
                hit = arg[:, oy, ox, :] == k
                if hit.any():
                    out[:, yy, xx, :] += np.where(hit, dy[:, oy, ox, :], 0)
    return out


def _window_counts(h, w, ph, pw, sh, sw, pad_top, pad_left, out_h, out_w):
    counts = np.zeros((out_h, out_w))
    for oy in range(out_h):
        ys = [oy * sh + i - pad_top for i in range(ph)]
        ny = sum(0 <= v < h for v in ys)
        for ox in range(out_w):
            xs = [ox * sw + j - pad_left for j in range(pw)]
            counts[oy, ox] = ny * sum(0 <= v < w for v in xs)
    return counts


def avg_pool_forward(x, ph, pw, sh, sw, pad_top, pad_left, out_h, out_w, out):
    """Mean over each window; padded positions are not counted (as in Keras)."""
    n, h, w, c = x.shape
    total = np.zeros((n, out_h, out_w, c), dtype=x.dtype)
    for oy in range(out_h):
        for ox in range(out_w):
            for i in range(ph):
                yy = oy * sh + i - pad_top
                for j in range(pw):
                    xx = ox * sw + j - pad_left
                    if 0 <= yy < h and 0 <= xx < w:
                        total[:, oy, ox, :] += x[:, yy, xx, :]
    counts = _window_counts(h, w, ph, pw, sh, sw, pad_top, pad_left, out_h, out_w)
    out[...] = total / counts[None, :, :, None]
    return out


def avg_pool_backward(dy, ph, pw, sh, sw, pad_top, pad_left, out):
    n, out_h, out_w, c = dy.shape
    h, w = out.shape[1], out.shape[2]
    counts = _window_counts(h, w, ph, pw, sh, sw, pad_top, pad_left, out_h, out_w)
    share = dy / counts[None, :, :, None]
    out[...] = 0
    for oy in range(out_h):
        for ox in range(out_w):
            for i in range(ph):
                yy = oy * sh + i - pad_top
                for j in range(pw):
                    xx = ox * sw + j - pad_left
                    if 0 <= yy < h and 0 <= xx < w:
                        out[:, yy, xx, :] += share[:, oy, ox, :]
    return out


# ---------------------------------------------------------------- normalization
def batch_norm_forward_train(x, gamma, beta, eps):
    """Normalise each column of 2-D ``x`` by its batch mean and (biased) variance.

    Returns (y, mean, var, xhat, inv_std); the last two feed the backward pass.
    """
    mean = x.mean(axis=0)
    var = x.var(axis=0)
    inv_std = 1 / np.sqrt(var + eps)
    xhat = (x - mean) * inv_std
    y = xhat * gamma + beta
    dt = x.dtype
    return y.astype(dt), mean.astype(dt), var.astype(dt), xhat.astype(dt), inv_std.astype(dt)


def batch_norm_backward(dy, xhat, gamma, inv_std):
    """(dx, dgamma, dbeta) for batch_norm_forward_train."""
    m = dy.shape[0]
    dbeta = dy.sum(axis=0)
    dgamma = (dy * xhat).sum(axis=0)
    dx = (gamma * inv_std / m) * (m * dy - dbeta - xhat * dgamma)
    return dx.astype(dy.dtype), dgamma.astype(dy.dtype), dbeta.astype(dy.dtype)


def batch_norm_inference(x, mean, var, gamma, beta, eps):
    return ((x - mean) / np.sqrt(var + eps) * gamma + beta).astype(x.dtype)


def moving_average_update(moving, value, momentum):
    """moving = moving * momentum + value * (1 - momentum), in place."""
    moving *= momentum
    moving += value * (1 - momentum)


# ---------------------------------------------------------------- dropout
def dropout(x, u, rate):
    """Inverted dropout: keep where the uniform draw ``u >= rate`` and scale by 1/(1-rate)."""
    return np.where(u >= rate, x / (1 - rate), 0).astype(x.dtype)


# ---------------------------------------------------------------- optimizers
# Slot values below TINY are flushed to zero: decaying float32 slots would
# otherwise turn denormal, which is ~100x slower on x86.
TINY = 1e-30


def _flush(a):
    a[np.abs(a) < TINY] = 0


def sgd_update(param, grad, velocity, lr, momentum, nesterov):
    """Keras SGD: v = momentum*v - lr*g; p += v (nesterov: p += momentum*v - lr*g).

    Scalars come in the parameters' dtype (see optimizers.SGD).
    """
    if momentum == 0:
        param -= lr * grad
        return
    velocity *= momentum
    velocity -= lr * grad
    _flush(velocity)
    if nesterov:
        param += momentum * velocity - lr * grad
    else:
        param += velocity


def adam_update(param, grad, m, v, alpha, one_minus_beta_1, one_minus_beta_2, epsilon):
    """Adam with the step size ``alpha`` already bias-corrected by the caller (see optimizers.Adam)."""
    m += (grad - m) * one_minus_beta_1
    v += (grad * grad - v) * one_minus_beta_2
    _flush(m)
    _flush(v)
    param -= alpha * m / (np.sqrt(v) + epsilon)
