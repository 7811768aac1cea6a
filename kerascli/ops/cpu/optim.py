"""Numba twins of kerascli.ops.reference.optim: same names, signatures and results."""

from __future__ import annotations

import numpy as np
from numba import njit

from kerascli.ops import scalar
from kerascli.ops.cpu.jit import opts

# Optimizer slots decay geometrically where a gradient stays zero (dead units,
# always-zero inputs); float32 values below ~1e-38 become denormal, and
# denormal arithmetic is ~100x slower on x86. Values below TINY are flushed to
# zero (as CPU frameworks do by enabling flush-to-zero).
TINY = np.float32(1e-30)


@njit(inline="always", **opts)
def _moments(m, v, i, g, one_minus_beta_1, one_minus_beta_2):
    """Adam's first and second moments of parameter i moved toward g and g * g, flushed below TINY, stored
    and returned."""
    mi = m[i] + (g - m[i]) * one_minus_beta_1
    vi = v[i] + (g * g - v[i]) * one_minus_beta_2
    mi *= np.float32(abs(mi) >= TINY)  # a multiply, not a branch: it vectorises
    vi *= np.float32(vi >= TINY)
    m[i] = mi
    v[i] = vi
    return mi, vi


@njit(**opts)
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


@njit(**opts)
def adam_update(param, grad, m, v, alpha, one_minus_beta_1, one_minus_beta_2, epsilon):
    # scalars arrive in the parameters' dtype, so float32 stays float32 and vectorises
    for i in range(param.size):
        mi, vi = _moments(m, v, i, grad[i], one_minus_beta_1, one_minus_beta_2)
        param[i] -= alpha * mi / (np.sqrt(vi) + epsilon)


@njit(**opts)
def adam_amsgrad_update(param, grad, m, v, v_hat, alpha, one_minus_beta_1, one_minus_beta_2, epsilon):
    for i in range(param.size):
        mi, vi = _moments(m, v, i, grad[i], one_minus_beta_1, one_minus_beta_2)
        vh = max(v_hat[i], vi)
        v_hat[i] = vh
        param[i] -= alpha * mi / (np.sqrt(vh) + epsilon)


@njit(**opts)
def decay_weights(param, rate):
    for i in range(param.size):
        param[i] -= param[i] * rate


@njit(**opts)
def rmsprop_update(param, grad, velocity, momentum_buf, average_grad, lr, rho, momentum, epsilon, centered):
    for i in range(param.size):
        g = grad[i]
        vel = velocity[i] + (1 - rho) * (g * g - velocity[i])
        vel *= np.float32(abs(vel) >= TINY)
        velocity[i] = vel
        if centered:
            avg = average_grad[i] + (1 - rho) * (g - average_grad[i])
            avg *= np.float32(abs(avg) >= TINY)
            average_grad[i] = avg
            denominator = vel - avg * avg + epsilon
        else:
            denominator = vel + epsilon
        increment = lr * g / np.sqrt(denominator)
        if momentum > 0:
            mom = momentum_buf[i] * momentum + increment
            mom *= np.float32(abs(mom) >= TINY)
            momentum_buf[i] = mom
            param[i] -= mom
        else:
            param[i] -= increment


@njit(**opts)
def adagrad_update(param, grad, accumulator, lr, epsilon):
    for i in range(param.size):
        g = grad[i]
        accumulator[i] += g * g
        param[i] -= lr * g / np.sqrt(accumulator[i] + epsilon)


@njit(**opts)
def adamax_update(param, grad, m, u, lr_t, one_minus_beta_1, beta_2, epsilon):
    for i in range(param.size):
        g = grad[i]
        mi = m[i] + (g - m[i]) * one_minus_beta_1
        mi *= np.float32(abs(mi) >= TINY)
        m[i] = mi
        ui = max(u[i] * beta_2, abs(g))
        u[i] = ui
        param[i] -= lr_t * mi / (ui + epsilon)


@njit(**opts)
def nadam_update(param, grad, m, v, lr, one_minus_beta_1, one_minus_beta_2, epsilon, m_coef, g_coef, v_coef):
    for i in range(param.size):
        g = grad[i]
        mi, vi = _moments(m, v, i, g, one_minus_beta_1, one_minus_beta_2)
        param[i] -= (mi * m_coef + g * g_coef) * lr / (np.sqrt(vi * v_coef) + epsilon)


@njit(**opts)
def lion_update(param, grad, m, lr, beta_1, beta_2):
    for i in range(param.size):
        g = grad[i]
        param[i] -= lr * np.sign(m[i] * beta_1 + g * (1 - beta_1))
        mi = m[i] * beta_2 + g * (1 - beta_2)
        mi *= np.float32(abs(mi) >= TINY)
        m[i] = mi


@njit(**opts)
def adadelta_update(param, grad, accumulated_grad, accumulated_delta_var, lr, rho, epsilon):
    for i in range(param.size):
        g = grad[i]
        acc = accumulated_grad[i] * rho + (1 - rho) * g * g
        acc *= np.float32(acc >= TINY)
        accumulated_grad[i] = acc
        delta = -np.sqrt(accumulated_delta_var[i] + epsilon) * g / np.sqrt(acc + epsilon)
        acc_delta = accumulated_delta_var[i] * rho + (1 - rho) * delta * delta
        acc_delta *= np.float32(acc_delta >= TINY)
        accumulated_delta_var[i] = acc_delta
        param[i] += lr * delta


_ftrl_element = njit(inline="always", **opts)(scalar.ftrl_element)


@njit(**opts)
def ftrl_update(param, grad, accumulator, linear, lr, lr_power, l1, l2, l2_shrinkage):
    for i in range(param.size):
        param[i], linear[i], accumulator[i] = _ftrl_element(grad[i], param[i], accumulator[i], linear[i], lr,
                                                            lr_power, l1, l2, l2_shrinkage)


@njit(**opts)
def accumulate_gradient(accumulator, grad):
    for i in range(accumulator.size):
        accumulator[i] += grad[i]


@njit(**opts)
def add_scaled_gradient(total, grad, share):
    for i in range(total.size):
        total[i] += grad[i] * share


@njit(**opts)
def average_accumulated_gradient(grad, accumulator, steps):
    for i in range(grad.size):
        grad[i] = (grad[i] + accumulator[i]) / steps
        accumulator[i] = 0


@njit(**opts)
def moving_average_weights(average, param, momentum):
    for i in range(average.size):
        average[i] = momentum * average[i] + (1 - momentum) * param[i]


@njit(**opts)
def adafactor_update(param, grad, v, row_stats, col_stats, lead, rows, cols, rho, beta_2, epsilon_1, epsilon_2,
                     clip_threshold):
    total = 0.0
    for i in range(param.size):
        total += np.float64(param[i]) * param[i]
    alpha = max(epsilon_2, np.sqrt(total / max(param.size, 1))) * rho
    if rows:
        for l in range(lead):
            base = l * rows * cols
            for i in range(rows):
                acc = 0.0
                for j in range(cols):
                    g = grad[base + i * cols + j]
                    acc += g * g + epsilon_1
                row_stats[l * rows + i] = beta_2 * row_stats[l * rows + i] + (1 - beta_2) * (acc / cols)
            for j in range(cols):
                acc = 0.0
                for i in range(rows):
                    g = grad[base + i * cols + j]
                    acc += g * g + epsilon_1
                col_stats[l * cols + j] = beta_2 * col_stats[l * cols + j] + (1 - beta_2) * (acc / rows)
            mean_r = 0.0
            for i in range(rows):
                mean_r += row_stats[l * rows + i]
            mean_r /= rows
            for i in range(rows):
                for j in range(cols):
                    v[base + i * cols + j] = row_stats[l * rows + i] / mean_r * col_stats[l * cols + j]
    else:
        for i in range(param.size):
            v[i] = beta_2 * v[i] + (1 - beta_2) * (grad[i] * grad[i] + epsilon_1)
    total = 0.0
    for i in range(param.size):
        u = grad[i] / np.sqrt(v[i])
        total += np.float64(u) * u
    scale = alpha / max(1.0, np.sqrt(total / max(param.size, 1)) / clip_threshold)
    for i in range(param.size):
        param[i] -= scale * (grad[i] / np.sqrt(v[i]))


@njit(**opts)
def clip_values(grad, limit):
    for i in range(grad.size):
        grad[i] = min(max(grad[i], -limit), limit)


@njit(**opts)
def clip_norms(grad, bounds, limit):
    for k in range(bounds.size - 1):
        total = 0.0
        for i in range(bounds[k], bounds[k + 1]):
            total += np.float64(grad[i]) * grad[i]
        scale = grad.dtype.type(limit / max(np.sqrt(total), limit))
        for i in range(bounds[k], bounds[k + 1]):
            grad[i] *= scale
