"""Optimizer updates over flat parameter buffers, in place."""

from __future__ import annotations

import numpy as np

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


def adam_amsgrad_update(param, grad, m, v, v_hat, alpha, one_minus_beta_1, one_minus_beta_2, epsilon):
    """Adam with amsgrad: v_hat = max(v_hat, v) takes v's place in the denominator."""
    m += (grad - m) * one_minus_beta_1
    v += (grad * grad - v) * one_minus_beta_2
    _flush(m)
    _flush(v)
    np.maximum(v_hat, v, out=v_hat)
    param -= alpha * m / (np.sqrt(v_hat) + epsilon)


def decay_weights(param, rate):
    """Decoupled weight decay (Keras' weight_decay): param -= param * rate, rate = weight_decay * lr."""
    param -= param * rate


def rmsprop_update(param, grad, velocity, momentum_buf, average_grad, lr, rho, momentum, epsilon, centered):
    """Keras RMSprop: velocity = rho v + (1 - rho) g^2 (centered: minus the square of the same average of g);
    the step lr g / sqrt(that + epsilon) goes through momentum when momentum > 0. Unused slots are not
    touched (they may be any array)."""
    velocity += (1 - rho) * (grad * grad - velocity)
    _flush(velocity)
    if centered:
        average_grad += (1 - rho) * (grad - average_grad)
        _flush(average_grad)
        denominator = velocity - average_grad * average_grad + epsilon
    else:
        denominator = velocity + epsilon
    increment = lr * grad / np.sqrt(denominator)
    if momentum > 0:
        momentum_buf *= momentum
        momentum_buf += increment
        _flush(momentum_buf)
        param -= momentum_buf
    else:
        param -= increment


def adagrad_update(param, grad, accumulator, lr, epsilon):
    """Keras Adagrad: accumulator += g^2; param -= lr g / sqrt(accumulator + epsilon)."""
    accumulator += grad * grad
    param -= lr * grad / np.sqrt(accumulator + epsilon)


def adamax_update(param, grad, m, u, lr_t, one_minus_beta_1, beta_2, epsilon):
    """Keras Adamax with lr_t = lr / (1 - beta_1^t) from the caller: m += (g - m)(1 - beta_1);
    u = max(beta_2 u, |g|); param -= lr_t m / (u + epsilon)."""
    m += (grad - m) * one_minus_beta_1
    _flush(m)
    np.maximum(u * beta_2, np.abs(grad), out=u)
    param -= lr_t * m / (u + epsilon)


def nadam_update(param, grad, m, v, lr, one_minus_beta_1, one_minus_beta_2, epsilon, m_coef, g_coef, v_coef):
    """Keras Nadam with its momentum schedule folded by the caller into m_coef, g_coef (m_hat = m_coef m +
    g_coef g) and v_coef (v_hat = v_coef v)."""
    m += (grad - m) * one_minus_beta_1
    v += (grad * grad - v) * one_minus_beta_2
    _flush(m)
    _flush(v)
    param -= (m * m_coef + grad * g_coef) * lr / (np.sqrt(v * v_coef) + epsilon)


def lion_update(param, grad, m, lr, beta_1, beta_2):
    """Keras Lion: param -= lr sign(beta_1 m + (1 - beta_1) g); m = beta_2 m + (1 - beta_2) g."""
    param -= lr * np.sign(m * beta_1 + grad * (1 - beta_1))
    m *= beta_2
    m += grad * (1 - beta_2)
    _flush(m)


def adadelta_update(param, grad, accumulated_grad, accumulated_delta_var, lr, rho, epsilon):
    """Keras Adadelta: E[g^2] = rho E[g^2] + (1 - rho) g^2; d = -sqrt(E[d^2] + eps) g / sqrt(E[g^2] + eps);
    E[d^2] = rho E[d^2] + (1 - rho) d^2; param += lr d."""
    accumulated_grad *= rho
    accumulated_grad += (1 - rho) * grad * grad
    _flush(accumulated_grad)
    delta = -np.sqrt(accumulated_delta_var + epsilon) * grad / np.sqrt(accumulated_grad + epsilon)
    accumulated_delta_var *= rho
    accumulated_delta_var += (1 - rho) * delta * delta
    _flush(accumulated_delta_var)
    param += lr * delta


def ftrl_update(param, grad, accumulator, linear, lr, lr_power, l1, l2, l2_shrinkage):
    """Keras Ftrl (``l2`` already holds beta / (2 lr) added by the caller): a = accumulator + g^2;
    linear += g + 2 l2_shrinkage param - (a^-p - accumulator^-p) / lr param;
    param = (clip(linear, -l1, l1) - linear) / (a^-p / lr + 2 l2); accumulator = a."""
    shrunk = grad + 2 * l2_shrinkage * param
    new_accumulator = accumulator + grad * grad
    linear += shrunk - (new_accumulator ** -lr_power - accumulator ** -lr_power) / lr * param
    quadratic = new_accumulator ** -lr_power / lr + 2 * l2
    param[...] = (np.clip(linear, -l1, l1) - linear) / quadratic
    accumulator[...] = new_accumulator


def accumulate_gradient(accumulator, grad):
    """Keras' gradient accumulation between updates: accumulator += g."""
    accumulator += grad


def add_scaled_gradient(total, grad, share):
    """A sum of gradients weighted by shares (data-parallel ranks' parts of a batch): total += share * grad."""
    total += grad * share


def average_accumulated_gradient(grad, accumulator, steps):
    """The update step of gradient accumulation: g = (g + accumulator) / steps; the accumulator starts over."""
    grad += accumulator
    grad /= steps
    accumulator[...] = 0


def moving_average_weights(average, param, momentum):
    """Keras' EMA of the weights: average = momentum average + (1 - momentum) param."""
    average *= momentum
    average += (1 - momentum) * param


def adafactor_update(param, grad, v, row_stats, col_stats, lead, rows, cols, rho, beta_2, epsilon_1, epsilon_2,
                     clip_threshold):
    """Keras Adafactor on one weight (flat segments), its shape (lead, rows, cols), ``rows`` 0 for a weight
    of rank < 2. Factored: row_stats[:lead*rows] = beta_2 r + (1 - beta_2) mean over cols of g^2 + eps_1,
    col_stats[:lead*cols] the same over rows, v = r / mean(r) * c; else v = beta_2 v + (1 - beta_2)(g^2 + eps_1).
    Then u = g / sqrt(v), clipped by its RMS over clip_threshold; param -= max(eps_2, RMS(param)) rho u."""
    alpha = max(epsilon_2, np.sqrt(np.mean(param.astype(np.float64) ** 2))) * rho
    square = grad * grad + epsilon_1
    if rows:
        g2 = square.reshape(lead, rows, cols)
        r = row_stats[:lead * rows].reshape(lead, rows)
        c = col_stats[:lead * cols].reshape(lead, cols)
        r[...] = beta_2 * r + (1 - beta_2) * g2.mean(axis=2)
        c[...] = beta_2 * c + (1 - beta_2) * g2.mean(axis=1)
        v[...] = ((r / r.mean(axis=1, keepdims=True))[:, :, None] * c[:, None, :]).reshape(v.shape)
    else:
        v[...] = beta_2 * v + (1 - beta_2) * square
    u = grad / np.sqrt(v)
    u_rms = np.sqrt(np.mean(u.astype(np.float64) ** 2))
    param -= (alpha * u / max(1.0, u_rms / clip_threshold)).astype(param.dtype)


def clip_values(grad, limit):
    """Keras' clipvalue: every gradient into [-limit, limit]."""
    np.clip(grad, -limit, limit, out=grad)


def clip_norms(grad, bounds, limit):
    """Keras' clipnorm over each segment [bounds[i], bounds[i + 1]) of the flat gradient (one per weight):
    g * limit / max(||g||, limit). One segment over everything is global_clipnorm."""
    for lo, hi in zip(bounds[:-1], bounds[1:]):
        g = grad[lo:hi]
        norm = np.sqrt((g.astype(np.float64) ** 2).sum())
        g *= g.dtype.type(limit / max(norm, limit))
