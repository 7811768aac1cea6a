"""CUDA twins of kerascli.ops.reference.optim: one thread per parameter of the flat buffers."""

from __future__ import annotations

import math

from numba import cuda, float64

from kerascli.ops import scalar
from kerascli.ops.cuda.kernel import kernel
from kerascli.ops.cuda.launch import block_total, blocks, scratch

TINY = 1e-30  # slots below this are flushed to zero, as in the other backends


@cuda.jit(device=True)
def _moments(m, v, i, g, one_minus_beta_1, one_minus_beta_2):
    """Adam's first and second moments of parameter i moved toward g and g * g, flushed below TINY, stored
    and returned."""
    mi = m[i] + (g - m[i]) * one_minus_beta_1
    vi = v[i] + (g * g - v[i]) * one_minus_beta_2
    if abs(mi) < TINY:
        mi = mi - mi  # zero in the parameters' type
    if vi < TINY:
        vi = vi - vi
    m[i] = mi
    v[i] = vi
    return mi, vi


@kernel
def _sgd(param, grad, velocity, lr, momentum, nesterov):
    i = cuda.grid(1)
    if i < param.size:
        if momentum == 0:
            param[i] -= lr * grad[i]
            return
        v = momentum * velocity[i] - lr * grad[i]
        if abs(v) < TINY:
            v = v - v  # zero in the parameters' type
        velocity[i] = v
        if nesterov:
            param[i] += momentum * v - lr * grad[i]
        else:
            param[i] += v


def sgd_update(param, grad, velocity, lr, momentum, nesterov):
    if param.size:
        _sgd[blocks(param.size)](param, grad, velocity, lr, momentum, nesterov)


@kernel
def _adam(param, grad, m, v, alpha, one_minus_beta_1, one_minus_beta_2, epsilon):
    i = cuda.grid(1)
    if i < param.size:
        mi, vi = _moments(m, v, i, grad[i], one_minus_beta_1, one_minus_beta_2)
        param[i] -= alpha * mi / (math.sqrt(vi) + epsilon)


def adam_update(param, grad, m, v, alpha, one_minus_beta_1, one_minus_beta_2, epsilon):
    if param.size:
        _adam[blocks(param.size)](param, grad, m, v, alpha, one_minus_beta_1, one_minus_beta_2, epsilon)


@kernel
def _adam_amsgrad(param, grad, m, v, v_hat, alpha, one_minus_beta_1, one_minus_beta_2, epsilon):
    i = cuda.grid(1)
    if i < param.size:
        mi, vi = _moments(m, v, i, grad[i], one_minus_beta_1, one_minus_beta_2)
        vh = max(v_hat[i], vi)
        v_hat[i] = vh
        param[i] -= alpha * mi / (math.sqrt(vh) + epsilon)


def adam_amsgrad_update(param, grad, m, v, v_hat, alpha, one_minus_beta_1, one_minus_beta_2, epsilon):
    if param.size:
        _adam_amsgrad[blocks(param.size)](param, grad, m, v, v_hat, alpha, one_minus_beta_1, one_minus_beta_2,
                                          epsilon)


def _launch(kernel, param, *args):
    if param.size:
        kernel[blocks(param.size)](param, *args)


@kernel
def _decay(param, rate):
    i = cuda.grid(1)
    if i < param.size:
        param[i] -= param[i] * rate


def decay_weights(param, rate):
    _launch(_decay, param, rate)


@kernel
def _rmsprop(param, grad, velocity, momentum_buf, average_grad, lr, rho, momentum, epsilon, centered):
    i = cuda.grid(1)
    if i < param.size:
        g = grad[i]
        vel = velocity[i] + (1 - rho) * (g * g - velocity[i])
        if abs(vel) < TINY:
            vel = vel - vel  # zero in the parameters' type
        velocity[i] = vel
        if centered:
            avg = average_grad[i] + (1 - rho) * (g - average_grad[i])
            if abs(avg) < TINY:
                avg = avg - avg
            average_grad[i] = avg
            denominator = vel - avg * avg + epsilon
        else:
            denominator = vel + epsilon
        increment = lr * g / math.sqrt(denominator)
        if momentum > 0:
            mom = momentum_buf[i] * momentum + increment
            if abs(mom) < TINY:
                mom = mom - mom
            momentum_buf[i] = mom
            param[i] -= mom
        else:
            param[i] -= increment


def rmsprop_update(param, grad, velocity, momentum_buf, average_grad, lr, rho, momentum, epsilon, centered):
    _launch(_rmsprop, param, grad, velocity, momentum_buf, average_grad, lr, rho, momentum, epsilon, centered)


@kernel
def _adagrad(param, grad, accumulator, lr, epsilon):
    i = cuda.grid(1)
    if i < param.size:
        g = grad[i]
        accumulator[i] += g * g
        param[i] -= lr * g / math.sqrt(accumulator[i] + epsilon)


def adagrad_update(param, grad, accumulator, lr, epsilon):
    _launch(_adagrad, param, grad, accumulator, lr, epsilon)


@kernel
def _adamax(param, grad, m, u, lr_t, one_minus_beta_1, beta_2, epsilon):
    i = cuda.grid(1)
    if i < param.size:
        g = grad[i]
        mi = m[i] + (g - m[i]) * one_minus_beta_1
        if abs(mi) < TINY:
            mi = mi - mi
        m[i] = mi
        ui = max(u[i] * beta_2, abs(g))
        u[i] = ui
        param[i] -= lr_t * mi / (ui + epsilon)


def adamax_update(param, grad, m, u, lr_t, one_minus_beta_1, beta_2, epsilon):
    _launch(_adamax, param, grad, m, u, lr_t, one_minus_beta_1, beta_2, epsilon)


@kernel
def _nadam(param, grad, m, v, lr, one_minus_beta_1, one_minus_beta_2, epsilon, m_coef, g_coef, v_coef):
    i = cuda.grid(1)
    if i < param.size:
        g = grad[i]
        mi, vi = _moments(m, v, i, g, one_minus_beta_1, one_minus_beta_2)
        param[i] -= (mi * m_coef + g * g_coef) * lr / (math.sqrt(vi * v_coef) + epsilon)


def nadam_update(param, grad, m, v, lr, one_minus_beta_1, one_minus_beta_2, epsilon, m_coef, g_coef, v_coef):
    _launch(_nadam, param, grad, m, v, lr, one_minus_beta_1, one_minus_beta_2, epsilon, m_coef, g_coef, v_coef)


@kernel
def _lion(param, grad, m, lr, beta_1, beta_2):
    i = cuda.grid(1)
    if i < param.size:
        g = grad[i]
        d = m[i] * beta_1 + g * (1 - beta_1)
        step = lr if d > 0 else (-lr if d < 0 else d - d)  # sign(d) * lr (NaN stays NaN)
        param[i] -= step
        mi = m[i] * beta_2 + g * (1 - beta_2)
        if abs(mi) < TINY:
            mi = mi - mi
        m[i] = mi


def lion_update(param, grad, m, lr, beta_1, beta_2):
    _launch(_lion, param, grad, m, lr, beta_1, beta_2)


@kernel
def _adadelta(param, grad, accumulated_grad, accumulated_delta_var, lr, rho, epsilon):
    i = cuda.grid(1)
    if i < param.size:
        g = grad[i]
        acc = accumulated_grad[i] * rho + (1 - rho) * g * g
        if acc < TINY:
            acc = acc - acc
        accumulated_grad[i] = acc
        delta = -math.sqrt(accumulated_delta_var[i] + epsilon) * g / math.sqrt(acc + epsilon)
        acc_delta = accumulated_delta_var[i] * rho + (1 - rho) * delta * delta
        if acc_delta < TINY:
            acc_delta = acc_delta - acc_delta
        accumulated_delta_var[i] = acc_delta
        param[i] += lr * delta


def adadelta_update(param, grad, accumulated_grad, accumulated_delta_var, lr, rho, epsilon):
    _launch(_adadelta, param, grad, accumulated_grad, accumulated_delta_var, lr, rho, epsilon)


_ftrl_element = cuda.jit(device=True)(scalar.ftrl_element)


@kernel
def _ftrl(param, grad, accumulator, linear, lr, lr_power, l1, l2, l2_shrinkage):
    i = cuda.grid(1)
    if i < param.size:
        param[i], linear[i], accumulator[i] = _ftrl_element(grad[i], param[i], accumulator[i], linear[i], lr,
                                                            lr_power, l1, l2, l2_shrinkage)


def ftrl_update(param, grad, accumulator, linear, lr, lr_power, l1, l2, l2_shrinkage):
    _launch(_ftrl, param, grad, accumulator, linear, lr, lr_power, l1, l2, l2_shrinkage)


@kernel
def _accumulate_gradient(accumulator, grad):
    i = cuda.grid(1)
    if i < accumulator.size:
        accumulator[i] += grad[i]


def accumulate_gradient(accumulator, grad):
    _launch(_accumulate_gradient, accumulator, grad)


@kernel
def _add_scaled_gradient(total, grad, share):
    i = cuda.grid(1)
    if i < total.size:
        total[i] += grad[i] * share


def add_scaled_gradient(total, grad, share):
    _launch(_add_scaled_gradient, total, grad, share)


@kernel
def _average_accumulated_gradient(grad, accumulator, steps):
    i = cuda.grid(1)
    if i < grad.size:
        grad[i] = (grad[i] + accumulator[i]) / steps
        accumulator[i] = 0


def average_accumulated_gradient(grad, accumulator, steps):
    _launch(_average_accumulated_gradient, grad, accumulator, steps)


@kernel
def _moving_average_weights(average, param, momentum):
    i = cuda.grid(1)
    if i < average.size:
        average[i] = momentum * average[i] + (1 - momentum) * param[i]


def moving_average_weights(average, param, momentum):
    _launch(_moving_average_weights, average, param, momentum)


@kernel
def _sum_squares(param, grad, v, sums):
    """One block of 256 threads: sums[0] = sum of param^2, sums[1] = sum of (grad / sqrt(v))^2 (where v is
    given: pass v.size 0 to skip), each in a fixed order."""
    tree = cuda.shared.array(256, float64)
    t = cuda.threadIdx.x
    for which in range(2):
        acc = 0.0
        if which == 0 or v.size:
            for i in range(t, param.size, 256):
                x = param[i] if which == 0 else grad[i] / math.sqrt(v[i])
                acc += float64(x) * x
        tree[t] = acc
        total = block_total(tree, t)
        if t == 0 and (which == 0 or v.size):
            sums[which] = total
        cuda.syncthreads()


@kernel
def _adafactor_rows(grad, row_stats, lead, rows, cols, beta_2, epsilon_1):
    k = cuda.grid(1)
    if k < lead * rows:
        base = (k // rows) * rows * cols + (k % rows) * cols
        acc = 0.0
        for j in range(cols):
            g = grad[base + j]
            acc += g * g + epsilon_1
        row_stats[k] = beta_2 * row_stats[k] + (1 - beta_2) * (acc / cols)


@kernel
def _adafactor_cols(grad, col_stats, lead, rows, cols, beta_2, epsilon_1):
    k = cuda.grid(1)
    if k < lead * cols:
        base = (k // cols) * rows * cols + k % cols
        acc = 0.0
        for i in range(rows):
            g = grad[base + i * cols]
            acc += g * g + epsilon_1
        col_stats[k] = beta_2 * col_stats[k] + (1 - beta_2) * (acc / rows)


@kernel
def _adafactor_v(grad, v, row_stats, col_stats, lead, rows, cols, beta_2, epsilon_1):
    i = cuda.grid(1)
    if i < v.size:
        if rows:
            l = i // (rows * cols)
            mean_r = 0.0
            for r in range(rows):  # (rows per element: fine for the weights Adafactor is used on)
                mean_r += row_stats[l * rows + r]
            row = (i // cols) % rows
            v[i] = row_stats[l * rows + row] / (mean_r / rows) * col_stats[l * cols + i % cols]
        else:
            g = grad[i]
            v[i] = beta_2 * v[i] + (1 - beta_2) * (g * g + epsilon_1)


@kernel
def _adafactor_apply(param, grad, v, sums, rho, epsilon_2, clip_threshold):
    i = cuda.grid(1)
    if i < param.size:
        n = param.size
        alpha = max(epsilon_2, math.sqrt(sums[0] / n)) * rho
        scale = alpha / max(1.0, math.sqrt(sums[1] / n) / clip_threshold)
        param[i] -= scale * (grad[i] / math.sqrt(v[i]))


def adafactor_update(param, grad, v, row_stats, col_stats, lead, rows, cols, rho, beta_2, epsilon_1, epsilon_2,
                     clip_threshold):
    if not param.size:
        return
    sums = scratch("adafactor_sums", 2)
    _sum_squares[1, 256](param, grad, v[:0], sums)  # the weights' RMS, before they change
    if rows:
        _adafactor_rows[blocks(lead * rows)](grad, row_stats, lead, rows, cols, beta_2, epsilon_1)
        _adafactor_cols[blocks(lead * cols)](grad, col_stats, lead, rows, cols, beta_2, epsilon_1)
    _adafactor_v[blocks(v.size)](grad, v, row_stats, col_stats, lead, rows, cols, beta_2, epsilon_1)
    _sum_squares[1, 256](param, grad, v, sums)  # (its first sum again: the same weights, the same order)
    _adafactor_apply[blocks(param.size)](param, grad, v, sums, rho, epsilon_2, clip_threshold)


@kernel
def _clip_values(grad, limit):
    i = cuda.grid(1)
    if i < grad.size:
        grad[i] = min(max(grad[i], -limit), limit)


def clip_values(grad, limit):
    _launch(_clip_values, grad, limit)


@kernel
def _clip_norms(grad, bounds, limit):
    """Block k scales segment k: a strided sum of squares, a tree in shared memory (fixed order), then
    every value times limit / max(norm, limit)."""
    tree = cuda.shared.array(256, float64)
    k, t = cuda.blockIdx.x, cuda.threadIdx.x
    lo, hi = bounds[k], bounds[k + 1]
    s = 0.0
    for i in range(lo + t, hi, 256):
        s += float64(grad[i]) * grad[i]
    tree[t] = s
    scale = limit / max(math.sqrt(block_total(tree, t)), limit)
    for i in range(lo + t, hi, 256):
        grad[i] *= scale


def clip_norms(grad, bounds, limit):
    if bounds.size > 1:
        _clip_norms[bounds.size - 1, 256](grad, bounds, limit)
