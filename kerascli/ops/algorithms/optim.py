"""Optimizer steps over the flat parameter buffer, split across threads."""

from __future__ import annotations


def optimizer_step(ops, kernel: str, arrays: tuple, scalars: tuple = ()) -> None:
    """Run the update kernel ``kernel`` over ``arrays`` (the parameters first, then gradients and slots:
    flat buffers of one length) with ``scalars``, parts of the buffers on each thread."""
    update, size = getattr(ops, kernel), arrays[0].size
    ops.parallel(lambda i, lo, hi: update(*(a[lo:hi] for a in arrays), *scalars), size, size)


def sgd_step(ops, params, grads, velocity, lr, momentum, nesterov):
    ops.optimizer_step("sgd_update", (params, grads, velocity), (lr, momentum, nesterov))


def adam_step(ops, params, grads, m, v, alpha, one_minus_beta_1, one_minus_beta_2, epsilon):
    ops.optimizer_step("adam_update", (params, grads, m, v), (alpha, one_minus_beta_1, one_minus_beta_2, epsilon))
